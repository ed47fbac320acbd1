//! Drift verification: the chain read at one pinned block through the bulk
//! reads, compared field by field with the cache, a page at a time.
//!
//! Each page of the chain (in its enumeration order) is looked up in the
//! cache by its keys with one batch read, which finds what is missing and
//! what is stale. Rows the cache has and the chain lacks (extras) need the
//! other direction: the chain's keys are kept, sorted, and the cache's keys
//! walked in key order against them. That key set is the one thing held
//! beyond a page: 4 bytes per profile, 16 per record and 8 per grant, about
//! 2 MB for 10,000 profiles, 100,000 records and 50,000 grants. The walk
//! is skipped when the cache's counts show every cached row was matched.
//!
//! Requests: the checkpoint's block, five counts, the anchor, and the bulk
//! reads of `page_size` entities each, which the EVM adapter splits into
//! calls of at most 150 profiles, 250 records or 1,000 grants (pages of the
//! largest values stay within the nodes' `eth_call` gas caps): 490 requests
//! for 10,000 profiles, 100,000 records and 10,000 grants, 0.0041 per
//! entity (`benches/drift.rs`). Up to `pages_in_flight` chain pages are
//! read ahead while the current one is compared.

use std::{collections::BTreeMap, future::Future};

use futures::{StreamExt as _, stream};
use healthledger_core::{
    AccessGrant, BlockRef, CacheResult, HhNumber, LedgerResult, MedicalRecord, Profile, ReadAt,
    RecordId, Role,
};
use serde::Serialize;

use super::report::{ChainCounts, ChainValue, DriftReport, EntityKey, FieldDiff, StaleEntry};
use crate::{Error, Result, SyncEngine};

/// Cache keys read per page of the extras walk (cache-only reads).
const KEY_PAGE: u64 = 5_000;

/// A chain entity the comparison handles alike.
pub(crate) trait Entity: Serialize + PartialEq + Clone {
    /// Its key (ordered as the cache's key walk orders it).
    type Key: Ord + Copy;
    fn key(&self) -> Self::Key;
    fn entity_key(key: Self::Key) -> EntityKey;
    fn into_value(self) -> ChainValue;
}

impl Entity for Profile {
    type Key = HhNumber;
    fn key(&self) -> HhNumber {
        self.hh()
    }
    fn entity_key(hh: HhNumber) -> EntityKey {
        EntityKey::Profile { hh }
    }
    fn into_value(self) -> ChainValue {
        ChainValue::Profile(self)
    }
}

impl Entity for MedicalRecord {
    type Key = RecordId;
    fn key(&self) -> RecordId {
        self.id
    }
    fn entity_key(id: RecordId) -> EntityKey {
        EntityKey::Record { id }
    }
    fn into_value(self) -> ChainValue {
        ChainValue::Record(self)
    }
}

impl Entity for AccessGrant {
    type Key = (HhNumber, HhNumber);
    fn key(&self) -> (HhNumber, HhNumber) {
        (self.patient, self.grantee)
    }
    fn entity_key((patient, grantee): (HhNumber, HhNumber)) -> EntityKey {
        EntityKey::Grant { patient, grantee }
    }
    fn into_value(self) -> ChainValue {
        ChainValue::Grant(self)
    }
}

/// What the comparison of one kind of entity accumulates.
struct Side<K> {
    /// Every chain key seen, for the extras walk.
    keys: Vec<K>,
    /// How many chain entities the cache had (equal or stale).
    matched: u64,
}

impl<K> Default for Side<K> {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            matched: 0,
        }
    }
}

