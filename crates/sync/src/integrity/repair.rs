//! Repair: the drift a [`DriftReport`] lists, and nothing else, fixed
//! through the upserts and removals targeted sync uses.
//!
//! Each reported entity is read from the cache again first (batch
//! lookups), and written only if it still differs from the chain's value
//! (or, for an extra, is still there): so a repair run twice changes
//! nothing the second time, and one run after the drift was fixed some
//! other way (a sync, a first repair) reports it unchanged. Removals come
//! first, so that a wallet or an HH number an extra row holds is free for
//! the chain's row; a profile whose cached role differs from the chain's is
//! removed and written anew (the cache refuses to change a role in place).
//! DB-only data is never written: removals of profiles leave extras,
//! notifications and sessions in place, and the access log is not touched.

use std::collections::BTreeMap;

use healthledger_core::{
    AccessGrant, AuditAnchor, ChainSource, HhNumber, MedicalRecord, Profile, RecordId,
};

use super::report::{ChainValue, DriftReport, EntityKey, RepairReport};
use crate::{Error, Result, SyncEngine, targeted::state_read};

/// The chain values a report asks to write, by kind.
#[derive(Default)]
struct Writes {
    profiles: Vec<Profile>,
    records: Vec<MedicalRecord>,
    grants: Vec<AccessGrant>,
    anchor: Option<AuditAnchor>,
}

impl SyncEngine {
    /// Fixes exactly the drift in `report` (see the module docs). Refused
    /// with [`Error::NotComparable`] when the cache's checkpoint is no
    /// longer the one the report was made at: the cache moved, so the
    /// report may be out of date; verify again.
    pub async fn repair(&self, report: &DriftReport) -> Result<RepairReport> {
        let checkpoint = self.cache.checkpoint().await?;
        if checkpoint != report.cache_checkpoint {
            return Err(Error::NotComparable(format!(
                "the cache's checkpoint moved from {} to {} since the drift report; verify again",
                describe(report.cache_checkpoint.map(|b| b.number)),
                describe(checkpoint.map(|b| b.number))
            )));
        }
        let source = state_read(&report.at);
        let mut done = RepairReport::default();
        self.remove_extras(&report.extra, &mut done).await?;

        let mut writes = Writes::default();
        for value in report
            .missing
            .iter()
            .chain(report.stale.iter().map(|s| &s.chain))
        {
            match value {
                ChainValue::Profile(p) => writes.profiles.push(p.clone()),
                ChainValue::Record(r) => writes.records.push(r.clone()),
                ChainValue::Grant(g) => writes.grants.push(g.clone()),
                ChainValue::Anchor(a) => writes.anchor = Some(*a),
            }
        }
        self.write_profiles(&writes.profiles, source, &mut done)
            .await?;
        let ids: Vec<RecordId> = writes.records.iter().map(|r| r.id).collect();
        let cached = by_key(self.cache.records_by_id(&ids).await?, |r| r.id);
        for r in &writes.records {
            if cached.get(&r.id) == Some(r) {
                done.unchanged += 1;
            } else {
                self.cache.upsert_record(r, source).await?;
                done.upserted += 1;
            }
        }
        let pairs: Vec<_> = writes
            .grants
            .iter()
            .map(|g| (g.patient, g.grantee))
            .collect();
        let cached = by_key(self.cache.grants_by_pair(&pairs).await?, |g| {
            (g.patient, g.grantee)
        });
        for g in &writes.grants {
            if cached.get(&(g.patient, g.grantee)) == Some(g) {
                done.unchanged += 1;
            } else {
                self.cache.upsert_grant(g, source).await?;
                done.upserted += 1;
            }
        }
        if let Some(a) = writes.anchor {
            if self.cache.latest_audit_anchor().await? == Some(a) {
                done.unchanged += 1;
            } else {
                self.cache.upsert_audit_anchor(&a, source).await?;
                done.upserted += 1;
            }
        }
        Ok(done)
    }

    async fn remove_extras(&self, extra: &[EntityKey], done: &mut RepairReport) -> Result<()> {
        for key in extra {
            let removed = match *key {
                EntityKey::Grant { patient, grantee } => {
                    self.cache.remove_grant(patient, grantee).await?
                }
                EntityKey::Record { id } => self.cache.remove_record(id).await?,
                EntityKey::Profile { hh } => self.cache.remove_profile(hh).await?,
                EntityKey::Anchor => self.cache.remove_audit_anchor().await?,
            };
            if removed {
                done.removed += 1;
            } else {
                done.unchanged += 1;
            }
        }
        Ok(())
    }

    async fn write_profiles(
        &self,
        profiles: &[Profile],
        source: ChainSource,
        done: &mut RepairReport,
    ) -> Result<()> {
        let hhs: Vec<HhNumber> = profiles.iter().map(Profile::hh).collect();
        let cached = by_key(self.cache.profiles_by_hh(&hhs).await?, Profile::hh);
        for p in profiles {
            match cached.get(&p.hh()) {
                Some(c) if c == p => {
                    done.unchanged += 1;
                    continue;
                }
                Some(c) if c.role() != p.role() => {
                    self.cache.remove_profile(p.hh()).await?;
                }
                _ => {}
            }
            self.cache.upsert_profile(p, source).await?;
            done.upserted += 1;
        }
        Ok(())
    }
}

fn by_key<K: Ord, T>(values: Vec<T>, key: impl Fn(&T) -> K) -> BTreeMap<K, T> {
    values.into_iter().map(|v| (key(&v), v)).collect()
}

fn describe(n: Option<u64>) -> String {
    n.map_or_else(|| "none".to_owned(), |n| format!("block {n}"))
}
