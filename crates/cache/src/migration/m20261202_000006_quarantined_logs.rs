//! Quarantined logs: the ledger logs that did not decode, stored with the
//! block batch they came in (`quarantine.rs`), one row per position.
//!
//! The table is defined once with sea-query for both backends (`BLOB` on
//! SQLite, `BYTEA` on PostgreSQL come from the builder).

use sea_orm_migration::prelude::*;

/// Creates `quarantined_logs`.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let int = |name: &str| {
            ColumnDef::new(Alias::new(name))
                .big_integer()
                .not_null()
                .to_owned()
        };
        let bytes = |name: &str| {
            ColumnDef::new(Alias::new(name))
                .blob()
                .not_null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("quarantined_logs"))
                    .col(int("block_number"))
                    .col(int("log_index"))
                    .col(bytes("tx_hash"))
                    .col(bytes("block_hash"))
                    .col(bytes("topic"))
                    .col(ColumnDef::new(Alias::new("reason")).text().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("block_number"))
                            .col(Alias::new("log_index"))
                            .col(Alias::new("tx_hash")),
                    )
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
