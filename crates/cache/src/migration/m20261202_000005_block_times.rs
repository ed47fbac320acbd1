//! Block timestamps: every journaled block, the checkpoint and the final
//! block keep their block's time (`BlockRef::timestamp`), stored as the other
//! timestamps are (`convert::ts_col`). Blocks journaled before this migration
//! have no time recorded (`NULL`, read as 0); block identity is still
//! compared by hash, so they link and roll back as before.

use sea_orm_migration::prelude::*;

/// Adds the time columns.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// `BIGINT` is `INTEGER` affinity on SQLite, so one text serves both.
const STATEMENTS: &[&str] = &[
    "ALTER TABLE journal ADD COLUMN block_time BIGINT",
    "ALTER TABLE sync_state ADD COLUMN checkpoint_time BIGINT",
    "ALTER TABLE sync_state ADD COLUMN pruned_time BIGINT",
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
