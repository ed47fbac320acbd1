//! The seed guide's main flow, end to end, written against the three ports:
//! on the embedded defaults (anvil, SQLite, file:// vault): register a
//! patient (555555), a doctor (112233) and a diagnostic center
//! (444444); read a profile cache-first with chain fallback; seal a lab
//! report in the vault and anchor its CID on chain; follow the chain into
//! the cache; grant access with the patient's signature; read the record
//! only when authorized, logging every access; revoke; verify and anchor
//! the access log.
//!
//! Run with `cargo xtask quickstart`, which installs the pinned anvil first.

use std::path::PathBuf;

use alloy::node_bindings::Anvil;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use healthledger_cache::SqlCache;
use healthledger_chain::{EvmLedger, EvmLedgerConfig, SignerKey};
use healthledger_core::{
    AccessAction, Authorization, B256, CachePort, ChainSource, ConsentAction, HhNumber, LedgerPort,
    NewAccessLogEntry, ReadAt, RelayedSignature, Role, Timestamp, VaultPort,
    testing::{TestWallet, fixtures},
};
use healthledger_vault::{Kek, Vault};

#[tokio::main]
async fn main() -> Result<()> {
    // The embedded defaults: a local anvil node from the pinned tools, a
    // SQLite file and a file:// vault, in a fresh directory per run.
    let tools = std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
    let anvil_bin = tools.join("bin/anvil");
    if !anvil_bin.is_file() {
        bail!(
            "anvil is not installed at {}: run `cargo xtask quickstart` (or `cargo xtask setup`)",
            anvil_bin.display()
        );
    }
    let anvil = Anvil::at(&anvil_bin)
        .try_spawn()
        .context("starting anvil")?;
    let data = std::env::temp_dir().join(format!("healthledger-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(data.join("vault"))?;

    let registrar = SignerKey::from_bytes(&B256::from_slice(&anvil.keys()[0].to_bytes()))?;
    let contract = EvmLedger::deploy(&anvil.endpoint(), &registrar).await?;
    let ledger =
        EvmLedger::connect(EvmLedgerConfig::new(anvil.endpoint(), contract, registrar)).await?;
    let cache = SqlCache::connect(&format!(
        "sqlite://{}?mode=rwc",
        data.join("cache.sqlite").display()
    ))
    .await?;
    // A throwaway key-encryption key: in production it comes from config.
    // Its key store lives apart from the content (production: another
    // bucket, with its backup retention as the erasure horizon).
    let vault = Vault::builder(format!("file://{}", data.join("vault").display()))
        .key_store(format!("file://{}", data.join("vault-keys").display()))
        .erasure_horizon(std::time::Duration::ZERO)
        .kek(Kek::generate("quickstart-kek")?)
        .build()?;
    println!("HealthLedger quickstart");
    println!(
        "  ledger: anvil at {} (contract {contract})",
        anvil.endpoint()
    );
    println!("  cache:  {}", data.join("cache.sqlite").display());
    println!("  vault:  {}\n", data.join("vault").display());
    run(&ledger, &cache, &vault).await
}

/// The flow, over any adapters.
async fn run(ledger: &dyn LedgerPort, cache: &dyn CachePort, vault: &dyn VaultPort) -> Result<()> {
    let (patient_w, doctor_w, center_w) = (
        TestWallet::from_seed(555_555),
        TestWallet::from_seed(112_233),
        TestWallet::from_seed(444_444),
    );
    let patient = fixtures::patient(555_555, patient_w.address(), "Asha Rao");
    let doctor = fixtures::doctor(112_233, doctor_w.address(), "Dr. Vikram Sen");
    let center = fixtures::diagnostic_center(444_444, center_w.address(), "Metro Diagnostics");

    // 1. Registration: the chain first (source of truth), then the cache.
    for profile in [&patient, &doctor, &center] {
        let receipt = ledger.register(profile).await?;
        let emitted = ChainSource {
            block_number: receipt.block_number,
            tx_hash: receipt.tx_hash,
        };
        cache.upsert_profile(profile, emitted).await?;
        println!(
            "registered {} {} in block {} (tx {})",
            profile.role(),
            profile.hh(),
            receipt.block_number,
            receipt.tx_hash
        );
    }

    // 2. Profile read: cache first, chain on a miss (then cached).
    let hh = patient.hh();
    let profile = match cache.profile(hh).await? {
        Some(p) => p,
        None => {
            let p = ledger
                .profile(hh, Role::Patient, ReadAt::Latest)
                .await?
                .context("patient is not on chain")?;
            // A state read: tagged with the block it was read at, no tx.
            let read_at = ChainSource {
                block_number: ledger.head().await?.number,
                tx_hash: B256::ZERO,
            };
            cache.upsert_profile(&p, read_at).await?;
            p
        }
    };
    println!("profile {hh}: {}", profile.name());

    // 3. A record: seal the file in the vault, then anchor its CID on chain
    //    with the center's signature. A failure after the seal leaves only
    //    an unreferenced sealed object, never a pointer to missing content.
    let report = Bytes::from_static(b"%PDF-1.7 ... haemoglobin 13.5 g/dL ...");
    let sealed = vault.put(hh, report.clone()).await?;
    let mut new = fixtures::record(
        555_555,
        1_700_000_000_123,
        444_444,
        "Complete blood count",
        "lab-result",
        fixtures::date(2026, 11, 20),
    );
    new.cid = sealed.cid;
    new.meta.size = sealed.size;
    let auth = sign(ledger, &center_w, &ConsentAction::CreateRecord(new.clone())).await?;
    let receipt = ledger.create_record(&new, &auth).await?;
    println!(
        "record {} -> {} in block {}",
        new.id, sealed.cid, receipt.block_number
    );

    // 4. Follow the chain into the cache (what the sync engine does live).
    follow(ledger, cache).await?;
    let indexed = cache.records_of_patient(hh).await?;
    println!("cache indexes {} record(s) of {hh}", indexed.len());

    // 5. The doctor asks before any grant: denied, and logged.
    read_record(ledger, cache, vault, new.id, doctor.hh()).await?;

    // 6. The patient grants access by signature; the backend relays it.
    let grant = ConsentAction::GrantAccess {
        patient: hh,
        grantee: doctor.hh(),
        expires_at: None,
    };
    let auth = sign(ledger, &patient_w, &grant).await?;
    ledger.grant_access(hh, doctor.hh(), None, &auth).await?;
    follow(ledger, cache).await?;
    println!("patient {hh} granted access to doctor {}", doctor.hh());
    read_record(ledger, cache, vault, new.id, doctor.hh()).await?;

    // 7. Revocation ends access.
    let revoke = ConsentAction::RevokeAccess {
        patient: hh,
        grantee: doctor.hh(),
    };
    let auth = sign(ledger, &patient_w, &revoke).await?;
    ledger.revoke_access(hh, doctor.hh(), &auth).await?;
    follow(ledger, cache).await?;
    println!("patient {hh} revoked access of doctor {}", doctor.hh());
    read_record(ledger, cache, vault, new.id, doctor.hh()).await?;

    // 8. The access log is hash-chained; anchor its digest on chain.
    let verification = cache.verify_access_log().await?;
    if let Some(seq) = verification.first_broken {
        bail!("access log broken at entry {seq}");
    }
    let digest = cache.access_log_digest(verification.entries).await?;
    ledger.anchor_audit(digest, verification.entries).await?;
    println!(
        "access log: {} entries intact, digest {digest} anchored",
        verification.entries
    );
    Ok(())
}

/// Reads a record's content for `reader` only if the chain authorizes it,
/// logging the attempt either way.
async fn read_record(
    ledger: &dyn LedgerPort,
    cache: &dyn CachePort,
    vault: &dyn VaultPort,
    id: healthledger_core::RecordId,
    reader: HhNumber,
) -> Result<()> {
    let allowed = ledger.can_read_record(id, reader, ReadAt::Latest).await?;
    cache
        .append_access_log(&NewAccessLogEntry {
            at: Timestamp::now(),
            actor: reader,
            patient: id.patient(),
            record: Some(id),
            action: AccessAction::ReadContent,
            allowed,
        })
        .await?;
    if !allowed {
        println!("  {reader} reads {id}: denied (logged)");
        return Ok(());
    }
    let record = cache.record(id).await?.context("record not cached")?;
    let content = vault.get(&record.cid).await?;
    println!(
        "  {reader} reads {id}: {} bytes, verified against {} (logged)",
        content.len(),
        record.cid
    );
    Ok(())
}

/// Applies every block after the cache's checkpoint up to the head.
async fn follow(ledger: &dyn LedgerPort, cache: &dyn CachePort) -> Result<()> {
    let from = cache
        .checkpoint()
        .await?
        .map_or(ledger.deployment_block(), |b| b.number + 1);
    let head = ledger.head().await?;
    let events = ledger.events(from, head.number).await?.events;
    for n in from..=head.number {
        let block = ledger.block(n).await?.context("block vanished")?;
        let in_block: Vec<_> = events
            .iter()
            .filter(|e| e.at.block_number == n)
            .cloned()
            .collect();
        cache.apply_block(&block, &in_block).await?;
    }
    Ok(())
}

async fn sign(
    ledger: &dyn LedgerPort,
    wallet: &TestWallet,
    action: &ConsentAction,
) -> Result<Authorization> {
    let deadline = Timestamp(Timestamp::now().0 + 600);
    let digest = ledger.signing_digest(action, deadline).await?;
    Ok(Authorization::Relayed(RelayedSignature {
        signature: wallet.sign(digest),
        deadline,
    }))
}
