//! [`InMemoryCache`]: a [`CachePort`] in memory, the reference the SQL
//! adapters are compared with. Rollback uses an undo log: each journaled
//! block keeps the values its events replaced.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
};

use alloy_primitives::B256;
use async_trait::async_trait;

use crate::{
    AccessGrant, AccessLogEntry, AuditAnchor, BlockAdmission, BlockRef, CacheCounts, CacheError,
    CachePort, CacheResult, ChainEvent, ChainSnapshot, ChainSource, HhNumber, LedgerEvent,
    LogVerification, MedicalRecord, NewAccessLogEntry, NewNotification, Notification,
    PatientProfile, Profile, ProfileExtras, QuarantinedLog, QuarantinedLogs, RecordId, RecordQuery,
    Role, Session, SessionTokenHash, Timestamp, WalletAddress, admit_block, check_quarantined,
    first_broken_link, search_words,
};

/// A value an applied block replaced, to restore on rollback.
#[derive(Debug, Clone)]
enum Undo {
    Profile(HhNumber, Option<Profile>),
    Record(RecordId, Option<MedicalRecord>),
    Grant((HhNumber, HhNumber), Option<AccessGrant>),
    Anchor(Option<AuditAnchor>),
}

#[derive(Debug, Default, Clone)]
struct State {
    profiles: BTreeMap<HhNumber, Profile>,
    records: BTreeMap<RecordId, MedicalRecord>,
    grants: BTreeMap<(HhNumber, HhNumber), AccessGrant>,
    anchor: Option<AuditAnchor>,
    journal: BTreeMap<u64, (BlockRef, Vec<Undo>)>,
    /// The highest final block: pruned, or applied at or below the
    /// finalized height (it keeps no undo data, so nothing below it can be
    /// rolled back).
    pruned: Option<BlockRef>,
    extras: HashMap<HhNumber, ProfileExtras>,
    notifications: Vec<Notification>,
    sessions: HashMap<SessionTokenHash, Session>,
    access_log: Vec<AccessLogEntry>,
    /// Quarantined logs by position (block number, log index, tx hash).
    quarantined: BTreeMap<(u64, u64, B256), QuarantinedLog>,
    /// Initial backfill mode: searches are refused (the fake has no
    /// indexes to drop, but answers as an adapter that dropped them).
    backfill_mode: bool,
}

impl State {
    fn checkpoint(&self) -> Option<BlockRef> {
        self.journal
            .values()
            .next_back()
            .map(|(b, _)| *b)
            .or(self.pruned)
    }

    fn put_profile(&mut self, profile: &Profile) -> CacheResult<Undo> {
        let hh = profile.hh();
        if let Some(owner) = self
            .profiles
            .values()
            .find(|p| p.wallet() == profile.wallet() && p.hh() != hh)
        {
            return Err(CacheError::Conflict(format!(
                "wallet {} already belongs to HH number {}",
                profile.wallet(),
                owner.hh()
            )));
        }
        if let Some(old) = self
            .profiles
            .get(&hh)
            .filter(|p| p.role() != profile.role())
        {
            return Err(CacheError::Conflict(format!(
                "HH number {hh} is cached as a {}, not a {}",
                old.role(),
                profile.role()
            )));
        }
        Ok(Undo::Profile(hh, self.profiles.insert(hh, profile.clone())))
    }

    fn put_record(&mut self, record: &MedicalRecord) -> CacheResult<Undo> {
        // The SQL cache keys records by the patient their id embeds, so a
        // record naming another patient is refused there; so here.
        if record.patient != record.id.patient() {
            return Err(CacheError::Invalid(format!(
                "record {} names patient {}, but its id belongs to patient {}",
                record.id,
                record.patient,
                record.id.patient()
            )));
        }
        Ok(Undo::Record(
            record.id,
            self.records.insert(record.id, record.clone()),
        ))
    }

    fn put_grant(&mut self, grant: &AccessGrant) -> Undo {
        let key = (grant.patient, grant.grantee);
        Undo::Grant(key, self.grants.insert(key, grant.clone()))
    }

