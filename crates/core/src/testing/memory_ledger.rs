//! [`InMemoryLedger`]: a [`LedgerPort`] that behaves like a small chain.
//!
//! Blocks have hashes, parent hashes and timestamps; the state is a pure
//! function of the canonical blocks, so [`InMemoryLedger::rewind`] and
//! [`InMemoryLedger::reorg`] let sync be tested against forks without a
//! node. Like anvil it either mines one block per write (automine, the
//! default) or, with [`InMemoryLedger::set_automine`]`(false)`, collects
//! writes in a pending block that [`InMemoryLedger::mine`] seals, so several
//! transactions share a block; a write's future resolves once its block is
//! mined, as the port promises. Block times follow a settable clock
//! ([`InMemoryLedger::set_time`], [`InMemoryLedger::advance_time`],
//! [`InMemoryLedger::mine_at`]) and finality trails the head by a settable
//! depth. Writes are checked against the pending state (what the next block
//! will see), reads against the head block, as on a node.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
};

use alloy_primitives::{B256, keccak256};
use async_trait::async_trait;
use futures::StreamExt as _;
use futures::channel::{mpsc, oneshot};
use futures::stream::BoxStream;

use crate::{
    AccessGrant, AdminRole, AuditAnchor, Authorization, BlockRef, ChainEvent, ConsentAction,
    EventBatch, HhNumber, LedgerError, LedgerEvent, LedgerPort, LedgerResult, LogPosition,
    MedicalRecord, NewRecord, Profile, QuarantinedLog, ReadAt, RecordId, RelayedSignature, Role,
    Timestamp, TxReceipt, WalletAddress,
};

/// One state change a transaction makes; a block's list of them replays the
/// block onto the state before it.
#[derive(Debug, Clone)]
enum Mutation {
    Event(LedgerEvent),
    NonceUsed(WalletAddress),
    /// The deployer becomes admin (the contract's constructor: no event).
    AdminSet(WalletAddress),
    /// A log the decoder refuses (see [`InMemoryLedger::emit_undecodable`]).
    Undecodable {
        topic: B256,
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Block {
    r: BlockRef,
    /// Transactions in order, each with its hash and mutations.
    txs: Vec<(B256, Vec<Mutation>)>,
}

#[derive(Debug, Default, Clone)]
struct LedgerState {
    profiles: HashMap<HhNumber, Profile>,
    by_wallet: HashMap<WalletAddress, HhNumber>,
    by_role: HashMap<Role, Vec<HhNumber>>,
    records: HashMap<RecordId, MedicalRecord>,
    record_order: Vec<RecordId>,
    grants: HashMap<(HhNumber, HhNumber), AccessGrant>,
    grantees: HashMap<HhNumber, Vec<HhNumber>>,
    /// Every (patient, grantee) pair ever granted, in first-grant order.
    grant_order: Vec<(HhNumber, HhNumber)>,
    registrars: BTreeSet<WalletAddress>,
    /// The wallet that names registrars and suspends providers (set at
    /// genesis, so never `None` on a chain).
    admin: Option<WalletAddress>,
    /// The wallet the admin offered the role to, until it accepts.
    pending_admin: Option<WalletAddress>,
    suspended: BTreeSet<HhNumber>,
    nonces: HashMap<WalletAddress, u64>,
    last_anchor: Option<AuditAnchor>,
}

impl LedgerState {
    fn apply(&mut self, m: &Mutation) {
        match m {
            Mutation::NonceUsed(w) => *self.nonces.entry(*w).or_default() += 1,
            Mutation::AdminSet(w) => self.admin = Some(*w),
            Mutation::Event(e) => self.apply_event(e),
            Mutation::Undecodable { .. } => {}
        }
    }

    fn apply_event(&mut self, e: &LedgerEvent) {
        if let Some(p) = e.registered_profile() {
            self.by_wallet.insert(p.wallet(), p.hh());
            self.by_role.entry(p.role()).or_default().push(p.hh());
            self.profiles.insert(p.hh(), p);
            return;
        }
        match e {
            LedgerEvent::ProfileUpdated(p) => {
                self.profiles.insert(p.hh(), p.clone());
            }
            LedgerEvent::RecordCreated(r) => {
                self.record_order.push(r.id);
                self.records.insert(r.id, r.clone());
            }
            LedgerEvent::AccessGranted(g) => {
                let list = self.grantees.entry(g.patient).or_default();
                if !list.contains(&g.grantee) {
                    list.push(g.grantee);
                    self.grant_order.push((g.patient, g.grantee));
                }
                self.grants.insert((g.patient, g.grantee), g.clone());
            }
            LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at,
            } => {
                if let Some(g) = self.grants.get_mut(&(*patient, *grantee)) {
                    g.revoked_at = Some(*revoked_at);
                }
            }
            LedgerEvent::AuditAnchored(a) => self.last_anchor = Some(*a),
            LedgerEvent::RegistrarAdded(w) => {
                self.registrars.insert(*w);
            }
            LedgerEvent::RegistrarRemoved(w) => {
                self.registrars.remove(w);
            }
            LedgerEvent::ProviderSuspended(hh) => {
                self.suspended.insert(*hh);
            }
            LedgerEvent::ProviderReinstated(hh) => {
                self.suspended.remove(hh);
            }
            LedgerEvent::AdminTransferStarted { pending_admin, .. } => {
                self.pending_admin = Some(*pending_admin);
            }
            LedgerEvent::AdminChanged { admin, .. } => {
                self.admin = Some(*admin);
                self.pending_admin = None;
            }
            LedgerEvent::PatientRegistered { .. }
            | LedgerEvent::DoctorRegistered { .. }
            | LedgerEvent::DiagnosticCenterRegistered { .. } => {}
        }
    }

    fn role_of(&self, hh: HhNumber) -> Option<Role> {
        self.profiles.get(&hh).map(Profile::role)
    }

    fn wallet_of(&self, hh: HhNumber) -> LedgerResult<WalletAddress> {
        self.profiles
            .get(&hh)
            .map(Profile::wallet)
            .ok_or_else(|| LedgerError::NotFound(format!("HH number {hh} is not registered")))
    }
}

#[derive(Debug)]
struct Chain {
    blocks: Vec<Block>,
    state: LedgerState,
    /// The clock the next block's timestamp comes from.
    time: u64,
    /// Mixed into block hashes so a re-mined fork gets new hashes.
    fork_salt: u64,
    finality_depth: u64,
    /// Whether every write mines its own block at once.
    automine: bool,
    /// Writes waiting for the next block (only when automine is off).
    pending: Option<Pending>,
    /// The state at one older block, kept for repeated pinned reads.
    snapshot: Option<(B256, Arc<LedgerState>)>,
    /// Subscribers of [`LedgerPort::new_heads`]; a closed one is dropped
    /// at the next block.
    head_watchers: Vec<mpsc::UnboundedSender<u64>>,
}

/// The block being filled while automine is off.
#[derive(Debug)]
struct Pending {
    /// The state with the pending transactions applied: what the next
    /// write is checked against.
    state: LedgerState,
    /// The pending block's timestamp, fixed when its first write arrived.
    timestamp: Timestamp,
    /// Each transaction's mutations and the waiter for its receipt.
    txs: Vec<(Vec<Mutation>, oneshot::Sender<TxReceipt>)>,
}

/// Where a submitted write stands.
enum Inclusion {
    /// Mined at once (automine).
    Mined(TxReceipt),
    /// Waiting in the pending block.
    Pending(oneshot::Receiver<TxReceipt>),
}

impl Chain {
    fn head(&self) -> &Block {
        // The genesis block is created in `new` and never removed.
        &self.blocks[self.blocks.len() - 1]
    }

