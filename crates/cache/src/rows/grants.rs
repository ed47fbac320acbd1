//! Grant rows: reading, upserting, deleting and the grantee-side listing.

use healthledger_core::{AccessGrant, CacheResult, ChainSource, HhNumber, Timestamp};
use sea_orm::{ConnectionTrait, QueryResult};

use super::source_of;
use crate::SqlCache;
use crate::convert::{get, hash_col, hh_col, hh_of, int, ts_col, ts_of};
use crate::dialect::vals;
use crate::error::Result;

impl SqlCache {
    pub(crate) fn grant_of_row(row: &QueryResult) -> Result<(AccessGrant, ChainSource)> {
        let t = "grants";
        let opt_ts = |col: &str| -> Result<Option<Timestamp>> {
            Ok(get::<Option<i64>>(row, t, col)?.map(ts_of))
        };
        let grant = AccessGrant {
            patient: hh_of(t, get(row, t, "patient")?)?,
            grantee: hh_of(t, get(row, t, "grantee")?)?,
            granted_at: ts_of(get(row, t, "granted_at")?),
            expires_at: opt_ts("expires_at")?,
            revoked_at: opt_ts("revoked_at")?,
        };
        Ok((grant, source_of(row, t, "source_block", "source_tx")?))
    }

    pub(crate) async fn load_grant<C: ConnectionTrait>(
        &self,
        c: &C,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> Result<Option<(AccessGrant, ChainSource)>> {
        self.one(
            c,
            "reading a grant",
            "SELECT * FROM grants WHERE patient = $1 AND grantee = $2",
            vals![hh_col(patient), hh_col(grantee)],
        )
        .await?
        .map(|row| Self::grant_of_row(&row))
        .transpose()
    }

    pub(crate) async fn upsert_grant_in<C: ConnectionTrait>(
        &self,
        c: &C,
        g: &AccessGrant,
        source: ChainSource,
    ) -> Result<()> {
        self.exec(
            c,
            "writing a grant",
            "INSERT INTO grants (patient, grantee, granted_at, expires_at, revoked_at,
                source_block, source_tx)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (patient, grantee) DO UPDATE SET granted_at = excluded.granted_at,
                expires_at = excluded.expires_at, revoked_at = excluded.revoked_at,
                source_block = excluded.source_block, source_tx = excluded.source_tx",
            vals![
                hh_col(g.patient),
                hh_col(g.grantee),
                ts_col(g.granted_at),
                g.expires_at.map(ts_col),
                g.revoked_at.map(ts_col),
                int("block number", source.block_number)?,
                hash_col(source.tx_hash)
            ],
        )
        .await
        .map(drop)
    }

    pub(crate) async fn delete_grant<C: ConnectionTrait>(
        &self,
        c: &C,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> Result<()> {
        self.exec(
            c,
            "deleting a grant",
            "DELETE FROM grants WHERE patient = $1 AND grantee = $2",
            vals![hh_col(patient), hh_col(grantee)],
        )
        .await
        .map(drop)
    }

    /// The grants a patient made, by grantee ([`CachePort::grants_of_patient`](healthledger_core::CachePort::grants_of_patient)).
    pub(crate) async fn grants_of(&self, patient: HhNumber) -> CacheResult<Vec<AccessGrant>> {
        self.all(
            &self.read,
            "listing grants",
            "SELECT * FROM grants WHERE patient = $1 ORDER BY grantee",
            vals![hh_col(patient)],
        )
        .await?
        .iter()
        .map(|row| Self::grant_of_row(row).map(|(g, _)| g))
        .collect::<Result<Vec<_>>>()
        .map_err(Into::into)
    }

    /// Patients with a grant to `doctor` active at `now` ([`CachePort::patients_of_doctor`](healthledger_core::CachePort::patients_of_doctor)).
    pub(crate) async fn patients_granting(
        &self,
        doctor: HhNumber,
        now: Timestamp,
    ) -> CacheResult<Vec<HhNumber>> {
        self.all(
            &self.read,
            "listing a doctor's patients",
            "SELECT patient FROM grants
             WHERE grantee = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)
             ORDER BY patient",
            vals![hh_col(doctor), ts_col(now)],
        )
        .await?
        .iter()
        .map(|row| hh_of("grants", get(row, "grants", "patient")?))
        .collect::<Result<Vec<_>>>()
        .map_err(Into::into)
    }
}
