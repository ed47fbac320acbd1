//! [`InMemoryLedger`]: a [`LedgerPort`] that behaves like a small chain.
//! Every write mines one block; blocks have hashes and parent hashes; the
//! state is a pure function of the canonical blocks, so [`InMemoryLedger::rewind`]
//! and [`InMemoryLedger::reorg`] let sync be tested against forks without a
//! node.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
};

use alloy_primitives::{B256, keccak256};
use async_trait::async_trait;

use crate::{
    AccessGrant, AuditAnchor, Authorization, BlockRef, ChainEvent, ConsentAction, HhNumber,
    LedgerError, LedgerEvent, LedgerPort, LedgerResult, LogPosition, MedicalRecord, NewRecord,
    Profile, RecordId, Role, Timestamp, TxReceipt, WalletAddress,
};

/// One state change a transaction makes; a block's list of them replays the
/// block onto the state before it.
#[derive(Debug, Clone)]
enum Mutation {
    Event(LedgerEvent),
    NonceUsed(WalletAddress),
}

#[derive(Debug, Clone)]
struct Block {
    r: BlockRef,
    timestamp: Timestamp,
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
    registrars: BTreeSet<WalletAddress>,
    nonces: HashMap<WalletAddress, u64>,
    last_anchor_seq: u64,
}

impl LedgerState {
    fn apply(&mut self, m: &Mutation) {
        match m {
            Mutation::NonceUsed(w) => *self.nonces.entry(*w).or_default() += 1,
            Mutation::Event(e) => self.apply_event(e),
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
            LedgerEvent::AuditAnchored(a) => self.last_anchor_seq = a.last_seq,
            LedgerEvent::RegistrarAdded(w) => {
                self.registrars.insert(*w);
            }
            LedgerEvent::RegistrarRemoved(w) => {
                self.registrars.remove(w);
            }
            LedgerEvent::PatientRegistered(_)
            | LedgerEvent::DoctorRegistered(_)
            | LedgerEvent::DiagnosticCenterRegistered(_) => {}
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
}

impl Chain {
    fn head(&self) -> &Block {
        // The genesis block is created in `new` and never removed.
        &self.blocks[self.blocks.len() - 1]
    }

    fn next_timestamp(&self) -> Timestamp {
        Timestamp(self.time.max(self.head().timestamp.0 + 1))
    }

    fn mine(&mut self, txs: Vec<Vec<Mutation>>) -> Vec<TxReceipt> {
        let parent = self.head().r;
        let timestamp = self.next_timestamp();
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
            },
            timestamp,
            txs,
        });
        receipts
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

