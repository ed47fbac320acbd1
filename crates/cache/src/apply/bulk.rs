//! The set-based side of block application: the rows a batch touches read
//! with one statement per table (the keys travel as one JSON parameter),
//! and its net changes written with one statement per table.

use healthledger_core::{CacheError, CacheResult, HhNumber, Profile, RecordId};
use sea_orm::DatabaseTransaction;
use serde_json::{Value as Json, json};

use super::fold::{Fold, Keys};
use crate::SqlCache;
use crate::convert::{date_col, hh_col, hh_of, int, role_col, serial_key, ts_col, words_doc};
use crate::dialect::{Col, hex, vals};
use crate::error::Result;

const USER_COLS: &[(&str, Col)] = &[
    ("hh", Col::Int),
    ("role", Col::Int),
    ("wallet", Col::Text),
    ("source_block", Col::Int),
    ("source_tx", Col::Bytes),
];
const PATIENT_COLS: &[(&str, Col)] = &[
    ("hh", Col::Int),
    ("name", Col::Text),
    ("name_lower", Col::Text),
    ("date_of_birth", Col::Int),
    ("gender", Col::Text),
    ("blood_group", Col::Text),
    ("home_address", Col::Text),
    ("email", Col::Text),
    ("source_block", Col::Int),
    ("source_tx", Col::Bytes),
];
const DOCTOR_COLS: &[(&str, Col)] = &[
    ("hh", Col::Int),
    ("name", Col::Text),
    ("specialization", Col::Text),
    ("hospital", Col::Text),
    ("email", Col::Text),
    ("source_block", Col::Int),
    ("source_tx", Col::Bytes),
];
const CENTER_COLS: &[(&str, Col)] = &[
    ("hh", Col::Int),
    ("name", Col::Text),
    ("location", Col::Text),
    ("email", Col::Text),
    ("source_block", Col::Int),
    ("source_tx", Col::Bytes),
];
/// The columns of `records`, also written by snapshots.
pub(crate) const RECORD_COLS: &[(&str, Col)] = &[
    ("record_id", Col::Text),
    ("patient", Col::Int),
    ("serial_key", Col::Int),
    ("creator", Col::Int),
    ("cid", Col::Text),
    ("record_type_lower", Col::Text),
    ("test_date", Col::Int),
    ("metadata", Col::Json),
    ("search_text", Col::Text),
    ("created_at", Col::Int),
    ("tx_hash", Col::Bytes),
    ("block_number", Col::Int),
];
const GRANT_COLS: &[(&str, Col)] = &[
    ("patient", Col::Int),
    ("grantee", Col::Int),
    ("granted_at", Col::Int),
    ("expires_at", Col::Int),
    ("revoked_at", Col::Int),
    ("source_block", Col::Int),
    ("source_tx", Col::Bytes),
];
const KEY_HH: &[&str] = &["hh"];

/// One record as a JSON row of [`RECORD_COLS`]; a record naming a patient
/// other than its id's is `Invalid`.
pub(crate) fn record_row(
    r: &healthledger_core::MedicalRecord,
    source: healthledger_core::ChainSource,
) -> CacheResult<Json> {
    if r.patient != r.id.patient() {
        return Err(CacheError::Invalid(format!(
            "record {} names patient {}, but its id belongs to patient {}",
            r.id,
            r.patient,
            r.id.patient()
        )));
    }
    Ok(json!({
        "record_id": r.id.to_string(),
        "patient": hh_col(r.id.patient()),
        "serial_key": serial_key(r.id.serial()),
        "creator": hh_col(r.creator),
        "cid": r.cid.to_string(),
        "record_type_lower": r.meta.record_type.as_str().to_lowercase(),
        "test_date": date_col(r.meta.date),
        "metadata": serde_json::to_value(&r.meta).map_err(CacheError::other)?,
        "search_text": words_doc(&r.meta.search_words()),
        "created_at": ts_col(r.created_at),
        "tx_hash": hex(source.tx_hash.as_slice()),
        "block_number": int("block number", source.block_number)?,
    }))
}