    /// The timestamp the next block will carry.
    fn next_timestamp(&self) -> Timestamp {
        match &self.pending {
            Some(p) => p.timestamp,
            None => Timestamp(self.time.max(self.head().r.timestamp.0 + 1)),
        }
    }

    /// The state a new write is checked against: the pending block's, or
    /// the head's.
    fn tip(&self) -> &LedgerState {
        self.pending.as_ref().map_or(&self.state, |p| &p.state)
    }

    /// Submits one transaction: mined at once under automine, else queued
    /// in the pending block.
    fn submit(&mut self, muts: Vec<Mutation>) -> Inclusion {
        if self.automine {
            let receipts = self.mine(vec![muts]);
            return Inclusion::Mined(receipts[0]);
        }
        let timestamp = self.next_timestamp();
        let pending = self.pending.get_or_insert_with(|| Pending {
            state: self.state.clone(),
            timestamp,
            txs: Vec::new(),
        });
        for m in &muts {
            pending.state.apply(m);
        }
        let (tx, rx) = oneshot::channel();
        pending.txs.push((muts, tx));
        Inclusion::Pending(rx)
    }

    /// Seals the pending block (an empty one if nothing is pending) and
    /// wakes its writers.
    fn mine_pending(&mut self) {
        let Some(pending) = self.pending.take() else {
            self.mine(Vec::new());
            return;
        };
        self.time = self.time.max(pending.timestamp.0);
        let (txs, waiters): (Vec<_>, Vec<_>) = pending.txs.into_iter().unzip();
        let receipts = self.mine(txs);
        for (waiter, receipt) in waiters.into_iter().zip(receipts) {
            // A writer that stopped waiting still has its transaction mined,
            // as on a node.
            let _ = waiter.send(receipt);
        }
    }

    fn mine(&mut self, txs: Vec<Vec<Mutation>>) -> Vec<TxReceipt> {
        let parent = self.head().r;
        let timestamp = Timestamp(self.time.max(self.head().r.timestamp.0 + 1));
        self.time = timestamp.0;
        let number = parent.number + 1;
        let mut pre = Vec::new();
        pre.extend_from_slice(&number.to_be_bytes());
        pre.extend_from_slice(parent.hash.as_slice());
        pre.extend_from_slice(&self.fork_salt.to_be_bytes());
        pre.extend_from_slice(&timestamp.0.to_be_bytes());
        pre.extend_from_slice(format!("{txs:?}").as_bytes());
        let hash = keccak256(&pre);
        let txs: Vec<(B256, Vec<Mutation>)> = txs
            .into_iter()
            .enumerate()
            .map(|(i, muts)| {
                let mut t = hash.to_vec();
                t.extend_from_slice(&(i as u64).to_be_bytes());
                (keccak256(&t), muts)
            })
            .collect();
        for (_, muts) in &txs {
            for m in muts {
                self.state.apply(m);
            }
        }
        let receipts = txs
            .iter()
            .map(|(tx, _)| TxReceipt {
                tx_hash: *tx,
                block_number: number,
                block_hash: hash,
            })
            .collect();
        self.blocks.push(Block {
            r: BlockRef {
                number,
                hash,
                parent_hash: parent.hash,
                timestamp,
            },
            txs,
        });
        self.head_watchers
            .retain(|watcher| watcher.unbounded_send(number).is_ok());
        receipts
    }

