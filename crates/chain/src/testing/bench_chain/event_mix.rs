//! The event-mix benchmark chain: a chain of about `events` HealthLedger
//! events in the cache issue's realistic mix (10 % registrations, 80 %
//! record creations, 8 % grants, 1 % revocations, 1 % profile updates),
//! interleaved as a live system writes them, in blocks of 1 to 100 events
//! (sizes drawn uniformly from a seeded generator, so a spec always builds
//! the same chain).
//!
//! The build turns anvil's automine off after the deployment and mines each
//! block itself ([`BlockWriter`]): it starts the block's writes, waits until
//! the node holds all of them, and mines once. The blocks are therefore as
//! full as the 1-to-100 rule allows, and their number (about `events / 50`)
//! is what the build's cost grows with: anvil recomputes the state root at
//! every block. A write only depends on writes of earlier blocks (a record
//! or a grant on a patient registered before, a revocation of a grant made
//! before), and a patient signs at most one relayed write per block (the
//! consent nonce is per wallet).
//!
//! The HH numbers: the diagnostic center that creates every record is
//! [`MIX_CENTER`] (anvil's account 1), doctors follow it, patients follow
//! the doctors.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    node_bindings::AnvilInstance,
    primitives::Address,
    providers::{DynProvider, Provider as _},
};
use futures::future::BoxFuture;
use healthledger_core::{
    Authorization, ConsentAction, HhNumber, LedgerError, LedgerPort, Name, Profile,
    RelayedSignature, Timestamp, WalletAddress,
    testing::fixtures::{self, TestWallet, date},
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use super::{BenchChain, BenchChainError, Result, connect, key_of, node, node_error};
use crate::EvmLedger;

/// Bumped whenever the plan below changes, so a saved chain of an older
/// plan is not read as this one's (the version is part of its file name).
pub(super) const PLAN_VERSION: u32 = 1;

/// The diagnostic center that creates every record (anvil's account 1);
/// the doctors and then the patients follow it.
pub const MIX_CENTER: u32 = 200_000;

/// The most events in a block.
pub const MAX_BLOCK_EVENTS: usize = 100;

/// The spec of an event-mix chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMixSpec {
    /// Events to write (the deployment's one event comes on top).
    pub events: u64,
    /// Seeds the plan: block sizes, the order of the kinds, who does what.
    pub seed: u64,
}

/// How many writes of each kind an [`EventMixSpec`] plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixCounts {
    /// The diagnostic center and the doctors.
    pub providers: u64,
    /// Patients.
    pub patients: u64,
    /// Record creations.
    pub records: u64,
    /// Grants (a grant of a pair already granted replaces it).
    pub grants: u64,
    /// Revocations.
    pub revocations: u64,
    /// Patient profile updates.
    pub updates: u64,
}

