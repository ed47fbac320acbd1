//! The cache adapter: [`SqlCache`], a sea-orm implementation of
//! [`healthledger_core::CachePort`] on SQLite (the embedded default) and
//! PostgreSQL (production).
//!
//! # Backends and URLs
//!
//! [`SqlCache::connect`] (or [`SqlCacheBuilder`]) takes a URL:
//!
//! - `sqlite::memory:`: a private in-memory database (tests, demos);
//! - `sqlite://<path>?mode=rwc`: a database file, created if missing
//!   (without `mode=rwc` the file must already exist); WAL journal;
//! - `postgres://user[:password]@host:port/database`: PostgreSQL; with
//!   [`SqlCacheBuilder::postgres_schema`] every table lives in that schema
//!   (created if missing, selected through the connections' `search_path`),
//!   so that several caches can share one database.
//!
//! SQLite writes on a single connection, so writers are serialized in
//! process, and write transactions start with `BEGIN IMMEDIATE`, so that
//! other processes wait (up to a 10 s busy timeout) rather than fail on a
//! lock upgrade. On a file, reads go to a pool of read-only connections
//! (4 unless [`SqlCacheBuilder::max_connections`] says otherwise): in WAL
//! mode they see the last commit while the writer works, so a read never
//! queues behind a long `apply_blocks`. An in-memory database lives in its
//! only connection, which (like the file's writer) is never closed for
//! idleness or age.
//! PostgreSQL uses a pool (10 connections unless told otherwise); chain
//! writers serialize on a row lock of `sync_state`, access-log appends on
//! a table lock of `access_log`; schema creation and migrations on advisory
//! locks, so that several processes may start on one schema at once.
//! PostgreSQL sessions run with `plan_cache_mode = force_custom_plan`: sqlx
//! keeps prepared statements per connection, and a generic plan made while
//! a table was small (a sequential scan) would otherwise outlive its growth.
//! Connecting gives up after [`SqlCacheBuilder::connect_timeout`] (10 s by
//! default), which also bounds the wait for a pooled connection.
//!
//! # Migrations
//!
//! Connecting runs the pending migrations (`migration`, one per file, via
//! sea-orm-migration and its `seaql_migrations` table). A database that has
//! applied a migration this code does not know was written by a newer version
//! and is refused with [`Error::SchemaTooNew`] before anything is touched.
//! Processes that open one SQLite file at once take turns on a lock beside
//! it (an uncommitted `BEGIN EXCLUSIVE` on the small database
//! `<path>.migrate-lock`, released when its connection closes or the
//! process exits), from opening the file until its migrations are done;
//! on PostgreSQL an advisory lock does the same.
//!
//! Each table and index is defined once for both backends with sea-query's
//! builders (`migration::columns` names the few places the backends
//! differ: `COLLATE "C"` sort keys, `jsonb`, identity ids, and the rowid
//! that SQLite's FTS5 index needs); raw SQL remains only for the free-text
//! index and data-moving statements. A test keeps the raw SQL the first
//! migrations ran before, and checks that both make the same schema and
//! that a database the previous build made migrates forward and passes the
//! conformance suite.
//!
//! # Schema
//!
//! Chain data (rebuildable from the chain):
//! - `users`: HH number (key), role, wallet (unique), source block and tx;
//! - `patients`, `doctors`, `diagnostic_centers`: each role's chain fields
//!   plus source block and tx; `patients.name_lower` (the Rust lowercase of
//!   the name, compared in code-point order: `COLLATE "C"` on PostgreSQL)
//!   serves the name-prefix search;
//! - `records`: the record index: record id (as text, and as patient HH plus
//!   `serial_key`, the serial with its sign bit flipped so that signed
//!   64-bit order is the serial's numeric order), creator, CID, lowercase
//!   record type, test date (days since 0001-01-01), the metadata as JSON
//!   (`JSONB` on PostgreSQL), the searchable text, tx hash and block;
//! - `grants`: patient, grantee, granted at, expires at, revoked at, source
//!   block and tx;
//! - `audit_anchor`: the latest anchored access-log digest;
//! - `deferred_indexes` and `sync_state.backfill_mode`: initial backfill
//!   mode (`begin_backfill_mode`) drops every non-unique index and trigger
//!   of the chain tables (read from the catalog, their definitions kept
//!   here), and `end_backfill_mode` runs the kept definitions and rebuilds
//!   the FTS5 table, each in one transaction; a cache that stopped in the
//!   mode is still in it when reopened, searches meanwhile are
//!   `IndexBuilding`;
//! - `quarantined_logs`: the ledger logs that did not decode, keyed by
//!   block number, log index and tx hash, with block hash, topic and reason;
//!   stored in the transaction of their block batch and deleted with their
//!   block (rollback, branch switch, a snapshot's block);
//! - `sync_state` (checkpoint and highest pruned block), `journal` (applied
//!   blocks: number, hash, parent hash) and `undo_log` (see below).
//!
//! Every timestamp column (record creation, grant times, anchor time,
//! notification and session times, access time) holds the `u64` with its
//! sign bit flipped, like `serial_key`: any `u64` is stored losslessly (a
//! grant may expire at `u64::MAX`) and compares with `now` in SQL as the
//! `u64`s compare. A grant or session whose expiry equals `now` is expired
//! (`expires_at > now` is active), as the contract's
//! `block.timestamp < expiresAt`.
//!
//! Database-only data (never touched by sync, upserts or rollbacks):
//! `extras`, `notifications`, `sessions` (the token's SHA-256 only, never the
//! token) and `access_log`, hash-chained: each row stores `prev_hash` and
//! `hash = SHA-256(prev_hash ‖ encode(seq, entry))` (see
//! [`healthledger_core::AccessLogEntry`]); appends are serialized so that seqs
//! run 1, 2, 3… without gaps; `verify_access_log` reads `audit_anchor`,
//! walks the chain and reports the first broken link (a row that no longer
//! decodes counts as broken), also when entry `last_seq` of the anchor is
//! missing or does not hash to its digest (a rewrite relinked through raw
//! SQL, a deleted tail); `access_log_digest(seq)` returns the hash to
//! anchor.
//!
//! Every query of the port has an index: profiles and accounts by key and
//! unique wallet; patients by `(name_lower, hh)`; records by patient, by
//! creator, by type and by date, each followed by the result order (test
//! date descending, then record id); free text through FTS5 (SQLite,
//! `records_fts`, kept in step by triggers) or a GIN index over a generated
//! `tsvector` (PostgreSQL); grants by `(patient, grantee)` and by
//! `(grantee, patient)`; notifications by `(user, created_at, id)`; sessions
//! by token hash and expiry; the access log by seq and by `(patient, seq)`.
//!
//! Free text matches whole words exactly as the reference does: the stored
//! document is the record's search words (lowercase alphanumeric, split as
//! [`healthledger_core::search_words`] splits) joined by spaces, indexed by
//! FTS5's `ascii` tokenizer or turned into lexemes verbatim by
//! `array_to_tsvector`; a query is reduced to its search words the same way,
//! each quoted as a literal (hostile input such as quotes, `*`, `:` or
//! `&|!()` never reaches FTS5 or `tsquery` syntax).
//!
//! # Rollback: an undo log
//!
//! `apply_block` (and `apply_blocks`, for a whole batch) runs in one
//! transaction: for every event that changes a row
//! it first reads the row's current value (the before-image, `null` when
//! there was none), writes the new value, and appends the before-image as
//! JSON to `undo_log` under `(block number, step)`; then it journals the
//! block and moves the checkpoint. `rollback_to(n)` walks the journaled
//! blocks above `n` from the newest down and, within each, the steps in
//! reverse, putting each before-image back (deleting rows that did not
//! exist), then drops those blocks' undo rows and journal entries and sets
//! the checkpoint to the highest remaining block (or the highest pruned
//! one); all in one transaction. Profile and grant updates therefore return
//! to their earlier values exactly, with their earlier source block and tx.
//! `prune_journal(n)` deletes the undo rows and journal entries below `n`,
//! remembering the highest pruned block: rolling back below it is a
//! `Conflict`. `apply_blocks(batch, finalized)` checks the batch's linkage
//! block by block in memory, writes no undo rows for blocks at or below
//! `finalized` (they stay journaled, and the highest of them is remembered
//! like a pruned block, so rolling back below it is a `Conflict`), writes
//! the other blocks' undo rows and every journal row in multi-row
//! statements, and moves the checkpoint once.
//!
//! Writes are set-based: a batch's events are folded in memory into net
//! row changes (the rules above, event by event, against the rows the batch
//! touches, read first with one statement per table), and each table is
//! then written with bound values, in key order: on PostgreSQL one
//! `INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE`, each column
//! one binary array parameter; on SQLite multi-row `INSERT … VALUES … ON
//! CONFLICT … DO UPDATE` statements of as many rows as SQLite's 32,766
//! parameters allow (a power of two: 2,048 records) and then descending
//! powers of two, a few shapes per table kept prepared in the writer's
//! statement cache; each statement's journal and FTS5 flush is paid once
//! for all its rows. Undo images and journal rows likewise. The SQLite
//! writer keeps a 64 MiB page cache (a batch dirties pages of every index
//! it writes), its statement journal in memory, and checkpoints its WAL at
//! 40 MiB (pages several batches rewrite are copied once). Records created
//! only in final blocks are not read at all. On PostgreSQL a batch commits with `synchronous_commit =
//! off`: its checkpoint commits with its data, so a commit lost in a crash
//! is applied again from the older checkpoint (DB-only data keeps full
//! durability).
//!
//! sqlx 0.9 does not set `TCP_NODELAY`, so over TCP a statement larger than
//! a segment waits about 40 ms for a delayed ACK (Nagle's algorithm). A
//! PostgreSQL URL naming this machine (`localhost`, `127.0.0.1`, `[::1]`)
//! therefore connects through the server's Unix socket when it has one in
//! `/var/run/postgresql`, `/run/postgresql` or `/tmp` and lets the URL's
//! user in there ([`SqlCacheBuilder::local_socket`]); a remote server is
//! reached over TCP and pays that wait once per large statement (a few per
//! batch), not once per row.
//!
//! An undo log was chosen over keeping versions of every row: reads stay
//! plain key lookups on the current tables (no "latest version" filter in
//! every query and index), the extra cost is paid only by writes, and
//! pruning is a range delete.
//!
//! # Layout
//!
//! The code is split by what it does: `connect` (the builder, pools,
//! migration locks), `dialect` (statement plumbing and what differs between
//! the backends), `pages` (reads by many keys and key walks), `rows/` (one module per table family: reading rows,
//! `upsert_*` and deleting), `apply` (block application), `undo` (the undo
//! log and rollback), `journal` (the journal and the sync state),
//! `snapshot` (whole-state writes), `search`, `access_log`, `db_only`
//! (extras, notifications, sessions) and `port` (the [`CachePort`] impl,
//! opening transactions and delegating). One verb names one act:
//! `upsert_*` inserts or replaces, `insert_*` appends, `load_*` reads one
//! value, `delete_*` removes.
//!
//! [`CachePort`]: healthledger_core::CachePort
//!
//! # Errors
//!
//! Failures map onto [`healthledger_core::CacheError`] with the operation as
//! context: a unique violation is `Conflict` (ownership rules are also
//! checked up front, naming the owner); an unreachable server, a closed or
//! exhausted pool, SQLite busy/locked and PostgreSQL serialization failures,
//! deadlocks and shutdowns are `Unavailable` (retryable: transactions leave
//! nothing half-applied); a row that no longer decodes is `Integrity`;
//! block numbers and access-log seqs beyond the signed 64-bit range are
//! `Invalid` (timestamps and record serials take any `u64`); so is a record
//! whose patient is not its id's; anything else is
//! `Other`. URLs in errors and `Debug` output have their password redacted.

mod dialect;

mod access_log;
mod apply;
mod backfill_mode;
mod connect;
mod convert;
mod db_only;
mod error;
mod journal;
mod lease;
mod migration;
mod pages;
mod port;
mod quarantine;
mod rows;
mod search;
mod snapshot;
mod targeted;
mod undo;

pub use connect::{SqlCache, SqlCacheBuilder, drop_schema};
pub use error::{Error, Result};
pub use lease::SqlLease;
