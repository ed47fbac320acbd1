//! Bad input the other suites leave out, each a typed error with nothing
//! written (a [`Snapshot`] of all three ports before and after): unknown
//! record ids, grants that expire (refused when already past, and reads
//! stopping once the chain's clock passes the expiry), and malformed
//! configuration, which names the setting and builds nothing.

use healthledger_api::{App, Config, ConsentSigner as _, Error};
use healthledger_core::{
    Authorization, HhNumber, LedgerPort, ReadAt, RecordId, RecordQuery, RelayedSignature, Timestamp,
};

use crate::world::{DOCTOR, PATIENT, Snapshot, World, grant, hh};

/// `after` is `before` plus one denied access-log entry by `actor` about
/// `id`: an attempt is always logged, even at an unknown record.
fn only_a_denied_attempt_logged(
    before: &Snapshot,
    after: &Snapshot,
    actor: HhNumber,
    id: RecordId,
) {
    let last = after.access_log.last().expect("the attempt is logged");
    assert!(!last.entry.allowed && last.entry.actor == actor && last.entry.record == Some(id));
    let mut expected = before.clone();
    expected.access_log.push(last.clone());
    expected.cache_counts.access_log += 1;
    let wrote = expected.differences(after);
    assert!(wrote.is_empty(), "wrote:\n  {}", wrote.join("\n  "));
}

#[tokio::test]
async fn unknown_record_ids_are_not_found_and_only_the_attempt_is_logged() {
    let w = World::new().await;
    let unknown: RecordId = format!("record-{PATIENT}-999").parse().unwrap();
    let of_nobody: RecordId = "record-999999-1".parse().unwrap();
    for id in [unknown, of_nobody] {
        let before = w.snapshot().await;
        let r = w.app.read_record(&w.patient.actor, id).await;
        assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
        only_a_denied_attempt_logged(&before, &w.snapshot().await, hh(PATIENT), id);

        let before = w.snapshot().await;
        let r = w.app.record_meta(&w.doctor.actor, id).await;
        assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
        only_a_denied_attempt_logged(&before, &w.snapshot().await, hh(DOCTOR), id);
    }
    // Ids and HH numbers are parsed at the boundary: a malformed one never
    // reaches the facade, and the error names the value.
    for bad in ["record-5555-1", "record-555555-x", "555555-1", ""] {
        let e = bad.parse::<RecordId>().unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
        assert!(matches!(Error::from(e), Error::Invalid(_)));
    }
    let e = HhNumber::new(5_555).unwrap_err();
    assert!(e.to_string().contains("5555"), "{e}");
}

#[tokio::test]
async fn a_grant_whose_expiry_has_passed_is_refused_and_writes_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    let past = Timestamp(Timestamp::now().0 - 60);
    for expiry in [Timestamp(0), Timestamp(1), past, Timestamp::now()] {
        let r = grant(&w.app, &w.patient, hh(DOCTOR), Some(expiry)).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{expiry:?}: {r:?}");
    }
    w.assert_unchanged(&before).await;
    // An expiry in the future by this server's clock but not by the
    // chain's (whose block time decides) is refused by the chain, with
    // nothing written either.
    let ledger = w.ledger.inner();
    let soon = Timestamp(Timestamp::now().0 + 3_600);
    let chain_now = Timestamp(soon.0 + 86_400);
    ledger.set_time(chain_now);
    // The consent itself stays valid past the chain's clock, so the expiry
    // is the only thing wrong.
    let action = App::grant_action(hh(PATIENT), hh(DOCTOR), Some(soon));
    let deadline = Timestamp(chain_now.0 + 3_600);
    let digest = w.app.consent_digest(&action, deadline).await.unwrap();
    let consent = Authorization::Relayed(RelayedSignature {
        signature: w.patient.wallet.sign_digest(digest).await.unwrap(),
        deadline,
    });
    let before = w.snapshot().await;
    let r = w
        .app
        .grant_access(&w.patient.actor, hh(DOCTOR), Some(soon), &consent)
        .await;
    assert!(
        matches!(
            &r,
            Err(Error::Ledger(healthledger_core::LedgerError::Invalid(_)))
        ),
        "{r:?}"
    );
    w.assert_unchanged(&before).await;
}