    /// Journals a targeted upsert as a change made on top of the
    /// checkpoint block, when that block is journaled and not final: its
    /// undo joins the block's, after the block's own (see
    /// [`CachePort::rollback_to`]).
    fn journal_upsert(&mut self, undo: Undo) {
        let pruned = self.pruned.map(|p| p.number);
        if let Some((n, (_, undos))) = self.journal.iter_mut().next_back()
            && pruned.is_none_or(|p| p < *n)
        {
            undos.push(undo);
        }
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Profile(k, v) => restore(&mut self.profiles, k, v),
            Undo::Record(k, v) => restore(&mut self.records, k, v),
            Undo::Grant(k, v) => restore(&mut self.grants, k, v),
            Undo::Anchor(v) => self.anchor = v,
        }
    }

    fn apply_event(&mut self, e: &ChainEvent) -> CacheResult<Option<Undo>> {
        if let Some(p) = e.event.registered_profile() {
            return self.put_profile(&p).map(Some);
        }
        Ok(match &e.event {
            LedgerEvent::ProfileUpdated(p) => Some(self.put_profile(p)?),
            LedgerEvent::RecordCreated(r) => Some(self.put_record(r)?),
            LedgerEvent::AccessGranted(g) => Some(self.put_grant(g)),
            LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at,
            } => {
                // A revoke of a grant this cache never saw has nothing to
                // update; a full sync restores the grant from the chain.
                let revoked = self.grants.get(&(*patient, *grantee)).map(|g| AccessGrant {
                    revoked_at: Some(*revoked_at),
                    ..g.clone()
                });
                revoked.map(|g| self.put_grant(&g))
            }

            LedgerEvent::AuditAnchored(a) => Some(Undo::Anchor(self.anchor.replace(*a))),
            _ => None,
        })
    }
}

impl State {
    /// Applies a batch of blocks all or nothing; blocks at or below
    /// `finalized` keep no undo data and become the final block.
    fn apply_batch(
        &mut self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: Option<u64>,
    ) -> CacheResult<()> {
        // What the batch did so far, to take back if a later block fails:
        // the undo of every applied event (final blocks included) and the
        // blocks it journaled.
        let mut undo_all: Vec<Undo> = Vec::new();
        let mut journaled: Vec<u64> = Vec::new();
        let old_pruned = self.pruned;
        let mut result = Ok(());
        'blocks: for (block, events) in batch {
            let hash = self.journal.get(&block.number).map(|(b, _)| b.hash);
            let checkpoint = self.checkpoint();
            match admit_block(block, events, hash, checkpoint.as_ref()) {
                Ok(BlockAdmission::AlreadyApplied) => continue,
                Ok(BlockAdmission::Apply) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            let mut undo = Vec::new();
            for e in events {
                match self.apply_event(e) {
                    Ok(u) => undo.extend(u),
                    Err(err) => {
                        undo_all.extend(undo);
                        result = Err(err);
                        break 'blocks;
                    }
                }
            }
            undo_all.extend(undo.iter().cloned());
            let is_final = finalized.is_some_and(|f| block.number <= f);
            if is_final {
                undo.clear();
                if self.pruned.is_none_or(|p| p.number < block.number) {
                    self.pruned = Some(*block);
                }
            }
            self.journal.insert(block.number, (*block, undo));
            journaled.push(block.number);
        }
        if result.is_err() {
            for u in undo_all.into_iter().rev() {
                self.undo(u);
            }
            for n in journaled {
                self.journal.remove(&n);
            }
            self.pruned = old_pruned;
        }
        result
    }
}

impl State {
    /// Undoes every block above `number`; refused below the final block.
    fn rollback(&mut self, number: u64) -> CacheResult<()> {
        if let Some(p) = self.pruned.filter(|p| p.number > number) {
            return Err(CacheError::Conflict(format!(
                "cannot roll back to {number}: block {} is final (pruned, or applied at or below the finalized height)",
                p.number
            )));
        }
        self.quarantined.retain(|(n, _, _), _| *n <= number);
        let above: Vec<u64> = self.journal.range(number + 1..).map(|(n, _)| *n).collect();
        for n in above.into_iter().rev() {
            if let Some((_, undo)) = self.journal.remove(&n) {
                for u in undo.into_iter().rev() {
                    self.undo(u);
                }
            }
        }
        Ok(())
    }
}

