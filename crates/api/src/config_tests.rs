//! Tests of `Config`: precedence of defaults, file, environment and flags,
//! the rule each setting follows, and that secrets and node keys never show.

#![allow(clippy::unwrap_used)]
use super::*;
use std::collections::HashMap;

const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const KEK: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hl.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn defaults_are_local_under_the_data_dir() {
    let c = Config::load_with(None, env(&[("HEALTHLEDGER_DATA_DIR", "/srv/hl")])).unwrap();
    assert!(c.is_local());
    assert_eq!(c.database_url, "sqlite:///srv/hl/healthledger.db?mode=rwc");
    assert_eq!(c.vault_url, "file:///srv/hl/vault");
    assert_eq!(c.key_store_url, "file:///srv/hl/vault-keys");
}

#[test]
fn the_environment_overrides_the_file_which_overrides_defaults() {
    let (_d, path) = file(
        r#"
        [cache]
        database_url = "postgres://file@localhost/db"
        [vault]
        url = "file:///from-file"
        kek = "0000000000000000000000000000000000000000000000000000000000000002"
        "#,
    );
    let c = Config::load_with(
        Some(&path),
        env(&[("DATABASE_URL", "postgres://env@localhost/db")]),
    )
    .unwrap();
    assert_eq!(c.database_url, "postgres://env@localhost/db");
    assert_eq!(c.vault_url, "file:///from-file");
    assert!(c.vault_kek.is_some());
}

#[test]
fn node_urls_never_show_a_key_in_their_path_or_query() {
    assert_eq!(
        redact_node_url("https://polygon-amoy.g.alchemy.com/v2/KEY0123456789abcdef"),
        "https://polygon-amoy.g.alchemy.com/…"
    );
    assert_eq!(
        redact_node_url("wss://u:pw@node.example:8546/?key=KEY0123"),
        "wss://node.example:8546/…"
    );
    assert_eq!(
        redact_node_url("http://127.0.0.1:8545"),
        "http://127.0.0.1:8545"
    );
    assert_eq!(
        redact_node_url("http://127.0.0.1:8545/"),
        "http://127.0.0.1:8545"
    );
    let chain = ChainConfig::Remote {
        rpc_url: "https://rpc.example/v3/KEY0123456789abcdef".into(),
        contract: None,
        signer_key: Secret::new(KEY),
    };
    let shown = format!("{chain:?}");
    assert!(
        !shown.contains("KEY0123456789abcdef") && !shown.contains(KEY),
        "{shown}"
    );
}

#[test]
fn a_websocket_endpoint_is_checked_and_kept_apart_from_the_rpc_url() {
    let remote = [
        ("HEALTHLEDGER_SIGNER_KEY", KEY),
        ("HEALTHLEDGER_VAULT_KEK", KEK),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut vars = remote.to_vec();
        vars.extend_from_slice(extra);
        Config::load_with(None, env(&vars))
    };
    let err = with(&[("HEALTHLEDGER_RPC_URL", "ws://127.0.0.1:8545")]).unwrap_err();
    assert!(
        matches!(&err, Error::Config { setting, rule } if setting == "HEALTHLEDGER_RPC_URL" && rule.contains("HEALTHLEDGER_WS_URL"))
    );
    let err = with(&[
        ("HEALTHLEDGER_RPC_URL", "http://127.0.0.1:8545"),
        (
            "HEALTHLEDGER_WS_URL",
            "http://127.0.0.1:8546/KEY0123456789abcdef",
        ),
    ])
    .unwrap_err();
    assert!(matches!(&err, Error::Config { setting, .. } if setting == "HEALTHLEDGER_WS_URL"));
    assert!(!err.to_string().contains("KEY0123456789abcdef"), "{err}");
    let c = with(&[
        ("HEALTHLEDGER_RPC_URL", "http://127.0.0.1:8545"),
        (
            "HEALTHLEDGER_WS_URL",
            "wss://node.example/KEY0123456789abcdef",
        ),
    ])
    .unwrap();
    assert_eq!(
        c.ws_url.as_deref(),
        Some("wss://node.example/KEY0123456789abcdef")
    );
    assert!(!format!("{c:?}").contains("KEY0123456789abcdef"));
}