    fn events_of(block: &Block) -> Vec<ChainEvent> {
        let mut out = Vec::new();
        let mut log_index = 0;
        for (tx, muts) in &block.txs {
            for m in muts {
                if let Mutation::Event(e) = m {
                    out.push(ChainEvent {
                        at: LogPosition {
                            block_number: block.r.number,
                            log_index,
                            block_hash: block.r.hash,
                            tx_hash: *tx,
                        },
                        event: e.clone(),
                    });
                    log_index += 1;
                }
            }
        }
        out
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
            },
            timestamp: Timestamp(1_700_000_000),
            txs: vec![(
                keccak256(b"genesis tx"),
                vec![Mutation::Event(LedgerEvent::RegistrarAdded(admin))],
            )],
        };
        let mut chain = Chain {
            blocks: vec![genesis],
            state: LedgerState::default(),
            time: 1_700_000_000,
            fork_salt: 0,
            finality_depth: 2,
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

    /// Moves the chain clock forward by `secs` (like anvil's
    /// `evm_increaseTime`); the next block carries the new time.
    pub fn advance_time(&self, secs: u64) {
        let mut c = self.lock();
        c.time = c.next_timestamp().0.max(c.time) + secs;
    }

    /// Mines `count` empty blocks.
    pub fn mine_empty(&self, count: u64) {
        let mut c = self.lock();
        for _ in 0..count {
            c.mine(Vec::new());
        }
    }

    /// Drops every block above `number` with their transactions (a fork
    /// that never saw them). Later writes build a new branch whose blocks
    /// get new hashes.
    pub fn rewind(&self, number: u64) {
        let mut c = self.lock();
        let keep = usize::try_from(number)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        c.blocks.truncate(keep.max(1));
        c.fork_salt += 1;
        c.rebuild_state();
    }

    /// Replaces the last `depth` blocks with blocks that carry the same
    /// transactions under new hashes (a reorg that re-includes everything).
    pub fn reorg(&self, depth: u64) {
        let mut c = self.lock();
        let len = c.blocks.len();
        let depth = usize::try_from(depth).unwrap_or(usize::MAX).min(len - 1);
        let dropped: Vec<Block> = c.blocks.drain(len - depth..).collect();
        c.fork_salt += 1;
        c.rebuild_state();
        for b in dropped {
            c.time = c.time.max(b.timestamp.0);
            c.mine(b.txs.into_iter().map(|(_, m)| m).collect());
        }
    }

    /// The timestamp of the head block.
    pub fn now(&self) -> Timestamp {
        self.lock().head().timestamp
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
                let nonce = c.state.nonces.get(&consenter).copied().unwrap_or(0);
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

    fn write(&self, c: &mut Chain, mut muts: Vec<Mutation>, events: Vec<LedgerEvent>) -> TxReceipt {
        muts.extend(events.into_iter().map(Mutation::Event));
        let receipts = c.mine(vec![muts]);
        receipts[0]
    }

    fn check_grant_parties(c: &Chain, patient: HhNumber, grantee: HhNumber) -> LedgerResult<()> {
        if c.state.role_of(patient) != Some(Role::Patient) {
            return Err(LedgerError::NotFound(format!(
                "HH number {patient} is not a registered patient"
            )));
        }
        if c.state.role_of(grantee).is_none() {
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

#[async_trait]
impl LedgerPort for InMemoryLedger {
    fn signer(&self) -> WalletAddress {
        self.signer
    }

    async fn register(&self, profile: &Profile) -> LedgerResult<TxReceipt> {
        let mut c = self.lock();
        if !c.state.registrars.contains(&self.signer) && self.signer != profile.wallet() {
            return Err(LedgerError::AccessDenied(format!(
                "signer {} is neither a registrar nor the profile's wallet",
                self.signer
            )));
        }
        if c.state.profiles.contains_key(&profile.hh()) {
            return Err(LedgerError::AlreadyExists(format!(
                "HH number {} is already registered",
                profile.hh()
            )));
        }
        if let Some(owner) = c.state.by_wallet.get(&profile.wallet()) {
            return Err(LedgerError::AlreadyExists(format!(
                "wallet {} already owns HH number {owner}",
                profile.wallet()
            )));
        }
        Ok(self.write(
            &mut c,
            Vec::new(),
            vec![LedgerEvent::registration(profile.clone())],
        ))
    }

    async fn update_profile(
        &self,
        profile: &Profile,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let mut c = self.lock();
        let current = c.state.profiles.get(&profile.hh()).ok_or_else(|| {
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
        let muts = self.authorize(
            &c,
            &ConsentAction::UpdateProfile(profile.clone()),
            consenter,
            auth,
        )?;
        Ok(self.write(
            &mut c,
            muts,
            vec![LedgerEvent::ProfileUpdated(profile.clone())],
        ))
    }

    async fn create_record(
        &self,
        record: &NewRecord,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let mut c = self.lock();
        match c.state.role_of(record.creator) {
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
        let patient = record.id.patient();
        if c.state.role_of(patient) != Some(Role::Patient) {
            return Err(LedgerError::NotFound(format!(
                "HH number {patient} is not a registered patient"
            )));
        }
        if c.state.records.contains_key(&record.id) {
            return Err(LedgerError::AlreadyExists(format!(
                "record {} already exists",
                record.id
            )));
        }
        let consenter = c.state.wallet_of(record.creator)?;
        let muts = self.authorize(
            &c,
            &ConsentAction::CreateRecord(record.clone()),
            consenter,
            auth,
        )?;
        let created = MedicalRecord::from_new(record.clone(), c.next_timestamp());
        Ok(self.write(&mut c, muts, vec![LedgerEvent::RecordCreated(created)]))
    }

    async fn grant_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let mut c = self.lock();
        Self::check_grant_parties(&c, patient, grantee)?;
        let now = c.next_timestamp();
        if let Some(e) = expires_at.filter(|e| *e <= now) {
            return Err(LedgerError::Invalid(format!(
                "expiry {e} is not after the block time {now}"
            )));
        }
        let consenter = c.state.wallet_of(patient)?;
        let action = ConsentAction::GrantAccess {
            patient,
            grantee,
            expires_at,
        };
        let muts = self.authorize(&c, &action, consenter, auth)?;
        let grant = AccessGrant {
            patient,
            grantee,
            granted_at: now,
            expires_at,
            revoked_at: None,
        };
        Ok(self.write(&mut c, muts, vec![LedgerEvent::AccessGranted(grant)]))
    }

    async fn revoke_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let mut c = self.lock();
        Self::check_grant_parties(&c, patient, grantee)?;
        let active = c
            .state
            .grants
            .get(&(patient, grantee))
            .is_some_and(|g| g.revoked_at.is_none());
        if !active {
            return Err(LedgerError::NotFound(format!(
                "patient {patient} has no unrevoked grant to {grantee}"
            )));
        }
        let consenter = c.state.wallet_of(patient)?;
        let muts = self.authorize(
            &c,
            &ConsentAction::RevokeAccess { patient, grantee },
            consenter,
            auth,
        )?;
        let revoked_at = c.next_timestamp();
        Ok(self.write(
            &mut c,
            muts,
            vec![LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at,
            }],
        ))
    }

    async fn anchor_audit(&self, digest: B256, last_seq: u64) -> LedgerResult<TxReceipt> {
        let mut c = self.lock();
        if !c.state.registrars.contains(&self.signer) {
            return Err(LedgerError::AccessDenied(format!(
                "signer {} is not a registrar",
                self.signer
            )));
        }
        if last_seq <= c.state.last_anchor_seq {
            return Err(LedgerError::Invalid(format!(
                "audit seq {last_seq} does not advance past the anchored {}",
                c.state.last_anchor_seq
            )));
        }
        let anchored_at = c.next_timestamp();
        Ok(self.write(
            &mut c,
            Vec::new(),
            vec![LedgerEvent::AuditAnchored(AuditAnchor {
                digest,
                last_seq,
                anchored_at,
            })],
        ))
    }

    async fn signing_digest(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        let c = self.lock();
        let consenter = match action {
            ConsentAction::UpdateProfile(p) => c.state.wallet_of(p.hh())?,
            ConsentAction::CreateRecord(r) => c.state.wallet_of(r.creator)?,
            ConsentAction::GrantAccess { patient, .. }
            | ConsentAction::RevokeAccess { patient, .. } => c.state.wallet_of(*patient)?,
        };
        let nonce = c.state.nonces.get(&consenter).copied().unwrap_or(0);
        Ok(self.digest(action, nonce, deadline))
    }

    async fn profile(&self, hh: HhNumber, role: Role) -> LedgerResult<Option<Profile>> {
        Ok(self
            .lock()
            .state
            .profiles
            .get(&hh)
            .filter(|p| p.role() == role)
            .cloned())
    }

    async fn account_of(&self, wallet: WalletAddress) -> LedgerResult<Option<(Role, HhNumber)>> {
        let c = self.lock();
        Ok(c.state
            .by_wallet
            .get(&wallet)
            .and_then(|hh| c.state.role_of(*hh).map(|r| (r, *hh))))
    }

    async fn record(&self, id: RecordId) -> LedgerResult<Option<MedicalRecord>> {
        Ok(self.lock().state.records.get(&id).cloned())
    }

    async fn grant(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> LedgerResult<Option<AccessGrant>> {
        Ok(self.lock().state.grants.get(&(patient, grantee)).cloned())
    }

    async fn has_access(&self, patient: HhNumber, grantee: HhNumber) -> LedgerResult<bool> {
        let c = self.lock();
        let now = c.head().timestamp;
        Ok(c.state
            .grants
            .get(&(patient, grantee))
            .is_some_and(|g| g.is_active(now)))
    }

    async fn can_read_record(&self, id: RecordId, reader: HhNumber) -> LedgerResult<bool> {
        let c = self.lock();
        let r = c
            .state
            .records
            .get(&id)
            .ok_or_else(|| LedgerError::NotFound(format!("record {id} does not exist")))?;
        let now = c.head().timestamp;
        Ok(reader == r.patient
            || reader == r.creator
            || c.state
                .grants
                .get(&(r.patient, reader))
                .is_some_and(|g| g.is_active(now)))
    }

    async fn registered_count(&self, role: Role) -> LedgerResult<u64> {
        Ok(self
            .lock()
            .state
            .by_role
            .get(&role)
            .map_or(0, |v| v.len() as u64))
    }

    async fn registered(&self, role: Role, offset: u64, limit: u64) -> LedgerResult<Vec<HhNumber>> {
        let c = self.lock();
        Ok(c.state
            .by_role
            .get(&role)
            .map(|v| page(v, offset, limit))
            .unwrap_or_default())
    }

    async fn record_count(&self) -> LedgerResult<u64> {
        Ok(self.lock().state.record_order.len() as u64)
    }

    async fn record_ids(&self, offset: u64, limit: u64) -> LedgerResult<Vec<RecordId>> {
        Ok(page(&self.lock().state.record_order, offset, limit))
    }

    async fn grantees(&self, patient: HhNumber) -> LedgerResult<Vec<HhNumber>> {
        Ok(self
            .lock()
            .state
            .grantees
            .get(&patient)
            .cloned()
            .unwrap_or_default())
    }

    async fn events(&self, from: u64, to: u64) -> LedgerResult<Vec<ChainEvent>> {
        if from > to {
            return Err(LedgerError::Invalid(format!(
                "block range {from}..={to} is empty: from is above to"
            )));
        }
        let c = self.lock();
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        let end = usize::try_from(to).unwrap_or(usize::MAX);
        Ok(c.blocks
            .iter()
            .skip(start)
            .take(end.saturating_sub(start).saturating_add(1))
            .flat_map(Chain::events_of)
            .collect())
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
}
