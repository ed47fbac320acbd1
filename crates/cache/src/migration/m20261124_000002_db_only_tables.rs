//! Data that lives only in the database: profile extras, notifications,
//! sessions (by token hash) and the hash-chained access log.
//!
//! Each table is defined once for both backends ([`super::columns`]).

use sea_orm_migration::prelude::*;

use super::columns::{Columns, create, index, table};

/// Creates the DB-only tables.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn statements(c: Columns) -> Vec<TableCreateStatement> {
    let mut extras = table("extras");
    extras
        .col(c.int_key("hh"))
        .col(c.text_or_null("phone"))
        .col(c.text_or_null("emergency_contact"))
        .col(c.text_or_null("allergies"))
        .col(c.text_or_null("notes"));

    let mut notifications = table("notifications");
    notifications
        .col(c.generated_id("id"))
        .col(c.int("user_hh"))
        .col(c.text("kind"))
        .col(c.text("title"))
        .col(c.text("message"))
        .col(c.text_or_null("related_record"))
        .col(c.int("created_at"))
        .col(c.boolean("is_read").default(false));

    let mut sessions = table("sessions");
    sessions
        .col(
            ColumnDef::new(Alias::new("token_hash"))
                .blob()
                .primary_key(),
        )
        .col(c.int("hh"))
        .col(c.text("wallet"))
        .col(c.int("created_at"))
        .col(c.int("expires_at"));

    let mut access_log = table("access_log");
    access_log
        .col(c.int_key("seq"))
        .col(c.int("at"))
        .col(c.int("actor"))
        .col(c.int("patient"))
        .col(c.text_or_null("record_id"))
        .col(c.int("action"))
        .col(c.boolean("allowed"))
        .col(c.bytes("prev_hash"))
        .col(c.bytes("hash"));

    vec![extras, notifications, sessions, access_log]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index(
            "notifications_by_user",
            "notifications",
            &["user_hh", "-created_at", "-id"],
        ),
        index("sessions_by_expiry", "sessions", &["expires_at"]),
        index("access_log_by_patient", "access_log", &["patient", "seq"]),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let c = Columns::of(manager)?;
        create(manager, statements(c), indexes()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