#[tokio::test]
async fn a_grant_that_expires_stops_reads_at_once() {
    let w = World::new().await;
    let ledger = w.ledger.inner();
    // The chain's clock at this server's, so both agree on "now".
    ledger.mine_at(Timestamp::now()).unwrap();
    let expiry = Timestamp(ledger.now().0 + 600);
    grant(&w.app, &w.patient, hh(DOCTOR), Some(expiry))
        .await
        .unwrap();
    let id = w.record.id;
    w.app.read_record(&w.doctor.actor, id).await.unwrap();
    w.app
        .records_of_patient(&w.doctor.actor, hh(PATIENT))
        .await
        .unwrap();
    let mine = w.app.patients_of_doctor(&w.doctor.actor, hh(DOCTOR)).await;
    assert_eq!(mine.unwrap(), vec![hh(PATIENT)]);
    // The block at the expiry: no longer live (`now < expires_at` fails).
    ledger.mine_at(expiry).unwrap();
    assert!(
        !ledger
            .has_access(hh(PATIENT), hh(DOCTOR), ReadAt::Latest)
            .await
            .unwrap()
    );
    let r = w.app.read_record(&w.doctor.actor, id).await;
    assert!(matches!(r, Err(Error::AccessDenied(_))), "{r:?}");
    let r = w.app.record_meta(&w.doctor.actor, id).await;
    assert!(matches!(r, Err(Error::AccessDenied(_))), "{r:?}");
    let r = w.app.records_of_patient(&w.doctor.actor, hh(PATIENT)).await;
    assert!(matches!(r, Err(Error::AccessDenied(_))), "{r:?}");
    // The listings too, though this server's clock has not reached the
    // expiry the cache compares with.
    let mine = w.app.patients_of_doctor(&w.doctor.actor, hh(DOCTOR)).await;
    assert_eq!(mine.unwrap(), vec![]);
    let q = RecordQuery {
        patient: Some(hh(PATIENT)),
        limit: 10,
        ..RecordQuery::default()
    };
    let hits = w.app.search_records(&w.doctor.actor, q).await.unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    let log = w.app.record_access_log(&w.patient.actor, id).await.unwrap();
    let doctor: Vec<bool> = log
        .iter()
        .filter(|e| e.entry.actor == hh(DOCTOR))
        .map(|e| e.entry.allowed)
        .collect();
    assert_eq!(doctor, vec![true, false, false], "every attempt is logged");
    // Expiry is not revocation: the grant stays as it was given.
    let g = ledger
        .grant(hh(PATIENT), hh(DOCTOR), ReadAt::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((g.expires_at, g.revoked_at), (Some(expiry), None));
    w.assert_sync_repairs().await;
}

fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthledger.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[tokio::test]
async fn malformed_configuration_names_the_setting_and_builds_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let data = format!("data_dir = {:?}\n", data_dir.display().to_string());
    // (the file, the environment, the setting the error must name); no
    // secret ("sekrit") may show in the error.
    type Env = &'static [(&'static str, &'static str)];
    let cases: &[(&str, Env, &str)] = &[
        (
            "[chain]\nconfirmations = 0\n",
            &[],
            "HEALTHLEDGER_CONFIRMATIONS",
        ),
        (
            "[chain]\nconfirmations = \"three\"\n",
            &[],
            "chain.confirmations",
        ),
        ("[chain]\ncontract = \"0x1234\"\n", &[], "chain.contract"),
        (
            "[chain]\nrpc_url = \"ws://node:8546\"\nsigner_key = \"0x01\"\n",
            &[],
            "HEALTHLEDGER_RPC_URL",
        ),
        ("[records]\nmax_file_mib = 0\n", &[], "records.max_file_mib"),
        (
            "[cache]\ndatabase_url = \"mysql://db\"\n",
            &[],
            "DATABASE_URL",
        ),
        (
            "[vault]\nkek = \"sekrit-not-hex\"\n",
            &[],
            "HEALTHLEDGER_VAULT_KEK",
        ),
        (
            "[vault]\nurl = \"/no/scheme\"\n",
            &[],
            "HEALTHLEDGER_VAULT_URL",
        ),
        (
            "",
            &[("HEALTHLEDGER_CONFIRMATIONS", "many")],
            "HEALTHLEDGER_CONFIRMATIONS",
        ),
        (
            "",
            &[("HEALTHLEDGER_CONTRACT", "0x12zz")],
            "HEALTHLEDGER_CONTRACT",
        ),
        (
            "",
            &[("HEALTHLEDGER_WS_URL", "http://node")],
            "HEALTHLEDGER_WS_URL",
        ),
        (
            "",
            &[
                ("HEALTHLEDGER_RPC_URL", "http://node"),
                ("HEALTHLEDGER_SIGNER_KEY", "0xsekrit"),
            ],
            "HEALTHLEDGER_SIGNER_KEY",
        ),
    ];
    for (text, env, setting) in cases {
        let (_d, path) = config_file(&format!("{data}{text}"));
        let env = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let err = Config::load_with(Some(&path), env).unwrap_err();
        match &err {
            Error::Config { setting: s, rule } => {
                assert!(s.contains(setting), "{text:?}: names {s:?}, not {setting}");
                assert!(!rule.is_empty());
            }
            other => panic!("{text:?}: expected a config error, got {other:?}"),
        }
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("sekrit"), "a secret leaked: {shown}");
    }
    // A config that loads but breaks a rule is refused by App::build
    // before it starts, creates or connects anything.
    let mut config = Config::local(&data_dir);
    config.confirmations = 0;
    let err = App::build(config).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { setting, .. } if setting == "HEALTHLEDGER_CONFIRMATIONS")
    );
    assert!(!data_dir.exists(), "nothing was created");
}