    /// Drops the pending block: its writers see [`LedgerError::Unavailable`]
    /// (a dropped transaction).
    fn drop_pending(&mut self) {
        self.pending = None;
    }

    fn rebuild_state(&mut self) {
        let mut state = LedgerState::default();
        for b in &self.blocks {
            for (_, muts) in &b.txs {
                for m in muts {
                    state.apply(m);
                }
            }
        }
        self.state = state;
    }

    /// The block's logs: decoded events and quarantined logs, numbered
    /// together in order.
    fn logs_of(block: &Block) -> (Vec<ChainEvent>, Vec<QuarantinedLog>) {
        let mut events = Vec::new();
        let mut quarantined = Vec::new();
        let mut log_index = 0;
        for (tx, muts) in &block.txs {
            for m in muts {
                let at = LogPosition {
                    block_number: block.r.number,
                    log_index,
                    block_hash: block.r.hash,
                    tx_hash: *tx,
                };
                match m {
                    Mutation::Event(e) => events.push(ChainEvent {
                        at,
                        event: e.clone(),
                    }),
                    Mutation::Undecodable { topic, reason } => quarantined.push(QuarantinedLog {
                        at,
                        topic: *topic,
                        reason: reason.clone(),
                    }),
                    Mutation::NonceUsed(_) | Mutation::AdminSet(_) => continue,
                }
                log_index += 1;
            }
        }
        (events, quarantined)
    }

    /// The state as of block `n` (which exists): rebuilt from the blocks up
    /// to it, and kept for the next read of the same block.
    fn state_at(&mut self, n: usize) -> Arc<LedgerState> {
        let hash = self.blocks[n].r.hash;
        if let Some((h, state)) = &self.snapshot
            && *h == hash
        {
            return Arc::clone(state);
        }
        let mut state = LedgerState::default();
        for b in &self.blocks[..=n] {
            for (_, muts) in &b.txs {
                for m in muts {
                    state.apply(m);
                }
            }
        }
        let state = Arc::new(state);
        self.snapshot = Some((hash, Arc::clone(&state)));
        state
    }
}

/// An in-memory chain implementing [`LedgerPort`]. Cloning gives another
/// handle on the same chain; [`Self::with_signer`] gives a handle that signs
/// as another wallet.
#[derive(Debug, Clone)]
pub struct InMemoryLedger {
    chain: Arc<Mutex<Chain>>,
    signer: WalletAddress,
    chain_id: u64,
}

impl InMemoryLedger {
    /// A new chain whose genesis makes `admin` a registrar; the handle signs
    /// as `admin`. Finality lags the head by 2 blocks.
    pub fn new(admin: WalletAddress) -> Self {
        let genesis = Block {
            r: BlockRef {
                number: 0,
                hash: keccak256(b"healthledger in-memory genesis"),
                parent_hash: B256::ZERO,
                timestamp: Timestamp(1_700_000_000),
            },
            txs: vec![(
                keccak256(b"genesis tx"),
                vec![
                    Mutation::AdminSet(admin),
                    Mutation::Event(LedgerEvent::RegistrarAdded(admin)),
                ],
            )],
        };
        let mut chain = Chain {
            blocks: vec![genesis],
            state: LedgerState::default(),
            time: 1_700_000_000,
            fork_salt: 0,
            finality_depth: 2,
            automine: true,
            pending: None,
            snapshot: None,
            head_watchers: Vec::new(),
        };
        chain.rebuild_state();
        Self {
            chain: Arc::new(Mutex::new(chain)),
            signer: admin,
            chain_id: 31_337,
        }
    }

    /// A handle on the same chain that signs as `wallet`.
    pub fn with_signer(&self, wallet: WalletAddress) -> Self {
        Self {
            chain: Arc::clone(&self.chain),
            signer: wallet,
            chain_id: self.chain_id,
        }
    }

    /// Sets how many blocks finality lags the head.
    pub fn set_finality_depth(&self, depth: u64) {
        self.lock().finality_depth = depth;
    }

    /// Turns automine on (every write mines its own block, the default) or
    /// off (writes wait in a pending block until [`Self::mine`]). Turning it
    /// on mines what is pending.
    pub fn set_automine(&self, on: bool) {
        let mut c = self.lock();
        c.automine = on;
        if on && c.pending.is_some() {
            c.mine_pending();
        }
    }

    /// Mines the pending block (an empty block if nothing is pending); the
    /// writes waiting in it return their receipts.
    pub fn mine(&self) -> BlockRef {
        let mut c = self.lock();
        c.mine_pending();
        c.head().r
    }

