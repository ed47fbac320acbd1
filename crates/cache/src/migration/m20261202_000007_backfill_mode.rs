//! Initial backfill mode (`backfill_mode.rs`): a flag in the sync state, and
//! the definitions of the indexes and triggers the mode dropped, kept until
//! they are rebuilt, so that a process that crashed in the mode leaves
//! behind all a restart needs to finish it.
//!
//! Defined once with sea-query for both backends.

use sea_orm_migration::prelude::*;

/// Adds `sync_state.backfill_mode` and `deferred_indexes`.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("sync_state"))
                    .add_column(
                        ColumnDef::new(Alias::new("backfill_mode"))
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        let text = |name: &str| {
            ColumnDef::new(Alias::new(name))
                .text()
                .not_null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("deferred_indexes"))
                    .col(text("name").primary_key())
                    .col(text("kind"))
                    .col(text("definition"))
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
