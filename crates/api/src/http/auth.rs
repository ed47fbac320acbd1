//! Who is calling: sign-in with a wallet (EIP-4361, through the `siwe`
//! crate), sessions stored only as token hashes in the cache, and the
//! operator's token.
//!
//! - `POST /api/auth/nonce` hands out a random single-use nonce that
//!   expires after [`HttpConfig::nonce_ttl`]. Nonces live in this process
//!   (a deployment of several servers pins a client to one for the two
//!   round trips, or signs in again).
//! - `POST /api/auth/login` takes the EIP-4361 message and its EIP-191
//!   signature; it checks the domain, the URI, the chain id, the nonce
//!   (consumed whatever the outcome, so a replay always fails) and the
//!   time bounds, recovers the signer, and checks on chain that the
//!   signer owns an HH number. The session token is 32 random bytes,
//!   returned once; the cache stores only its SHA-256 with an expiry.
//! - `Authorization: Bearer <token>` then names the user on every call.
//!   The facade re-checks the user's claim against the chain on every
//!   write and every protected read, so a session never outlives the
//!   wallet's ownership of the HH number.
//! - `X-Operator-Token: <token>` names the operator (the registrar staff
//!   behind this deployment): doctors and diagnostic centers are vetted
//!   off chain and registered by them.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use alloy_primitives::Signature;
use axum::{extract::FromRequestParts, http::request::Parts};
use healthledger_core::{ReadAt, Role, Session, SessionTokenHash, Timestamp, WalletAddress};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    HttpConfig, SharedState,
    error::{ApiError, ApiResult},
};
use crate::Actor;

/// The header naming the operator.
pub const OPERATOR_HEADER: &str = "x-operator-token";

/// At most this many nonces wait for a login at once; past it the oldest
/// expire early (a flood of nonce requests costs memory only up to here).
const MAX_PENDING_NONCES: usize = 100_000;

/// How long a session found in the cache is trusted without asking the
/// cache again: a logout in another server process takes effect there
/// within this time (at once in this one).
const SESSION_MEMO: Duration = Duration::from_secs(5);

/// Nonces handed out and not used yet.
#[derive(Debug, Default)]
pub(crate) struct Nonces {
    pending: Mutex<HashMap<String, Instant>>,
}

impl Nonces {
    /// A fresh nonce, valid for `ttl`.
    pub(crate) fn issue(&self, ttl: Duration) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        // EIP-4361 nonces are alphanumeric, at least 8 characters.
        let nonce = hex::encode(bytes);
        let now = Instant::now();
        let mut p = lock(&self.pending);
        if p.len() >= MAX_PENDING_NONCES {
            p.retain(|_, until| *until > now);
            if p.len() >= MAX_PENDING_NONCES
                && let Some(oldest) = p.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone())
            {
                p.remove(&oldest);
            }
        }
        p.insert(nonce.clone(), now + ttl);
        nonce
    }

    /// Consumes `nonce`: whether it was issued and has not expired.
    pub(crate) fn take(&self, nonce: &str) -> bool {
        lock(&self.pending)
            .remove(nonce)
            .is_some_and(|until| until > Instant::now())
    }
}

/// Sessions this process has looked up recently, by token hash.
#[derive(Debug, Default)]
pub(crate) struct SessionMemo {
    known: Mutex<HashMap<SessionTokenHash, (Actor, Timestamp, Instant)>>,
}

impl SessionMemo {
    fn get(&self, hash: SessionTokenHash) -> Option<(Actor, Timestamp)> {
        let k = lock(&self.known);
        k.get(&hash)
            .filter(|(_, _, until)| *until > Instant::now())
            .map(|(a, e, _)| (*a, *e))
    }

    fn put(&self, hash: SessionTokenHash, actor: Actor, expires: Timestamp) {
        let mut k = lock(&self.known);
        if k.len() > 10_000 {
            let now = Instant::now();
            k.retain(|_, (_, _, until)| *until > now);
        }
        k.insert(hash, (actor, expires, Instant::now() + SESSION_MEMO));
    }

