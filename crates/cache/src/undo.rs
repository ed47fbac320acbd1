//! The undo log: before-images of the rows non-final blocks changed, and
//! rolling back by putting them back, newest first.

use healthledger_core::{
    AccessGrant, AuditAnchor, CacheError, CacheResult, ChainSource, HhNumber, MedicalRecord,
    Profile, RecordId,
};
use sea_orm::{DatabaseTransaction, Value};

use crate::SqlCache;
use crate::convert::{clamp, get};
use crate::dialect::vals;
use crate::dialect::{Col, Rows};
use crate::error::{Error, Result};
use crate::journal::block_of;

use serde::{Deserialize, Serialize};

/// The value a block's event replaced: the before-image the undo log keeps
/// (as JSON) so that a rollback can put it back. `None` means there was no
/// row, so undoing deletes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub(crate) enum Before {
    Profile {
        hh: HhNumber,
        row: Option<(Profile, ChainSource)>,
    },
    Record {
        id: RecordId,
        row: Option<(MedicalRecord, ChainSource)>,
    },
    Grant {
        patient: HhNumber,
        grantee: HhNumber,
        row: Option<(AccessGrant, ChainSource)>,
    },
    Anchor {
        row: Option<(AuditAnchor, ChainSource)>,
    },
}

impl SqlCache {
    /// Appends blocks' before-images to the undo log, in order
    /// ([`SqlCache::insert_rows`]).
    pub(crate) async fn insert_undo(
        &self,
        tx: &DatabaseTransaction,
        blocks: &[(i64, Vec<Before>)],
    ) -> CacheResult<()> {
        const COLS: &[(&str, Col)] = &[
            ("block_number", Col::Int),
            ("step", Col::Int),
            ("image", Col::Json),
        ];
        let mut rows = Rows::with_capacity(COLS, blocks.iter().map(|(_, b)| b.len()).sum());
        for (number, befores) in blocks {
            for (step, before) in (0i64..).zip(befores) {
                rows.push([
                    Value::from(*number),
                    Value::from(step),
                    Value::from(serde_json::to_string(before).map_err(CacheError::other)?),
                ]);
            }
        }
        self.insert_rows(tx, "writing the undo log", "undo_log", None, rows)
            .await?;
        Ok(())
    }

    /// Puts a before-image back.
    pub(crate) async fn restore(&self, tx: &DatabaseTransaction, before: Before) -> Result<()> {
        match before {
            Before::Profile { hh, row: None } => self.delete_profile(tx, hh).await,
            Before::Profile {
                row: Some((p, s)), ..
            } => match self.upsert_profile_row(tx, &p, s).await? {
                true => Ok(()),
                false => Err(Error::corrupt(
                    "undo_log",
                    format!("restoring profile {}: cached with another role", p.hh()),
                )),
            },
            Before::Record { id, row: None } => self.delete_record(tx, id).await,
            Before::Record {
                row: Some((r, s)), ..
            } => self
                .upsert_record_in(tx, &r, s)
                .await
                .map_err(|e| Error::corrupt("undo_log", format!("restoring record {}: {e}", r.id))),
            Before::Grant {
                patient,
                grantee,
                row: None,
            } => self.delete_grant(tx, patient, grantee).await,
            Before::Grant {
                row: Some((g, s)), ..
            } => self.upsert_grant_in(tx, &g, s).await,
            Before::Anchor { row: None } => self
                .exec(
                    tx,
                    "deleting the audit anchor",
                    "DELETE FROM audit_anchor",
                    vec![],
                )
                .await
                .map(drop),
            Before::Anchor { row: Some((a, s)) } => self.upsert_anchor_in(tx, &a, s).await,
        }
    }

    pub(crate) async fn rollback_in(
        &self,
        tx: &DatabaseTransaction,
        number: u64,
    ) -> CacheResult<()> {
        self.lock_chain(tx).await?;
        let state = self.read_sync_state(tx).await?;
        if let Some(p) = state.pruned.filter(|p| p.number > number) {
            return Err(CacheError::Conflict(format!(
                "cannot roll back to {number}: block {} is final (pruned, or applied at or below the finalized height)",
                p.number
            )));
        }
        let target = clamp(number);
        let blocks = self
            .all(
                tx,
                "reading the journal",
                "SELECT number FROM journal WHERE number > $1 ORDER BY number DESC",
                vals![target],
            )
            .await?;
        let images_sql = format!(
            "SELECT {} FROM undo_log WHERE block_number = $1 ORDER BY step DESC",
            self.json_out("image")
        );
        for row in blocks {
            let n: i64 = get(&row, "journal", "number")?;
            for img in self
                .all(tx, "reading the undo log", &images_sql, vals![n])
                .await?
            {
                let image: String = get(&img, "undo_log", "image")?;
                let before: Before = serde_json::from_str(&image)
                    .map_err(|e| Error::corrupt("undo_log", format!("block {n}: {e}")))?;
                self.restore(tx, before).await?;
            }
            self.exec(
                tx,
                "dropping undo data",
                "DELETE FROM undo_log WHERE block_number = $1",
                vals![n],
            )
            .await?;
            self.exec(
                tx,
                "dropping a journal entry",
                "DELETE FROM journal WHERE number = $1",
                vals![n],
            )
            .await?;
        }
        let top = self
            .one(
                tx,
                "reading the journal",
                "SELECT number, hash, parent_hash, block_time FROM journal ORDER BY number DESC LIMIT 1",
                vec![],
            )
            .await?
            .map(|row| block_of(&row, "journal"))
            .transpose()?
            .flatten();
        self.set_checkpoint(tx, top.or(state.pruned)).await?;
        self.delete_quarantined_above(tx, number).await?;
        Ok(())
    }
}
