//! Timestamps stored order-preserving over the whole `u64` range: every
//! timestamp column now holds the `u64` with its sign bit flipped (see
//! `convert::ts_col`), as `records.serial_key` already did for serials.
//!
//! Before, values above `i64::MAX` were refused, yet the contract accepts
//! any `uint64` grant expiry (`u64::MAX` is a grant that never lapses in
//! practice). Flipping the sign bit of a value in `0..=i64::MAX` is adding
//! `i64::MIN`, which cannot overflow there, so the existing rows move with
//! one `UPDATE` per column; indexes keep their order.

use sea_orm_migration::prelude::*;

/// Re-encodes the timestamp columns.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The same statements on both backends: integer arithmetic on `INTEGER`
/// (SQLite) and `BIGINT` (PostgreSQL) columns; `NULL` stays `NULL`.
const STATEMENTS: &[&str] = &[
    "UPDATE records SET created_at = created_at + (-9223372036854775807 - 1)",
    "UPDATE grants SET granted_at = granted_at + (-9223372036854775807 - 1),
        expires_at = expires_at + (-9223372036854775807 - 1),
        revoked_at = revoked_at + (-9223372036854775807 - 1)",
    "UPDATE audit_anchor SET anchored_at = anchored_at + (-9223372036854775807 - 1)",
    "UPDATE notifications SET created_at = created_at + (-9223372036854775807 - 1)",
    "UPDATE sessions SET created_at = created_at + (-9223372036854775807 - 1),
        expires_at = expires_at + (-9223372036854775807 - 1)",
    "UPDATE access_log SET at = at + (-9223372036854775807 - 1)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::run(manager, STATEMENTS, STATEMENTS).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