impl SqlCache {
    /// Writes records in one statement, replacing existing ones.
    pub(crate) async fn upsert_records_bulk<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        rows: Vec<Json>,
    ) -> Result<u64> {
        self.insert_json_rows(
            tx,
            "writing records",
            "records",
            RECORD_COLS,
            Some((&["patient", "serial_key"], None)),
            rows,
        )
        .await
    }

    /// Reads every row the batch's events need into a [`Fold`]: one
    /// statement per table.
    pub(crate) async fn read_for_fold(
        &self,
        tx: &DatabaseTransaction,
        keys: &Keys,
    ) -> CacheResult<Fold> {
        let mut fold = Fold::default();
        if !keys.profiles.is_empty() {
            for hh in &keys.profiles {
                fold.profiles.insert(*hh, None);
            }
            for (p, s) in self.load_profiles(tx, &keys.profiles).await? {
                fold.read_profile(p.hh(), Some((p, s)));
            }
            let wallets: Vec<String> = keys.wallets.iter().map(ToString::to_string).collect();
            let sql = format!(
                "SELECT hh, wallet FROM users WHERE wallet IN ({})",
                self.json_list("$1", Col::Text)
            );
            for row in self
                .all(
                    tx,
                    "reading wallet owners",
                    &sql,
                    vals![json!(wallets).to_string()],
                )
                .await?
            {
                let t = "users";
                let hh = hh_of(t, crate::convert::get(&row, t, "hh")?)?;
                let wallet =
                    crate::convert::parse(t, crate::convert::get::<String>(&row, t, "wallet")?)?;
                fold.owners.insert(wallet, hh);
            }
        }
        if !keys.records.is_empty() {
            for id in &keys.records {
                fold.records.insert(*id, None);
            }
            for (r, s) in self.load_records(tx, &keys.records).await? {
                fold.records.insert(r.id, Some((r, s)));
            }
        }
        if !keys.grants.is_empty() {
            for k in &keys.grants {
                fold.grants.insert(*k, None);
            }
            for (g, s) in self.load_grants(tx, &keys.grants).await? {
                fold.grants.insert((g.patient, g.grantee), Some((g, s)));
            }
        }
        if keys.anchor {
            fold.anchor = Some(self.load_anchor(tx).await?);
        }
        Ok(fold)
    }

    /// Writes the net changes of a [`Fold`]: one statement per table.
    pub(crate) async fn write_fold(
        &self,
        tx: &DatabaseTransaction,
        fold: &Fold,
    ) -> CacheResult<()> {
        if !fold.wallet_moves.is_empty() {
            // A wallet may pass from one HH number to another within the
            // batch; the rows giving a wallet up release it first (to a
            // placeholder no wallet can equal), so that the one upsert
            // below never meets the unique wallet half-way.
            let list: Vec<i64> = fold.wallet_moves.iter().map(|h| hh_col(*h)).collect();
            self.exec(
                tx,
                "releasing moved wallets",
                &format!(
                    "UPDATE users SET wallet = '~' || CAST(hh AS TEXT) WHERE hh IN ({})",
                    self.json_list("$1", Col::Int)
                ),
                vals![json!(list).to_string()],
            )
            .await?;
        }
        let mut users = Vec::new();
        let (mut patients, mut doctors, mut centers) = (Vec::new(), Vec::new(), Vec::new());
        for hh in &fold.changed_profiles {
            let Some(Some((p, s))) = fold.profiles.get(hh) else {
                continue;
            };
            let block = int("block number", s.block_number)?;
            let stx = hex(s.tx_hash.as_slice());
            users.push(json!({
                "hh": hh_col(*hh), "role": role_col(p.role()), "wallet": p.wallet().to_string(),
                "source_block": block, "source_tx": stx,
            }));
            match p {
                Profile::Patient(p) => patients.push(json!({
                    "hh": hh_col(*hh), "name": p.name.as_str(),
                    "name_lower": p.name.as_str().to_lowercase(),
                    "date_of_birth": date_col(p.date_of_birth.date()),
                    "gender": p.gender.as_str(), "blood_group": p.blood_group.as_str(),
                    "home_address": p.home_address.as_str(), "email": p.email.as_str(),
                    "source_block": block, "source_tx": stx,
                })),
                Profile::Doctor(d) => doctors.push(json!({
                    "hh": hh_col(*hh), "name": d.name.as_str(),
                    "specialization": d.specialization.as_str(),
                    "hospital": d.hospital.as_str(), "email": d.email.as_str(),
                    "source_block": block, "source_tx": stx,
                })),
                Profile::DiagnosticCenter(c) => centers.push(json!({
                    "hh": hh_col(*hh), "name": c.name.as_str(),
                    "location": c.location.as_str(), "email": c.email.as_str(),
                    "source_block": block, "source_tx": stx,
                })),
            }
        }
        let expected = users.len() as u64;
        // The role is compared inside the upsert as well: a targeted upsert
        // that cached one of these HH numbers with another role after the
        // rows were read makes the batch a Conflict, not a role change.
        let written = self
            .insert_json_rows(
                tx,
                "writing users",
                "users",
                USER_COLS,
                Some((KEY_HH, Some("users.role = excluded.role"))),
                users,
            )
            .await?;
        if written < expected {
            return Err(CacheError::Conflict(format!(
                "{} of the batch's {expected} HH numbers are cached with another role",
                expected - written
            )));
        }
        for (table, cols, rows) in [
            ("patients", PATIENT_COLS, patients),
            ("doctors", DOCTOR_COLS, doctors),
            ("diagnostic_centers", CENTER_COLS, centers),
        ] {
            self.insert_json_rows(
                tx,
                "writing profiles",
                table,
                cols,
                Some((KEY_HH, None)),
                rows,
            )
            .await?;
        }
        let records = fold
            .changed_records
            .iter()
            .filter_map(|id: &RecordId| fold.records.get(id).cloned().flatten())
            .map(|(r, s)| record_row(&r, s))
            .collect::<CacheResult<Vec<_>>>()?;
        self.upsert_records_bulk(tx, records).await?;
        let grants = fold
            .changed_grants
            .iter()
            .filter_map(|k: &(HhNumber, HhNumber)| fold.grants.get(k).cloned().flatten())
            .map(|(g, s)| -> Result<Json> {
                Ok(json!({
                    "patient": hh_col(g.patient), "grantee": hh_col(g.grantee),
                    "granted_at": ts_col(g.granted_at),
                    "expires_at": g.expires_at.map(ts_col),
                    "revoked_at": g.revoked_at.map(ts_col),
                    "source_block": int("block number", s.block_number)?,
                    "source_tx": hex(s.tx_hash.as_slice()),
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        self.insert_json_rows(
            tx,
            "writing grants",
            "grants",
            GRANT_COLS,
            Some((&["patient", "grantee"], None)),
            grants,
        )
        .await?;
        if fold.changed_anchor
            && let Some(Some((a, s))) = &fold.anchor
        {
            self.upsert_anchor_in(tx, a, *s).await?;
        }
        Ok(())
    }
}