    fn forget(&self, hash: SessionTokenHash) {
        lock(&self.known).remove(&hash);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The caller, as the request proves it: the operator's token or a live
/// session. Handlers that take it answer 401 without one.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Actor);

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> ApiResult<Self> {
        if let Some(op) = parts.headers.get(OPERATOR_HEADER) {
            return if state.is_operator_token(op.as_bytes()) {
                Ok(Self(Actor::Operator))
            } else {
                Err(ApiError::unauthorized("the operator token is wrong"))
            };
        }
        let token = bearer(parts)?;
        let hash = SessionTokenHash::of(token.as_bytes());
        let now = Timestamp::now();
        if let Some((actor, expires)) = state.sessions.get(hash) {
            if now < expires {
                return Ok(Self(actor));
            }
            state.sessions.forget(hash);
            return Err(ApiError::unauthorized("the session has expired"));
        }
        let session = state
            .app
            .cache
            .session(hash)
            .await
            .map_err(crate::Error::from)?
            .ok_or_else(|| {
                ApiError::unauthorized("no such session (signed out or never signed in)")
            })?;
        if !session.is_valid(now) {
            return Err(ApiError::unauthorized("the session has expired"));
        }
        let role = role_of(state, &session).await?;
        let actor = Actor::user(session.hh, role, session.wallet);
        state.sessions.put(hash, actor, session.expires_at);
        Ok(Self(actor))
    }
}

/// The operator only: 401 without the token, 403 with a user's session.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl FromRequestParts<SharedState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> ApiResult<Self> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Actor::Operator => Ok(Self),
            other => Err(ApiError::forbidden(format!(
                "only the operator may do this, not {}",
                describe(&other)
            ))),
        }
    }
}

pub(crate) fn describe(actor: &Actor) -> String {
    match actor {
        Actor::Operator => "the operator".into(),
        Actor::Applicant { wallet } => format!("applicant {wallet}"),
        Actor::User { hh, role, .. } => format!("{role} {hh}"),
    }
}