    /// Mines the pending block (or an empty one) with timestamp exactly
    /// `at`, like anvil's `evm_mine` with a timestamp; later blocks follow
    /// from there. `Invalid` unless `at` is after the head's timestamp.
    pub fn mine_at(&self, at: Timestamp) -> LedgerResult<BlockRef> {
        let mut c = self.lock();
        let head = c.head().r.timestamp;
        if at <= head {
            return Err(LedgerError::Invalid(format!(
                "block time {at} is not after the head's {head}"
            )));
        }
        c.time = at.0;
        if let Some(p) = c.pending.as_mut() {
            p.timestamp = at;
        }
        c.mine_pending();
        Ok(c.head().r)
    }

    /// Sets the clock the next blocks take their time from (never before
    /// the head's time plus one second). A pending block keeps the time it
    /// was opened at.
    pub fn set_time(&self, now: Timestamp) {
        self.lock().time = now.0;
    }

    /// Moves the chain clock forward by `secs` (like anvil's
    /// `evm_increaseTime`); the next block carries the new time.
    pub fn advance_time(&self, secs: u64) {
        let mut c = self.lock();
        c.time = c.next_timestamp().0.max(c.time) + secs;
    }

    /// Mines `count` empty blocks (after the pending one, if any).
    pub fn mine_empty(&self, count: u64) {
        let mut c = self.lock();
        if c.pending.is_some() {
            c.mine_pending();
        }
        for _ in 0..count {
            c.mine(Vec::new());
        }
    }

    /// Drops every block above `number` with their transactions (a fork
    /// that never saw them), and any pending block (its writers fail as
    /// `Unavailable`, like a dropped transaction). Later writes build a new
    /// branch whose blocks get new hashes.
    pub fn rewind(&self, number: u64) {
        let mut c = self.lock();
        c.drop_pending();
        let keep = usize::try_from(number)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        c.blocks.truncate(keep.max(1));
        c.fork_salt += 1;
        c.rebuild_state();
    }

    /// Replaces the last `depth` blocks with blocks that carry the same
    /// transactions under new hashes (a reorg that re-includes everything).
    /// A pending block is dropped first.
    pub fn reorg(&self, depth: u64) {
        let mut c = self.lock();
        c.drop_pending();
        let len = c.blocks.len();
        let depth = usize::try_from(depth).unwrap_or(usize::MAX).min(len - 1);
        let dropped: Vec<Block> = c.blocks.drain(len - depth..).collect();
        c.fork_salt += 1;
        c.rebuild_state();
        for b in dropped {
            c.time = c.time.max(b.r.timestamp.0);
            c.mine(b.txs.into_iter().map(|(_, m)| m).collect());
        }
    }

    /// The timestamp of the head block.
    pub fn now(&self) -> Timestamp {
        self.lock().head().r.timestamp
    }

    /// Test hook: a transaction whose log the decoder refuses, as a
    /// contract deployed by others might emit. `events` returns it
    /// quarantined; it changes no state.
    pub fn emit_undecodable(&self, reason: &str) -> TxReceipt {
        let mut c = self.lock();
        let receipts = c.mine(vec![vec![Mutation::Undecodable {
            topic: keccak256(b"Undecodable(bytes)"),
            reason: reason.to_owned(),
        }]]);
        receipts[0]
    }