impl SyncEngine {
    /// Compares the chain with the cache at the cache's checkpoint (so a
    /// cache that is merely behind shows no drift), or at the head when the
    /// cache has none. A checkpoint that is no longer canonical cannot be
    /// compared: sync first.
    pub async fn verify_drift(&self) -> Result<DriftReport> {
        let at = match self.cache.checkpoint().await? {
            Some(cp) => match self.ledger.block(cp.number).await? {
                Some(b) if b == cp => cp,
                _ => {
                    return Err(Error::NotComparable(format!(
                        "the cache's checkpoint {} ({}) is not on the canonical chain; sync first",
                        cp.number, cp.hash
                    )));
                }
            },
            None => self.ledger.head().await?,
        };
        self.verify_drift_at(&at).await
    }

    /// Compares the chain at block `at` with the cache: every profile,
    /// record and grant and the audit anchor, field by field.
    pub async fn verify_drift_at(&self, at: &BlockRef) -> Result<DriftReport> {
        let cache_checkpoint = self.cache.checkpoint().await?;
        let pin = ReadAt::Block(*at);
        let l = &self.ledger;
        let c = &self.cache;
        let mut report = DriftReport {
            at: *at,
            cache_checkpoint,
            chain: ChainCounts::default(),
            missing: Vec::new(),
            stale: Vec::new(),
            extra: Vec::new(),
        };

        let mut profiles = Side::default();
        for role in Role::ALL {
            let count = l.registered_count(role, pin).await?;
            report.chain.profiles += count;
            self.compare_pages(
                count,
                |o, n| l.profiles(role, o, n, pin),
                |keys| async move { c.profiles_by_hh(&keys).await },
                &mut profiles,
                &mut report,
            )
            .await?;
        }
        let mut records = Side::default();
        report.chain.records = l.record_count(pin).await?;
        self.compare_pages(
            report.chain.records,
            |o, n| l.records(o, n, pin),
            |keys| async move { c.records_by_id(&keys).await },
            &mut records,
            &mut report,
        )
        .await?;
        let mut grants = Side::default();
        report.chain.grants = l.grant_count(pin).await?;
        self.compare_pages(
            report.chain.grants,
            |o, n| l.grants(o, n, pin),
            |keys| async move { c.grants_by_pair(&keys).await },
            &mut grants,
            &mut report,
        )
        .await?;

        let chain_anchor = l.latest_audit_anchor(pin).await?;
        report.chain.anchor = chain_anchor.is_some();
        match (chain_anchor, c.latest_audit_anchor().await?) {
            (Some(on_chain), None) => report.missing.push(ChainValue::Anchor(on_chain)),
            (Some(on_chain), Some(cached)) => {
                if let Some(s) = stale(&on_chain, &cached, ChainValue::Anchor(on_chain)) {
                    report.stale.push(s);
                }
            }
            (None, Some(_)) => report.extra.push(EntityKey::Anchor),
            (None, None) => {}
        }

        let counts = c.counts().await?;
        let cached_profiles = counts.patients + counts.doctors + counts.diagnostic_centers;
        if cached_profiles > profiles.matched {
            extras::<Profile, _, _>(profiles.keys, &mut report, |after| {
                c.profile_keys(after, KEY_PAGE)
            })
            .await?;
        }
        if counts.records > records.matched {
            extras::<MedicalRecord, _, _>(records.keys, &mut report, |after| {
                c.record_keys(after, KEY_PAGE)
            })
            .await?;
        }
        if counts.grants > grants.matched {
            extras::<AccessGrant, _, _>(grants.keys, &mut report, |after| {
                c.grant_keys(after, KEY_PAGE)
            })
            .await?;
        }
        Ok(report)
    }

