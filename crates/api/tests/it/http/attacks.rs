//! Bad input and attacks over HTTP: malformed JSON, invalid HH numbers,
//! oversized and wrong-type uploads, replayed nonces, forged and
//! misdirected sign-in messages, expired sessions, another patient's
//! records, forged consent, a stranger's upload, rate limits, a client
//! that sends its headers too slowly.

use std::time::Duration;

use healthledger_api::LocalWallet;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::client::{
    Auth, CENTER, DOCTOR, OTHER, PATIENT, REPORT, create_record, operator, patient_json, people,
    serve, serve_with, sign_message, siwe_message, upload,
};

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_typed_error_naming_the_field() {
    let s = serve_with(false, |c| c.max_file_bytes = 4096, |_| {}).await;
    let p = people(&s).await;

    // Malformed JSON and a body of the wrong shape: 400, naming the field.
    let r = s
        .send(
            s.request(Method::POST, "/api/register/doctor", &operator())
                .header("content-type", "application/json")
                .body("{\"hh\": 1234"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert_eq!(r.code(), "invalid_input");
    let mut doc = patient_json(777_777, &LocalWallet::random(), "X");
    doc["hh"] = json!(12);
    let r = s.post("/api/register/doctor", &operator(), doc).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("hh"),
        "{r:?}"
    );
    // Not JSON at all: 415.
    let r = s
        .send(
            s.request(Method::POST, "/api/verify", &operator())
                .body("repair=true"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r:?}");

    // Invalid HH numbers in paths and queries.
    for path in [
        "/api/profile/patient/12",
        "/api/profile/patient/abcdef",
        "/api/profile/patient/1234567",
    ] {
        let r = s.get(path, &p.patient.1).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {r:?}");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains("hh"),
            "{r:?}"
        );
    }
    let r = s
        .get(
            "/api/consent/typed-data?action=grant&patient=1&grantee=2",
            &p.patient.1,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    let r = s
        .get("/api/search/records?from=yesterday", &p.patient.1)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from"),
        "{r:?}"
    );

    // Uploads: too large (413), a disallowed type (415), a type that lies
    // about its content (415), nothing (400), metadata after the file.
    let big: Vec<u8> = REPORT.iter().copied().cycle().take(10_000).collect();
    let r = upload(&s, &p.center.1, PATIENT, &big, "application/pdf").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    let r = upload(
        &s,
        &p.center.1,
        PATIENT,
        b"#!/bin/sh\nrm -rf /\n",
        "application/pdf",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r:?}");
    let r = upload(&s, &p.center.1, PATIENT, REPORT, "image/png").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r:?}");
    let r = upload(&s, &p.center.1, PATIENT, b"", "application/pdf").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    let r = upload(&s, &p.center.1, 123_456, REPORT, "application/pdf").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(REPORT.to_vec()))
        .text("patient", PATIENT.to_string());
    let r = s
        .send(
            s.request(Method::POST, "/api/records/diagnostic", &p.center.1)
                .multipart(form),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    // None of these left an object in the vault.
    assert_eq!(
        s.app.vault().objects(None, 10).await.unwrap().len(),
        0,
        "a refused upload left an object"
    );

    // Another patient's records.
    let id = create_record(&s, &p.center, PATIENT, REPORT).await;
    for path in [
        format!("/api/records/{id}"),
        format!("/api/records/{id}/file"),
        format!("/api/records/{id}/access-log"),
        format!("/api/records/patient/{PATIENT}"),
        format!("/api/records/patient/{PATIENT}/grants"),
    ] {
        let r = s.get(&path, &p.other.1).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {r:?}");
    }
    let r = s
        .get("/api/records/555555-notanid/file", &p.patient.1)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    let r = s.get("/no/such/route", &Auth::None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_refuses_replays_forgeries_and_messages_for_elsewhere() {
    let s = serve_with(false, |_| {}, |c| c.session_ttl = Duration::from_secs(2)).await;
    let p = people(&s).await;
    let w = &p.doctor.0;

    // A replayed message (its nonce is spent).
    let signed = s.signed_in_message(w).await;
    let r = s.post("/api/auth/login", &Auth::None, signed.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post("/api/auth/login", &Auth::None, signed).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nonce")
    );

    // A nonce the server never issued.
    let base = s.signed_in_message(w).await;
    let message = base["message"].as_str().unwrap();
    let (domain, uri, chain) = (
        s.base.trim_start_matches("http://").to_owned(),
        s.base.clone(),
        31_337,
    );
    let made_up = siwe_message(&domain, &uri, chain, "deadbeefdeadbeef", w);
    let r = s
        .post("/api/auth/login", &Auth::None, sign_message(w, &made_up))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");

    // A forged signature: the message names the doctor, a stranger signed.
    let stranger = LocalWallet::random();
    let forged = sign_message(&stranger, message);
    let forged = json!({ "message": message, "signature": forged["signature"] });
    let r = s.post("/api/auth/login", &Auth::None, forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");

    // Messages for another domain, URI or chain (each with a fresh nonce).
    for (d, u, c) in [
        ("evil.example", uri.as_str(), chain),
        (domain.as_str(), "https://evil.example", chain),
        (domain.as_str(), uri.as_str(), 1),
    ] {
        let n = s.post("/api/auth/nonce", &Auth::None, json!({})).await;
        let m = siwe_message(d, u, c, n.body["nonce"].as_str().unwrap(), w);
        let r = s
            .post("/api/auth/login", &Auth::None, sign_message(w, &m))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{d} {u} {c}: {r:?}");
    }
    // Garbage.
    let r = s
        .post(
            "/api/auth/login",
            &Auth::None,
            json!({ "message": "hello", "signature": "0x00" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");

    // A wallet with no HH number may not sign in.
    let r = s
        .post(
            "/api/auth/login",
            &Auth::None,
            s.signed_in_message(&stranger).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");

    // An applicant registers only their own wallet, never a taken number.
    let mut theirs = patient_json(600_001, &LocalWallet::random(), "Someone Else");
    let r = s
        .post(
            "/api/register/patient",
            &Auth::None,
            json!({ "profile": theirs.clone(), "sign_in": s.signed_in_message(&stranger).await }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    theirs = patient_json(PATIENT, &stranger, "Squatter");
    let r = s
        .post(
            "/api/register/patient",
            &Auth::None,
            json!({ "profile": theirs, "sign_in": s.signed_in_message(&stranger).await }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    let r = s
        .post(
            "/api/register/patient",
            &Auth::None,
            json!({ "profile": patient_json(600_002, &stranger, "No Proof") }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");

    // A wrong operator token, a malformed bearer, an unknown session.
    let r = s
        .get("/api/sync/status", &Auth::Operator("guess".into()))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let r = s
        .get("/api/sync/status", &Auth::Bearer("0".repeat(64)))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let r = s
        .send(
            s.request(Method::GET, "/api/sync/status", &Auth::None)
                .header("authorization", "Basic Zm9v"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");

    // Sessions expire (the memo does not outlive them).
    let r = s.get("/api/notifications", &p.center.1).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let r = s.get("/api/notifications", &p.center.1).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.headers.contains_key("www-authenticate"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_is_the_users_own_and_uploads_are_their_creators() {
    let s = serve(false).await;
    let p = people(&s).await;

    // A grant signed by someone else than the patient is refused on chain.
    let c = s
        .get(
            &format!("/api/consent/typed-data?action=grant&patient={PATIENT}&grantee={DOCTOR}"),
            &p.patient.1,
        )
        .await;
    let forged = super::client::sign_consent(&p.doctor.0, &c.body).await;
    let r = s
        .post(
            &format!("/api/records/patient/{PATIENT}/grant"),
            &p.patient.1,
            json!({ "grantee": DOCTOR, "signature": forged, "deadline": c.body["deadline"] }),
        )
        .await;
    assert!(r.status.is_client_error(), "{r:?}");
    // The doctor may not grant themselves access to the patient.
    let own = super::client::sign_consent(&p.patient.0, &c.body).await;
    let r = s
        .post(
            &format!("/api/records/patient/{PATIENT}/grant"),
            &p.doctor.1,
            json!({ "grantee": DOCTOR, "signature": own.clone(), "deadline": c.body["deadline"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    // The real grant works once; its replay is refused (the nonce moved).
    let body = json!({ "grantee": DOCTOR, "signature": own, "deadline": c.body["deadline"] });
    let path = format!("/api/records/patient/{PATIENT}/grant");
    let r = s.post(&path, &p.patient.1, body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = s.post(&path, &p.patient.1, body).await;
    assert!(r.status.is_client_error(), "{r:?}");
    let grants = s
        .app
        .cache()
        .grants_of_patient(healthledger_core::HhNumber::new(PATIENT).unwrap())
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);

    // An upload is its creator's to commit; a stranger's commit is refused
    // and leaves it waiting; a bad signature shreds it.
    let up = upload(&s, &p.center.1, OTHER, REPORT, "application/pdf").await;
    assert_eq!(up.status, StatusCode::CREATED, "{up:?}");
    let commit = format!(
        "/api/records/diagnostic/{}/commit",
        up.body["upload_id"].as_str().unwrap()
    );
    let sig = super::client::sign_consent(&p.center.0, &up.body["consent"]).await;
    let r = s
        .post(&commit, &p.doctor.1, json!({ "signature": sig.clone() }))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let wrong = super::client::sign_consent(&p.doctor.0, &up.body["consent"]).await;
    let r = s
        .post(&commit, &p.center.1, json!({ "signature": wrong }))
        .await;
    assert!(r.status.is_client_error(), "{r:?}");
    let r = s
        .post(&commit, &p.center.1, json!({ "signature": sig }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let cid: healthledger_core::Cid = up.body["record"]["cid"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        s.app.vault().verify(&cid).await.unwrap(),
        healthledger_core::ObjectStatus::Shredded,
        "a refused commit left a readable object"
    );
    let _ = CENTER;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_over_its_rate_gets_429() {
    let s = serve_with(
        false,
        |_| {},
        |c| {
            c.rate_per_sec = 2;
            c.rate_burst = 5;
        },
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(s.get("/api/openapi.json", &Auth::None).await);
    }
    let limited: Vec<_> = statuses
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(
        limited.len() >= 5,
        "{:?}",
        statuses.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(limited[0].code(), "rate_limited");
    assert!(limited[0].headers.contains_key("retry-after"));
    // Probes are never limited.
    for _ in 0..10 {
        assert_eq!(s.get("/health", &Auth::None).await.status, StatusCode::OK);
    }
    s.stop().await;
}

/// A slow-loris client (headers sent a piece at a time, never finished)
/// is disconnected after the header-read timeout, and the server keeps
/// answering others.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s = serve_with(
        false,
        |_| {},
        |c| c.header_read_timeout = Duration::from_millis(500),
    )
    .await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One more header line, still inside the timeout: the clock runs
    // from the start of the headers, not from the last byte.
    tokio::time::sleep(Duration::from_millis(200)).await;
    slow.write_all(b"X-Slow: 1\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the connection was still open after 10 s"
    );
    assert!(
        waited >= Duration::from_millis(500),
        "closed before the timeout: {waited:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 408"),
        "no answer, or 408, for unfinished headers: {text}"
    );
    // A client that sends its request at once is served as usual.
    assert_eq!(s.get("/health", &Auth::None).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_chain_is_a_503_and_not_ready() {
    let s = serve(false).await;
    let p = people(&s).await;
    let r = s.get("/ready", &Auth::None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // The chain goes away (the local anvil stops); the server stays up.
    s.app.shutdown().await;
    let r = s.get("/ready", &Auth::None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert_eq!(r.body["ready"], false);
    // A read the cache can answer still works; one that needs the chain
    // is a 503, not a 500.
    let r = s
        .get(&format!("/api/profile/patient/{PATIENT}"), &p.doctor.1)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.get("/api/profile/patient/654321", &p.doctor.1).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert_eq!(r.code(), "unavailable");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn self_registration_can_be_turned_off() {
    let s = serve_with(false, |_| {}, |c| c.self_registration = false).await;
    let w = LocalWallet::random();
    let body = json!({ "profile": patient_json(600_003, &w, "Self Reg"), "sign_in": s.signed_in_message(&w).await });
    let r = s.post("/api/register/patient", &Auth::None, body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let r = s
        .post(
            "/api/register/patient",
            &operator(),
            json!({ "profile": patient_json(600_003, &w, "Self Reg") }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    s.stop().await;
}
