//! Folding a batch's events into net row changes, in memory: the rules
//! `apply_block` has always applied event by event (a wallet belongs to one
//! HH number, an HH number keeps its role, a record belongs to the patient
//! of its id, a revoke updates only a grant the cache holds), checked
//! against the rows read before the fold and the batch's own earlier
//! events. What each event replaced is returned as its before-image, so
//! non-final blocks keep exact undo.

use std::collections::{HashMap, HashSet};

use healthledger_core::{
    AccessGrant, AuditAnchor, CacheError, CacheResult, ChainEvent, ChainSource, HhNumber,
    LedgerEvent, MedicalRecord, Profile, RecordId, WalletAddress,
};

use crate::undo::Before;

/// A profile row as cached: the profile and where it came from.
pub(crate) type ProfileRow = (Profile, ChainSource);
/// A record row.
pub(crate) type RecordRow = (MedicalRecord, ChainSource);
/// A grant row.
pub(crate) type GrantRow = (AccessGrant, ChainSource);
/// The anchor row.
pub(crate) type AnchorRow = (AuditAnchor, ChainSource);

/// The rows a batch touches, as read before it and as its events leave
/// them. A key that is absent was not read (`None` inside means "no row").
#[derive(Debug, Default)]
pub(crate) struct Fold {
    /// Every HH number a profile event of the batch names.
    pub(crate) profiles: HashMap<HhNumber, Option<ProfileRow>>,
    /// The owner of every wallet a profile event names or a read profile
    /// holds.
    pub(crate) owners: HashMap<WalletAddress, HhNumber>,
    /// The wallet each HH number had in the database before the batch.
    pub(crate) stored_wallets: HashMap<HhNumber, WalletAddress>,
    /// Every record a non-final block creates (records created only in
    /// final blocks are written without being read: nothing checks or
    /// keeps their earlier value).
    pub(crate) records: HashMap<RecordId, Option<RecordRow>>,
    /// Every (patient, grantee) pair a grant or revoke names.
    pub(crate) grants: HashMap<(HhNumber, HhNumber), Option<GrantRow>>,
    /// The anchor, when the batch anchors.
    pub(crate) anchor: Option<Option<AnchorRow>>,
    /// HH numbers whose profile the batch changed.
    pub(crate) changed_profiles: HashSet<HhNumber>,
    /// Records the batch created or replaced.
    pub(crate) changed_records: HashSet<RecordId>,
    /// Grants the batch changed.
    pub(crate) changed_grants: HashSet<(HhNumber, HhNumber)>,
    /// Whether the batch anchored.
    pub(crate) changed_anchor: bool,
    /// HH numbers whose stored wallet the batch replaces (their rows must
    /// give the old wallet up before the new owners take it).
    pub(crate) wallet_moves: HashSet<HhNumber>,
}

/// The keys a batch's events read: every key a profile, grant or revoke
/// event names, the wallets of profile events, and the records created in
/// non-final blocks.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    pub(crate) profiles: Vec<HhNumber>,
    pub(crate) wallets: Vec<WalletAddress>,
    pub(crate) records: Vec<RecordId>,
    pub(crate) grants: Vec<(HhNumber, HhNumber)>,
    pub(crate) anchor: bool,
}

/// The profile a profile event writes, if it is one.
pub(crate) fn profile_of(e: &ChainEvent) -> Option<Profile> {
    match &e.event {
        LedgerEvent::ProfileUpdated(p) => Some(p.clone()),
        other => other.registered_profile(),
    }
}

fn source_of_event(e: &ChainEvent) -> ChainSource {
    ChainSource {
        block_number: e.at.block_number,
        tx_hash: e.at.tx_hash,
    }
}

impl Keys {
    /// The keys of `events`; `keep_undo` when their block is not final.
    pub(crate) fn add(&mut self, events: &[ChainEvent], keep_undo: bool) {
        for e in events {
            if let Some(p) = profile_of(e) {
                self.profiles.push(p.hh());
                self.wallets.push(p.wallet());
                continue;
            }
            match &e.event {
                LedgerEvent::RecordCreated(r) if keep_undo => self.records.push(r.id),
                LedgerEvent::AccessGranted(g) => self.grants.push((g.patient, g.grantee)),
                LedgerEvent::AccessRevoked {
                    patient, grantee, ..
                } => self.grants.push((*patient, *grantee)),
                LedgerEvent::AuditAnchored(_) => self.anchor = true,
                _ => {}
            }
        }
    }

