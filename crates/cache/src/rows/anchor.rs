//! The audit anchor row: the latest anchored access-log digest.

use healthledger_core::{AuditAnchor, ChainSource};
use sea_orm::ConnectionTrait;

use super::source_of;
use crate::SqlCache;
use crate::convert::{get, hash_col, hash_of, int, ts_col, ts_of, uint};
use crate::dialect::vals;
use crate::error::Result;

impl SqlCache {
    pub(crate) async fn load_anchor<C: ConnectionTrait>(
        &self,
        c: &C,
    ) -> Result<Option<(AuditAnchor, ChainSource)>> {
        let Some(row) = self
            .one(
                c,
                "reading the audit anchor",
                "SELECT * FROM audit_anchor WHERE id = 1",
                vec![],
            )
            .await?
        else {
            return Ok(None);
        };
        let t = "audit_anchor";
        let anchor = AuditAnchor {
            digest: hash_of(t, &get::<Vec<u8>>(&row, t, "digest")?)?,
            last_seq: uint(t, "seq", get(&row, t, "last_seq")?)?,
            anchored_at: ts_of(get(&row, t, "anchored_at")?),
        };
        Ok(Some((
            anchor,
            source_of(&row, t, "source_block", "source_tx")?,
        )))
    }

    pub(crate) async fn upsert_anchor_in<C: ConnectionTrait>(
        &self,
        c: &C,
        a: &AuditAnchor,
        source: ChainSource,
    ) -> Result<()> {
        self.exec(
            c,
            "writing the audit anchor",
            "INSERT INTO audit_anchor (id, digest, last_seq, anchored_at, source_block, source_tx)
             VALUES (1, $1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET digest = excluded.digest,
                last_seq = excluded.last_seq, anchored_at = excluded.anchored_at,
                source_block = excluded.source_block, source_tx = excluded.source_tx",
            vals![
                hash_col(a.digest),
                int("access-log seq", a.last_seq)?,
                ts_col(a.anchored_at),
                int("block number", source.block_number)?,
                hash_col(source.tx_hash)
            ],
        )
        .await
        .map(drop)
    }
}
