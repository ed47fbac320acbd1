//! HealthLedger's EVM adapter: the `HealthLedger` Solidity contract and
//! [`EvmLedger`], an alloy-based implementation of
//! [`healthledger_core::LedgerPort`] for any EVM JSON-RPC node (anvil in
//! tests and development, Polygon in production).
//!
//! # The contract
//!
//! `contracts/HealthLedger.sol` (Solidity 0.8.30, no imports) is compiled by
//! `cargo xtask contracts` with the pinned solc-js into the committed
//! `contracts/HealthLedger.json` (`{"abi": …, "bytecode": "0x…"}`), from which
//! `alloy::sol!` generates the bindings; a test fails when the committed
//! artifact differs from a fresh compile, and the compile fails when the
//! contract's code would exceed the 24 KiB EIP-170 limit. The contract is
//! the source of truth:
//!
//! - **Profiles** of patients, doctors and diagnostic centers keyed by HH
//!   number, one wallet per HH number and one HH number per wallet across all
//!   roles. HH numbers are issued, never taken: a *registrar* registers
//!   everyone, and a patient may register from their own wallet only with a
//!   registrar's EIP-712 `PatientAttestation(hh, wallet, deadline)`; each
//!   registration event names the registrar that issued the HH number (and,
//!   for a patient, whether it came with that registrar's attestation). The
//!   admin (the deployer) names and removes registrars and hands its role
//!   over in two steps (`transferAdmin` offers, the offered wallet's
//!   `acceptAdmin` takes it: `AdminTransferStarted`, `AdminChanged`; a new
//!   offer replaces a pending one; registrars stay as they were). Only the
//!   owner's wallet, directly or by signature, updates.
//! - **Validation**: every value is checked on chain as the Rust domain
//!   types check it (HH range, text lengths in characters, no control
//!   characters, ISO dates, the eight blood groups, email syntax, content
//!   types, CIDs of sha2-256 multihashes) by `HealthLedgerRules`, a contract
//!   the constructor creates (it is separate only to keep HealthLedger's code
//!   under the size limit), so every event decodes.
//! - **Records**: pointers (binary CID + metadata, never content) created by a
//!   registered doctor or diagnostic center with its consent; ids unique per
//!   patient and namespaced by their creator (its HH number leads the
//!   digits: `record-<patient>-<creator><13 digits>`), so no provider can
//!   take another's ids first.
//! - **Suspension**: the admin suspends and reinstates doctors and centers
//!   (`ProviderSuspended`, `ProviderReinstated`); a suspended provider creates
//!   no records and receives no grants.
//! - **Consent belongs to the patient**: grants (with optional expiry) and
//!   revocations need the patient's wallet as sender or its EIP-712 signature
//!   (domain `HealthLedger`/`1`/chain id/contract; messages `UpdatePatient`,
//!   `UpdateDoctor`, `UpdateDiagnosticCenter` nesting the whole new profile,
//!   `CreateRecord` nesting the CID and `RecordMeta`, `GrantAccess`,
//!   `RevokeAccess`, each with the signer's nonce and a deadline; strings
//!   and bytes hashed as EIP-712 says, so a wallet displays every field)
//!   relayed by anyone. [`EvmLedger::consent_typed_data`] gives the JSON a
//!   wallet's `eth_signTypedData_v4` takes. A relayed signature consumes the
//!   nonce, so replays fail, and a wallet cancels the signatures it handed
//!   out with `invalidateNonce`. The registrar cannot grant on its own.
//! - **Audit anchors**: the registrar anchors digests of the access log with a
//!   growing sequence number.
//! - **Events for every state change** carry everything needed to rebuild the
//!   state from logs alone (registrations carry whole profiles,
//!   `ProfileUpdated` the ABI-encoded new profile, `RecordCreated` the CID,
//!   metadata and timestamp, `AccessGranted` grant and expiry times, …), and
//!   **enumeration getters** list everything without logs, whole structs a
//!   page at a time (`patientsPage`, `doctorsPage`, `centersPage`,
//!   `recordsPage`, `grantsPage` over every pair ever granted,
//!   `granteesPage`), plus the latest audit anchor, the deployment block and
//!   an `INTERFACE` string that `connect` checks.
//!
//! # The adapter
//!
//! [`EvmLedger::connect`] takes an [`EvmLedgerConfig`] (RPC URL, contract
//! address, [`SignerKey`], confirmations, finality depth, retry and log-range
//! policies), [`EvmLedger::deploy`] deploys a fresh contract. Writes are
//! simulated with `eth_estimateGas` (which surfaces the contract's custom
//! error before anything is spent), signed locally with a nonce from the
//! adapter's own counter (so concurrent writes from one key all land, and the
//! transaction hash is known before sending), sent as raw bytes — resent
//! unchanged on rate limits, timeouts and dropped connections (a node that
//! already has it says "already known" or "nonce too low", and is then asked
//! for the transaction by hash) — and awaited until the configured
//! confirmations. A send that never gets through, and that the node does not
//! know, frees its nonce and fails as `Unavailable` naming the hash. A
//! transaction the node drops later (restart, full pool, fee spike) is found
//! when its receipt is late (`rebroadcast_after`), sent again byte for byte,
//! and replaced with the same nonce and fees raised by a quarter when it is
//! dropped again or refused, so later writes never wait behind its nonce.
//! When the node loses mined transactions (a reorg that drops them), its
//! nonce goes back below the counter: a write that starts with nothing in
//! flight re-reads the node's pending nonce, and a write the node holds but
//! does not mine fills the gap below it: the signed bytes of the writes still
//! waiting there, a zero-value transfer to the signer for a nonce no write
//! waits for any more (so no call runs twice). A write the node holds with
//! no gap below it and still does not mine (its fee cap fell below the base
//! fee, or the miner passed it over) is replaced the same way, with fees
//! raised by a quarter or to the node's current estimate if higher; a
//! refused replacement leaves the write waiting for the held version.
//!
//! Reads are `eth_call`s at the latest block (explicitly: alloy's default is
//! the pending block, whose timestamp is the node's clock) or, with
//! [`ReadAt::Block`](healthledger_core::ReadAt), at a pinned block named by
//! hash with `requireCanonical` (EIP-1898), so a snapshot is consistent even
//! behind a load-balanced provider; a pinned block that a reorg replaced is
//! `Conflict`. The bulk reads fetch [`PROFILE_PAGE`] profiles,
//! [`RECORD_PAGE`] records or [`GRANT_PAGE`] grants (1,000 ids) per request,
//! sizes at which a page of the largest values the contract accepts stays
//! within [`CALL_GAS_BUDGET`] of `eth_call` gas. `connect` refuses an address whose contract is not
//! HealthLedger at this interface version, and reads its deployment block
//! ([`LedgerPort::deployment_block`](healthledger_core::LedgerPort::deployment_block)),
//! where scans start.
//! [`LedgerPort::events`](healthledger_core::LedgerPort::events) reads logs
//! with `eth_getLogs` in block spans that shrink when a provider refuses a
//! range (Alchemy, Infura, QuickNode, Ankr, Polygon, Cloudflare messages are
//! recognized, with their suggested sizes) and grow back after successes;
//! every RPC is retried with exponential backoff and full jitter on HTTP 429,
//! 5xx, timeouts and dropped connections, up to a bound. A log that does not
//! decode (another layout under a known address, a value the domain
//! refuses) never fails its range: it comes back quarantined beside the
//! decoded events, for the sync engine to record and report.
//!
//! The finalized head
//! ([`LedgerPort::finalized`](healthledger_core::LedgerPort::finalized)) is
//! the block of the `finalized` tag; where the node does not support that tag
//! (it answers null, or JSON-RPC -32601/-32602), the block of the `safe` tag;
//! where neither is supported, the head minus the configured finality depth.
//! Any other failure of these calls is returned as an error (`Unavailable`
//! once transient failures have used up the retries), never papered over by
//! a fallback.
//!
//! The signer key never reaches `Debug` output, logs or error messages, and
//! the RPC URL is shown without its path, query or credentials (where hosted
//! providers put API keys): every rendered transport error — error messages,
//! the port's error strings, `tracing` fields — is scrubbed of the configured
//! URL and its path, since alloy's HTTP transport wraps `reqwest` errors that
//! name the full URL.
//!
//! # Testing
//!
//! The `testing` feature adds [`testing::FaultProxy`], a loopback JSON-RPC
//! proxy that counts requests and injects provider faults (server errors,
//! 429s, `eth_getLogs` range refusals, dropped connections). This crate's
//! tests and bulk bench and the sync engine's tests and benches use it, and
//! [`testing::bench_chain`], the large chains those benches read (the bulk
//! chain and the event mix), built once on anvil and kept under
//! `bench-data/`.
//!
//! # Errors
//!
//! [`Error`] is this crate's one error type; it converts into the port's
//! [`LedgerError`](healthledger_core::LedgerError):
//!
//! | contract error / failure                           | port error      |
//! |----------------------------------------------------|-----------------|
//! | `AlreadyRegistered`, `RecordExists`                | `AlreadyExists` |
//! | `NotRegistered`, `UnknownRecord`, `NoActiveGrant`  | `NotFound`      |
//! | `NotAuthorized` (wrong sender, patient as creator, not a registrar), `InvalidSignature` (forged or replayed) | `AccessDenied` |
//! | `Expired` (deadline passed), `InvalidInput` (expiry not in the future, seq not growing, self-grant, wallet or role change) | `Invalid` |
//! | reverted on chain after a successful simulation; a read pinned to a block that is no longer canonical | `Conflict` |
//! | retries spent (429, timeouts, dropped connections), a transaction that could not be sent or whose receipt could not be fetched (naming its hash), receipt timeout | `Unavailable` |
//! | chain data that fails the core types' validation   | `Integrity`     |
//! | any other RPC failure                              | `Other`         |

mod bindings;
mod config;
mod convert;
mod error;
mod ledger;
mod rpc;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{
    CONTRACT_ENV, EvmLedgerConfig, LogRangePolicy, RPC_URL_ENV, RetryPolicy, SIGNER_KEY_ENV,
    SignerKey, WS_URL_ENV,
};
pub use error::{Error, Result, RevertKind};
pub use ledger::{CALL_GAS_BUDGET, EvmLedger, GRANT_PAGE, PROFILE_PAGE, RECORD_PAGE};
