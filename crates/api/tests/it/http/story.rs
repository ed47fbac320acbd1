//! The seed's story over HTTP with wallet sign-in, on anvil + SQLite and
//! once on anvil + PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::client::{
    Auth, CENTER, DOCTOR, PATIENT, REPORT, Served, create_record, grant, operator, people, revoke,
    serve,
};

async fn story(s: &Served) {
    let p = people(s).await;

    // Profiles, cache first, for any signed-in user.
    let r = s
        .get(&format!("/api/profile/patient/{PATIENT}"), &p.doctor.1)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["name"], "Asha Rao");
    assert_eq!(r.body["role"], "patient");
    let r = s
        .get(&format!("/api/profile/doctor/{DOCTOR}"), &p.patient.1)
        .await;
    assert_eq!(r.body["name"], "Dr. Sen");
    // Another role's number is not found, not mixed up.
    let r = s
        .get(&format!("/api/profile/doctor/{PATIENT}"), &p.patient.1)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");

    // The center creates an encrypted record with its wallet's consent.
    let id = create_record(s, &p.center, PATIENT, REPORT).await;
    let r = s.get(&format!("/api/records/{id}"), &p.patient.1).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["meta"]["size"], REPORT.len());
    let listed = s
        .get(&format!("/api/records/patient/{PATIENT}"), &p.patient.1)
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{listed:?}");
    let reports = s
        .get(&format!("/api/diagnostic/{CENTER}/reports"), &p.center.1)
        .await;
    assert_eq!(reports.body.as_array().unwrap().len(), 1, "{reports:?}");

    // The doctor may not read it yet (logged as denied).
    let file = format!("/api/records/{id}/file");
    let r = s.get(&file, &p.doctor.1).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(r.code(), "forbidden");

    // The patient grants access with their wallet's signature.
    let g = grant(s, &p.patient, PATIENT, DOCTOR).await;
    assert_eq!(g.status, StatusCode::CREATED, "{g:?}");
    let grants = s
        .get(
            &format!("/api/records/patient/{PATIENT}/grants"),
            &p.patient.1,
        )
        .await;
    assert_eq!(grants.body.as_array().unwrap().len(), 1, "{grants:?}");
    let mine = s
        .get(&format!("/api/doctor/{DOCTOR}/patients"), &p.doctor.1)
        .await;
    assert_eq!(mine.body, json!([PATIENT]), "{mine:?}");

    // Now the doctor reads the plaintext, whole and by range.
    let r = s.get(&file, &p.doctor.1).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(&r.bytes[..], REPORT);
    assert_eq!(r.headers["content-type"], "application/pdf");
    let part = s
        .send(
            s.request(Method::GET, &file, &p.doctor.1)
                .header("range", "bytes=9-24"),
        )
        .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.bytes[..], &REPORT[9..=24]);
    assert_eq!(
        part.headers["content-range"],
        format!("bytes 9-24/{}", REPORT.len()).as_str()
    );
    let tail = s
        .send(
            s.request(Method::GET, &file, &p.doctor.1)
                .header("range", "bytes=-6"),
        )
        .await;
    assert_eq!(&tail.bytes[..], &REPORT[REPORT.len() - 6..]);
    let bad = s
        .send(
            s.request(Method::GET, &file, &p.doctor.1)
                .header("range", "bytes=9999-"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad:?}");

    // The doctor was told; they mark it read.
    let n = s.get("/api/notifications?unread=true", &p.doctor.1).await;
    let granted = n
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["body"]["kind"] == "access-granted")
        .unwrap_or_else(|| panic!("no access-granted notification: {n:?}"))
        .clone();
    let r = s
        .call(
            Method::PUT,
            &format!("/api/notifications/{}/read", granted["id"]),
            &p.doctor.1,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    let unread = s.get("/api/notifications?unread=true", &p.doctor.1).await;
    assert!(
        !unread
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == granted["id"]),
        "{unread:?}"
    );

    // Search, within what each may see.
    let found = s
        .get(
            "/api/search/records?q=lipid&type=lab-result&from=2026-01-01",
            &p.doctor.1,
        )
        .await;
    assert_eq!(found.body.as_array().unwrap().len(), 1, "{found:?}");
    let people_found = s.get("/api/search/patients?prefix=as", &p.doctor.1).await;
    assert_eq!(
        people_found.body.as_array().unwrap().len(),
        1,
        "{people_found:?}"
    );

    // The patient revokes; the doctor is refused again, at once.
    let r = revoke(s, &p.patient, PATIENT, DOCTOR).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.get(&file, &p.doctor.1).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");

    // Every content read was logged, the denied ones too, and the patient
    // sees it (the metadata read above included).
    let log = s
        .get(&format!("/api/records/{id}/access-log"), &p.patient.1)
        .await;
    let entries = log.body.as_array().unwrap();
    let content: Vec<bool> = entries
        .iter()
        .filter(|e| e["entry"]["action"] == "read-content" || e["entry"]["action"] == "ReadContent")
        .map(|e| e["entry"]["allowed"].as_bool().unwrap())
        .collect();
    assert_eq!(
        content,
        vec![false, true, true, true, true, false],
        "{log:?}"
    );

    // Operations.
    let st = s.get("/api/sync/status", &p.patient.1).await;
    assert_eq!(st.status, StatusCode::OK, "{st:?}");
    let r = s
        .post(
            &format!("/api/sync/patient/{PATIENT}"),
            &operator(),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let v = s
        .post("/api/verify", &operator(), json!({ "vault": true }))
        .await;
    assert_eq!(v.status, StatusCode::OK, "{v:?}");
    assert_eq!(v.body["drift"]["missing"], json!([]), "{v:?}");
    assert!(s.get("/health", &Auth::None).await.status.is_success());
    let m = s.get("/metrics", &Auth::None).await;
    let text = m.body.as_str().unwrap();
    assert!(text.contains("healthledger_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/records/{id}/file\""), "{text}");
    assert!(
        text.contains("healthledger_access_log_appends_total"),
        "{text}"
    );
    assert!(
        text.contains("healthledger_vault_bytes_total{direction=\"in\"}"),
        "{text}"
    );

    // Signing out ends the session.
    let r = s.post("/api/auth/logout", &p.doctor.1, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    let r = s.get("/api/notifications", &p.doctor.1).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_story_runs_over_http_on_anvil_and_sqlite() {
    let s = serve(false).await;
    story(&s).await;
    let ready = s.get("/ready", &Auth::None).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_story_runs_over_http_on_anvil_and_postgres() {
    let s = serve(true).await;
    story(&s).await;
    s.stop().await;
}
