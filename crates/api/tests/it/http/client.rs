//! A test client of the HTTP server: a real server on a random port over
//! an app on anvil (SQLite or PostgreSQL), and users who sign in with
//! their wallets and sign consent as a browser wallet would.

use std::{sync::Arc, time::Duration};

use alloy_dyn_abi::TypedData;
use healthledger_api::{
    App, ConsentSigner as _, LocalWallet,
    http::{HttpConfig, Server},
};
use healthledger_core::{B256, Profile, testing::fixtures};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;

pub(crate) const OPERATOR_TOKEN: &str = "operator-test-token-0123456789";

/// Who a request is from.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    None,
    Bearer(String),
    Operator(String),
}

/// A running server and a client of it.
pub(crate) struct Served {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<healthledger_api::Result<()>>>,
    follow: Option<healthledger_api::jobs::Job>,
    _dir: tempfile::TempDir,
}

/// A server over a fresh app; `tune` adjusts the app's config and the
/// server's.
pub(crate) async fn serve_with(
    postgres: bool,
    tune_app: impl FnOnce(&mut healthledger_api::Config),
    tune: impl FnOnce(&mut HttpConfig),
) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::local_config(dir.path());
    if postgres {
        config.database_url = support::postgres_url();
        config.database_schema = Some(format!(
            "http_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        ));
    }
    tune_app(&mut config);
    let app = Arc::new(App::build(config).await.unwrap());
    let mut http = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    http.operator_token = Some(healthledger_api::Secret::new(OPERATOR_TOKEN));
    http.rate_per_sec = 0;
    tune(&mut http);
    let server = Server::bind(app.clone(), http).await.unwrap();
    // As `healthledger serve` does: follow mode keeps the cache in step.
    let follow = Some(app.spawn_follow());
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    Served {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        app,
        stop: Some(tx),
        task: Some(task),
        follow,
        _dir: dir,
    }
}

pub(crate) async fn serve(postgres: bool) -> Served {
    serve_with(postgres, |_| {}, |_| {}).await
}

/// A response: status, headers and the body as JSON (or a string).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) bytes: bytes::Bytes,
}

impl Answer {
    /// The error code of an error body.
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Served {
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
    ) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => r,
            Auth::Bearer(t) => r.bearer_auth(t),
            Auth::Operator(t) => r.header("x-operator-token", t),
        }
    }

    pub(crate) async fn send(&self, r: reqwest::RequestBuilder) -> Answer {
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
            bytes,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> Answer {
        let mut r = self.request(method, path, auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r).await
    }

    pub(crate) async fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.call(Method::GET, path, auth, None).await
    }

    pub(crate) async fn post(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    /// A sign-in message for `wallet` with a fresh nonce, signed.
    pub(crate) async fn signed_in_message(&self, wallet: &LocalWallet) -> Value {
        let n = self.post("/api/auth/nonce", &Auth::None, json!({})).await;
        assert_eq!(n.status, StatusCode::OK, "{n:?}");
        let message = siwe_message(
            n.body["domain"].as_str().unwrap(),
            n.body["uri"].as_str().unwrap(),
            n.body["chain_id"].as_u64().unwrap(),
            n.body["nonce"].as_str().unwrap(),
            wallet,
        );
        sign_message(wallet, &message)
    }

    /// Signs in: the session token.
    pub(crate) async fn login(&self, wallet: &LocalWallet) -> Auth {
        let signed = self.signed_in_message(wallet).await;
        let r = self.post("/api/auth/login", &Auth::None, signed).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        Auth::Bearer(r.body["token"].as_str().unwrap().to_owned())
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        if let Some(f) = self.follow.take() {
            f.stop().await.unwrap();
        }
        self.app.shutdown().await;
    }
}

/// An EIP-4361 message, as a wallet front end writes it.
pub(crate) fn siwe_message(
    domain: &str,
    uri: &str,
    chain_id: u64,
    nonce: &str,
    wallet: &LocalWallet,
) -> String {
    let now = chrono::Utc::now();
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "{domain} wants you to sign in with your Ethereum account:\n{}\n\nSign in to HealthLedger.\n\nURI: {uri}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {}\nExpiration Time: {}",
        wallet.wallet(),
        ts(now),
        ts(now + chrono::Duration::minutes(5)),
    )
}

pub(crate) fn sign_message(wallet: &LocalWallet, message: &str) -> Value {
    let sig = wallet.sign_message(message.as_bytes()).unwrap();
    json!({ "message": message, "signature": format!("0x{}", hex::encode(sig.as_bytes())) })
}

/// Signs the consent the server handed out as `eth_signTypedData_v4`
/// would: the typed data's EIP-712 hash must be the digest it names.
pub(crate) async fn sign_consent(wallet: &LocalWallet, consent: &Value) -> String {
    let typed: TypedData = serde_json::from_value(consent["typed_data"].clone()).unwrap();
    let digest: B256 = consent["digest"].as_str().unwrap().parse().unwrap();
    assert_eq!(typed.eip712_signing_hash().unwrap(), digest);
    let sig = wallet.sign_digest(digest).await.unwrap();
    format!("0x{}", hex::encode(sig.as_bytes()))
}

