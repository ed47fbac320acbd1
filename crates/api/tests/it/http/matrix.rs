//! Every role against every route: anonymous callers get 401 on every
//! protected route; a signed-in user or the operator outside a route's
//! roles gets 403; a role inside them is never refused as unauthorized.
//! The route table is also checked against the OpenAPI document, both
//! ways, so neither can miss a route; then random requests against every
//! route never get a 500.

use std::collections::BTreeSet;

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{
    Auth, CENTER, DOCTOR, OTHER, PATIENT, REPORT, Served, create_record, operator, people, serve,
    upload,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    Patient,
    OtherPatient,
    Doctor,
    Center,
    Operator,
}

use Who::*;

const EVERYONE: &[Who] = &[Anonymous, Patient, OtherPatient, Doctor, Center, Operator];
const SIGNED_IN: &[Who] = &[Patient, OtherPatient, Doctor, Center, Operator];
const USERS: &[Who] = &[Patient, OtherPatient, Doctor, Center];

/// One route: its documented method and path, the request the matrix
/// sends, and who may call it.
struct Route {
    method: Method,
    template: &'static str,
    path: String,
    body: Body,
    allowed: &'static [Who],
}

enum Body {
    None,
    Json(Value),
    Upload,
}

fn routes(record: &str, upload_id: &str) -> Vec<Route> {
    let r = |method: Method,
             template: &'static str,
             path: String,
             body: Body,
             allowed: &'static [Who]| Route {
        method,
        template,
        path,
        body,
        allowed,
    };
    let grant_body = json!({ "grantee": DOCTOR, "signature": format!("0x{}1b", "11".repeat(64)), "deadline": 4_000_000_000u64 });
    let revoke_body = json!({ "grantee": DOCTOR, "signature": format!("0x{}1b", "11".repeat(64)), "deadline": 4_000_000_000u64 });
    vec![
        r(
            Method::GET,
            "/health",
            "/health".into(),
            Body::None,
            EVERYONE,
        ),
        r(Method::GET, "/ready", "/ready".into(), Body::None, EVERYONE),
        r(
            Method::GET,
            "/metrics",
            "/metrics".into(),
            Body::None,
            EVERYONE,
        ),
        r(
            Method::POST,
            "/api/auth/nonce",
            "/api/auth/nonce".into(),
            Body::None,
            EVERYONE,
        ),
        r(
            Method::POST,
            "/api/auth/login",
            "/api/auth/login".into(),
            Body::Json(json!({ "message": "x", "signature": "0x" })),
            EVERYONE,
        ),
        r(
            Method::POST,
            "/api/register/doctor",
            "/api/register/doctor".into(),
            Body::Json(json!({})),
            &[Operator],
        ),
        r(
            Method::POST,
            "/api/register/diagnostic",
            "/api/register/diagnostic".into(),
            Body::Json(json!({})),
            &[Operator],
        ),
        r(
            Method::GET,
            "/api/profile/{role}/{hh}",
            format!("/api/profile/patient/{PATIENT}"),
            Body::None,
            SIGNED_IN,
        ),
        r(
            Method::GET,
            "/api/notifications",
            "/api/notifications".into(),
            Body::None,
            USERS,
        ),
        r(
            Method::PUT,
            "/api/notifications/{id}/read",
            "/api/notifications/999999/read".into(),
            Body::None,
            USERS,
        ),
        r(
            Method::GET,
            "/api/doctor/{hh}/patients",
            format!("/api/doctor/{DOCTOR}/patients"),
            Body::None,
            &[Doctor],
        ),
        r(
            Method::GET,
            "/api/search/patients",
            "/api/search/patients?prefix=a".into(),
            Body::None,
            &[Doctor, Center],
        ),
        r(
            Method::GET,
            "/api/consent/typed-data",
            format!("/api/consent/typed-data?action=grant&patient={PATIENT}&grantee={DOCTOR}"),
            Body::None,
            SIGNED_IN,
        ),
        r(
            Method::POST,
            "/api/records/patient/{hh}/grant",
            format!("/api/records/patient/{PATIENT}/grant"),
            Body::Json(grant_body),
            &[Patient],
        ),
        r(
            Method::POST,
            "/api/records/patient/{hh}/revoke",
            format!("/api/records/patient/{PATIENT}/revoke"),
            Body::Json(revoke_body),
            &[Patient],
        ),
        r(
            Method::GET,
            "/api/records/patient/{hh}/grants",
            format!("/api/records/patient/{PATIENT}/grants"),
            Body::None,
            &[Patient],
        ),
        r(
            Method::POST,
            "/api/records/diagnostic",
            "/api/records/diagnostic".into(),
            Body::Upload,
            &[Doctor, Center],
        ),
        r(
            Method::POST,
            "/api/records/diagnostic/{upload_id}/commit",
            format!("/api/records/diagnostic/{upload_id}/commit"),
            Body::Json(json!({ "signature": format!("0x{}1b", "11".repeat(64)) })),
            &[Center],
        ),
        r(
            Method::GET,
            "/api/records/{id}",
            format!("/api/records/{record}"),
            Body::None,
            &[Patient, Center],
        ),
        r(
            Method::GET,
            "/api/records/{id}/file",
            format!("/api/records/{record}/file"),
            Body::None,
            &[Patient, Center],
        ),
        r(
            Method::GET,
            "/api/records/{id}/access-log",
            format!("/api/records/{record}/access-log"),
            Body::None,
            &[Patient],
        ),
        r(
            Method::GET,
            "/api/records/patient/{hh}",
            format!("/api/records/patient/{PATIENT}"),
            Body::None,
            &[Patient],
        ),
        r(
            Method::GET,
            "/api/diagnostic/{hh}/reports",
            format!("/api/diagnostic/{CENTER}/reports"),
            Body::None,
            &[Center],
        ),
        r(
            Method::GET,
            "/api/search/records",
            "/api/search/records?q=lipid".into(),
            Body::None,
            USERS,
        ),
        r(
            Method::GET,
            "/api/sync/status",
            "/api/sync/status".into(),
            Body::None,
            SIGNED_IN,
        ),
        r(
            Method::POST,
            "/api/sync/{kind}/{id}",
            format!("/api/sync/patient/{OTHER}"),
            Body::Json(json!({})),
            &[Operator],
        ),
        r(
            Method::POST,
            "/api/verify",
            "/api/verify".into(),
            Body::Json(json!({})),
            &[Operator],
        ),
        // Registration of a patient: the operator, or an applicant's own
        // signed message (checked in attacks.rs); a session is not enough.
        r(
            Method::POST,
            "/api/register/patient",
            "/api/register/patient".into(),
            Body::Json(
                json!({ "profile": super::client::patient_json(600_100, &healthledger_api::LocalWallet::random(), "Matrix Reg") }),
            ),
            &[Operator],
        ),
        r(
            Method::POST,
            "/api/auth/logout",
            "/api/auth/logout".into(),
            Body::None,
            USERS,
        ),
    ]
}

