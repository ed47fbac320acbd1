//! The schema as the migrations wrote it before the tables were defined
//! once with sea-query: the raw SQL of migrations 1 and 2, kept verbatim so
//! a test can make a database the previous build made and check that the
//! current one reads it, and that both define the same schema.

/// Migration 1 (chain tables), SQLite.
pub(crate) const CHAIN_SQLITE: &[&str] = &[
    "CREATE TABLE users (
        hh INTEGER PRIMARY KEY,
        role INTEGER NOT NULL,
        wallet TEXT NOT NULL UNIQUE,
        source_block INTEGER NOT NULL,
        source_tx BLOB NOT NULL
    )",
    "CREATE TABLE patients (
        hh INTEGER PRIMARY KEY REFERENCES users (hh),
        name TEXT NOT NULL,
        name_lower TEXT NOT NULL,
        date_of_birth INTEGER NOT NULL,
        gender TEXT NOT NULL,
        blood_group TEXT NOT NULL,
        home_address TEXT NOT NULL,
        email TEXT NOT NULL,
        source_block INTEGER NOT NULL,
        source_tx BLOB NOT NULL
    )",
    "CREATE INDEX patients_by_name ON patients (name_lower, hh)",
    "CREATE TABLE doctors (
        hh INTEGER PRIMARY KEY REFERENCES users (hh),
        name TEXT NOT NULL,
        specialization TEXT NOT NULL,
        hospital TEXT NOT NULL,
        email TEXT NOT NULL,
        source_block INTEGER NOT NULL,
        source_tx BLOB NOT NULL
    )",
    "CREATE TABLE diagnostic_centers (
        hh INTEGER PRIMARY KEY REFERENCES users (hh),
        name TEXT NOT NULL,
        location TEXT NOT NULL,
        email TEXT NOT NULL,
        source_block INTEGER NOT NULL,
        source_tx BLOB NOT NULL
    )",
    "CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        record_id TEXT NOT NULL,
        patient INTEGER NOT NULL,
        serial_key INTEGER NOT NULL,
        creator INTEGER NOT NULL,
        cid TEXT NOT NULL,
        record_type_lower TEXT NOT NULL,
        test_date INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        search_text TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        tx_hash BLOB NOT NULL,
        block_number INTEGER NOT NULL,
        UNIQUE (patient, serial_key)
    )",
    "CREATE INDEX records_by_patient ON records (patient, test_date DESC, serial_key)",
    "CREATE INDEX records_by_creator ON records (creator, test_date DESC, patient, serial_key)",
    "CREATE INDEX records_by_type ON records (record_type_lower, test_date DESC, patient, serial_key)",
    "CREATE INDEX records_by_date ON records (test_date DESC, patient, serial_key)",
    "CREATE TABLE grants (
        patient INTEGER NOT NULL,
        grantee INTEGER NOT NULL,
        granted_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        source_block INTEGER NOT NULL,
        source_tx BLOB NOT NULL,
        PRIMARY KEY (patient, grantee)
    )",
    "CREATE INDEX grants_by_grantee ON grants (grantee, patient)",
    "CREATE TABLE audit_anchor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        digest BLOB NOT NULL,
        last_seq INTEGER NOT NULL,
        anchored_at INTEGER NOT NULL,
        source_block INTEGER NOT NULL,
        source_tx BLOB NOT NULL
    )",
    "CREATE TABLE sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        checkpoint_number INTEGER,
        checkpoint_hash BLOB,
        checkpoint_parent BLOB,
        pruned_number INTEGER,
        pruned_hash BLOB,
        pruned_parent BLOB
    )",
    "INSERT INTO sync_state (id) VALUES (1)",
    "CREATE TABLE journal (
        number INTEGER PRIMARY KEY,
        hash BLOB NOT NULL,
        parent_hash BLOB NOT NULL
    )",
    "CREATE TABLE undo_log (
        block_number INTEGER NOT NULL,
        step INTEGER NOT NULL,
        image TEXT NOT NULL,
        PRIMARY KEY (block_number, step)
    )",
];