impl State {
    /// Rolls back to `fork_point` and applies `batch` with its quarantined
    /// logs, all or nothing.
    fn switch(
        &mut self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        crate::check_branch(fork_point, batch)?;
        check_quarantined(batch, quarantined)?;
        let before = self.clone();
        let result = self
            .rollback(fork_point)
            .and_then(|()| self.apply_batch(batch, Some(finalized)));
        match result {
            Ok(()) => self.quarantine(quarantined),
            Err(_) => *self = before,
        }
        result
    }

    /// Stores quarantined logs, one per position.
    fn quarantine(&mut self, logs: &[QuarantinedLog]) {
        for q in logs {
            self.quarantined
                .insert((q.at.block_number, q.at.log_index, q.at.tx_hash), q.clone());
        }
    }
}

fn restore<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: Option<V>) {
    match value {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

fn newest_first(records: &mut [MedicalRecord]) {
    records.sort_by(|a, b| b.meta.date.cmp(&a.meta.date).then(a.id.cmp(&b.id)));
}

fn take<T>(items: impl IntoIterator<Item = T>, limit: u64) -> Vec<T> {
    items
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
}

/// An in-memory [`CachePort`]. Cloning gives another handle on the same data.
#[derive(Debug, Clone, Default)]
pub struct InMemoryCache {
    state: Arc<Mutex<State>>,
}

impl InMemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: overwrites the `allowed` flag of access-log entry `seq`
    /// without relinking, as an attacker editing the table would.
    pub fn tamper_access_log(&self, seq: u64) {
        let mut s = self.lock();
        if let Some(e) = s.access_log.iter_mut().find(|e| e.seq == seq) {
            e.entry.allowed = !e.entry.allowed;
        }
    }

    /// Test hook: overwrites the `allowed` flag of access-log entry `seq`
    /// and recomputes its hash and every later one, as an attacker who
    /// knows the (unkeyed) hash would; only an audit anchor catches this.
    pub fn tamper_access_log_relinked(&self, seq: u64) {
        let mut s = self.lock();
        let mut prev = None;
        for e in s.access_log.iter_mut().skip_while(|e| e.seq < seq) {
            let mut entry = e.entry.clone();
            if e.seq == seq {
                entry.allowed = !entry.allowed;
            }
            *e = AccessLogEntry::link(e.seq, entry, prev.unwrap_or(e.prev_hash));
            prev = Some(e.hash);
        }
    }

    /// Test hook: deletes every access-log entry above `keep`, as an
    /// attacker hiding the latest accesses would.
    pub fn truncate_access_log(&self, keep: u64) {
        self.lock().access_log.retain(|e| e.seq <= keep);
    }

    /// `IndexBuilding` while in initial backfill mode.
    fn searchable(&self) -> CacheResult<()> {
        if self.lock().backfill_mode {
            return Err(CacheError::IndexBuilding(
                "the cache is in initial backfill mode".into(),
            ));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation completes or is undone before the guard drops, so a
        // poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl CachePort for InMemoryCache {
    async fn upsert_profile(&self, profile: &Profile, _source: ChainSource) -> CacheResult<()> {
        let mut s = self.lock();
        let undo = s.put_profile(profile)?;
        s.journal_upsert(undo);
        Ok(())
    }

    async fn upsert_record(&self, record: &MedicalRecord, _source: ChainSource) -> CacheResult<()> {
        let mut s = self.lock();
        let undo = s.put_record(record)?;
        s.journal_upsert(undo);
        Ok(())
    }

    async fn upsert_grant(&self, grant: &AccessGrant, _source: ChainSource) -> CacheResult<()> {
        let mut s = self.lock();
        let undo = s.put_grant(grant);
        s.journal_upsert(undo);
        Ok(())
    }

    async fn apply_block(&self, block: &BlockRef, events: &[ChainEvent]) -> CacheResult<()> {
        self.lock().apply_batch(&[(*block, events.to_vec())], None)
    }

    async fn apply_blocks(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        self.lock().apply_batch(batch, Some(finalized))
    }

    async fn rollback_to(&self, number: u64) -> CacheResult<()> {
        self.lock().rollback(number)
    }

    async fn switch_branch(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        self.lock().switch(fork_point, batch, &[], finalized)
    }

    async fn replace_chain_state(
        &self,
        at: &BlockRef,
        snapshot: &ChainSnapshot,
    ) -> CacheResult<()> {
        let mut s = self.lock();
        let mut next = State {
            extras: std::mem::take(&mut s.extras),
            notifications: std::mem::take(&mut s.notifications),
            sessions: std::mem::take(&mut s.sessions),
            access_log: std::mem::take(&mut s.access_log),
            backfill_mode: s.backfill_mode,
            // Quarantined logs go with their blocks: those above the
            // snapshot's block belong to blocks no longer applied.
            quarantined: std::mem::take(&mut s.quarantined)
                .into_iter()
                .filter(|((n, _, _), _)| *n <= at.number)
                .collect(),
            ..State::default()
        };
        let loaded = (|| {
            for p in &snapshot.profiles {
                if next.profiles.contains_key(&p.hh()) {
                    return Err(CacheError::Conflict(format!(
                        "the snapshot holds HH number {} twice",
                        p.hh()
                    )));
                }
                next.put_profile(p)?;
            }
            for r in &snapshot.records {
                next.put_record(r)?;
            }
            for g in &snapshot.grants {
                next.put_grant(g);
            }
            Ok(())
        })();
        if let Err(e) = loaded {
            s.extras = next.extras;
            s.notifications = next.notifications;
            s.sessions = next.sessions;
            s.access_log = next.access_log;
            s.quarantined = next.quarantined;
            return Err(e);
        }
        next.anchor = snapshot.anchor;
        next.pruned = Some(*at);
        *s = next;
        Ok(())
    }

    async fn remove_profile(&self, hh: HhNumber) -> CacheResult<bool> {
        Ok(self.lock().profiles.remove(&hh).is_some())
    }

    async fn remove_record(&self, id: RecordId) -> CacheResult<bool> {
        Ok(self.lock().records.remove(&id).is_some())
    }

    async fn checkpoint(&self) -> CacheResult<Option<BlockRef>> {
        Ok(self.lock().checkpoint())
    }

    async fn final_block(&self) -> CacheResult<Option<BlockRef>> {
        Ok(self.lock().pruned)
    }

    async fn journal(&self, from: u64, to: u64) -> CacheResult<Vec<BlockRef>> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .journal
            .range(from..=to)
            .map(|(_, (b, _))| *b)
            .collect())
    }

    async fn prune_journal(&self, below: u64) -> CacheResult<u64> {
        let mut s = self.lock();
        let old: Vec<u64> = s.journal.range(..below).map(|(n, _)| *n).collect();
        for n in &old {
            // Blocks applied as final may sit above the pruned ones: the
            // final block only ever moves up.
            if let Some((b, _)) = s.journal.remove(n)
                && s.pruned.is_none_or(|p| p.number < b.number)
            {
                s.pruned = Some(b);
            }
        }
        Ok(old.len() as u64)
    }

    async fn profile(&self, hh: HhNumber) -> CacheResult<Option<Profile>> {
        Ok(self.lock().profiles.get(&hh).cloned())
    }

    async fn account_of(&self, wallet: WalletAddress) -> CacheResult<Option<(Role, HhNumber)>> {
        Ok(self
            .lock()
            .profiles
            .values()
            .find(|p| p.wallet() == wallet)
            .map(|p| (p.role(), p.hh())))
    }

    async fn record(&self, id: RecordId) -> CacheResult<Option<MedicalRecord>> {
        Ok(self.lock().records.get(&id).cloned())
    }

    async fn records_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        let mut v: Vec<_> = self
            .lock()
            .records
            .values()
            .filter(|r| r.patient == patient)
            .cloned()
            .collect();
        newest_first(&mut v);
        Ok(v)
    }

    async fn records_by_creator(&self, creator: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        let mut v: Vec<_> = self
            .lock()
            .records
            .values()
            .filter(|r| r.creator == creator)
            .cloned()
            .collect();
        newest_first(&mut v);
        Ok(v)
    }

    async fn grants_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<AccessGrant>> {
        Ok(self
            .lock()
            .grants
            .range(
                (patient, HhNumber::new(HhNumber::MIN)?)..=(patient, HhNumber::new(HhNumber::MAX)?),
            )
            .map(|(_, g)| g.clone())
            .collect())
    }

    async fn patients_of_doctor(
        &self,
        doctor: HhNumber,
        now: Timestamp,
    ) -> CacheResult<Vec<HhNumber>> {
        Ok(self
            .lock()
            .grants
            .values()
            .filter(|g| g.grantee == doctor && g.is_active(now))
            .map(|g| g.patient)
            .collect())
    }

    async fn search_patients(&self, prefix: &str, limit: u64) -> CacheResult<Vec<PatientProfile>> {
        self.searchable()?;
        let prefix = prefix.to_lowercase();
        let mut v: Vec<PatientProfile> = self
            .lock()
            .profiles
            .values()
            .filter_map(|p| match p {
                Profile::Patient(p) if p.name.as_str().to_lowercase().starts_with(&prefix) => {
                    Some(p.clone())
                }
                _ => None,
            })
            .collect();
        v.sort_by_key(|p| (p.name.as_str().to_lowercase(), p.hh));
        Ok(take(v, limit))
    }

    async fn search_records(&self, q: &RecordQuery) -> CacheResult<Vec<MedicalRecord>> {
        self.searchable()?;
        let wanted = q.text.as_deref().map(search_words).unwrap_or_default();
        let record_type = q.record_type.as_deref().map(str::to_lowercase);
        let mut v: Vec<MedicalRecord> = self
            .lock()
            .records
            .values()
            .filter(|r| q.patient.is_none_or(|p| r.patient == p))
            .filter(|r| {
                record_type
                    .as_deref()
                    .is_none_or(|t| r.meta.record_type.as_str().to_lowercase() == t)
            })
            .filter(|r| q.date_from.is_none_or(|d| r.meta.date >= d))
            .filter(|r| q.date_to.is_none_or(|d| r.meta.date <= d))
            .filter(|r| {
                let words = r.meta.search_words();
                wanted.iter().all(|w| words.contains(w))
            })
            .cloned()
            .collect();
        newest_first(&mut v);
        Ok(take(v, q.limit))
    }

    async fn latest_audit_anchor(&self) -> CacheResult<Option<AuditAnchor>> {
        Ok(self.lock().anchor)
    }

    async fn counts(&self) -> CacheResult<CacheCounts> {
        let s = self.lock();
        let role = |r: Role| s.profiles.values().filter(|p| p.role() == r).count() as u64;
        Ok(CacheCounts {
            patients: role(Role::Patient),
            doctors: role(Role::Doctor),
            diagnostic_centers: role(Role::DiagnosticCenter),
            records: s.records.len() as u64,
            grants: s.grants.len() as u64,
            access_log: s.access_log.len() as u64,
            journal: s.journal.len() as u64,
        })
    }

    async fn set_extras(&self, hh: HhNumber, extras: &ProfileExtras) -> CacheResult<()> {
        let mut s = self.lock();
        if !s.profiles.contains_key(&hh) {
            return Err(CacheError::NotFound(format!(
                "HH number {hh} is not cached"
            )));
        }
        s.extras.insert(hh, extras.clone());
        Ok(())
    }

    async fn extras(&self, hh: HhNumber) -> CacheResult<Option<ProfileExtras>> {
        Ok(self.lock().extras.get(&hh).cloned())
    }

    async fn add_notification(&self, n: &NewNotification) -> CacheResult<Notification> {
        let mut s = self.lock();
        let stored = Notification {
            id: s.notifications.len() as u64 + 1,
            body: n.clone(),
            read: false,
        };
        s.notifications.push(stored.clone());
        Ok(stored)
    }

    async fn notifications(
        &self,
        user: HhNumber,
        unread_only: bool,
    ) -> CacheResult<Vec<Notification>> {
        let mut v: Vec<_> = self
            .lock()
            .notifications
            .iter()
            .filter(|n| n.body.user == user && !(unread_only && n.read))
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.body
                .created_at
                .cmp(&a.body.created_at)
                .then(b.id.cmp(&a.id))
        });
        Ok(v)
    }

    async fn mark_notification_read(&self, id: u64) -> CacheResult<()> {
        let mut s = self.lock();
        let n = s
            .notifications
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| CacheError::NotFound(format!("notification {id}")))?;
        n.read = true;
        Ok(())
    }

    async fn put_session(&self, session: &Session) -> CacheResult<()> {
        let mut s = self.lock();
        if s.sessions.contains_key(&session.token_hash) {
            return Err(CacheError::AlreadyExists(format!(
                "session {:?}",
                session.token_hash
            )));
        }
        s.sessions.insert(session.token_hash, session.clone());
        Ok(())
    }

    async fn session(&self, token_hash: SessionTokenHash) -> CacheResult<Option<Session>> {
        Ok(self.lock().sessions.get(&token_hash).cloned())
    }

    async fn delete_session(&self, token_hash: SessionTokenHash) -> CacheResult<bool> {
        Ok(self.lock().sessions.remove(&token_hash).is_some())
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> CacheResult<u64> {
        let mut s = self.lock();
        let before = s.sessions.len();
        s.sessions.retain(|_, v| v.is_valid(now));
        Ok((before - s.sessions.len()) as u64)
    }

    async fn append_access_log(&self, entry: &NewAccessLogEntry) -> CacheResult<AccessLogEntry> {
        let mut s = self.lock();
        let prev = s.access_log.last().map_or(B256::ZERO, |e| e.hash);
        let linked = AccessLogEntry::link(s.access_log.len() as u64 + 1, entry.clone(), prev);
        s.access_log.push(linked.clone());
        Ok(linked)
    }

    async fn access_log(
        &self,
        patient: Option<HhNumber>,
        after_seq: u64,
        limit: u64,
    ) -> CacheResult<Vec<AccessLogEntry>> {
        let s = self.lock();
        Ok(take(
            s.access_log
                .iter()
                .filter(|e| e.seq > after_seq && patient.is_none_or(|p| e.entry.patient == p))
                .cloned(),
            limit,
        ))
    }

    async fn verify_access_log(&self) -> CacheResult<LogVerification> {
        let s = self.lock();
        let walked = LogVerification {
            entries: s.access_log.len() as u64,
            first_broken: first_broken_link(&s.access_log),
        };
        let anchored_hash = s.anchor.and_then(|a| {
            s.access_log
                .iter()
                .find(|e| e.seq == a.last_seq)
                .map(|e| e.hash)
        });
        Ok(walked.verify_against_anchor(anchored_hash, s.anchor.as_ref()))
    }

    async fn access_log_digest(&self, up_to_seq: u64) -> CacheResult<B256> {
        self.lock()
            .access_log
            .iter()
            .find(|e| e.seq == up_to_seq)
            .map(|e| e.hash)
            .ok_or_else(|| CacheError::NotFound(format!("access-log entry {up_to_seq}")))
    }

    async fn apply_blocks_quarantining(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        check_quarantined(batch, quarantined)?;
        let mut s = self.lock();
        s.apply_batch(batch, Some(finalized))?;
        s.quarantine(quarantined);
        Ok(())
    }

    async fn switch_branch_quarantining(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        self.lock()
            .switch(fork_point, batch, quarantined, finalized)
    }

    async fn quarantined_logs(&self, limit: u64) -> CacheResult<QuarantinedLogs> {
        let s = self.lock();
        Ok(QuarantinedLogs {
            total: s.quarantined.len() as u64,
            newest: take(s.quarantined.values().rev().cloned(), limit),
        })
    }

    async fn profiles_by_hh(&self, hhs: &[HhNumber]) -> CacheResult<Vec<Profile>> {
        Ok(by_keys(&self.lock().profiles, hhs))
    }

    async fn records_by_id(&self, ids: &[RecordId]) -> CacheResult<Vec<MedicalRecord>> {
        Ok(by_keys(&self.lock().records, ids))
    }

    async fn grants_by_pair(
        &self,
        pairs: &[(HhNumber, HhNumber)],
    ) -> CacheResult<Vec<AccessGrant>> {
        Ok(by_keys(&self.lock().grants, pairs))
    }

    async fn profile_keys(
        &self,
        after: Option<HhNumber>,
        limit: u64,
    ) -> CacheResult<Vec<HhNumber>> {
        Ok(keys_after(&self.lock().profiles, after, limit))
    }

    async fn record_keys(&self, after: Option<RecordId>, limit: u64) -> CacheResult<Vec<RecordId>> {
        Ok(keys_after(&self.lock().records, after, limit))
    }

    async fn grant_keys(
        &self,
        after: Option<(HhNumber, HhNumber)>,
        limit: u64,
    ) -> CacheResult<Vec<(HhNumber, HhNumber)>> {
        Ok(keys_after(&self.lock().grants, after, limit))
    }

    async fn remove_grant(&self, patient: HhNumber, grantee: HhNumber) -> CacheResult<bool> {
        Ok(self.lock().grants.remove(&(patient, grantee)).is_some())
    }

    async fn upsert_audit_anchor(
        &self,
        anchor: &AuditAnchor,
        _source: ChainSource,
    ) -> CacheResult<()> {
        let mut s = self.lock();
        let undo = Undo::Anchor(s.anchor.replace(*anchor));
        s.journal_upsert(undo);
        Ok(())
    }

    async fn remove_audit_anchor(&self) -> CacheResult<bool> {
        Ok(self.lock().anchor.take().is_some())
    }

    async fn begin_backfill_mode(&self) -> CacheResult<()> {
        self.lock().backfill_mode = true;
        Ok(())
    }

    async fn end_backfill_mode(&self) -> CacheResult<()> {
        self.lock().backfill_mode = false;
        Ok(())
    }

    async fn in_backfill_mode(&self) -> CacheResult<bool> {
        Ok(self.lock().backfill_mode)
    }
}

