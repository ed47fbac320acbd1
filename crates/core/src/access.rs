//! Consent and accountability: access grants, the hash-chained access log,
//! notifications and sessions.

use std::fmt;

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuditAnchor, HhNumber, Name, Note, RecordId, Timestamp, WalletAddress};

/// A patient's grant of access to a grantee (a doctor, usually).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccessGrant {
    /// The patient who granted.
    pub patient: HhNumber,
    /// Who was granted access.
    pub grantee: HhNumber,
    /// When the grant landed.
    pub granted_at: Timestamp,
    /// When it stops being valid, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl AccessGrant {
    /// Whether the grant gives access at `now`: not revoked and not expired
    /// (a grant expiring at `t` no longer gives access at `t`).
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What an access-log entry records being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessAction {
    /// Read a profile.
    ViewProfile,
    /// Read a record's metadata.
    ViewRecord,
    /// Read (decrypt) a record's content.
    ReadContent,
    /// Created a record.
    CreateRecord,
    /// Granted access.
    GrantAccess,
    /// Revoked access.
    RevokeAccess,
}

impl AccessAction {
    /// The stable numeric code used in the hash chain and in storage.
    pub fn code(self) -> u8 {
        match self {
            AccessAction::ViewProfile => 1,
            AccessAction::ViewRecord => 2,
            AccessAction::ReadContent => 3,
            AccessAction::CreateRecord => 4,
            AccessAction::GrantAccess => 5,
            AccessAction::RevokeAccess => 6,
        }
    }

    /// The action for a stored code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => AccessAction::ViewProfile,
            2 => AccessAction::ViewRecord,
            3 => AccessAction::ReadContent,
            4 => AccessAction::CreateRecord,
            5 => AccessAction::GrantAccess,
            6 => AccessAction::RevokeAccess,
            _ => return None,
        })
    }
}

/// An access-log entry before the log gives it a sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewAccessLogEntry {
    /// When the access happened.
    pub at: Timestamp,
    /// Who acted.
    pub actor: HhNumber,
    /// Whose data was touched.
    pub patient: HhNumber,
    /// The record touched, if any.
    pub record: Option<RecordId>,
    /// What was done.
    pub action: AccessAction,
    /// Whether it was allowed.
    pub allowed: bool,
}

/// One link of the hash-chained access log:
/// `hash = SHA-256(prev_hash ‖ encode(seq, entry))`, with an all-zero
/// `prev_hash` for the first entry (seq 1). Editing, removing or reordering
/// any entry breaks every later link, and the head hash (the digest) can be
/// anchored on chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessLogEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// The entry.
    pub entry: NewAccessLogEntry,
    /// The previous entry's hash (zero for seq 1).
    pub prev_hash: B256,
    /// This entry's hash.
    pub hash: B256,
}

impl AccessLogEntry {
    /// Links `entry` as number `seq` after `prev_hash`.
    pub fn link(seq: u64, entry: NewAccessLogEntry, prev_hash: B256) -> Self {
        let hash = Self::compute_hash(seq, &entry, prev_hash);
        Self {
            seq,
            entry,
            prev_hash,
            hash,
        }
    }

    /// The hash of `entry` as number `seq` after `prev_hash`, over a fixed
    /// binary encoding every backend reproduces exactly.
    pub fn compute_hash(seq: u64, entry: &NewAccessLogEntry, prev_hash: B256) -> B256 {
        let mut h = Sha256::new();
        h.update(prev_hash.as_slice());
        h.update(seq.to_be_bytes());
        h.update(entry.at.0.to_be_bytes());
        h.update(entry.actor.get().to_be_bytes());
        h.update(entry.patient.get().to_be_bytes());
        h.update([entry.action.code(), u8::from(entry.allowed)]);
        match entry.record {
            Some(id) => {
                let s = id.to_string();
                h.update([1]);
                h.update((s.len() as u32).to_be_bytes());
                h.update(s.as_bytes());
            }
            None => h.update([0]),
        }
        B256::from_slice(&h.finalize())
    }

    /// Whether this entry's hash matches its content and `prev_hash`.
    pub fn is_self_consistent(&self) -> bool {
        Self::compute_hash(self.seq, &self.entry, self.prev_hash) == self.hash
    }
}

/// Walks a log in sequence order and returns the seq of the first entry that
/// is not a valid link after its predecessor, or `None` when all hold.
pub fn first_broken_link<'a>(entries: impl IntoIterator<Item = &'a AccessLogEntry>) -> Option<u64> {
    let mut prev = B256::ZERO;
    for (expected_seq, e) in (1..).zip(entries) {
        if e.seq != expected_seq || e.prev_hash != prev || !e.is_self_consistent() {
            return Some(expected_seq.min(e.seq));
        }
        prev = e.hash;
    }
    None
}

