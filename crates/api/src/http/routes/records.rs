//! Records: a two-step create (the upload seals the file and hands out
//! the typed data the creator's wallet signs; the commit relays the
//! signature), reads of metadata and content (ranges included), the
//! access log, and the listings of records.
//!
//! The upload streams: the multipart body goes through the content check
//! and the size guard into the vault chunk by chunk, never whole in
//! memory. A sealed upload waits on this server, under an id only its
//! creator can commit, for [`crate::http::HttpConfig::upload_ttl`]; then
//! (or at shutdown) it is shredded, so an abandoned upload leaves no
//! readable object (one left by a crash is an orphan the vault audit
//! lists).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use healthledger_core::{
    AccessLogEntry, Authorization, ContentType, HhNumber, Label, MedicalRecord, Name, RecordId,
    RecordQuery, RelayedSignature, Timestamp, VaultError,
};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::{ConsentRequest, consent_request};
use crate::{
    Actor, RecordDraft, SealedRecord,
    http::{
        SharedState,
        auth::{Caller, parse_signature},
        error::{ApiError, ApiResult, ErrorBody},
        extract::{Json, Query, hh, param},
    },
};

/// Sealed uploads waiting for their creator's signature.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug)]
struct Pending {
    creator: HhNumber,
    sealed: SealedRecord,
    deadline: Timestamp,
    until: Instant,
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn expired(&self) -> Vec<Pending> {
        let now = Instant::now();
        let mut p = self.lock();
        let gone: Vec<String> = p
            .iter()
            .filter(|(_, v)| v.until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter().filter_map(|k| p.remove(&k)).collect()
    }

    /// Shreds every waiting upload (at shutdown).
    pub(crate) async fn shred_all(&self, state: &SharedState) {
        let all: Vec<Pending> = self.lock().drain().map(|(_, v)| v).collect();
        shred(state, all).await;
    }
}

async fn shred(state: &SharedState, gone: Vec<Pending>) {
    for p in gone {
        let cid = &p.sealed.record().cid;
        if let Err(e) = state.app.vault.shred(cid).await {
            tracing::warn!(error = %e, %cid, "shredding an abandoned upload failed; the orphan audit will remove it");
        }
    }
}

/// Shreds expired uploads, every few seconds, until aborted.
pub(crate) async fn sweep_uploads(state: SharedState) {
    let every =
        (state.config.upload_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let gone = state.uploads.expired();
        shred(&state, gone).await;
    }
}

/// A sealed upload: the record to create and what the creator signs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UploadResponse {
    /// Commit it with `POST /api/records/diagnostic/{upload_id}/commit`.
    upload_id: String,
    /// The record the commit will create (its id, CID and metadata).
    #[schema(value_type = Object)]
    record: healthledger_core::NewRecord,
    /// What the creator's wallet signs.
    consent: ConsentRequest,
    /// Seconds the upload waits for the commit.
    expires_in_secs: u64,
}

const TEXT_FIELDS: [&str; 5] = [
    "patient",
    "test_name",
    "record_type",
    "date",
    "content_type",
];