    /// Drops repeated keys, keeping the first of each.
    pub(crate) fn dedup(&mut self) {
        fn dedup<T: std::hash::Hash + Eq + Copy>(v: &mut Vec<T>) {
            let mut seen = HashSet::new();
            v.retain(|k| seen.insert(*k));
        }
        dedup(&mut self.profiles);
        dedup(&mut self.wallets);
        dedup(&mut self.records);
        dedup(&mut self.grants);
    }
}

impl Fold {
    /// Records a profile read from the database (`None`: no row).
    pub(crate) fn read_profile(&mut self, hh: HhNumber, row: Option<ProfileRow>) {
        if let Some((p, _)) = &row {
            self.owners.insert(p.wallet(), hh);
            self.stored_wallets.insert(hh, p.wallet());
        }
        self.profiles.insert(hh, row);
    }

    /// Applies one event to the rows and returns what it replaced (`None`
    /// when it changed nothing). `keep_undo` is false in final blocks,
    /// whose before-images are not kept (and for records, not read).
    pub(crate) fn apply(&mut self, e: &ChainEvent, keep_undo: bool) -> CacheResult<Option<Before>> {
        let src = source_of_event(e);
        if let Some(p) = profile_of(e) {
            return self.apply_profile(p, src).map(Some);
        }
        Ok(match &e.event {
            LedgerEvent::RecordCreated(r) => {
                if r.patient != r.id.patient() {
                    return Err(CacheError::Invalid(format!(
                        "record {} names patient {}, but its id belongs to patient {}",
                        r.id,
                        r.patient,
                        r.id.patient()
                    )));
                }
                let before = self.records.insert(r.id, Some((r.clone(), src)));
                // Records of non-final blocks were all read (Keys::add), so
                // a missing key can only be a final block's, whose image
                // is dropped.
                self.changed_records.insert(r.id);
                keep_undo.then(|| Before::Record {
                    id: r.id,
                    row: before.flatten(),
                })
            }
            LedgerEvent::AccessGranted(g) => {
                let key = (g.patient, g.grantee);
                let before = self.grants.insert(key, Some((g.clone(), src))).flatten();
                self.changed_grants.insert(key);
                Some(Before::Grant {
                    patient: g.patient,
                    grantee: g.grantee,
                    row: before,
                })
            }
            LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at,
            } => {
                let key = (*patient, *grantee);
                // A revoke of a grant this cache never saw has nothing to
                // update; a full sync restores the grant from the chain.
                match self.grants.get(&key).cloned().flatten() {
                    Some((g, s)) => {
                        let revoked = AccessGrant {
                            revoked_at: Some(*revoked_at),
                            ..g.clone()
                        };
                        self.grants.insert(key, Some((revoked, src)));
                        self.changed_grants.insert(key);
                        Some(Before::Grant {
                            patient: *patient,
                            grantee: *grantee,
                            row: Some((g, s)),
                        })
                    }
                    None => None,
                }
            }
            LedgerEvent::AuditAnchored(a) => {
                let before = self.anchor.replace(Some((*a, src))).flatten();
                self.changed_anchor = true;
                Some(Before::Anchor { row: before })
            }
            _ => None,
        })
    }

    fn apply_profile(&mut self, p: Profile, src: ChainSource) -> CacheResult<Before> {
        let hh = p.hh();
        let wallet = p.wallet();
        if let Some(owner) = self.owners.get(&wallet).filter(|o| **o != hh) {
            return Err(CacheError::Conflict(format!(
                "wallet {wallet} already belongs to HH number {owner}"
            )));
        }
        let before = self.profiles.get(&hh).cloned().flatten();
        if let Some((old, _)) = &before {
            if old.role() != p.role() {
                return Err(CacheError::Conflict(format!(
                    "HH number {hh} is cached as a {}, not a {}",
                    old.role(),
                    p.role()
                )));
            }
            if old.wallet() != wallet && self.owners.get(&old.wallet()) == Some(&hh) {
                self.owners.remove(&old.wallet());
            }
        }
        if self.stored_wallets.get(&hh).is_some_and(|w| *w != wallet) {
            self.wallet_moves.insert(hh);
        }
        self.owners.insert(wallet, hh);
        self.profiles.insert(hh, Some((p, src)));
        self.changed_profiles.insert(hh);
        Ok(Before::Profile { hh, row: before })
    }
}