fn bearer(parts: &Parts) -> ApiResult<&str> {
    let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "sign in first: POST /api/auth/nonce, then /api/auth/login, then send Authorization: Bearer <token>",
        ));
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <session token>`",
        )),
    }
}

/// The role of a session's HH number: the cache knows it; the chain
/// decides when the cache does not (yet).
async fn role_of(state: &SharedState, session: &Session) -> ApiResult<Role> {
    if let Some(p) = state
        .app
        .cache
        .profile(session.hh)
        .await
        .map_err(crate::Error::from)?
        && p.wallet() == session.wallet
    {
        return Ok(p.role());
    }
    match state
        .app
        .ledger
        .account_of(session.wallet, ReadAt::Latest)
        .await
        .map_err(crate::Error::from)?
    {
        Some((role, hh)) if hh == session.hh => Ok(role),
        _ => Err(ApiError::unauthorized(format!(
            "wallet {} no longer owns HH number {}; sign in again",
            session.wallet, session.hh
        ))),
    }
}

/// A fresh nonce for a sign-in message.
#[derive(Debug, Serialize, ToSchema)]
pub struct NonceResponse {
    /// The nonce to put in the message (single use).
    pub nonce: String,
    /// The domain the message must name.
    pub domain: String,
    /// The URI the message must name.
    pub uri: String,
    /// The chain id the message must name.
    pub chain_id: u64,
    /// Seconds the nonce stays usable.
    pub expires_in_secs: u64,
}

/// A signed EIP-4361 message.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignedMessage {
    /// The message, exactly as signed.
    pub message: String,
    /// The EIP-191 (`personal_sign`) signature, 65 bytes in hex.
    pub signature: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session token: send it as `Authorization: Bearer <token>`. It
    /// is shown once; the server keeps only its hash.
    pub token: String,
    /// The user's HH number.
    #[schema(value_type = u32)]
    pub hh: healthledger_core::HhNumber,
    /// Their role.
    pub role: String,
    /// The wallet that signed in.
    #[schema(value_type = String)]
    pub wallet: WalletAddress,
    /// When the session expires (Unix seconds).
    pub expires_at: u64,
}

impl SharedState {
    /// A nonce and what the message must name.
    pub(crate) fn nonce(&self) -> ApiResult<NonceResponse> {
        Ok(NonceResponse {
            nonce: self.nonces.issue(self.config.nonce_ttl),
            domain: self.config.domain.clone(),
            uri: self.config.uri.clone(),
            chain_id: self.chain_id()?,
            expires_in_secs: self.config.nonce_ttl.as_secs(),
        })
    }

    pub(crate) fn chain_id(&self) -> ApiResult<u64> {
        self.app.ledger.chain_id().ok_or_else(|| {
            ApiError::unavailable("the ledger names no chain id; wallet sign-in is off")
        })
    }

    /// Checks a signed sign-in message: the wallet it proves.
    pub(crate) fn check_sign_in(&self, signed: &SignedMessage) -> ApiResult<WalletAddress> {
        let message: siwe::Message = signed
            .message
            .parse()
            .map_err(|e| ApiError::invalid(format!("message: not an EIP-4361 message: {e}")))?;
        // The nonce goes first and whatever follows: a message is good for
        // one attempt.
        if !self.nonces.take(&message.nonce) {
            return Err(ApiError::unauthorized(format!(
                "nonce {:?} was not issued by this server, was used already, or expired",
                message.nonce
            )));
        }
        let config: &HttpConfig = &self.config;
        if message.domain.as_str() != config.domain {
            return Err(ApiError::unauthorized(format!(
                "the message is for domain {:?}, this server is {:?}",
                message.domain.as_str(),
                config.domain
            )));
        }
        if message.uri.as_str() != config.uri {
            return Err(ApiError::unauthorized(format!(
                "the message is for URI {:?}, this server is {:?}",
                message.uri.as_str(),
                config.uri
            )));
        }
        let chain_id = self.chain_id()?;
        if message.chain_id != chain_id {
            return Err(ApiError::unauthorized(format!(
                "the message is for chain {}, the ledger is on chain {chain_id}",
                message.chain_id
            )));
        }
        if !message.valid_now() {
            return Err(ApiError::unauthorized(
                "the message has expired or is not valid yet",
            ));
        }
        let sig = parse_signature(&signed.signature, "signature")?;
        message
            .verify_eip191(&sig.as_bytes())
            .map_err(|e| ApiError::unauthorized(format!("the signature does not verify: {e}")))?;
        WalletAddress::new(alloy_primitives::Address::from(message.address)).map_err(Into::into)
    }

    /// Signs in: a session for the wallet the message proves, which must
    /// own an HH number on chain.
    pub(crate) async fn login(&self, signed: &SignedMessage) -> ApiResult<LoginResponse> {
        let wallet = self.check_sign_in(signed)?;
        let (role, hh) = self
            .app
            .ledger
            .account_of(wallet, ReadAt::Latest)
            .await
            .map_err(crate::Error::from)?
            .ok_or_else(|| {
                ApiError::forbidden(format!(
                    "wallet {wallet} owns no HH number on chain: register first"
                ))
            })?;
        self.start_session(hh, role, wallet).await
    }

    pub(crate) async fn start_session(
        &self,
        hh: healthledger_core::HhNumber,
        role: Role,
        wallet: WalletAddress,
    ) -> ApiResult<LoginResponse> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let now = Timestamp::now();
        let session = Session {
            token_hash: SessionTokenHash::of(token.as_bytes()),
            hh,
            wallet,
            created_at: now,
            expires_at: Timestamp(now.0 + self.config.session_ttl.as_secs()),
        };
        self.app
            .cache
            .put_session(&session)
            .await
            .map_err(crate::Error::from)?;
        Ok(LoginResponse {
            token,
            hh,
            role: role.as_str().to_owned(),
            wallet,
            expires_at: session.expires_at.0,
        })
    }

    /// Ends the session of the request's bearer token.
    pub(crate) async fn logout(&self, parts: &Parts) -> ApiResult<()> {
        let hash = SessionTokenHash::of(bearer(parts)?.as_bytes());
        self.sessions.forget(hash);
        self.app
            .cache
            .delete_session(hash)
            .await
            .map_err(crate::Error::from)?;
        Ok(())
    }

    fn is_operator_token(&self, given: &[u8]) -> bool {
        use sha2::Digest as _;
        let Some(expected) = &self.config.operator_token else {
            return false;
        };
        // Compare digests, so the time taken says nothing about how much
        // of the token was right.
        let (a, b) = (
            sha2::Sha256::digest(given),
            sha2::Sha256::digest(expected.expose().as_bytes()),
        );
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// A 65-byte signature in hex (with or without `0x`).
pub(crate) fn parse_signature(hex_sig: &str, field: &str) -> ApiResult<Signature> {
    let raw = hex::decode(hex_sig.trim_start_matches("0x"))
        .map_err(|_| ApiError::invalid(format!("{field}: not hex")))?;
    Signature::try_from(raw.as_slice())
        .map_err(|_| ApiError::invalid(format!("{field}: not a 65-byte signature")))
}
