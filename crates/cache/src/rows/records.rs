//! Record index rows: reading, multi-row upserts and deleting.

use healthledger_core::{CacheError, CacheResult, ChainSource, HhNumber, MedicalRecord, RecordId};
use sea_orm::{ConnectionTrait, QueryResult};

use super::source_of;
use crate::SqlCache;
use crate::convert::{
    date_col, get, hash_col, hh_col, hh_of, int, parse, record_id_of, serial_key, ts_col, ts_of,
    words_doc,
};
use crate::dialect::{Params, vals};
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

    /// Pushes one record's column values and returns its `VALUES` tuple.
    pub(crate) fn record_values(
        &self,
        p: &mut Params,
        r: &MedicalRecord,
        source: ChainSource,
    ) -> CacheResult<String> {
        if r.patient != r.id.patient() {
            return Err(CacheError::Invalid(format!(
                "record {} names patient {}, but its id belongs to patient {}",
                r.id,
                r.patient,
                r.id.patient()
            )));
        }
        let meta = serde_json::to_string(&r.meta).map_err(CacheError::other)?;
        let cols = [
            p.push(r.id.to_string()),
            p.push(hh_col(r.id.patient())),
            p.push(serial_key(r.id.serial())),
            p.push(hh_col(r.creator)),
            p.push(r.cid.to_string()),
            p.push(r.meta.record_type.as_str().to_lowercase()),
            p.push(date_col(r.meta.date)),
            self.json_param(&p.push(meta)),
            p.push(words_doc(&r.meta.search_words())),
            p.push(ts_col(r.created_at)),
            p.push(hash_col(source.tx_hash)),
            p.push(int("block number", source.block_number)?),
        ];
        Ok(format!("({})", cols.join(", ")))
    }

    /// Inserts or replaces records, given as `VALUES` tuples.
    pub(crate) async fn upsert_record_rows<C: ConnectionTrait>(
        &self,
        c: &C,
        tuples: &[String],
        p: Params,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO records (record_id, patient, serial_key, creator, cid,
                record_type_lower, test_date, metadata, search_text, created_at,
                tx_hash, block_number)
             VALUES {}
             ON CONFLICT (patient, serial_key) DO UPDATE SET record_id = excluded.record_id,
                creator = excluded.creator, cid = excluded.cid,
                record_type_lower = excluded.record_type_lower,
                test_date = excluded.test_date, metadata = excluded.metadata,
                search_text = excluded.search_text, created_at = excluded.created_at,
                tx_hash = excluded.tx_hash, block_number = excluded.block_number",
            tuples.join(", ")
        );
        self.exec(c, "writing records", &sql, p.0).await.map(drop)
    }

    pub(crate) async fn upsert_record_in<C: ConnectionTrait>(
        &self,
        c: &C,
        r: &MedicalRecord,
        source: ChainSource,
    ) -> CacheResult<()> {
        let mut p = Params::default();
        let tuple = self.record_values(&mut p, r, source)?;
        Ok(self.upsert_record_rows(c, &[tuple], p).await?)
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