impl EventMixSpec {
    /// `HL_SYNC_EVENTS` events (else `events`), seed 1.
    pub fn from_env(events: u64) -> Self {
        Self {
            events: std::env::var("HL_SYNC_EVENTS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(events),
            seed: 1,
        }
    }

    /// The writes planned, one event each, `events` in all (for at least
    /// 100 events).
    pub fn counts(&self) -> MixCounts {
        let events = self.events.max(100);
        let registrations = events / 10;
        let providers = (registrations / 20).max(2);
        let grants = events * 8 / 100;
        let revocations = events / 100;
        let updates = events / 100;
        MixCounts {
            providers,
            patients: registrations - providers,
            records: events - registrations - grants - revocations - updates,
            grants,
            revocations,
            updates,
        }
    }

    /// The HH number of the first patient.
    pub fn first_patient(&self) -> u32 {
        MIX_CENTER + self.counts().providers as u32
    }
}

/// One planned write.
#[derive(Debug, Clone)]
enum Write {
    /// Registers this profile (by the registrar).
    Register(Profile),
    /// The center creates record `serial` of this patient.
    Record { patient: u32, serial: u64 },
    /// The patient grants the doctor access (relayed by the registrar).
    Grant { patient: u32, doctor: u32 },
    /// The patient revokes the doctor's grant (relayed).
    Revoke { patient: u32, doctor: u32 },
    /// The patient renames itself, the `n`th update (relayed).
    Update { patient: u32, n: u64 },
}

/// The blocks of writes `spec` plans, in order.
fn plan(spec: EventMixSpec) -> Vec<Vec<Write>> {
    let counts = spec.counts();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let center_wallet = |i: u32| TestWallet::from_seed(u64::from(MIX_CENTER + i)).address();
    let first_patient = spec.first_patient();
    let doctors = counts.providers as u32 - 1;
    // What is left to write, and what earlier blocks made possible.
    let mut next_provider = 0u32;
    let mut next_patient = 0u32;
    let mut providers_block: Option<usize> = None;
    let (mut records, mut grants, mut revocations, mut updates) = (
        counts.records,
        counts.grants,
        counts.revocations,
        counts.updates,
    );
    let mut registered: Vec<u32> = Vec::new();
    let mut granted: Vec<(u32, u32)> = Vec::new();
    let mut granted_set: HashSet<(u32, u32)> = HashSet::new();
    let mut serial = 0u64;
    let mut blocks = Vec::new();
    loop {
        let size = rng.random_range(1..=MAX_BLOCK_EVENTS);
        let mut block = Vec::with_capacity(size);
        let mut new_patients = Vec::new();
        let mut new_grants = Vec::new();
        // Patients that sign a relayed write in this block.
        let mut signing: HashSet<u32> = HashSet::new();
        while block.len() < size {
            if next_provider < counts.providers as u32 {
                let hh = MIX_CENTER + next_provider;
                block.push(Write::Register(if next_provider == 0 {
                    // The center's wallet is filled in at build time (it is
                    // anvil's account 1); this one stands in the plan.
                    fixtures::diagnostic_center(hh, center_wallet(0), "Mix Labs")
                } else {
                    fixtures::doctor(hh, center_wallet(next_provider), "Dr. Mix")
                }));
                next_provider += 1;
                if u64::from(next_provider) == counts.providers {
                    providers_block = Some(blocks.len());
                }
                continue;
            }
            // Records and grants need the providers in an earlier block.
            let providers_mined = providers_block.is_some_and(|b| b < blocks.len());
            let patients_left = u64::from(counts.patients as u32 - next_patient);
            let can_use = providers_mined && !registered.is_empty();
            // Kinds weighted by what is left of each, among those possible
            // now.
            let weights = [
                patients_left,
                if can_use { records } else { 0 },
                if can_use { grants } else { 0 },
                if can_use && !granted.is_empty() {
                    revocations
                } else {
                    0
                },
                if can_use { updates } else { 0 },
            ];
            let total: u64 = weights.iter().sum();
            if total == 0 {
                break;
            }
            let mut pick = rng.random_range(0..total);
            let kind = weights
                .iter()
                .position(|&w| {
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            let some_patient = |rng: &mut StdRng| registered[rng.random_range(0..registered.len())];
            match kind {
                0 => {
                    let hh = first_patient + next_patient;
                    block.push(Write::Register(fixtures::patient(
                        hh,
                        TestWallet::from_seed(u64::from(hh)).address(),
                        "Mix Patient",
                    )));
                    new_patients.push(hh);
                    next_patient += 1;
                }
                1 => {
                    block.push(Write::Record {
                        patient: some_patient(&mut rng),
                        serial,
                    });
                    serial += 1;
                    records -= 1;
                }
                _ => {
                    // A relayed write: a patient that signs nothing else in
                    // this block (a few tries; the block may end short).
                    let write = (0..8).find_map(|_| match kind {
                        2 => {
                            let patient = some_patient(&mut rng);
                            let doctor = MIX_CENTER + 1 + rng.random_range(0..doctors.max(1));
                            (!signing.contains(&patient))
                                .then_some(Write::Grant { patient, doctor })
                        }
                        3 => {
                            let i = rng.random_range(0..granted.len());
                            let (patient, doctor) = granted[i];
                            (!signing.contains(&patient))
                                .then_some(Write::Revoke { patient, doctor })
                        }
                        _ => {
                            let patient = some_patient(&mut rng);
                            (!signing.contains(&patient)).then_some(Write::Update {
                                patient,
                                n: counts.updates - updates,
                            })
                        }
                    });
                    let Some(write) = write else {
                        break;
                    };
                    match &write {
                        Write::Grant { patient, doctor } => {
                            signing.insert(*patient);
                            new_grants.push((*patient, *doctor));
                            grants -= 1;
                        }
                        Write::Revoke { patient, doctor } => {
                            signing.insert(*patient);
                            granted.retain(|g| g != &(*patient, *doctor));
                            granted_set.remove(&(*patient, *doctor));
                            revocations -= 1;
                        }
                        Write::Update { patient, .. } => {
                            signing.insert(*patient);
                            updates -= 1;
                        }
                        _ => {}
                    }
                    block.push(write);
                }
            }
        }
        if block.is_empty() {
            break;
        }
        registered.extend(new_patients);
        for g in new_grants {
            if granted_set.insert(g) {
                granted.push(g);
            }
        }
        blocks.push(block);
    }
    blocks
}

/// Mines blocks of chosen writes on a node whose automine is off: each
/// [`Self::mine`] starts its writes, waits until the node holds them all,
/// and mines one block. Receipts are awaited later (a write returns once
/// its block is mined), so the next block's writes start at once.
pub struct BlockWriter {
    anvil_url: String,
    node: DynProvider,
    mined: Vec<tokio::task::JoinHandle<Result<(), LedgerError>>>,
    /// Blocks mined so far.
    pub blocks: u64,
    /// Writes mined so far.
    pub writes: u64,
}

impl std::fmt::Debug for BlockWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("anvil_url", &self.anvil_url)
            .field("blocks", &self.blocks)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

/// A write to put in a block.
pub type BlockWrite = BoxFuture<'static, Result<(), LedgerError>>;

impl BlockWriter {
    /// Turns `anvil`'s automine off and writes blocks on it.
    pub async fn new(anvil: &AnvilInstance) -> Result<Self> {
        let node = node(anvil);
        let _: serde_json::Value = node
            .raw_request("evm_setAutomine".into(), (false,))
            .await
            .map_err(|e| node_error("evm_setAutomine", e))?;
        Ok(Self {
            anvil_url: anvil.endpoint(),
            node: node.erased(),
            mined: Vec::new(),
            blocks: 0,
            writes: 0,
        })
    }

    /// Mines one block holding `writes` (each one transaction).
    pub async fn mine(&mut self, writes: Vec<BlockWrite>) -> Result<()> {
        let n = writes.len() as u64;
        let handles: Vec<_> = writes.into_iter().map(tokio::spawn).collect();
        let started = Instant::now();
        loop {
            // A write that ended before its block was mined failed.
            if let Some(i) = handles.iter().position(|h| h.is_finished()) {
                let mut handles = handles;
                let failed = handles.swap_remove(i);
                for h in &handles {
                    h.abort();
                }
                return match failed.await {
                    Ok(Err(e)) => Err(e.into()),
                    Ok(Ok(())) => Err(BenchChainError::Build(
                        "a write returned before its block was mined".into(),
                    )),
                    Err(e) => Err(BenchChainError::Build(e.to_string())),
                };
            }
            let status: serde_json::Value = self
                .node
                .raw_request("txpool_status".into(), ())
                .await
                .map_err(|e| node_error("txpool_status", e))?;
            let pending = status["pending"]
                .as_str()
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            // The adapter may add a transfer that fills a nonce gap, hence
            // "at least".
            if pending >= n {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                return Err(BenchChainError::Build(format!(
                    "the node holds {pending} of a block's {n} writes after 300 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _: serde_json::Value = self
            .node
            .raw_request("evm_mine".into(), ())
            .await
            .map_err(|e| node_error("evm_mine", e))?;
        self.mined.extend(handles);
        self.blocks += 1;
        self.writes += n;
        if self.mined.len() >= 4_096 {
            self.join().await?;
        }
        Ok(())
    }

    /// Waits for every mined write's answer.
    async fn join(&mut self) -> Result<()> {
        for h in self.mined.drain(..) {
            h.await
                .map_err(|e| BenchChainError::Build(e.to_string()))??;
        }
        Ok(())
    }

    /// Waits for every mined write's answer and turns automine back on.
    pub async fn finish(mut self) -> Result<()> {
        self.join().await?;
        let _: serde_json::Value = self
            .node
            .raw_request("evm_setAutomine".into(), (true,))
            .await
            .map_err(|e| node_error("evm_setAutomine", e))?;
        Ok(())
    }
}

/// The writer of the build: the registrar (relaying the patients'
/// signatures) and the center.
#[derive(Clone)]
struct Writers {
    registrar: Arc<EvmLedger>,
    center: Arc<EvmLedger>,
    center_wallet: WalletAddress,
    deadline: Timestamp,
}

fn hh(n: u32) -> Result<HhNumber, LedgerError> {
    HhNumber::new(n).map_err(|e| LedgerError::Invalid(e.to_string()))
}

impl Writers {
    /// The future of one planned write.
    fn start(&self, write: Write) -> BlockWrite {
        let w = self.clone();
        Box::pin(async move {
            match write {
                Write::Register(Profile::DiagnosticCenter(mut c)) => {
                    c.wallet = w.center_wallet;
                    w.registrar
                        .register(&Profile::DiagnosticCenter(c))
                        .await
                        .map(drop)
                }
                Write::Register(p) => w.registrar.register(&p).await.map(drop),
                Write::Record { patient, serial } => {
                    let rec = fixtures::record(
                        patient,
                        serial,
                        MIX_CENTER,
                        "Mix panel",
                        "lab-result",
                        date(2026, 1, 1 + (serial % 28) as u32),
                    );
                    w.center
                        .create_record(&rec, &Authorization::Signer)
                        .await
                        .map(drop)
                }
                Write::Grant { patient, doctor } => {
                    let (patient_hh, grantee) = (hh(patient)?, hh(doctor)?);
                    let action = ConsentAction::GrantAccess {
                        patient: patient_hh,
                        grantee,
                        expires_at: None,
                    };
                    let auth = w.relayed(patient, &action).await?;
                    w.registrar
                        .grant_access(patient_hh, grantee, None, &auth)
                        .await
                        .map(drop)
                }
                Write::Revoke { patient, doctor } => {
                    let (patient_hh, grantee) = (hh(patient)?, hh(doctor)?);
                    let action = ConsentAction::RevokeAccess {
                        patient: patient_hh,
                        grantee,
                    };
                    let auth = w.relayed(patient, &action).await?;
                    w.registrar
                        .revoke_access(patient_hh, grantee, &auth)
                        .await
                        .map(drop)
                }
                Write::Update { patient, n } => {
                    let wallet = TestWallet::from_seed(u64::from(patient)).address();
                    let Profile::Patient(mut p) = fixtures::patient(patient, wallet, "Mix Patient")
                    else {
                        return Err(LedgerError::Invalid("a fixture patient".into()));
                    };
                    p.name = Name::new(format!("Mix Patient Renamed {n}"))
                        .map_err(|e| LedgerError::Invalid(e.to_string()))?;
                    let updated = Profile::Patient(p);
                    let action = ConsentAction::UpdateProfile(updated.clone());
                    let auth = w.relayed(patient, &action).await?;
                    w.registrar.update_profile(&updated, &auth).await.map(drop)
                }
            }
        })
    }

    /// The patient's signature of `action`, to relay.
    async fn relayed(
        &self,
        patient: u32,
        action: &ConsentAction,
    ) -> Result<Authorization, LedgerError> {
        let digest = self.registrar.signing_digest(action, self.deadline).await?;
        Ok(Authorization::Relayed(RelayedSignature {
            signature: TestWallet::from_seed(u64::from(patient)).sign(digest),
            deadline: self.deadline,
        }))
    }
}

/// Deploys the contract on the build node `anvil` (automine on) and writes
/// the chain of `spec`.
pub(super) async fn build(anvil: &AnvilInstance, spec: EventMixSpec) -> Result<Address> {
    let blocks = plan(spec);
    let contract = EvmLedger::deploy(&anvil.endpoint(), &key_of(anvil, 0)?).await?;
    // Receipts are polled often: a block takes well under a second.
    let poll = Duration::from_millis(100);
    let writers = Writers {
        registrar: Arc::new(connect(anvil, contract, 0, poll).await?),
        center: Arc::new(connect(anvil, contract, 1, poll).await?),
        center_wallet: WalletAddress::new(key_of(anvil, 1)?.address())
            .map_err(|e| LedgerError::Invalid(e.to_string()))?,
        // Far enough for a build of any length.
        deadline: Timestamp(Timestamp::now().0 + 30 * 86_400),
    };
    let total = blocks.len();
    let mut writer = BlockWriter::new(anvil).await?;
    let started = Instant::now();
    for (i, block) in blocks.into_iter().enumerate() {
        writer
            .mine(block.into_iter().map(|w| writers.start(w)).collect())
            .await?;
        if (i + 1) % 200 == 0 {
            println!(
                "bench chain build: {} of {total} blocks, {} events, after {:.0} s",
                i + 1,
                writer.writes,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let (n, events) = (writer.blocks, writer.writes);
    writer.finish().await?;
    println!(
        "bench chain: built {events} events ({:?}) in {n} blocks in {:.1} s",
        spec.counts(),
        started.elapsed().as_secs_f64()
    );
    Ok(contract)
}

impl BenchChain<EventMixSpec> {
    /// Mines `blocks` more blocks of `per_block` record creations each (by
    /// the center, for the first patients) on the loaded node, whose
    /// states the node keeps (for an `anvil_reorg` of them); returns the
    /// events written. The saved chain is not touched.
    pub async fn extend_with_records(&self, blocks: u64, per_block: u64) -> Result<u64> {
        let center =
            Arc::new(connect(&self.anvil, self.contract, 1, Duration::from_millis(20)).await?);
        let first = self.spec.first_patient();
        let patients = self.spec.counts().patients.max(1);
        let mut writer = BlockWriter::new(&self.anvil).await?;
        for b in 0..blocks {
            let writes = (0..per_block)
                .map(|i| {
                    let c = Arc::clone(&center);
                    let k = b * per_block + i;
                    // Serials past any the build used.
                    let rec = fixtures::record(
                        first + (k % patients) as u32,
                        (1 << 40) + k,
                        MIX_CENTER,
                        "Extra panel",
                        "lab-result",
                        date(2026, 2, 1),
                    );
                    Box::pin(async move {
                        c.create_record(&rec, &Authorization::Signer)
                            .await
                            .map(drop)
                    }) as BlockWrite
                })
                .collect();
            writer.mine(writes).await?;
        }
        let written = writer.writes;
        writer.finish().await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_writes_every_planned_event_in_blocks_of_1_to_100() {
        let spec = EventMixSpec {
            events: 5_000,
            seed: 7,
        };
        let blocks = plan(spec);
        let c = spec.counts();
        let all: Vec<&Write> = blocks.iter().flatten().collect();
        assert_eq!(all.len() as u64, spec.events);
        assert!(
            blocks
                .iter()
                .all(|b| (1..=MAX_BLOCK_EVENTS).contains(&b.len()))
        );
        let count = |f: fn(&Write) -> bool| all.iter().filter(|w| f(w)).count() as u64;
        assert_eq!(
            count(|w| matches!(w, Write::Register(_))),
            c.providers + c.patients
        );
        assert_eq!(count(|w| matches!(w, Write::Record { .. })), c.records);
        assert_eq!(count(|w| matches!(w, Write::Grant { .. })), c.grants);
        assert_eq!(count(|w| matches!(w, Write::Revoke { .. })), c.revocations);
        assert_eq!(count(|w| matches!(w, Write::Update { .. })), c.updates);
    }

    #[test]
    fn a_write_depends_only_on_earlier_blocks_and_a_patient_signs_once_a_block() {
        let spec = EventMixSpec {
            events: 5_000,
            seed: 3,
        };
        let mut registered = HashSet::new();
        let mut granted = HashSet::new();
        for block in plan(spec) {
            let mut signing = HashSet::new();
            let mut new_patients = Vec::new();
            let mut changes: Vec<(bool, (u32, u32))> = Vec::new();
            for w in &block {
                match w {
                    Write::Register(p) => new_patients.push(p.hh().get()),
                    Write::Record { patient, .. } => assert!(registered.contains(patient)),
                    Write::Grant { patient, doctor } => {
                        assert!(registered.contains(patient));
                        assert!(signing.insert(*patient));
                        changes.push((true, (*patient, *doctor)));
                    }
                    Write::Revoke { patient, doctor } => {
                        assert!(granted.contains(&(*patient, *doctor)));
                        assert!(signing.insert(*patient));
                        changes.push((false, (*patient, *doctor)));
                    }
                    Write::Update { patient, .. } => {
                        assert!(registered.contains(patient));
                        assert!(signing.insert(*patient));
                    }
                }
            }
            registered.extend(new_patients);
            for (grant, pair) in changes {
                if grant {
                    granted.insert(pair);
                } else {
                    granted.remove(&pair);
                }
            }
        }
    }
}
