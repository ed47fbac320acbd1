//! Chain data: users and per-role profiles, the record index, grants, the
//! latest audit anchor, and the sync state (checkpoint, journal, undo log).
//!
//! Each table is defined once for both backends ([`super::columns`]); the
//! one difference in shape is the record index's key: SQLite gives
//! `records` an integer rowid (`id`, which the FTS5 index of the search
//! migration points at) beside the unique `(patient, serial_key)`, which is
//! the primary key on PostgreSQL.

use sea_orm_migration::prelude::*;

use super::columns::{Columns, create, index, key, references, table};

/// Creates the chain-data tables.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The columns every chain-derived row carries: where it came from.
fn provenance(c: Columns, t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(c.int("source_block")).col(c.bytes("source_tx"))
}

/// An HH number as a primary key that names a registered user.
fn profile_table(c: Columns, name: &str, cols: &[&str]) -> TableCreateStatement {
    let mut t = table(name);
    t.col(c.int_key("hh"));
    for col in cols {
        t.col(c.text(col));
    }
    provenance(c, &mut t)
        .foreign_key(&mut references(name, "hh", "users", "hh"))
        .take()
}

fn statements(c: Columns) -> Vec<TableCreateStatement> {
    let mut users = table("users");
    users
        .col(c.int_key("hh"))
        .col(c.int("role"))
        .col(c.text("wallet").unique_key());
    provenance(c, &mut users);

    let mut patients = table("patients");
    patients
        .col(c.int_key("hh"))
        .col(c.text("name"))
        .col(c.sort_text("name_lower"))
        .col(c.int("date_of_birth"))
        .col(c.text("gender"))
        .col(c.text("blood_group"))
        .col(c.text("home_address"))
        .col(c.text("email"));
    provenance(c, &mut patients).foreign_key(&mut references("patients", "hh", "users", "hh"));

    let mut records = table("records");
    if !c.postgres() {
        records.col(c.int_key("id"));
    }
    records
        .col(c.text("record_id"))
        .col(c.int("patient"))
        .col(c.int("serial_key"))
        .col(c.int("creator"))
        .col(c.text("cid"))
        .col(c.sort_text("record_type_lower"))
        .col(c.int("test_date"))
        .col(c.json("metadata"))
        .col(c.text("search_text"))
        .col(c.int("created_at"))
        .col(c.bytes("tx_hash"))
        .col(c.int("block_number"));
    if c.postgres() {
        records.primary_key(&mut key(&["patient", "serial_key"]));
    } else {
        records.index(key(&["patient", "serial_key"]).unique());
    }

    let mut grants = table("grants");
    grants
        .col(c.int("patient"))
        .col(c.int("grantee"))
        .col(c.int("granted_at"))
        .col(c.int_or_null("expires_at"))
        .col(c.int_or_null("revoked_at"));
    provenance(c, &mut grants).primary_key(&mut key(&["patient", "grantee"]));

    let mut anchor = table("audit_anchor");
    anchor
        .col(c.singleton_id())
        .col(c.bytes("digest"))
        .col(c.int("last_seq"))
        .col(c.int("anchored_at"));
    provenance(c, &mut anchor);

    let mut sync_state = table("sync_state");
    sync_state
        .col(c.singleton_id())
        .col(c.int_or_null("checkpoint_number"))
        .col(c.bytes_or_null("checkpoint_hash"))
        .col(c.bytes_or_null("checkpoint_parent"))
        .col(c.int_or_null("pruned_number"))
        .col(c.bytes_or_null("pruned_hash"))
        .col(c.bytes_or_null("pruned_parent"));

    let mut journal = table("journal");
    journal
        .col(c.int_key("number"))
        .col(c.bytes("hash"))
        .col(c.bytes("parent_hash"));

    let mut undo = table("undo_log");
    undo.col(c.int("block_number"))
        .col(c.int("step"))
        .col(c.json("image"))
        .primary_key(&mut key(&["block_number", "step"]));

    vec![
        users,
        patients,
        profile_table(
            c,
            "doctors",
            &["name", "specialization", "hospital", "email"],
        ),
        profile_table(c, "diagnostic_centers", &["name", "location", "email"]),
        records,
        grants,
        anchor,
        sync_state,
        journal,
        undo,
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("patients_by_name", "patients", &["name_lower", "hh"]),
        index(
            "records_by_patient",
            "records",
            &["patient", "-test_date", "serial_key"],
        ),
        index(
            "records_by_creator",
            "records",
            &["creator", "-test_date", "patient", "serial_key"],
        ),
        index(
            "records_by_type",
            "records",
            &["record_type_lower", "-test_date", "patient", "serial_key"],
        ),
        index(
            "records_by_date",
            "records",
            &["-test_date", "patient", "serial_key"],
        ),
        index("grants_by_grantee", "grants", &["grantee", "patient"]),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let c = Columns::of(manager)?;
        create(manager, statements(c), indexes()).await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Alias::new("sync_state"))
                    .columns([Alias::new("id")])
                    .values_panic([1.into()])
                    .take(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