/// The values of `map` under `keys` that are present, in key order.
fn by_keys<K: Ord + Copy, V: Clone>(map: &BTreeMap<K, V>, keys: &[K]) -> Vec<V> {
    let wanted: std::collections::BTreeSet<K> = keys.iter().copied().collect();
    wanted.iter().filter_map(|k| map.get(k).cloned()).collect()
}

/// The keys of `map` above `after`, ascending, at most `limit`.
fn keys_after<K: Ord + Copy, V>(map: &BTreeMap<K, V>, after: Option<K>, limit: u64) -> Vec<K> {
    use std::ops::Bound;
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    take(map.range((lower, Bound::Unbounded)).map(|(k, _)| *k), limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessAction, LedgerEvent, testing::cache};

    fn entry(i: u64) -> NewAccessLogEntry {
        NewAccessLogEntry {
            at: Timestamp(1_750_000_000 + i),
            actor: HhNumber::new(350_001).unwrap(),
            patient: HhNumber::new(350_000).unwrap(),
            record: None,
            action: AccessAction::ReadContent,
            allowed: true,
        }
    }

    /// A fake with `n` entries and an anchor of entry `anchored`.
    async fn anchored(n: u64, anchored: u64) -> InMemoryCache {
        let c = InMemoryCache::new();
        for i in 1..=n {
            c.append_access_log(&entry(i)).await.unwrap();
        }
        let b = cache::block(1, 0);
        let anchor = AuditAnchor {
            digest: c.access_log_digest(anchored).await.unwrap(),
            last_seq: anchored,
            anchored_at: Timestamp(1_750_001_000),
        };
        c.apply_block(
            &b,
            &cache::in_block(&b, vec![LedgerEvent::AuditAnchored(anchor)]),
        )
        .await
        .unwrap();
        assert_eq!(c.verify_access_log().await.unwrap().first_broken, None);
        c
    }

    #[tokio::test]
    async fn a_relinked_edit_is_caught_by_the_anchor_only() {
        let c = anchored(6, 5).await;
        c.tamper_access_log_relinked(3);
        let entries = c.access_log(None, 0, 10).await.unwrap();
        assert_eq!(
            first_broken_link(&entries),
            None,
            "the chain alone is fooled"
        );
        assert!(!entries[2].entry.allowed);
        let v = c.verify_access_log().await.unwrap();
        assert_eq!((v.entries, v.first_broken), (6, Some(5)));

        // Past the anchor, a relinked edit goes unnoticed until the next one.
        let c = anchored(6, 5).await;
        c.tamper_access_log_relinked(6);
        assert_eq!(c.verify_access_log().await.unwrap().first_broken, None);
    }

    #[tokio::test]
    async fn a_deleted_tail_is_caught_by_the_anchor() {
        let c = anchored(6, 5).await;
        c.truncate_access_log(2);
        let v = c.verify_access_log().await.unwrap();
        assert_eq!((v.entries, v.first_broken), (2, Some(3)));
    }
}