/// Migration 1 (chain tables), PostgreSQL.
pub(crate) const CHAIN_POSTGRES: &[&str] = &[
    "CREATE TABLE users (
        hh BIGINT PRIMARY KEY,
        role BIGINT NOT NULL,
        wallet TEXT NOT NULL UNIQUE,
        source_block BIGINT NOT NULL,
        source_tx BYTEA NOT NULL
    )",
    "CREATE TABLE patients (
        hh BIGINT PRIMARY KEY REFERENCES users (hh),
        name TEXT NOT NULL,
        name_lower TEXT COLLATE \"C\" NOT NULL,
        date_of_birth BIGINT NOT NULL,
        gender TEXT NOT NULL,
        blood_group TEXT NOT NULL,
        home_address TEXT NOT NULL,
        email TEXT NOT NULL,
        source_block BIGINT NOT NULL,
        source_tx BYTEA NOT NULL
    )",
    "CREATE INDEX patients_by_name ON patients (name_lower, hh)",
    "CREATE TABLE doctors (
        hh BIGINT PRIMARY KEY REFERENCES users (hh),
        name TEXT NOT NULL,
        specialization TEXT NOT NULL,
        hospital TEXT NOT NULL,
        email TEXT NOT NULL,
        source_block BIGINT NOT NULL,
        source_tx BYTEA NOT NULL
    )",
    "CREATE TABLE diagnostic_centers (
        hh BIGINT PRIMARY KEY REFERENCES users (hh),
        name TEXT NOT NULL,
        location TEXT NOT NULL,
        email TEXT NOT NULL,
        source_block BIGINT NOT NULL,
        source_tx BYTEA NOT NULL
    )",
    "CREATE TABLE records (
        record_id TEXT NOT NULL,
        patient BIGINT NOT NULL,
        serial_key BIGINT NOT NULL,
        creator BIGINT NOT NULL,
        cid TEXT NOT NULL,
        record_type_lower TEXT COLLATE \"C\" NOT NULL,
        test_date BIGINT NOT NULL,
        metadata JSONB NOT NULL,
        search_text TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        tx_hash BYTEA NOT NULL,
        block_number BIGINT NOT NULL,
        PRIMARY KEY (patient, serial_key)
    )",
    "CREATE INDEX records_by_patient ON records (patient, test_date DESC, serial_key)",
    "CREATE INDEX records_by_creator ON records (creator, test_date DESC, patient, serial_key)",
    "CREATE INDEX records_by_type ON records (record_type_lower, test_date DESC, patient, serial_key)",
    "CREATE INDEX records_by_date ON records (test_date DESC, patient, serial_key)",
    "CREATE TABLE grants (
        patient BIGINT NOT NULL,
        grantee BIGINT NOT NULL,
        granted_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        source_block BIGINT NOT NULL,
        source_tx BYTEA NOT NULL,
        PRIMARY KEY (patient, grantee)
    )",
    "CREATE INDEX grants_by_grantee ON grants (grantee, patient)",
    "CREATE TABLE audit_anchor (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        digest BYTEA NOT NULL,
        last_seq BIGINT NOT NULL,
        anchored_at BIGINT NOT NULL,
        source_block BIGINT NOT NULL,
        source_tx BYTEA NOT NULL
    )",
    "CREATE TABLE sync_state (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        checkpoint_number BIGINT,
        checkpoint_hash BYTEA,
        checkpoint_parent BYTEA,
        pruned_number BIGINT,
        pruned_hash BYTEA,
        pruned_parent BYTEA
    )",
    "INSERT INTO sync_state (id) VALUES (1)",
    "CREATE TABLE journal (
        number BIGINT PRIMARY KEY,
        hash BYTEA NOT NULL,
        parent_hash BYTEA NOT NULL
    )",
    "CREATE TABLE undo_log (
        block_number BIGINT NOT NULL,
        step BIGINT NOT NULL,
        image JSONB NOT NULL,
        PRIMARY KEY (block_number, step)
    )",
];

/// Migration 2 (DB-only tables), SQLite.
pub(crate) const DB_ONLY_SQLITE: &[&str] = &[
    "CREATE TABLE extras (
        hh INTEGER PRIMARY KEY,
        phone TEXT,
        emergency_contact TEXT,
        allergies TEXT,
        notes TEXT
    )",
    "CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_hh INTEGER NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        message TEXT NOT NULL,
        related_record TEXT,
        created_at INTEGER NOT NULL,
        is_read BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX notifications_by_user ON notifications (user_hh, created_at DESC, id DESC)",
    "CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        hh INTEGER NOT NULL,
        wallet TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )",
    "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
    "CREATE TABLE access_log (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor INTEGER NOT NULL,
        patient INTEGER NOT NULL,
        record_id TEXT,
        action INTEGER NOT NULL,
        allowed BOOLEAN NOT NULL,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL
    )",
    "CREATE INDEX access_log_by_patient ON access_log (patient, seq)",
];

/// Migration 2 (DB-only tables), PostgreSQL.
pub(crate) const DB_ONLY_POSTGRES: &[&str] = &[
    "CREATE TABLE extras (
        hh BIGINT PRIMARY KEY,
        phone TEXT,
        emergency_contact TEXT,
        allergies TEXT,
        notes TEXT
    )",
    "CREATE TABLE notifications (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_hh BIGINT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        message TEXT NOT NULL,
        related_record TEXT,
        created_at BIGINT NOT NULL,
        is_read BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX notifications_by_user ON notifications (user_hh, created_at DESC, id DESC)",
    "CREATE TABLE sessions (
        token_hash BYTEA PRIMARY KEY,
        hh BIGINT NOT NULL,
        wallet TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    )",
    "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
    "CREATE TABLE access_log (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor BIGINT NOT NULL,
        patient BIGINT NOT NULL,
        record_id TEXT,
        action BIGINT NOT NULL,
        allowed BOOLEAN NOT NULL,
        prev_hash BYTEA NOT NULL,
        hash BYTEA NOT NULL
    )",
    "CREATE INDEX access_log_by_patient ON access_log (patient, seq)",
];
