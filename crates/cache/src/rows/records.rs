//! Record index rows: reading, multi-row upserts and deleting.

use healthledger_core::{CacheResult, ChainSource, HhNumber, MedicalRecord, RecordId};
use sea_orm::{ConnectionTrait, QueryResult};

use super::source_of;
use crate::SqlCache;
use crate::apply::{RECORD_COLS, push_record};
use crate::convert::{get, hh_col, hh_of, parse, record_id_of, serial_key, ts_of};
use crate::dialect::{Rows, vals};
use crate::error::{Error, Result};

impl SqlCache {
    pub(crate) fn record_cols(&self) -> String {
        format!(
            "r.patient, r.serial_key, r.creator, r.cid, {}, r.created_at, r.block_number, r.tx_hash",
            self.json_out("r.metadata")
        )
    }

    pub(crate) fn record_of_row(&self, row: &QueryResult) -> Result<(MedicalRecord, ChainSource)> {
        let t = "records";
        let id = record_id_of(t, get(row, t, "patient")?, get(row, t, "serial_key")?)?;
        let meta: String = get(row, t, "metadata")?;
        let meta = serde_json::from_str(&meta)
            .map_err(|e| Error::corrupt(t, format!("metadata of {id}: {e}")))?;
        let record = MedicalRecord {
            id,
            patient: id.patient(),
            creator: hh_of(t, get(row, t, "creator")?)?,
            cid: parse(t, get::<String>(row, t, "cid")?)?,
            meta,
            created_at: ts_of(get(row, t, "created_at")?),
        };
        Ok((record, source_of(row, t, "block_number", "tx_hash")?))
    }

    pub(crate) async fn load_record<C: ConnectionTrait>(
        &self,
        c: &C,
        id: RecordId,
    ) -> Result<Option<(MedicalRecord, ChainSource)>> {
        let sql = format!(
            "SELECT {} FROM records r WHERE r.patient = $1 AND r.serial_key = $2",
            self.record_cols()
        );
        self.one(
            c,
            "reading a record",
            &sql,
            vals![hh_col(id.patient()), serial_key(id.serial())],
        )
        .await?
        .map(|row| self.record_of_row(&row))
        .transpose()
    }

    pub(crate) async fn records_where(
        &self,
        filter: &str,
        value: HhNumber,
    ) -> Result<Vec<MedicalRecord>> {
        let sql = format!(
            "SELECT {} FROM records r WHERE {filter} = $1
             ORDER BY r.test_date DESC, r.patient, r.serial_key",
            self.record_cols()
        );
        self.all(&self.read, "listing records", &sql, vals![hh_col(value)])
            .await?
            .iter()
            .map(|row| self.record_of_row(row).map(|(r, _)| r))
            .collect()
    }

    pub(crate) async fn upsert_record_in<C: ConnectionTrait>(
        &self,
        c: &C,
        r: &MedicalRecord,
        source: ChainSource,
    ) -> CacheResult<()> {
        let mut rows = Rows::with_capacity(RECORD_COLS, 1);
        push_record(&mut rows, r, source)?;
        self.upsert_records_bulk(c, rows).await?;
        Ok(())
    }

    pub(crate) async fn delete_record<C: ConnectionTrait>(
        &self,
        c: &C,
        id: RecordId,
    ) -> Result<()> {
        self.exec(
            c,
            "deleting a record",
            "DELETE FROM records WHERE patient = $1 AND serial_key = $2",
            vals![hh_col(id.patient()), serial_key(id.serial())],
        )
        .await
        .map(drop)
    }
}