/// Uploads a record's file (multipart: the fields `patient`, `test_name`,
/// `record_type`, `date` (YYYY-MM-DD) and optionally `content_type`, then
/// `file` last). The file is checked by its content, sealed into the vault
/// and held for the creator's signature.
#[utoipa::path(post, path = "/api/records/diagnostic", tag = "records",
    request_body(content_type = "multipart/form-data", content = Object,
        description = "patient, test_name, record_type, date, content_type (optional), then file"),
    responses((status = 201, body = UploadResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn upload(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let Actor::User { hh: creator, .. } = actor else {
        return Err(ApiError::forbidden(
            "only a doctor or diagnostic center uploads records",
        ));
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the upload must be multipart/form-data with a boundary",
        )
    })?;
    let limit = s.app.settings.max_file_bytes;
    let mut form = multer::Multipart::with_constraints(
        req.into_body().into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(limit.saturating_add(2 << 20))
                // The content guard stops the file at the limit with a 413;
                // multer's own limit is only the backstop.
                .per_field(limit.saturating_add(1 << 20))
                .for_field("patient", 64)
                .for_field("test_name", 4096)
                .for_field("record_type", 4096)
                .for_field("date", 64)
                .for_field("content_type", 256),
        ),
    );
    let mut text: HashMap<&'static str, String> = HashMap::new();
    let file = loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| ApiError::invalid(format!("multipart: {e}")))?
            .ok_or_else(|| ApiError::invalid("file: missing (it must be the last field)"))?;
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            break field;
        }
        let Some(known) = TEXT_FIELDS.iter().find(|f| **f == name) else {
            return Err(ApiError::invalid(format!(
                "multipart field {name:?}: unknown (expected {} and file)",
                TEXT_FIELDS.join(", ")
            )));
        };
        let value = field
            .text()
            .await
            .map_err(|e| ApiError::invalid(format!("{name}: {e}")))?;
        text.insert(known, value);
    };
    let get = |f: &str| {
        text.get(f)
            .map(String::as_str)
            .ok_or_else(|| ApiError::invalid(format!("{f}: missing (send it before file)")))
    };
    let patient = hh(get("patient")?)?;
    let declared = match text.get("content_type") {
        Some(c) => c.clone(),
        None => file
            .content_type()
            .map(|m| m.essence_str().to_owned())
            .ok_or_else(|| {
                ApiError::invalid("content_type: missing (as a field or the file part's header)")
            })?,
    };
    let draft = RecordDraft {
        test_name: Name::new(get("test_name")?)?,
        record_type: Label::new(get("record_type")?)?,
        date: param(get("date")?, "date")?,
        content_type: ContentType::new(&declared)?,
    };
    let stream = file
        .map_err(|e| VaultError::Invalid(format!("the upload broke off: {e}")))
        .boxed();
    let sealed = s.app.seal_record(&actor, patient, stream, draft).await?;
    s.metrics.vault("in", sealed.record().meta.size);
    let consent = match consent_request(&s.app, &sealed.action()).await {
        Ok(c) => c,
        Err(e) => {
            let _ = s.app.vault.shred(&sealed.record().cid).await;
            return Err(e);
        }
    };
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    let upload_id = hex::encode(id);
    let record = sealed.record().clone();
    s.uploads.lock().insert(
        upload_id.clone(),
        Pending {
            creator,
            sealed,
            deadline: Timestamp(consent.deadline),
            until: Instant::now() + s.config.upload_ttl,
        },
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(UploadResponse {
            upload_id,
            record,
            consent,
            expires_in_secs: s.config.upload_ttl.as_secs(),
        }),
    ))
}

/// The creator's signature over an upload's typed data.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CommitBody {
    /// The creator wallet's signature, in hex.
    signature: String,
}

/// What a create did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedResponse {
    /// The record as the chain holds it.
    #[schema(value_type = Object)]
    record: MedicalRecord,
    /// The transaction.
    #[schema(value_type = Object)]
    receipt: healthledger_core::TxReceipt,
    /// Whether the cache indexes it now.
    cached: bool,
}

/// Puts an upload on chain with its creator's signature.
#[utoipa::path(post, path = "/api/records/diagnostic/{upload_id}/commit", tag = "records",
    request_body = CommitBody, params(("upload_id" = String, Path, description = "the upload")),
    responses((status = 201, body = CreatedResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn commit(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(upload_id): Path<String>,
    Json(b): Json<CommitBody>,
) -> ApiResult<impl IntoResponse> {
    let pending = {
        let mut p = s.uploads.lock();
        match p.get(&upload_id) {
            None => {
                return Err(ApiError::not_found(format!(
                    "no upload {upload_id:?} waits (committed, expired or never made)"
                )));
            }
            Some(p) if !matches!(actor, Actor::User { hh, .. } if hh == p.creator) => {
                return Err(ApiError::forbidden(format!(
                    "upload {upload_id} is {}'s to commit",
                    p.creator
                )));
            }
            Some(_) => p.remove(&upload_id),
        }
    };
    let Some(pending) = pending else {
        return Err(ApiError::not_found(format!(
            "no upload {upload_id:?} waits"
        )));
    };
    let signature = match parse_signature(&b.signature, "signature") {
        Ok(sig) => sig,
        Err(e) => {
            // The creator may sign again.
            s.uploads.lock().insert(upload_id, pending);
            return Err(e);
        }
    };
    let consent = Authorization::Relayed(RelayedSignature {
        signature,
        deadline: pending.deadline,
    });
    // The facade shreds the sealed object if the chain refuses it.
    let created = s
        .app
        .commit_record(&actor, pending.sealed, &consent)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedResponse {
            record: created.record,
            receipt: created.receipt,
            cached: created.cached,
        }),
    ))
}

fn record_id(value: &str) -> ApiResult<RecordId> {
    param(value, "id")
}