/// The people of the story: registered over HTTP and signed in.
pub(crate) struct People {
    pub(crate) patient: (LocalWallet, Auth),
    pub(crate) other: (LocalWallet, Auth),
    pub(crate) doctor: (LocalWallet, Auth),
    pub(crate) center: (LocalWallet, Auth),
}

pub(crate) const PATIENT: u32 = 555_555;
pub(crate) const OTHER: u32 = 555_556;
pub(crate) const DOCTOR: u32 = 112_233;
pub(crate) const CENTER: u32 = 444_444;

pub(crate) fn operator() -> Auth {
    Auth::Operator(OPERATOR_TOKEN.into())
}

fn inner(p: Profile) -> Value {
    match p {
        Profile::Patient(p) => serde_json::to_value(p).unwrap(),
        Profile::Doctor(d) => serde_json::to_value(d).unwrap(),
        Profile::DiagnosticCenter(c) => serde_json::to_value(c).unwrap(),
    }
}

pub(crate) fn patient_json(hh: u32, wallet: &LocalWallet, name: &str) -> Value {
    inner(fixtures::patient(hh, wallet.wallet(), name))
}

/// Registers everyone: the providers by the operator, the patients by
/// themselves (their registration signs them in).
pub(crate) async fn people(s: &Served) -> People {
    let doctor = LocalWallet::random();
    let center = LocalWallet::random();
    let r = s
        .post(
            "/api/register/doctor",
            &operator(),
            inner(fixtures::doctor(DOCTOR, doctor.wallet(), "Dr. Sen")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = s
        .post(
            "/api/register/diagnostic",
            &operator(),
            inner(fixtures::diagnostic_center(
                CENTER,
                center.wallet(),
                "Metro Labs",
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let mut patients = Vec::new();
    for (hh, name) in [(PATIENT, "Asha Rao"), (OTHER, "Ravi Iyer")] {
        let w = LocalWallet::random();
        let sign_in = s.signed_in_message(&w).await;
        let r = s
            .post(
                "/api/register/patient",
                &Auth::None,
                json!({ "profile": patient_json(hh, &w, name), "sign_in": sign_in }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let token = r.body["session"]["token"].as_str().unwrap().to_owned();
        patients.push((w, Auth::Bearer(token)));
    }
    let doctor_auth = s.login(&doctor).await;
    let center_auth = s.login(&center).await;
    let mut p = patients.into_iter();
    People {
        patient: p.next().unwrap(),
        other: p.next().unwrap(),
        doctor: (doctor, doctor_auth),
        center: (center, center_auth),
    }
}

pub(crate) const REPORT: &[u8] =
    b"%PDF-1.7\n1 0 obj << /Title (Lipid panel) >> endobj\nLDL 96 mg/dL\n%%EOF\n";

/// The center uploads `file` for `patient` and commits it: the record id.
pub(crate) async fn create_record(
    s: &Served,
    center: &(LocalWallet, Auth),
    patient: u32,
    file: &[u8],
) -> String {
    let up = upload(s, &center.1, patient, file, "application/pdf").await;
    assert_eq!(up.status, StatusCode::CREATED, "{up:?}");
    let sig = sign_consent(&center.0, &up.body["consent"]).await;
    let id = up.body["upload_id"].as_str().unwrap();
    let c = s
        .post(
            &format!("/api/records/diagnostic/{id}/commit"),
            &center.1,
            json!({ "signature": sig }),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{c:?}");
    c.body["record"]["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn upload(
    s: &Served,
    auth: &Auth,
    patient: u32,
    file: &[u8],
    mime: &str,
) -> Answer {
    let form = reqwest::multipart::Form::new()
        .text("patient", patient.to_string())
        .text("test_name", "Lipid panel")
        .text("record_type", "lab-result")
        .text("date", "2026-11-30")
        .text("content_type", mime.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(file.to_vec())
                .file_name("report.pdf")
                .mime_str(mime)
                .unwrap(),
        );
    s.send(
        s.request(Method::POST, "/api/records/diagnostic", auth)
            .multipart(form),
    )
    .await
}

/// Grants `grantee` access with the patient's signed consent.
pub(crate) async fn grant(
    s: &Served,
    patient: &(LocalWallet, Auth),
    hh: u32,
    grantee: u32,
) -> Answer {
    change_access(s, "grant", patient, hh, grantee).await
}

/// Revokes `grantee`'s access with the patient's signed consent.
pub(crate) async fn revoke(
    s: &Served,
    patient: &(LocalWallet, Auth),
    hh: u32,
    grantee: u32,
) -> Answer {
    change_access(s, "revoke", patient, hh, grantee).await
}

/// `action` (grant or revoke): the typed data from the server, signed by
/// the patient's wallet, relayed.
async fn change_access(
    s: &Served,
    action: &str,
    patient: &(LocalWallet, Auth),
    hh: u32,
    grantee: u32,
) -> Answer {
    let c = s
        .get(
            &format!("/api/consent/typed-data?action={action}&patient={hh}&grantee={grantee}"),
            &patient.1,
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{c:?}");
    let sig = sign_consent(&patient.0, &c.body).await;
    s.post(
        &format!("/api/records/patient/{hh}/{action}"),
        &patient.1,
        json!({ "grantee": grantee, "signature": sig, "deadline": c.body["deadline"] }),
    )
    .await
}
