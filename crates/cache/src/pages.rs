//! Reads by many keys and walks in key order: the rows of a set of keys
//! read with one statement per table (the keys travel as one JSON
//! parameter), for block application (the rows a batch touches) and for
//! drift verification (the rows of a page of the chain); and the cache's
//! keys a page at a time, ascending, for finding rows the chain does not
//! have.

use std::collections::BTreeSet;

use healthledger_core::{AccessGrant, ChainSource, HhNumber, MedicalRecord, Profile, RecordId};
use sea_orm::{ConnectionTrait, QueryResult};
use serde_json::{Value as Json, json};

use crate::SqlCache;
use crate::convert::{clamp, get, hh_col, hh_of, record_id_of, serial_key};
use crate::dialect::{Col, vals};
use crate::error::Result;
use crate::rows::{PROFILE_SELECT, profile_of_row};

impl SqlCache {
    /// The cached profiles among `hhs`, ascending by HH number.
    pub(crate) async fn load_profiles<C: ConnectionTrait>(
        &self,
        c: &C,
        hhs: &[HhNumber],
    ) -> Result<Vec<(Profile, ChainSource)>> {
        if hhs.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<i64> = hhs.iter().map(|h| hh_col(*h)).collect();
        let sql = format!(
            "{PROFILE_SELECT} WHERE u.hh IN ({}) ORDER BY u.hh",
            self.json_list("$1", Col::Int)
        );
        self.all(c, "reading profiles", &sql, vals![json!(list).to_string()])
            .await?
            .iter()
            .map(profile_of_row)
            .collect()
    }

    /// The indexed records among `ids`, ascending by id.
    pub(crate) async fn load_records<C: ConnectionTrait>(
        &self,
        c: &C,
        ids: &[RecordId],
    ) -> Result<Vec<(MedicalRecord, ChainSource)>> {
        // The keys are joined, not filtered with `IN`: each must be asked
        // for once.
        let keys: BTreeSet<RecordId> = ids.iter().copied().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<Json> = keys
            .iter()
            .map(|id| json!({"patient": hh_col(id.patient()), "serial_key": serial_key(id.serial())}))
            .collect();
        let sql = format!(
            "SELECT {} FROM ({}) k CROSS JOIN records r
             WHERE r.patient = k.patient AND r.serial_key = k.serial_key
             ORDER BY r.patient, r.serial_key",
            self.record_cols(),
            self.json_rows("$1", &[("patient", Col::Int), ("serial_key", Col::Int)])
        );
        self.all(
            c,
            "reading records",
            &sql,
            vals![Json::Array(list).to_string()],
        )
        .await?
        .iter()
        .map(|row| self.record_of_row(row))
        .collect()
    }

    /// The cached grants among `pairs`, ascending by (patient, grantee).
    pub(crate) async fn load_grants<C: ConnectionTrait>(
        &self,
        c: &C,
        pairs: &[(HhNumber, HhNumber)],
    ) -> Result<Vec<(AccessGrant, ChainSource)>> {
        let keys: BTreeSet<(HhNumber, HhNumber)> = pairs.iter().copied().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<Json> = keys
            .iter()
            .map(|(p, g)| json!({"patient": hh_col(*p), "grantee": hh_col(*g)}))
            .collect();
        let sql = format!(
            "SELECT g.* FROM ({}) k CROSS JOIN grants g
             WHERE g.patient = k.patient AND g.grantee = k.grantee
             ORDER BY g.patient, g.grantee",
            self.json_rows("$1", &[("patient", Col::Int), ("grantee", Col::Int)])
        );
        self.all(
            c,
            "reading grants",
            &sql,
            vals![Json::Array(list).to_string()],
        )
        .await?
        .iter()
        .map(Self::grant_of_row)
        .collect()
    }

    /// Cached HH numbers above `after`, ascending, at most `limit`.
    pub(crate) async fn walk_profile_keys(
        &self,
        after: Option<HhNumber>,
        limit: u64,
    ) -> Result<Vec<HhNumber>> {
        let rows = match after {
            Some(a) => {
                self.keys_page(
                    "SELECT hh FROM users WHERE hh > $1 ORDER BY hh LIMIT $2",
                    vals![hh_col(a), clamp(limit)],
                )
                .await?
            }
            None => {
                self.keys_page(
                    "SELECT hh FROM users ORDER BY hh LIMIT $1",
                    vals![clamp(limit)],
                )
                .await?
            }
        };
        rows.iter()
            .map(|row| hh_of("users", get(row, "users", "hh")?))
            .collect()
    }

    /// Indexed record ids above `after`, ascending, at most `limit`.
    pub(crate) async fn walk_record_keys(
        &self,
        after: Option<RecordId>,
        limit: u64,
    ) -> Result<Vec<RecordId>> {
        let rows = match after {
            // A row-value comparison, so the (patient, serial_key) key
            // index serves the walk on both backends.
            Some(a) => {
                self.keys_page(
                    "SELECT patient, serial_key FROM records
                     WHERE (patient, serial_key) > ($1, $2)
                     ORDER BY patient, serial_key LIMIT $3",
                    vals![hh_col(a.patient()), serial_key(a.serial()), clamp(limit)],
                )
                .await?
            }
            None => {
                self.keys_page(
                    "SELECT patient, serial_key FROM records
                     ORDER BY patient, serial_key LIMIT $1",
                    vals![clamp(limit)],
                )
                .await?
            }
        };
        let t = "records";
        rows.iter()
            .map(|row| record_id_of(t, get(row, t, "patient")?, get(row, t, "serial_key")?))
            .collect()
    }

    /// Cached grant keys above `after`, ascending, at most `limit`.
    pub(crate) async fn walk_grant_keys(
        &self,
        after: Option<(HhNumber, HhNumber)>,
        limit: u64,
    ) -> Result<Vec<(HhNumber, HhNumber)>> {
        let rows = match after {
            Some((p, g)) => {
                self.keys_page(
                    "SELECT patient, grantee FROM grants
                     WHERE (patient, grantee) > ($1, $2)
                     ORDER BY patient, grantee LIMIT $3",
                    vals![hh_col(p), hh_col(g), clamp(limit)],
                )
                .await?
            }
            None => {
                self.keys_page(
                    "SELECT patient, grantee FROM grants ORDER BY patient, grantee LIMIT $1",
                    vals![clamp(limit)],
                )
                .await?
            }
        };
        let t = "grants";
        rows.iter()
            .map(|row| {
                Ok((
                    hh_of(t, get(row, t, "patient")?)?,
                    hh_of(t, get(row, t, "grantee")?)?,
                ))
            })
            .collect()
    }

    async fn keys_page(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<Vec<QueryResult>> {
        self.all(&self.read, "walking keys", sql, values).await
    }
}