async fn send(s: &Served, route: &Route, auth: &Auth) -> super::client::Answer {
    match &route.body {
        Body::None => s.call(route.method.clone(), &route.path, auth, None).await,
        Body::Json(v) => {
            s.call(route.method.clone(), &route.path, auth, Some(v.clone()))
                .await
        }
        Body::Upload => upload(s, auth, PATIENT, REPORT, "application/pdf").await,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_against_every_route() {
    let s = serve(false).await;
    let p = people(&s).await;
    let record = create_record(&s, &p.center, PATIENT, REPORT).await;
    let up = upload(&s, &p.center.1, PATIENT, REPORT, "application/pdf").await;
    let upload_id = up.body["upload_id"].as_str().unwrap().to_owned();
    let auth_of = |who: Who| match who {
        Anonymous => Auth::None,
        Patient => p.patient.1.clone(),
        OtherPatient => p.other.1.clone(),
        Doctor => p.doctor.1.clone(),
        Center => p.center.1.clone(),
        Operator => operator(),
    };
    let table = routes(&record, &upload_id);

    // The table and the OpenAPI document list the same routes.
    let doc = s.get("/api/openapi.json", &Auth::None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let spec: oas3::Spec =
        serde_json::from_value(doc.body.clone()).expect("the document is OpenAPI 3.1");
    let documented: BTreeSet<(String, String)> = spec
        .paths
        .iter()
        .flatten()
        .flat_map(|(path, item)| {
            item.methods()
                .into_iter()
                .map(move |(m, _)| (m.as_str().to_owned(), path.clone()))
        })
        .collect();
    let tabled: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.template.to_owned()))
        .collect();
    assert_eq!(
        documented, tabled,
        "the OpenAPI document and the route table differ"
    );
    // Every operation's responses reference schemas that exist.
    let text = doc.body.to_string();
    for cap in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = cap.split('"').next().unwrap();
        assert!(
            doc.body["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }

    // Logout goes last: it ends the sessions the rest use.
    let (logout, rest): (Vec<&Route>, Vec<&Route>) =
        table.iter().partition(|r| r.template == "/api/auth/logout");
    for route in rest.into_iter().chain(logout) {
        // Who is allowed goes last, so a refused call cannot be told
        // apart by state an allowed one changed (the commit spends its
        // upload).
        let mut order: Vec<Who> = EVERYONE.to_vec();
        order.sort_by_key(|w| route.allowed.contains(w));
        for who in order {
            let a = send(&s, route, &auth_of(who)).await;
            let what = format!(
                "{who:?} {} {}: {} {}",
                route.method, route.path, a.status, a.body
            );
            assert_ne!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{what}");
            // The matrix's consent signatures are junk: an allowed caller
            // gets past the server's checks and the chain refuses them.
            let junk_consent = matches!(&route.body, Body::Json(v) if v.get("signature").is_some());
            // Without an operator token or a session of its own, these
            // answer 401 to every other caller.
            let unauthenticated_otherwise =
                matches!(route.template, "/api/register/patient" | "/api/auth/logout");
            if route.allowed.contains(&who) {
                assert_ne!(
                    a.status,
                    StatusCode::UNAUTHORIZED,
                    "allowed, refused: {what}"
                );
                if !junk_consent {
                    assert_ne!(a.status, StatusCode::FORBIDDEN, "allowed, refused: {what}");
                }
            } else if who == Anonymous || unauthenticated_otherwise {
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}");
                assert_eq!(a.code(), "unauthorized", "{what}");
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}");
                assert_eq!(a.code(), "forbidden", "{what}");
            }
        }
    }
    // The refused calls wrote nothing: one record, no grant.
    let hh = healthledger_core::HhNumber::new(PATIENT).unwrap();
    assert_eq!(s.app.cache().records_of_patient(hh).await.unwrap().len(), 1);
    assert!(
        s.app
            .cache()
            .grants_of_patient(hh)
            .await
            .unwrap()
            .is_empty()
    );
    s.stop().await;
}

/// Random requests: documented paths with their parameters replaced by
/// junk or real values, random methods, bodies and credentials.
#[tokio::test(flavor = "multi_thread")]
async fn random_requests_never_get_a_500() {
    let s = serve(false).await;
    let p = people(&s).await;
    let record = create_record(&s, &p.center, PATIENT, REPORT).await;
    let doc = s.get("/api/openapi.json", &Auth::None).await;
    let paths: Vec<String> = doc.body["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut rng = StdRng::seed_from_u64(0x0048_454c_5448);
    let junk = [
        "0",
        "-1",
        "999999",
        "1234567",
        "abc",
        "%00",
        "%2e%2e%2f",
        "555555-1",
        "' OR 1=1 --",
        "\u{1F600}",
        "patient",
        "record",
        "doctor",
        "diagnostic",
    ];
    let bodies = [
        "".to_owned(),
        "null".into(),
        "[]".into(),
        "{\"hh\":\"555555\"}".into(),
        "{\"profile\":{\"hh\":555555}}".into(),
        "{\"grantee\":112233,\"signature\":\"zz\",\"deadline\":-1}".into(),
        "{\"repair\":\"yes\"}".into(),
        "\u{0}\u{1}\u{2}".into(),
        "{".repeat(10_000),
        "9".repeat(400),
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    let auths = [
        Auth::None,
        p.patient.1.clone(),
        p.doctor.1.clone(),
        operator(),
        Auth::Bearer("x".into()),
    ];
    let mut seen = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..400 {
        let template = &paths[rng.random_range(0..paths.len())];
        let mut path = String::new();
        for part in template.split('/').skip(1) {
            path.push('/');
            if part.starts_with('{') {
                let real = match part {
                    "{hh}" => PATIENT.to_string(),
                    "{id}" => record.clone(),
                    "{role}" => "patient".into(),
                    "{kind}" => "record".into(),
                    _ => "x".into(),
                };
                if rng.random_bool(0.5) {
                    path.push_str(&real);
                } else {
                    let j = junk[rng.random_range(0..junk.len())];
                    path.push_str(&urlencode(j));
                }
            } else {
                path.push_str(part);
            }
        }
        if rng.random_bool(0.3) {
            path.push_str(&format!(
                "?q={}&from={}&prefix=&action=grant&patient={}&grantee=x&unread=maybe&limit=-5",
                urlencode(junk[rng.random_range(0..junk.len())]),
                urlencode(junk[rng.random_range(0..junk.len())]),
                junk[rng.random_range(0..3)]
            ));
        }
        let method = methods[rng.random_range(0..methods.len())].clone();
        let auth = &auths[rng.random_range(0..auths.len())];
        let body = bodies[rng.random_range(0..bodies.len())].clone();
        let mut req = s.request(method.clone(), &path, auth);
        if !body.is_empty() {
            let ct = [
                "application/json",
                "text/plain",
                "multipart/form-data; boundary=x",
            ][i % 3];
            req = req.header("content-type", ct).body(body);
        }
        let a = s.send(req).await;
        *seen.entry(a.status.as_u16()).or_default() += 1;
        assert!(
            !a.status.is_server_error()
                || a.status == StatusCode::SERVICE_UNAVAILABLE && template == "/ready",
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        if a.status.is_client_error() {
            assert!(
                a.body["error"]["code"].is_string(),
                "{method} {path}: not a JSON error: {}",
                a.body
            );
        }
    }
    // The run reached past the door: some requests succeeded.
    assert!(seen.keys().any(|s| (200..300).contains(s)), "{seen:?}");
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
