//! The schema migrations, one per file, run on connect by [`Migrator`].
//!
//! Tables and indexes are defined once for both backends with sea-query's
//! builders and the vocabulary of [`columns`] (which names the few places
//! the backends differ). Raw SQL is left only where the backends have
//! different features, not different spellings: the free-text index (FTS5
//! against a `tsvector` column) and data-moving statements.

use sea_orm::{ConnectionTrait as _, DbBackend, DbErr};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};

mod columns;
mod m20261124_000001_chain_tables;
mod m20261124_000002_db_only_tables;
mod m20261124_000003_search_index;
mod m20261124_000004_ordered_timestamps;
mod m20261202_000005_block_times;
mod m20261202_000006_quarantined_logs;
mod m20261202_000007_backfill_mode;

/// The cache's migrations, oldest first.
#[derive(Debug)]
pub(crate) struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_chain_tables::Migration),
            Box::new(m20261124_000002_db_only_tables::Migration),
            Box::new(m20261124_000003_search_index::Migration),
            Box::new(m20261124_000004_ordered_timestamps::Migration),
            Box::new(m20261202_000005_block_times::Migration),
            Box::new(m20261202_000006_quarantined_logs::Migration),
            Box::new(m20261202_000007_backfill_mode::Migration),
        ]
    }
}

/// Runs the statements for the manager's backend, one at a time.
async fn run(manager: &SchemaManager<'_>, sqlite: &[&str], postgres: &[&str]) -> Result<(), DbErr> {
    let statements = match manager.get_database_backend() {
        DbBackend::Sqlite => sqlite,
        DbBackend::Postgres => postgres,
        other => {
            return Err(DbErr::Migration(format!(
                "unsupported backend {other:?}: the cache runs on SQLite and PostgreSQL"
            )));
        }
    };
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}
