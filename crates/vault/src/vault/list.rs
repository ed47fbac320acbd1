//! Listing: the sealed objects of the content store in CID order, a page
//! at a time.

use std::collections::BinaryHeap;

use futures::StreamExt;
use healthledger_core::{Cid, StoredObject, Timestamp};
use object_store::ObjectMeta;

use super::Vault;
use crate::error::{Error, Result};

/// A listed object, ordered by its CID's string (the order of the page).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    name: String,
    cid: Cid,
    stored_size: u64,
    sealed_at: Timestamp,
}

impl Vault {
    /// The page of [`healthledger_core::VaultPort::objects`]: the objects
    /// under `objects/` whose CID strings sort after `after`'s, the first
    /// `limit` of them.
    ///
    /// object_store promises no order for a listing, so the smallest
    /// `limit` names are kept in a bounded heap. Stores that list in
    /// lexicographic key order (S3, GCS, Azure and memory, where the
    /// builder knows the scheme) stop after `limit` objects; others (local
    /// files) are listed to the end of the prefix for every page.
    pub(super) async fn list_objects(
        &self,
        after: Option<Cid>,
        limit: usize,
    ) -> Result<Vec<StoredObject>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.content.root.clone().join("objects");
        let mut listing = match after {
            // Keys share the prefix, so key order is CID string order.
            Some(cid) => self
                .store()
                .list_with_offset(Some(&prefix), &self.object_location(&cid)),
            None => self.store().list(Some(&prefix)),
        };
        let mut kept: BinaryHeap<Listed> = BinaryHeap::with_capacity(limit.min(4096) + 1);
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::store("list", &prefix, e))?;
            let Some(listed) = self.listed(&meta) else {
                continue;
            };
            kept.push(listed);
            if kept.len() > limit {
                kept.pop();
            }
            if self.sorted_listing && kept.len() == limit {
                break;
            }
        }
        Ok(kept
            .into_sorted_vec()
            .into_iter()
            .map(|l| StoredObject {
                cid: l.cid,
                stored_size: l.stored_size,
                sealed_at: l.sealed_at,
            })
            .collect())
    }

    /// `meta` as a listed object, if it is one: a direct child of
    /// `objects/` named by a CID. Anything else there was not put by a vault
    /// and is skipped with a warning.
    fn listed(&self, meta: &ObjectMeta) -> Option<Listed> {
        let name = meta.location.filename()?;
        let cid = match name.parse::<Cid>() {
            Ok(cid) if self.object_location(&cid) == meta.location => cid,
            _ => {
                tracing::warn!(path = %meta.location, "not a sealed object; not listed");
                return None;
            }
        };
        Some(Listed {
            name: name.to_owned(),
            cid,
            stored_size: meta.size,
            sealed_at: Timestamp(u64::try_from(meta.last_modified.timestamp()).unwrap_or(0)),
        })
    }
}
