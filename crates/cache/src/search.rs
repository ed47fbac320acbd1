//! Searches: patients by name prefix, records by criteria and free text
//! (FTS5 on SQLite, a `tsvector` GIN index on PostgreSQL).

use healthledger_core::{CacheResult, MedicalRecord, PatientProfile, RecordQuery, search_words};

use crate::SqlCache;
use crate::convert::{clamp, date_col, hh_col, prefix_bounds};
use crate::dialect::Params;
use crate::error::Result;
use crate::rows::patient_of_row;

/// No record's search word is longer than this many bytes (a name is at
/// most 128 characters of at most 4 bytes), so a longer query word matches
/// nothing; checking it first keeps PostgreSQL's lexeme limit out of reach.
const MAX_WORD_BYTES: usize = 512;

fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn tsquery(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" & ")
}

impl SqlCache {
    /// Patients by name prefix ([`CachePort::search_patients`](healthledger_core::CachePort::search_patients)).
    pub(crate) async fn find_patients(
        &self,
        prefix: &str,
        limit: u64,
    ) -> CacheResult<Vec<PatientProfile>> {
        self.refuse_while_building().await?;
        let prefix = prefix.to_lowercase();
        if prefix.contains('\0') {
            // Names hold no control characters, so nothing matches (and
            // PostgreSQL text cannot carry NUL).
            return Ok(Vec::new());
        }
        let mut p = Params::default();
        let mut sql = String::from(
            "SELECT p.*, u.wallet FROM patients p JOIN users u ON u.hh = p.hh WHERE 1 = 1",
        );
        if !prefix.is_empty() {
            sql += &format!(" AND p.name_lower >= {}", p.push(prefix.clone()));
            if let Some(high) = prefix_bounds(&prefix) {
                sql += &format!(" AND p.name_lower < {}", p.push(high));
            }
        }
        sql += &format!(
            " ORDER BY p.name_lower, p.hh LIMIT {}",
            p.push(clamp(limit))
        );
        self.all(&self.read, "searching patients", &sql, p.0)
            .await?
            .iter()
            .map(patient_of_row)
            .collect::<Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// Records matching a query ([`CachePort::search_records`](healthledger_core::CachePort::search_records)).
    pub(crate) async fn find_records(&self, q: &RecordQuery) -> CacheResult<Vec<MedicalRecord>> {
        self.refuse_while_building().await?;
        let mut p = Params::default();
        let mut sql = format!("SELECT {} FROM records r WHERE 1 = 1", self.record_cols());
        if let Some(patient) = q.patient {
            sql += &format!(" AND r.patient = {}", p.push(hh_col(patient)));
        }
        if let Some(t) = &q.record_type {
            if t.contains('\0') {
                return Ok(Vec::new());
            }
            sql += &format!(" AND r.record_type_lower = {}", p.push(t.to_lowercase()));
        }
        if let Some(d) = q.date_from {
            sql += &format!(" AND r.test_date >= {}", p.push(date_col(d)));
        }
        if let Some(d) = q.date_to {
            sql += &format!(" AND r.test_date <= {}", p.push(date_col(d)));
        }
        let words = q.text.as_deref().map(search_words).unwrap_or_default();
        if words.iter().any(|w| w.len() > MAX_WORD_BYTES) {
            return Ok(Vec::new());
        }
        if !words.is_empty() {
            if self.pg() {
                sql += &format!(
                    " AND r.search_tsv @@ CAST({} AS tsquery)",
                    p.push(tsquery(&words))
                );
            } else {
                sql += &format!(
                    " AND r.id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH {})",
                    p.push(fts5_query(&words))
                );
            }
        }
        sql += &format!(
            " ORDER BY r.test_date DESC, r.patient, r.serial_key LIMIT {}",
            p.push(clamp(q.limit))
        );
        self.all(&self.read, "searching records", &sql, p.0)
            .await?
            .iter()
            .map(|row| self.record_of_row(row).map(|(r, _)| r))
            .collect::<Result<Vec<_>>>()
            .map_err(Into::into)
    }
}