/// The outcome of verifying the access log's hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogVerification {
    /// How many entries were checked.
    pub entries: u64,
    /// The seq of the first broken link, if any.
    pub first_broken: Option<u64>,
}

impl LogVerification {
    /// Checks this walk of the access log against the latest audit anchor:
    /// the one decision every cache makes the same way.
    ///
    /// `self` is what the walk of the stored log found: `entries` stored
    /// entries and `first_broken` as [`first_broken_link`] reports it (the
    /// first seq that is missing, out of place or not a valid link).
    /// `anchored_hash` is the hash of the stored entry whose seq is
    /// `anchor.last_seq`, if the walk reached one.
    ///
    /// With no anchor (or one with `last_seq` 0, which covers no entry) the
    /// result is `self`. Otherwise the anchor holds when the chain has no
    /// break at or below `last_seq` and entry `last_seq` hashes to
    /// `anchor.digest`. When it does not hold, `first_broken` becomes the
    /// least of `last_seq`, the chain's first break and the first missing
    /// seq (`entries + 1` when the chain is intact but shorter than
    /// `last_seq`: its tail was deleted). So a log edited at or below
    /// `last_seq` and relinked is reported at `last_seq` at the latest, and
    /// a truncated one at its first missing seq.
    pub fn verify_against_anchor(
        self,
        anchored_hash: Option<B256>,
        anchor: Option<&AuditAnchor>,
    ) -> Self {
        let Some(anchor) = anchor.filter(|a| a.last_seq > 0) else {
            return self;
        };
        let n = anchor.last_seq;
        let broken_below = self.first_broken.is_some_and(|k| k <= n);
        if broken_below || anchored_hash == Some(anchor.digest) {
            return self;
        }
        let first_missing =
            (self.first_broken.is_none() && self.entries < n).then_some(self.entries + 1);
        Self {
            entries: self.entries,
            first_broken: [Some(n), self.first_broken, first_missing]
                .into_iter()
                .flatten()
                .min(),
        }
    }
}

/// The kind of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    /// A record was created for the user.
    RecordCreated,
    /// Access was granted to or by the user.
    AccessGranted,
    /// Access was revoked.
    AccessRevoked,
    /// Someone accessed the user's data.
    AccessedData,
    /// Anything else.
    Info,
}

impl NotificationKind {
    /// The stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::RecordCreated => "record-created",
            NotificationKind::AccessGranted => "access-granted",
            NotificationKind::AccessRevoked => "access-revoked",
            NotificationKind::AccessedData => "accessed-data",
            NotificationKind::Info => "info",
        }
    }

    /// The kind for a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            NotificationKind::RecordCreated,
            NotificationKind::AccessGranted,
            NotificationKind::AccessRevoked,
            NotificationKind::AccessedData,
            NotificationKind::Info,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A notification to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNotification {
    /// Who it is for.
    pub user: HhNumber,
    /// What it is about.
    pub kind: NotificationKind,
    /// A short title.
    pub title: Name,
    /// The message.
    pub message: Note,
    /// The record it concerns, if any.
    pub related_record: Option<RecordId>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id, assigned by the cache.
    pub id: u64,
    /// The notification.
    pub body: NewNotification,
    /// Whether the user has read it.
    pub read: bool,
}

/// The SHA-256 of a session token. Only this hash is ever stored; the token
/// itself stays with the client.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionTokenHash(pub B256);

impl SessionTokenHash {
    /// Hashes a session token.
    pub fn of(token: &[u8]) -> Self {
        Self(B256::from_slice(&Sha256::digest(token)))
    }
}

impl fmt::Debug for SessionTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionTokenHash({})", self.0)
    }
}

/// A login session, stored by token hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The hash of the session token.
    pub token_hash: SessionTokenHash,
    /// The user.
    pub hh: HhNumber,
    /// The wallet that signed in.
    pub wallet: WalletAddress,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
}

