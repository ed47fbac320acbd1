//! Drift verification: the chain read at one pinned block through the bulk
//! reads, compared field by field with the cache, a page at a time.
//!
//! Each page of the chain (in its enumeration order) is looked up in the
//! cache by its keys with one batch read, which finds what is missing and
//! what is stale, holding one page of each side (and the pages read
//! ahead). Rows the cache has and the chain lacks (extras) need the other
//! direction, and only when the cache's counts show more rows than the pass
//! matched: then that kind's chain keys are read again, kept sorted, and
//! the cache's keys walked in key order against them. That key set is the
//! one thing ever held beyond a page: 4 bytes per profile, 16 per record
//! and 8 per grant, about 2 MB for 10,000 profiles, 100,000 records and
//! 10,000 grants.
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

        // Each pass counts the chain entities the cache has (equal or
        // stale); a cache holding more rows than that has extras.
        let mut role_counts = Vec::new();
        let mut profiles = 0;
        for role in Role::ALL {
            let count = l.registered_count(role, pin).await?;
            report.chain.profiles += count;
            role_counts.push((role, count));
            profiles += self
                .compare_pages(
                    count,
                    |o, n| l.profiles(role, o, n, pin),
                    |keys| async move { c.profiles_by_hh(&keys).await },
                    &mut report,
                )
                .await?;
        }
        let read_records = |o, n| l.records(o, n, pin);
        report.chain.records = l.record_count(pin).await?;
        let records = self
            .compare_pages(
                report.chain.records,
                read_records,
                |keys| async move { c.records_by_id(&keys).await },
                &mut report,
            )
            .await?;
        let read_grants = |o, n| l.grants(o, n, pin);
        report.chain.grants = l.grant_count(pin).await?;
        let grants = self
            .compare_pages(
                report.chain.grants,
                read_grants,
                |keys| async move { c.grants_by_pair(&keys).await },
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
        if cached_profiles > profiles {
            let mut keys = Vec::new();
            for (role, count) in role_counts {
                keys.extend(
                    self.chain_keys(count, |o, n| l.profiles(role, o, n, pin))
                        .await?,
                );
            }
            extras::<Profile, _, _>(keys, &mut report, |after| c.profile_keys(after, KEY_PAGE))
                .await?;
        }
        if counts.records > records {
            let keys = self.chain_keys(report.chain.records, read_records).await?;
            extras::<MedicalRecord, _, _>(keys, &mut report, |after| {
                c.record_keys(after, KEY_PAGE)
            })
            .await?;
        }
        if counts.grants > grants {
            let keys = self.chain_keys(report.chain.grants, read_grants).await?;
            extras::<AccessGrant, _, _>(keys, &mut report, |after| c.grant_keys(after, KEY_PAGE))
                .await?;
        }
        Ok(report)
    }

    /// Reads `count` chain entities a page at a time and compares each page
    /// with the cache's rows of its keys; returns how many the cache has.
    async fn compare_pages<T, R, RFut, C, CFut>(
        &self,
        count: u64,
        read: R,
        cached: C,
        report: &mut DriftReport,
    ) -> Result<u64>
    where
        T: Entity,
        R: Fn(u64, u64) -> RFut,
        RFut: Future<Output = LedgerResult<Vec<T>>>,
        C: Fn(Vec<T::Key>) -> CFut,
        CFut: Future<Output = CacheResult<Vec<T>>>,
    {
        let mut matched = 0;
        let mut pages = self.chain_pages(count, read);
        while let Some(items) = pages.next().await {
            let items = items?;
            let keys: Vec<T::Key> = items.iter().map(Entity::key).collect();
            let in_cache: BTreeMap<T::Key, T> = cached(keys)
                .await?
                .into_iter()
                .map(|v| (v.key(), v))
                .collect();
            for on_chain in items {
                match in_cache.get(&on_chain.key()) {
                    None => report.missing.push(on_chain.into_value()),
                    Some(c) => {
                        matched += 1;
                        if let Some(s) = stale(&on_chain, c, on_chain.clone().into_value()) {
                            report.stale.push(s);
                        }
                    }
                }
            }
        }
        Ok(matched)
    }

    /// The keys of `count` chain entities, read again a page at a time:
    /// only a cache with extras needs them.
    async fn chain_keys<T, R, RFut>(&self, count: u64, read: R) -> Result<Vec<T::Key>>
    where
        T: Entity,
        R: Fn(u64, u64) -> RFut,
        RFut: Future<Output = LedgerResult<Vec<T>>>,
    {
        let mut keys = Vec::new();
        let mut pages = self.chain_pages(count, read);
        while let Some(items) = pages.next().await {
            keys.extend(items?.iter().map(Entity::key));
        }
        Ok(keys)
    }

    /// `count` chain entities in pages of `page_size`, `pages_in_flight`
    /// read ahead; a page shorter than asked is an error (the count and the
    /// pages were read at one block). Full sync collects the same stream.
    pub(crate) fn chain_pages<'a, T, R, RFut>(
        &self,
        count: u64,
        read: R,
    ) -> impl futures::Stream<Item = Result<Vec<T>>> + 'a
    where
        T: 'a,
        R: Fn(u64, u64) -> RFut + 'a,
        RFut: Future<Output = LedgerResult<Vec<T>>> + 'a,
    {
        let page = self.config.page_size.max(1);
        let offsets = (0..count.div_ceil(page)).map(move |i| i * page);
        stream::iter(offsets)
            .map(move |offset| {
                let want = page.min(count - offset);
                let fut = read(offset, want);
                async move {
                    let items = fut.await?;
                    if items.len() as u64 != want {
                        return Err(Error::Inconsistent(format!(
                            "a page at offset {offset} held {} items, not {want}",
                            items.len()
                        )));
                    }
                    Ok(items)
                }
            })
            .buffered(self.config.pages_in_flight.max(1))
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
