//! The vault on `s3://`, against moto's S3 server on loopback.
//!
//! Each test starts its own `moto_server` from the tools directory (installed
//! by `cargo xtask setup`) on a loopback port the kernel picks as moto binds
//! it (so no other process can take it first), creates its bucket with a
//! plain HTTP request (object_store cannot create buckets), and stops the
//! server when it is dropped, so nothing is left running.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_core::testing::vault;
use healthledger_core::{VaultError, VaultPort};
use healthledger_vault::Vault;

use crate::kek;
use crate::support::StoreBackdoor;

/// The port in werkzeug's ` * Running on http://127.0.0.1:<port>` line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.split_once("Running on http://127.0.0.1:")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&port| port != 0)
}

/// Credentials moto accepts; they must never show in health or Debug.
const SECRET: &str = "moto-test-secret-key";

struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Self {
        let tools = std::env::var_os("HEALTHLEDGER_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"));
        let server = tools.join("moto").join("bin").join("moto_server");
        assert!(
            server.is_file(),
            "the S3 test server is not installed ({} is missing): run `cargo xtask setup`",
            server.display()
        );
        // Port 0: the kernel picks a free port while moto binds it, so no
        // other process can take it in between; moto (werkzeug) then logs
        // ` * Running on http://127.0.0.1:<port>` on stderr.
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {} failed: {e}", server.display()));
        let stderr = child.stderr.take().unwrap();
        let (port_tx, port_rx) = mpsc::channel();
        // The thread keeps reading stderr for the server's whole life: moto
        // logs every request there, and a full pipe would stall it.
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &port_tx {
                    match listening_port(&line) {
                        Some(port) => {
                            let _ = tx.send(Ok(port));
                            port_tx = None;
                        }
                        None => log.push(line),
                    }
                }
            }
            if let Some(tx) = port_tx {
                let _ = tx.send(Err(log.join("\n")));
            }
        });
        let port = match port_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => port,
            Ok(Err(log)) => {
                let status = child.wait().ok();
                panic!(
                    "{} exited ({status:?}) before listening:\n{log}",
                    server.display()
                )
            }
            Err(e) => {
                let _ = child.kill();
                panic!("{} reported no port within 60 s: {e}", server.display())
            }
        };
        let mut moto = Self { child, port };
        // The socket listens before the line is logged; this only waits for
        // the first request to be served.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !moto
            .request("GET", "/")
            .is_some_and(|r| r.contains(" 200 "))
        {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited with {status} before answering on port {port}");
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One HTTP/1.1 request without a body; the raw response.
    fn request(&self, method: &str, path: &str) -> Option<String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut response = String::new();
        conn.read_to_string(&mut response).ok()?;
        Some(response)
    }

    fn create_bucket(&self, bucket: &str) {
        let response = self
            .request("PUT", &format!("/{bucket}"))
            .unwrap_or_default();
        assert!(
            response.contains(" 200 "),
            "creating bucket {bucket}: {response}"
        );
    }

    fn vault(&self, bucket: &str) -> Vault {
        self.create_bucket(bucket);
        self.create_bucket(&format!("{bucket}-keys"));
        self.vault_without_bucket(bucket)
    }

    /// A vault with content in `bucket` and keys in `<bucket>-keys`.
    fn vault_without_bucket(&self, bucket: &str) -> Vault {
        let mut builder = Vault::builder(format!("s3://{bucket}/healthledger"))
            .key_store(format!("s3://{bucket}-keys/healthledger"))
            .erasure_horizon(crate::HORIZON)
            .kek(kek());
        for (key, value) in [
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".to_owned()),
            ("aws_access_key_id", "moto-test-access-key".to_owned()),
            ("aws_secret_access_key", SECRET.to_owned()),
            ("aws_region", "us-east-1".to_owned()),
        ] {
            builder = builder
                .option(key, value.clone())
                .key_store_option(key, value);
        }
        builder.build().unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_passes_the_conformance_suite() {
    let moto = Moto::start();
    let v = moto.vault("conformance");
    vault::all(&v, &StoreBackdoor(&v)).await;
    let health = v.health().await.unwrap();
    assert_eq!(health.backend, "s3://conformance/healthledger");
    assert!(!format!("{v:?}").contains(SECRET));
    // A missing bucket is reported, without the credentials.
    let missing = moto.vault_without_bucket("no-such-bucket");
    let err = missing.health().await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains(SECRET), "{err}");
    // The ciphertext is in the bucket under its CID.
    let sealed = v
        .put(crate::patient(), Bytes::from_static(b"mri report"))
        .await
        .unwrap();
    let listing = moto
        .request(
            "GET",
            "/conformance?list-type=2&prefix=healthledger/objects/",
        )
        .unwrap();
    assert!(listing.contains(&sealed.cid.to_string()), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_upload_in_parts_to_s3() {
    let moto = Moto::start();
    let v = moto.vault("large");
    let data: Bytes = (0..9 * 1024 * 1024 + 17)
        .map(|i: usize| (i % 241) as u8)
        .collect::<Vec<u8>>()
        .into();
    let pieces: Vec<_> = data
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let sealed = v
        .put_stream(crate::patient(), stream::iter(pieces).boxed())
        .await
        .unwrap();
    let back: Vec<Bytes> = v
        .get_stream(crate::patient(), &sealed.cid)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(back.concat(), data.to_vec());
    let incoming = moto
        .request("GET", "/large?list-type=2&prefix=healthledger/incoming/")
        .unwrap();
    assert!(
        !incoming.contains("<Key>"),
        "an upload was left behind: {incoming}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_s3_rewrites_subject_records_with_conditional_puts() {
    let moto = Moto::start();
    let v = moto.vault("rotation");
    let mut kept = Vec::new();
    for i in 0..3u8 {
        let data = Bytes::from(vec![i; 500]);
        let owner = healthledger_core::HhNumber::new(555_500 + u32::from(i)).unwrap();
        kept.push((v.put(owner, data.clone()).await.unwrap(), data));
    }
    let gone = v
        .put(crate::patient(), Bytes::from_static(b"gone"))
        .await
        .unwrap();
    v.shred(&gone.cid).await.unwrap();
    let report = v.rotate_kek(crate::other_kek()).await.unwrap();
    assert_eq!((report.rewrapped, report.erased), (4, 0), "{report:?}");
    for (i, (sealed, data)) in (0u32..).zip(&kept) {
        let owner = healthledger_core::HhNumber::new(555_500 + i).unwrap();
        assert_eq!(&v.get(owner, &sealed.cid).await.unwrap(), data);
    }
    assert!(matches!(
        v.get(crate::patient(), &gone.cid).await,
        Err(VaultError::NotFound(_))
    ));
    let again = v.rotate_kek(crate::other_kek()).await.unwrap();
    assert_eq!(again.already_current, 4, "{again:?}");
}