    /// Reads `count` chain entities a page at a time and compares each page
    /// with the cache's rows of its keys.
    async fn compare_pages<T, R, RFut, C, CFut>(
        &self,
        count: u64,
        read: R,
        cached: C,
        side: &mut Side<T::Key>,
        report: &mut DriftReport,
    ) -> Result<()>
    where
        T: Entity,
        R: Fn(u64, u64) -> RFut,
        RFut: Future<Output = LedgerResult<Vec<T>>>,
        C: Fn(Vec<T::Key>) -> CFut,
        CFut: Future<Output = CacheResult<Vec<T>>>,
    {
        let page = self.config.page_size.max(1);
        let offsets = (0..count.div_ceil(page)).map(|i| i * page);
        let mut pages = stream::iter(offsets)
            .map(|offset| {
                let want = page.min(count - offset);
                let fut = read(offset, want);
                async move { (offset, want, fut.await) }
            })
            .buffered(self.config.pages_in_flight.max(1));
        while let Some((offset, want, items)) = pages.next().await {
            let items = items?;
            if items.len() as u64 != want {
                return Err(Error::Inconsistent(format!(
                    "a page at offset {offset} held {} items, not {want}",
                    items.len()
                )));
            }
            let keys: Vec<T::Key> = items.iter().map(Entity::key).collect();
            let in_cache: BTreeMap<T::Key, T> = cached(keys.clone())
                .await?
                .into_iter()
                .map(|v| (v.key(), v))
                .collect();
            side.keys.extend(keys);
            for on_chain in items {
                match in_cache.get(&on_chain.key()) {
                    None => report.missing.push(on_chain.into_value()),
                    Some(c) => {
                        side.matched += 1;
                        if let Some(s) = stale(&on_chain, c, on_chain.clone().into_value()) {
                            report.stale.push(s);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Walks the cache's keys (`walk(after)` gives the page after a cursor)
/// and reports those the chain does not have.
async fn extras<T, W, WFut>(
    mut chain_keys: Vec<T::Key>,
    report: &mut DriftReport,
    walk: W,
) -> Result<()>
where
    T: Entity,
    W: Fn(Option<T::Key>) -> WFut,
    WFut: Future<Output = CacheResult<Vec<T::Key>>>,
{
    chain_keys.sort_unstable();
    let mut after = None;
    loop {
        let page = walk(after).await?;
        let Some(last) = page.last().copied() else {
            return Ok(());
        };
        report.extra.extend(
            page.into_iter()
                .filter(|k| chain_keys.binary_search(k).is_err())
                .map(T::entity_key),
        );
        after = Some(last);
    }
}

/// The entry for a cached value that differs from the chain's, if it does.
fn stale<T: Serialize + PartialEq>(
    on_chain: &T,
    cached: &T,
    chain: ChainValue,
) -> Option<StaleEntry> {
    if on_chain == cached {
        return None;
    }
    let mut fields = Vec::new();
    diff("", &to_json(on_chain), &to_json(cached), &mut fields);
    Some(StaleEntry { fields, chain })
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    // The domain types serialize to plain JSON (strings, numbers, maps):
    // this cannot fail for them.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The leaves that differ between two JSON values, by dotted path.
fn diff(
    path: &str,
    chain: &serde_json::Value,
    cache: &serde_json::Value,
    out: &mut Vec<FieldDiff>,
) {
    use serde_json::Value;
    if let (Value::Object(a), Value::Object(b)) = (chain, cache) {
        let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let sub = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let (x, y) = (
                a.get(name).unwrap_or(&Value::Null),
                b.get(name).unwrap_or(&Value::Null),
            );
            diff(&sub, x, y, out);
        }
    } else if chain != cache {
        out.push(FieldDiff {
            field: path.to_owned(),
            chain: chain.clone(),
            cache: cache.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_nested_fields_with_both_values() {
        let mut out = Vec::new();
        diff(
            "",
            &json!({"a": 1, "meta": {"x": "chain", "y": 2}, "only_chain": true}),
            &json!({"a": 1, "meta": {"x": "cache", "y": 2}}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                FieldDiff {
                    field: "meta.x".into(),
                    chain: json!("chain"),
                    cache: json!("cache"),
                },
                FieldDiff {
                    field: "only_chain".into(),
                    chain: json!(true),
                    cache: serde_json::Value::Null,
                },
            ]
        );
    }
}