impl Session {
    /// Whether the session is still valid at `now`.
    pub fn is_valid(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> NewAccessLogEntry {
        NewAccessLogEntry {
            at: Timestamp(1_700_000_000 + n),
            actor: HhNumber::new(112_233).unwrap(),
            patient: HhNumber::new(555_555).unwrap(),
            record: n
                .is_multiple_of(2)
                .then(|| RecordId::new(HhNumber::new(555_555).unwrap(), n)),
            action: AccessAction::ReadContent,
            allowed: true,
        }
    }

    #[test]
    fn a_chain_verifies_and_an_edit_is_located() {
        let mut log = Vec::new();
        let mut prev = B256::ZERO;
        for seq in 1..=5 {
            let e = AccessLogEntry::link(seq, entry(seq), prev);
            prev = e.hash;
            log.push(e);
        }
        assert_eq!(first_broken_link(&log), None);
        log[2].entry.allowed = false;
        assert_eq!(first_broken_link(&log), Some(3));
    }

    fn chain(n: u64) -> Vec<AccessLogEntry> {
        let mut log = Vec::new();
        let mut prev = B256::ZERO;
        for seq in 1..=n {
            let e = AccessLogEntry::link(seq, entry(seq), prev);
            prev = e.hash;
            log.push(e);
        }
        log
    }

    /// What a cache reports for `log` given `anchor`, walking as a cache does.
    fn verify(log: &[AccessLogEntry], anchor: Option<&AuditAnchor>) -> Option<u64> {
        let walked = LogVerification {
            entries: log.len() as u64,
            first_broken: first_broken_link(log),
        };
        let hash = anchor.and_then(|a| log.iter().find(|e| e.seq == a.last_seq).map(|e| e.hash));
        walked.verify_against_anchor(hash, anchor).first_broken
    }

    fn anchor_of(log: &[AccessLogEntry], last_seq: u64) -> AuditAnchor {
        AuditAnchor {
            digest: log[usize::try_from(last_seq).unwrap() - 1].hash,
            last_seq,
            anchored_at: Timestamp(1_800_000_000),
        }
    }

    #[test]
    fn an_anchor_catches_a_relinked_edit_and_a_deleted_tail() {
        let log = chain(8);
        let anchor = anchor_of(&log, 5);
        assert_eq!(verify(&log, None), None);
        assert_eq!(verify(&log, Some(&anchor)), None, "the honest log holds");

        // Edit entry 3 and relink everything after it: the chain alone
        // looks intact, the anchor does not.
        let mut relinked = chain(2);
        let mut prev = relinked[1].hash;
        for seq in 3..=8 {
            let mut e = entry(seq);
            if seq == 3 {
                e.allowed = false;
            }
            let linked = AccessLogEntry::link(seq, e, prev);
            prev = linked.hash;
            relinked.push(linked);
        }
        assert_eq!(verify(&relinked, None), None);
        assert_eq!(verify(&relinked, Some(&anchor)), Some(5));

        // Delete the tail from 4 on: the first missing seq is reported.
        assert_eq!(verify(&log[..3], None), None);
        assert_eq!(verify(&log[..3], Some(&anchor)), Some(4));
        assert_eq!(verify(&[], Some(&anchor)), Some(1));
        // A tail beyond the anchor may go without the anchor noticing.
        assert_eq!(verify(&log[..5], Some(&anchor)), None);
    }

    #[test]
    fn an_anchor_never_hides_an_earlier_break() {
        let mut log = chain(8);
        let anchor = anchor_of(&log, 5);
        log[1].entry.allowed = false;
        assert_eq!(
            verify(&log, Some(&anchor)),
            Some(2),
            "break below the anchor"
        );
        let mut log = chain(8);
        log[6].entry.allowed = false;
        assert_eq!(
            verify(&log, Some(&anchor)),
            Some(7),
            "break above a holding anchor"
        );
        let wrong = AuditAnchor {
            digest: B256::repeat_byte(1),
            ..anchor
        };
        assert_eq!(
            verify(&log, Some(&wrong)),
            Some(5),
            "the anchor fails first"
        );
        let empty = AuditAnchor {
            last_seq: 0,
            ..wrong
        };
        assert_eq!(
            verify(&chain(3), Some(&empty)),
            None,
            "seq 0 covers nothing"
        );
    }

    #[test]
    fn grants_expire_and_revoke() {
        let g = AccessGrant {
            patient: HhNumber::new(555_555).unwrap(),
            grantee: HhNumber::new(112_233).unwrap(),
            granted_at: Timestamp(10),
            expires_at: Some(Timestamp(20)),
            revoked_at: None,
        };
        assert!(g.is_active(Timestamp(19)));
        assert!(!g.is_active(Timestamp(20)));
        let revoked = AccessGrant {
            revoked_at: Some(Timestamp(15)),
            expires_at: None,
            ..g
        };
        assert!(!revoked.is_active(Timestamp(16)));
    }
}
