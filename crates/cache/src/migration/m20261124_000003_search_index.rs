//! Free-text search over record metadata: an FTS5 table kept in step with
//! `records` by triggers on SQLite, a generated `tsvector` column with a GIN
//! index on PostgreSQL.
//!
//! The document is `records.search_text`: the record's search words
//! (lowercase, alphanumeric, as `RecordMeta::search_words` splits them)
//! joined by single spaces. SQLite indexes it with FTS5's `ascii` tokenizer,
//! which splits on ASCII non-alphanumerics only and keeps every non-ASCII
//! character inside its token, so its tokens are exactly those words.
//! PostgreSQL builds the `tsvector` with `array_to_tsvector`, which takes
//! the words as lexemes verbatim (no parser, no dictionary; stricter than
//! the `simple` configuration, which would re-split words by its own rules).
//! Both backends therefore match whole words exactly as the reference does.

use sea_orm_migration::prelude::*;

/// Creates the free-text indexes.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const SQLITE: &[&str] = &[
    "CREATE VIRTUAL TABLE records_fts USING fts5(
        search_text, content = 'records', content_rowid = 'id', tokenize = 'ascii'
    )",
    "CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
        INSERT INTO records_fts (rowid, search_text) VALUES (new.id, new.search_text);
    END",
    "CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
        INSERT INTO records_fts (records_fts, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
    END",
    "CREATE TRIGGER records_fts_update AFTER UPDATE ON records BEGIN
        INSERT INTO records_fts (records_fts, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
        INSERT INTO records_fts (rowid, search_text) VALUES (new.id, new.search_text);
    END",
];

const POSTGRES: &[&str] = &[
    "ALTER TABLE records ADD COLUMN search_tsv tsvector
        GENERATED ALWAYS AS (array_to_tsvector(string_to_array(search_text, ' '))) STORED",
    "CREATE INDEX records_fts ON records USING GIN (search_tsv)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::run(manager, SQLITE, POSTGRES).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