    /// Runs `f` on the state `at` names, with that block's time.
    fn read<T>(&self, at: ReadAt, f: impl FnOnce(&LedgerState, Timestamp) -> T) -> LedgerResult<T> {
        let mut c = self.lock();
        match at {
            ReadAt::Latest => {
                let now = c.head().r.timestamp;
                Ok(f(&c.state, now))
            }
            ReadAt::Block(b) => {
                let n = usize::try_from(b.number)
                    .ok()
                    .filter(|n| c.blocks.get(*n).is_some_and(|blk| blk.r == b))
                    .ok_or_else(|| {
                        LedgerError::Conflict(format!(
                            "block {} ({}) is not on the canonical chain",
                            b.number, b.hash
                        ))
                    })?;
                let now = c.blocks[n].r.timestamp;
                if n + 1 == c.blocks.len() {
                    return Ok(f(&c.state, now));
                }
                let state = c.state_at(n);
                Ok(f(&state, now))
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        // A panic while holding the lock leaves a consistent chain (state is
        // only replaced whole), so a poisoned lock is safe to reuse.
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn digest(&self, action: &ConsentAction, nonce: u64, deadline: Timestamp) -> B256 {
        let mut pre = b"HealthLedger in-memory consent v1".to_vec();
        pre.extend_from_slice(&self.chain_id.to_be_bytes());
        pre.extend_from_slice(&serde_json::to_vec(action).unwrap_or_default());
        pre.extend_from_slice(&nonce.to_be_bytes());
        pre.extend_from_slice(&deadline.0.to_be_bytes());
        keccak256(&pre)
    }

    /// Checks that `consenter` authorized `action`; returns the mutations
    /// consent adds (a used nonce for a relayed signature).
    fn authorize(
        &self,
        c: &Chain,
        action: &ConsentAction,
        consenter: WalletAddress,
        auth: &Authorization,
    ) -> LedgerResult<Vec<Mutation>> {
        match auth {
            Authorization::Signer if self.signer == consenter => Ok(Vec::new()),
            Authorization::Signer => Err(LedgerError::AccessDenied(format!(
                "signer {} is not {consenter}, whose consent this needs",
                self.signer
            ))),
            Authorization::Relayed(r) => {
                if r.deadline < c.next_timestamp() {
                    return Err(LedgerError::Invalid(format!(
                        "signature deadline {} has passed",
                        r.deadline
                    )));
                }
                let nonce = c.tip().nonces.get(&consenter).copied().unwrap_or(0);
                let digest = self.digest(action, nonce, r.deadline);
                let signer = r.signature.recover_address_from_prehash(&digest).ok();
                if signer != Some(consenter.address()) {
                    return Err(LedgerError::AccessDenied(format!(
                        "signature is not by {consenter} over this action and nonce"
                    )));
                }
                Ok(vec![Mutation::NonceUsed(consenter)])
            }
        }
    }

    /// Checks a write with `check` against the pending state and submits
    /// the mutations it returns; resolves once the write is mined.
    async fn transact(
        &self,
        check: impl FnOnce(&Chain) -> LedgerResult<Vec<Mutation>> + Send,
    ) -> LedgerResult<TxReceipt> {
        let inclusion = {
            let mut c = self.lock();
            let muts = check(&c)?;
            c.submit(muts)
        };
        match inclusion {
            Inclusion::Mined(receipt) => Ok(receipt),
            Inclusion::Pending(waiter) => waiter.await.map_err(|_| {
                LedgerError::Unavailable(
                    "the transaction was dropped with its pending block (a rewind or reorg) \
                     before it was mined"
                        .to_owned(),
                )
            }),
        }
    }

    fn check_grant_parties(c: &Chain, patient: HhNumber, grantee: HhNumber) -> LedgerResult<()> {
        if c.tip().role_of(patient) != Some(Role::Patient) {
            return Err(LedgerError::NotFound(format!(
                "HH number {patient} is not a registered patient"
            )));
        }
        if c.tip().role_of(grantee).is_none() {
            return Err(LedgerError::NotFound(format!(
                "grantee {grantee} is not registered"
            )));
        }
        if patient == grantee {
            return Err(LedgerError::Invalid(format!(
                "patient {patient} cannot grant access to themselves"
            )));
        }
        Ok(())
    }
}

fn page<T: Clone>(items: &[T], offset: u64, limit: u64) -> Vec<T> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(items.len());
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    items[start..].iter().take(limit).cloned().collect()
}

impl InMemoryLedger {
    fn check_registration(tip: &LedgerState, profile: &Profile) -> LedgerResult<()> {
        if tip.profiles.contains_key(&profile.hh()) {
            return Err(LedgerError::AlreadyExists(format!(
                "HH number {} is already registered",
                profile.hh()
            )));
        }
        if let Some(owner) = tip.by_wallet.get(&profile.wallet()) {
            return Err(LedgerError::AlreadyExists(format!(
                "wallet {} already owns HH number {owner}",
                profile.wallet()
            )));
        }
        Ok(())
    }

    fn check_admin(&self, c: &Chain) -> LedgerResult<()> {
        if c.tip().admin == Some(self.signer) {
            Ok(())
        } else {
            Err(LedgerError::AccessDenied(format!(
                "signer {} is not the admin",
                self.signer
            )))
        }
    }

    fn attestation(&self, hh: HhNumber, wallet: WalletAddress, deadline: Timestamp) -> B256 {
        let mut pre = b"HealthLedger in-memory patient attestation v1".to_vec();
        pre.extend_from_slice(&self.chain_id.to_be_bytes());
        pre.extend_from_slice(&hh.get().to_be_bytes());
        pre.extend_from_slice(wallet.address().as_slice());
        pre.extend_from_slice(&deadline.0.to_be_bytes());
        keccak256(&pre)
    }
}

#[async_trait]
impl LedgerPort for InMemoryLedger {
    fn signer(&self) -> WalletAddress {
        self.signer
    }

    fn deployment_block(&self) -> u64 {
        // The ledger exists from genesis on.
        0
    }

    async fn register(&self, profile: &Profile) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            let tip = c.tip();
            if !tip.registrars.contains(&self.signer) {
                return Err(LedgerError::AccessDenied(format!(
                    "signer {} is not a registrar: HH numbers are issued by registrars",
                    self.signer
                )));
            }
            Self::check_registration(tip, profile)?;
            Ok(vec![Mutation::Event(LedgerEvent::registration(
                profile.clone(),
                self.signer,
            ))])
        })
        .await
    }