#[test]
fn a_remote_chain_needs_url_key_and_kek() {
    let err = Config::load_with(None, env(&[("HEALTHLEDGER_SIGNER_KEY", KEY)])).unwrap_err();
    assert!(matches!(&err, Error::Config { setting, .. } if setting == "HEALTHLEDGER_RPC_URL"));
    let err = Config::load_with(
        None,
        env(&[
            ("HEALTHLEDGER_RPC_URL", "http://127.0.0.1:8545"),
            ("HEALTHLEDGER_SIGNER_KEY", KEY),
        ]),
    )
    .unwrap_err();
    assert!(matches!(&err, Error::Config { setting, .. } if setting == "HEALTHLEDGER_VAULT_KEK"));
    let c = Config::load_with(
        None,
        env(&[
            ("HEALTHLEDGER_RPC_URL", "http://127.0.0.1:8545"),
            ("HEALTHLEDGER_SIGNER_KEY", KEY),
            ("HEALTHLEDGER_VAULT_KEK", KEK),
        ]),
    )
    .unwrap();
    assert!(!c.is_local());
}

#[test]
fn malformed_values_name_the_setting_and_never_echo_secrets() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("HEALTHLEDGER_CONTRACT", "0x1234")],
            "HEALTHLEDGER_CONTRACT",
        ),
        (
            &[("HEALTHLEDGER_CONFIRMATIONS", "zero")],
            "HEALTHLEDGER_CONFIRMATIONS",
        ),
        (
            &[("HEALTHLEDGER_CONFIRMATIONS", "0")],
            "HEALTHLEDGER_CONFIRMATIONS",
        ),
        (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
        (
            &[("HEALTHLEDGER_VAULT_URL", "/no/scheme")],
            "HEALTHLEDGER_VAULT_URL",
        ),
        (
            &[("HEALTHLEDGER_VAULT_KEK", "sekrit-kek-value")],
            "HEALTHLEDGER_VAULT_KEK",
        ),
        (
            &[
                ("HEALTHLEDGER_RPC_URL", "http://x"),
                ("HEALTHLEDGER_SIGNER_KEY", "0xsekrit-signer-value"),
            ],
            "HEALTHLEDGER_SIGNER_KEY",
        ),
    ];
    for (pairs, setting) in cases {
        let err = Config::load_with(None, env(pairs)).unwrap_err();
        match &err {
            Error::Config { setting: s, .. } => assert_eq!(s, setting, "{err}"),
            other => panic!("expected a config error, got {other}"),
        }
        let text = format!("{err} {err:?}");
        assert!(!text.contains("sekrit"), "a secret leaked: {text}");
    }
}

#[test]
fn a_malformed_file_is_an_error_that_hides_its_lines() {
    let (_d, path) = file("[chain]\nsigner_key = 0xsekrit\n");
    let err = Config::load_with(Some(&path), env(&[])).unwrap_err();
    assert!(matches!(&err, Error::Config { .. }));
    assert!(!format!("{err} {err:?}").contains("sekrit"));
    let (_d, path) = file("[chain]\nunknown = 1\n");
    assert!(Config::load_with(Some(&path), env(&[])).is_err());
}

#[test]
fn url_passwords_are_redacted() {
    assert_eq!(
        redact_url("postgres://u:pw@h:5432/db?sslmode=require"),
        "postgres://u:…@h:5432/db?…"
    );
    assert_eq!(
        redact_url("sqlite://x.db?mode=rwc"),
        "sqlite://x.db?mode=rwc"
    );
}

#[test]
fn secrets_never_show_in_debug() {
    let c = Config::load_with(
        None,
        env(&[
            ("HEALTHLEDGER_RPC_URL", "http://127.0.0.1:8545"),
            ("HEALTHLEDGER_SIGNER_KEY", KEY),
            ("HEALTHLEDGER_VAULT_KEK", KEK),
        ]),
    )
    .unwrap();
    let text = format!("{c:?}");
    assert!(!text.contains(&KEY[2..]) && !text.contains(KEK), "{text}");
}

#[test]
fn a_mistyped_file_value_names_its_key() {
    let (_d, path) = file("[chain]\nconfirmations = \"three\"\n");
    let err = Config::load_with(Some(&path), env(&[])).unwrap_err();
    assert!(
        matches!(&err, Error::Config { setting, rule } if setting == "chain.confirmations" && rule.contains("hl.toml")),
        "{err}"
    );
    let (_d, path) = file("[sync]\npoll_interval_ms = -5\n");
    let err = Config::load_with(Some(&path), env(&[])).unwrap_err();
    assert!(
        matches!(&err, Error::Config { setting, .. } if setting == "sync.poll_interval_ms"),
        "{err}"
    );
}