/// A record's metadata (its patient, its creator, or a provider with
/// access; the attempt is logged).
#[utoipa::path(get, path = "/api/records/{id}", tag = "records",
    params(("id" = String, Path, description = "the record id, `<patient>-<serial>`")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_record(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MedicalRecord>> {
    let id = record_id(&id)?;
    let r = s.app.record_meta(&actor, id).await;
    s.metrics.access_log_appends.inc();
    Ok(axum::Json(r?))
}

/// A record's plaintext, streamed after the chain authorizes the read
/// (logged, granted or denied). `Range: bytes=a-b` answers 206 with that
/// part (one range; several get the whole file).
#[utoipa::path(get, path = "/api/records/{id}/file", tag = "records",
    params(("id" = String, Path, description = "the record id")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 206, description = "part of the file"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub(crate) async fn get_file(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = record_id(&id)?;
    let read = s.app.read_record(&actor, id).await;
    s.metrics.access_log_appends.inc();
    let read = read?;
    let size = read.record.meta.size;
    let mime = HeaderValue::from_str(read.record.meta.content_type.as_str())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(h) => match http_range_header::parse_range_header(h).and_then(|r| r.validate(size)) {
            Ok(ranges) if ranges.len() == 1 => Some(ranges[0].clone()),
            Ok(_) => None,
            Err(_) => {
                let mut r = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("range {h:?} does not fit a file of {size} bytes"),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(r);
            }
        },
    };
    let metrics_state = s.clone();
    let content = read.content.inspect_ok(move |c| {
        metrics_state.metrics.vault("out", c.len() as u64);
    });
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "no-store");
    let body = match range {
        None => {
            builder = builder
                .status(StatusCode::OK)
                .header(header::CONTENT_LENGTH, size);
            Body::from_stream(content)
        }
        Some(r) => {
            let (start, end) = (*r.start(), *r.end());
            builder = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_LENGTH, end - start + 1)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            // Sealed objects authenticate chunk by chunk from the start,
            // so a range decrypts (and verifies) what precedes it and
            // drops it here.
            Body::from_stream(slice(content.boxed(), start, end - start + 1))
        }
    };
    builder
        .body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// The bytes `[start, start + len)` of a stream.
fn slice(
    content: futures::stream::BoxStream<'static, Result<Bytes, VaultError>>,
    start: u64,
    len: u64,
) -> impl futures::Stream<Item = Result<Bytes, VaultError>> + Send + 'static {
    let mut pos = 0u64;
    let end = start + len;
    content
        .try_take_while(move |_| futures::future::ready(Ok(pos < end)))
        .map_ok(move |chunk| {
            let (from, to) = (pos, pos + chunk.len() as u64);
            pos = to;
            let a = start.clamp(from, to) - from;
            let b = end.clamp(from, to) - from;
            chunk.slice(a as usize..b as usize)
        })
        .try_filter(|c| futures::future::ready(!c.is_empty()))
}

/// A record's access log (its patient only).
#[utoipa::path(get, path = "/api/records/{id}/access-log", tag = "records",
    params(("id" = String, Path, description = "the record id")),
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn access_log(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<AccessLogEntry>>> {
    Ok(axum::Json(
        s.app.record_access_log(&actor, record_id(&id)?).await?,
    ))
}

/// A patient's records (the patient, or a provider with access).
#[utoipa::path(get, path = "/api/records/patient/{hh}", tag = "records",
    params(("hh" = u32, Path, description = "the patient")),
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn of_patient(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(number): Path<String>,
) -> ApiResult<axum::Json<Vec<MedicalRecord>>> {
    Ok(axum::Json(
        s.app.records_of_patient(&actor, hh(&number)?).await?,
    ))
}

/// The reports a diagnostic center (or doctor) created (their own).
#[utoipa::path(get, path = "/api/diagnostic/{hh}/reports", tag = "listings",
    params(("hh" = u32, Path, description = "the creator")),
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn reports(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(number): Path<String>,
) -> ApiResult<axum::Json<Vec<MedicalRecord>>> {
    Ok(axum::Json(s.app.reports_of(&actor, hh(&number)?).await?))
}

/// A search of records.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct RecordSearch {
    /// Words that must all appear in the test name, type or content type.
    q: Option<String>,
    /// Only this record type.
    #[serde(rename = "type")]
    record_type: Option<String>,
    /// Only tests on or after this date (YYYY-MM-DD).
    #[param(value_type = Option<String>)]
    from: Option<chrono::NaiveDate>,
    /// Only tests on or before this date.
    #[param(value_type = Option<String>)]
    to: Option<chrono::NaiveDate>,
    /// Only this patient's records.
    patient: Option<u32>,
    /// At most this many (default 50).
    limit: Option<u64>,
}

/// Records the caller may see that match the query.
#[utoipa::path(get, path = "/api/search/records", tag = "listings", params(RecordSearch),
    responses((status = 200, body = Vec<Object>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn search(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Query(q): Query<RecordSearch>,
) -> ApiResult<axum::Json<Vec<MedicalRecord>>> {
    let query = RecordQuery {
        patient: q.patient.map(HhNumber::new).transpose()?,
        record_type: q.record_type,
        date_from: q.from,
        date_to: q.to,
        text: q.q,
        limit: q.limit.unwrap_or(50),
    };
    Ok(axum::Json(s.app.search_records(&actor, query).await?))
}
