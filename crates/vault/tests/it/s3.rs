//! The vault on `s3://`, against moto's S3 server on loopback.
//!
//! Each test starts its own `moto_server` from the tools directory (installed
//! by `cargo xtask setup`) on a free port, creates its bucket with a plain
//! HTTP request (object_store cannot create buckets), and stops the server
//! when it is dropped, so nothing is left running.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_core::VaultPort;
use healthledger_core::testing::vault;
use healthledger_vault::Vault;

use crate::kek;

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
        // The free port is found by binding and releasing it, so another
        // process may take it first: then moto exits and a new port is tried.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(&server) {
                Ok(moto) => return moto,
                Err(why) => failures.push(why),
            }
        }
        panic!("{} did not start: {failures:?}", server.display());
    }

    fn try_start(server: &std::path::Path) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning failed: {e}"))?;
        let mut moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if moto
                .request("GET", "/")
                .is_some_and(|r| r.contains(" 200 "))
            {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!(
                    "exited with {status} before answering on port {port}"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("did not answer on port {port} within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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
        self.vault_without_bucket(bucket)
    }

    fn vault_without_bucket(&self, bucket: &str) -> Vault {
        Vault::builder(format!("s3://{bucket}/healthledger"))
            .option("aws_endpoint", self.endpoint())
            .option("aws_allow_http", "true")
            .option("aws_access_key_id", "moto-test-access-key")
            .option("aws_secret_access_key", SECRET)
            .option("aws_region", "us-east-1")
            .kek(kek())
            .build()
            .unwrap()
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
    vault::all(&v).await;
    let health = v.health().await.unwrap();
    assert_eq!(health.backend, "s3://conformance/healthledger");
    assert!(!format!("{v:?}").contains(SECRET));
    // A missing bucket is reported, without the credentials.
    let missing = moto.vault_without_bucket("no-such-bucket");
    let err = missing.health().await.unwrap_err();
    assert!(!err.to_string().contains(SECRET), "{err}");
    // The ciphertext is in the bucket under its CID.
    let sealed = v.put(Bytes::from_static(b"mri report")).await.unwrap();
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
    let sealed = v.put_stream(stream::iter(pieces).boxed()).await.unwrap();
    let back: Vec<Bytes> = v
        .get_stream(&sealed.cid)
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