    async fn register_attested(
        &self,
        profile: &Profile,
        attestation: &RelayedSignature,
    ) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            let tip = c.tip();
            let Profile::Patient(patient) = profile else {
                return Err(LedgerError::AccessDenied(format!(
                    "a {} is registered by a registrar, not with an attestation",
                    profile.role()
                )));
            };
            if self.signer != profile.wallet() {
                return Err(LedgerError::AccessDenied(format!(
                    "signer {} is not the wallet {} the attestation is for",
                    self.signer,
                    profile.wallet()
                )));
            }
            if attestation.deadline < c.next_timestamp() {
                return Err(LedgerError::Invalid(format!(
                    "attestation deadline {} has passed",
                    attestation.deadline
                )));
            }
            let digest = self.attestation(profile.hh(), profile.wallet(), attestation.deadline);
            let registrar = attestation
                .signature
                .recover_address_from_prehash(&digest)
                .ok()
                .and_then(|a| WalletAddress::new(a).ok());
            let Some(registrar) = registrar.filter(|r| tip.registrars.contains(r)) else {
                return Err(LedgerError::AccessDenied(format!(
                    "the attestation of HH number {} for {} is not signed by a registrar",
                    profile.hh(),
                    profile.wallet()
                )));
            };
            Self::check_registration(tip, profile)?;
            Ok(vec![Mutation::Event(LedgerEvent::attested_registration(
                patient.clone(),
                registrar,
            ))])
        })
        .await
    }

    async fn attestation_digest(
        &self,
        hh: HhNumber,
        wallet: WalletAddress,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        Ok(self.attestation(hh, wallet, deadline))
    }

    async fn add_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            self.check_admin(c)?;
            if c.tip().registrars.contains(&wallet) {
                return Err(LedgerError::Invalid(format!(
                    "{wallet} is already a registrar"
                )));
            }
            Ok(vec![Mutation::Event(LedgerEvent::RegistrarAdded(wallet))])
        })
        .await
    }

    async fn remove_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            self.check_admin(c)?;
            if !c.tip().registrars.contains(&wallet) {
                return Err(LedgerError::Invalid(format!("{wallet} is not a registrar")));
            }
            Ok(vec![Mutation::Event(LedgerEvent::RegistrarRemoved(wallet))])
        })
        .await
    }

    async fn transfer_admin(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            self.check_admin(c)?;
            Ok(vec![Mutation::Event(LedgerEvent::AdminTransferStarted {
                admin: self.signer,
                pending_admin: wallet,
            })])
        })
        .await
    }

    async fn accept_admin(&self) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            let tip = c.tip();
            let (Some(previous), Some(pending)) = (tip.admin, tip.pending_admin) else {
                return Err(LedgerError::AccessDenied(format!(
                    "signer {} accepts the admin role, but none is offered",
                    self.signer
                )));
            };
            if pending != self.signer {
                return Err(LedgerError::AccessDenied(format!(
                    "signer {} accepts the admin role, which is offered to {pending}",
                    self.signer
                )));
            }
            Ok(vec![Mutation::Event(LedgerEvent::AdminChanged {
                previous,
                admin: self.signer,
            })])
        })
        .await
    }

    async fn admin(&self, at: ReadAt) -> LedgerResult<AdminRole> {
        self.read(at, |st, _| {
            st.admin.map(|admin| AdminRole {
                admin,
                pending: st.pending_admin,
            })
        })?
        .ok_or_else(|| LedgerError::Unavailable("the chain has no admin before genesis".into()))
    }

    async fn suspend_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            self.check_admin(c)?;
            let tip = c.tip();
            if !matches!(tip.role_of(hh), Some(Role::Doctor | Role::DiagnosticCenter)) {
                return Err(LedgerError::NotFound(format!(
                    "HH number {hh} is not a registered doctor or diagnostic center"
                )));
            }
            if tip.suspended.contains(&hh) {
                return Err(LedgerError::Invalid(format!(
                    "provider {hh} is already suspended"
                )));
            }
            Ok(vec![Mutation::Event(LedgerEvent::ProviderSuspended(hh))])
        })
        .await
    }

    async fn reinstate_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            self.check_admin(c)?;
            if !c.tip().suspended.contains(&hh) {
                return Err(LedgerError::Invalid(format!(
                    "provider {hh} is not suspended"
                )));
            }
            Ok(vec![Mutation::Event(LedgerEvent::ProviderReinstated(hh))])
        })
        .await
    }

    async fn is_suspended(&self, hh: HhNumber, at: ReadAt) -> LedgerResult<bool> {
        self.read(at, |st, _| st.suspended.contains(&hh))
    }

    async fn invalidate_nonce(&self) -> LedgerResult<TxReceipt> {
        self.transact(|_| Ok(vec![Mutation::NonceUsed(self.signer)]))
            .await
    }

    async fn update_profile(
        &self,
        profile: &Profile,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            let current = c.tip().profiles.get(&profile.hh()).ok_or_else(|| {
                LedgerError::NotFound(format!("HH number {} is not registered", profile.hh()))
            })?;
            if current.role() != profile.role() {
                return Err(LedgerError::Invalid(format!(
                    "HH number {} is a {}, not a {}",
                    profile.hh(),
                    current.role(),
                    profile.role()
                )));
            }
            if current.wallet() != profile.wallet() {
                return Err(LedgerError::Invalid(format!(
                    "the wallet of HH number {} cannot change",
                    profile.hh()
                )));
            }
            let consenter = current.wallet();
            let mut muts = self.authorize(
                c,
                &ConsentAction::UpdateProfile(profile.clone()),
                consenter,
                auth,
            )?;
            muts.push(Mutation::Event(LedgerEvent::ProfileUpdated(
                profile.clone(),
            )));
            Ok(muts)
        })
        .await
    }

    async fn create_record(
        &self,
        record: &NewRecord,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            let tip = c.tip();
            match tip.role_of(record.creator) {
                Some(Role::Doctor | Role::DiagnosticCenter) => {}
                Some(Role::Patient) => {
                    return Err(LedgerError::AccessDenied(format!(
                        "creator {} is a patient; only doctors and diagnostic centers create records",
                        record.creator
                    )));
                }
                None => {
                    return Err(LedgerError::NotFound(format!(
                        "creator {} is not registered",
                        record.creator
                    )));
                }
            }
            if !record.id.is_of_creator(record.creator) {
                return Err(LedgerError::Invalid(format!(
                    "record id {} is not in the namespace of creator {}: its digits must be the creator's HH number followed by 13 digits",
                    record.id, record.creator
                )));
            }
            if tip.suspended.contains(&record.creator) {
                return Err(LedgerError::AccessDenied(format!(
                    "provider {} is suspended",
                    record.creator
                )));
            }
            let patient = record.id.patient();
            if tip.role_of(patient) != Some(Role::Patient) {
                return Err(LedgerError::NotFound(format!(
                    "HH number {patient} is not a registered patient"
                )));
            }
            if tip.records.contains_key(&record.id) {
                return Err(LedgerError::AlreadyExists(format!(
                    "record {} already exists",
                    record.id
                )));
            }
            let consenter = tip.wallet_of(record.creator)?;
            let mut muts = self.authorize(
                c,
                &ConsentAction::CreateRecord(record.clone()),
                consenter,
                auth,
            )?;
            let created = MedicalRecord::from_new(record.clone(), c.next_timestamp());
            muts.push(Mutation::Event(LedgerEvent::RecordCreated(created)));
            Ok(muts)
        })
        .await
    }

    async fn grant_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            Self::check_grant_parties(c, patient, grantee)?;
            if c.tip().suspended.contains(&grantee) {
                return Err(LedgerError::AccessDenied(format!(
                    "provider {grantee} is suspended and receives no grants"
                )));
            }
            let now = c.next_timestamp();
            // An expiry at or before the block time, zero included, gives no
            // access at all: refuse it rather than store a dead grant.
            if let Some(e) = expires_at.filter(|e| *e <= now) {
                return Err(LedgerError::Invalid(format!(
                    "expiry {e} is not after the block time {now}"
                )));
            }
            let consenter = c.tip().wallet_of(patient)?;
            let action = ConsentAction::GrantAccess {
                patient,
                grantee,
                expires_at,
            };
            let mut muts = self.authorize(c, &action, consenter, auth)?;
            muts.push(Mutation::Event(LedgerEvent::AccessGranted(AccessGrant {
                patient,
                grantee,
                granted_at: now,
                expires_at,
                revoked_at: None,
            })));
            Ok(muts)
        })
        .await
    }

    async fn revoke_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            Self::check_grant_parties(c, patient, grantee)?;
            let active = c
                .tip()
                .grants
                .get(&(patient, grantee))
                .is_some_and(|g| g.revoked_at.is_none());
            if !active {
                return Err(LedgerError::NotFound(format!(
                    "patient {patient} has no unrevoked grant to {grantee}"
                )));
            }
            let consenter = c.tip().wallet_of(patient)?;
            let mut muts = self.authorize(
                c,
                &ConsentAction::RevokeAccess { patient, grantee },
                consenter,
                auth,
            )?;
            muts.push(Mutation::Event(LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at: c.next_timestamp(),
            }));
            Ok(muts)
        })
        .await
    }

    async fn anchor_audit(&self, digest: B256, last_seq: u64) -> LedgerResult<TxReceipt> {
        self.transact(|c| {
            let tip = c.tip();
            if !tip.registrars.contains(&self.signer) {
                return Err(LedgerError::AccessDenied(format!(
                    "signer {} is not a registrar",
                    self.signer
                )));
            }
            let anchored = tip.last_anchor.as_ref().map_or(0, |a| a.last_seq);
            if last_seq <= anchored {
                return Err(LedgerError::Invalid(format!(
                    "audit seq {last_seq} does not advance past the anchored {anchored}"
                )));
            }
            Ok(vec![Mutation::Event(LedgerEvent::AuditAnchored(
                AuditAnchor {
                    digest,
                    last_seq,
                    anchored_at: c.next_timestamp(),
                },
            ))])
        })
        .await
    }

    async fn signing_digest(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        let c = self.lock();
        let tip = c.tip();
        let consenter = match action {
            ConsentAction::UpdateProfile(p) => tip.wallet_of(p.hh())?,
            ConsentAction::CreateRecord(r) => tip.wallet_of(r.creator)?,
            ConsentAction::GrantAccess { patient, .. }
            | ConsentAction::RevokeAccess { patient, .. } => tip.wallet_of(*patient)?,
        };
        let nonce = tip.nonces.get(&consenter).copied().unwrap_or(0);
        Ok(self.digest(action, nonce, deadline))
    }

    async fn profile(&self, hh: HhNumber, role: Role, at: ReadAt) -> LedgerResult<Option<Profile>> {
        self.read(at, |st, _| {
            st.profiles.get(&hh).filter(|p| p.role() == role).cloned()
        })
    }

    async fn account_of(
        &self,
        wallet: WalletAddress,
        at: ReadAt,
    ) -> LedgerResult<Option<(Role, HhNumber)>> {
        self.read(at, |st, _| {
            st.by_wallet
                .get(&wallet)
                .and_then(|hh| st.role_of(*hh).map(|r| (r, *hh)))
        })
    }

    async fn record(&self, id: RecordId, at: ReadAt) -> LedgerResult<Option<MedicalRecord>> {
        self.read(at, |st, _| st.records.get(&id).cloned())
    }

    async fn grant(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<Option<AccessGrant>> {
        self.read(at, |st, _| st.grants.get(&(patient, grantee)).cloned())
    }

    async fn has_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool> {
        self.read(at, |st, now| {
            st.grants
                .get(&(patient, grantee))
                .is_some_and(|g| g.is_active(now))
        })
    }

    async fn can_read_record(
        &self,
        id: RecordId,
        reader: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool> {
        self.read(at, |st, now| {
            let r = st
                .records
                .get(&id)
                .ok_or_else(|| LedgerError::NotFound(format!("record {id} does not exist")))?;
            Ok(reader == r.patient
                || reader == r.creator
                || st
                    .grants
                    .get(&(r.patient, reader))
                    .is_some_and(|g| g.is_active(now)))
        })?
    }

    async fn registered_count(&self, role: Role, at: ReadAt) -> LedgerResult<u64> {
        self.read(at, |st, _| {
            st.by_role.get(&role).map_or(0, |v| v.len() as u64)
        })
    }

    async fn registered(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>> {
        self.read(at, |st, _| {
            st.by_role
                .get(&role)
                .map(|v| page(v, offset, limit))
                .unwrap_or_default()
        })
    }

    async fn profiles(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<Profile>> {
        self.read(at, |st, _| {
            st.by_role
                .get(&role)
                .map(|v| page(v, offset, limit))
                .unwrap_or_default()
                .iter()
                .filter_map(|hh| st.profiles.get(hh).cloned())
                .collect()
        })
    }

    async fn record_count(&self, at: ReadAt) -> LedgerResult<u64> {
        self.read(at, |st, _| st.record_order.len() as u64)
    }

    async fn record_ids(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<RecordId>> {
        self.read(at, |st, _| page(&st.record_order, offset, limit))
    }

    async fn records(
        &self,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<MedicalRecord>> {
        self.read(at, |st, _| {
            page(&st.record_order, offset, limit)
                .iter()
                .filter_map(|id| st.records.get(id).cloned())
                .collect()
        })
    }

    async fn grant_count(&self, at: ReadAt) -> LedgerResult<u64> {
        self.read(at, |st, _| st.grant_order.len() as u64)
    }

    async fn grants(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<AccessGrant>> {
        self.read(at, |st, _| {
            page(&st.grant_order, offset, limit)
                .iter()
                .filter_map(|pair| st.grants.get(pair).cloned())
                .collect()
        })
    }

    async fn grantees(
        &self,
        patient: HhNumber,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>> {
        self.read(at, |st, _| {
            st.grantees
                .get(&patient)
                .map(|v| page(v, offset, limit))
                .unwrap_or_default()
        })
    }

    async fn latest_audit_anchor(&self, at: ReadAt) -> LedgerResult<Option<AuditAnchor>> {
        self.read(at, |st, _| st.last_anchor)
    }

    async fn events(&self, from: u64, to: u64) -> LedgerResult<EventBatch> {
        if from > to {
            return Err(LedgerError::Invalid(format!(
                "block range {from}..={to} is empty: from is above to"
            )));
        }
        let c = self.lock();
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        let end = usize::try_from(to).unwrap_or(usize::MAX);
        let mut batch = EventBatch::default();
        for b in c
            .blocks
            .iter()
            .skip(start)
            .take(end.saturating_sub(start).saturating_add(1))
        {
            let (events, quarantined) = Chain::logs_of(b);
            batch.events.extend(events);
            batch.quarantined.extend(quarantined);
        }
        Ok(batch)
    }

    async fn head(&self) -> LedgerResult<BlockRef> {
        Ok(self.lock().head().r)
    }

    async fn finalized(&self) -> LedgerResult<BlockRef> {
        let c = self.lock();
        let n = c.head().r.number.saturating_sub(c.finality_depth);
        Ok(c.blocks[usize::try_from(n).unwrap_or(0)].r)
    }

    async fn block(&self, number: u64) -> LedgerResult<Option<BlockRef>> {
        let c = self.lock();
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| c.blocks.get(n))
            .map(|b| b.r))
    }

    async fn new_heads(&self) -> LedgerResult<Option<BoxStream<'static, u64>>> {
        let (tx, rx) = mpsc::unbounded();
        self.lock().head_watchers.push(tx);
        Ok(Some(rx.boxed()))
    }
}

#[async_trait]
impl super::ledger::ChainControl for InMemoryLedger {
    async fn head_time(&self) -> Timestamp {
        self.now()
    }

    async fn mine_at(&self, at: Timestamp) {
        if let Err(e) = InMemoryLedger::mine_at(self, at) {
            panic!("mine_at({at}) on the in-memory ledger: {e}");
        }
    }

    async fn as_wallet(&self, wallet: &super::TestWallet) -> Box<dyn LedgerPort> {
        Box::new(self.with_signer(wallet.address()))
    }

    async fn set_next_block_time(&self, at: Timestamp) {
        self.set_time(at);
    }

    async fn set_automine(&self, on: bool) {
        InMemoryLedger::set_automine(self, on);
    }

    async fn mine_when_pending(&self, count: usize) {
        loop {
            let pending = self.lock().pending.as_ref().map_or(0, |p| p.txs.len());
            if pending >= count {
                self.mine();
                return;
            }
            YieldNow(false).await;
        }
    }
}

/// Yields to the executor once (core has no runtime of its own to ask).
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
