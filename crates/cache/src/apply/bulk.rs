//! The set-based side of block application: the rows a batch touches read
//! with one statement per table (the keys travel as one JSON parameter),
//! and its net changes written table by table ([`SqlCache::insert_rows`]:
//! one statement on PostgreSQL, a few multi-row ones on SQLite).

use healthledger_core::{CacheError, CacheResult, HhNumber, Profile, RecordId};
use sea_orm::{DatabaseTransaction, Value};
use serde_json::json;

use super::fold::{Fold, Keys};
use crate::SqlCache;
use crate::convert::{
    date_col, hash_col, hh_col, hh_of, int, role_col, serial_key, ts_col, words_doc,
};
use crate::dialect::{Col, Rows, vals};
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
    ("expires_at", Col::IntOrNull),
    ("revoked_at", Col::IntOrNull),
    ("source_block", Col::Int),
    ("source_tx", Col::Bytes),
];
const KEY_HH: &[&str] = &["hh"];

/// Appends one record to rows of [`RECORD_COLS`]; a record naming a
/// patient other than its id's is `Invalid`.
pub(crate) fn push_record(
    rows: &mut Rows<'_>,
    r: &healthledger_core::MedicalRecord,
    source: healthledger_core::ChainSource,
) -> CacheResult<()> {
    if r.patient != r.id.patient() {
        return Err(CacheError::Invalid(format!(
            "record {} names patient {}, but its id belongs to patient {}",
            r.id,
            r.patient,
            r.id.patient()
        )));
    }
    rows.push([
        Value::from(r.id.to_string()),
        Value::from(hh_col(r.id.patient())),
        Value::from(serial_key(r.id.serial())),
        Value::from(hh_col(r.creator)),
        Value::from(r.cid.to_string()),
        Value::from(r.meta.record_type.as_str().to_lowercase()),
        Value::from(date_col(r.meta.date)),
        Value::from(serde_json::to_string(&r.meta).map_err(CacheError::other)?),
        Value::from(words_doc(&r.meta.search_words())),
        Value::from(ts_col(r.created_at)),
        Value::from(hash_col(source.tx_hash)),
        Value::from(int("block number", source.block_number)?),
    ]);
    Ok(())
}

impl SqlCache {
    /// Writes records, replacing existing ones.
    pub(crate) async fn upsert_records_bulk<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        rows: Rows<'_>,
    ) -> Result<u64> {
        self.insert_rows(
            tx,
            "writing records",
            "records",
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
        // Rows go out in key order: each index then takes its new
        // entries in one pass from left to right rather than at random.
        let mut hhs: Vec<HhNumber> = fold.changed_profiles.iter().copied().collect();
        hhs.sort_unstable();
        let mut users = Rows::with_capacity(USER_COLS, hhs.len());
        let mut patients = Rows::with_capacity(PATIENT_COLS, hhs.len());
        let mut doctors = Rows::with_capacity(DOCTOR_COLS, 0);
        let mut centers = Rows::with_capacity(CENTER_COLS, 0);
        for hh in &hhs {
            let Some(Some((p, s))) = fold.profiles.get(hh) else {
                continue;
            };
            let block = Value::from(int("block number", s.block_number)?);
            let stx = Value::from(hash_col(s.tx_hash));
            let key = Value::from(hh_col(*hh));
            users.push([
                key.clone(),
                Value::from(role_col(p.role())),
                Value::from(p.wallet().to_string()),
                block.clone(),
                stx.clone(),
            ]);
            match p {
                Profile::Patient(p) => patients.push([
                    key,
                    Value::from(p.name.as_str()),
                    Value::from(p.name.as_str().to_lowercase()),
                    Value::from(date_col(p.date_of_birth.date())),
                    Value::from(p.gender.as_str()),
                    Value::from(p.blood_group.as_str()),
                    Value::from(p.home_address.as_str()),
                    Value::from(p.email.as_str()),
                    block,
                    stx,
                ]),
                Profile::Doctor(d) => doctors.push([
                    key,
                    Value::from(d.name.as_str()),
                    Value::from(d.specialization.as_str()),
                    Value::from(d.hospital.as_str()),
                    Value::from(d.email.as_str()),
                    block,
                    stx,
                ]),
                Profile::DiagnosticCenter(c) => centers.push([
                    key,
                    Value::from(c.name.as_str()),
                    Value::from(c.location.as_str()),
                    Value::from(c.email.as_str()),
                    block,
                    stx,
                ]),
            }
        }
        let expected = users.len() as u64;
        // The role is compared inside the upsert as well: a targeted upsert
        // that cached one of these HH numbers with another role after the
        // rows were read makes the batch a Conflict, not a role change.
        let written = self
            .insert_rows(
                tx,
                "writing users",
                "users",
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
        for (table, rows) in [
            ("patients", patients),
            ("doctors", doctors),
            ("diagnostic_centers", centers),
        ] {
            self.insert_rows(tx, "writing profiles", table, Some((KEY_HH, None)), rows)
                .await?;
        }
        let mut ids: Vec<RecordId> = fold.changed_records.iter().copied().collect();
        ids.sort_unstable();
        let mut records = Rows::with_capacity(RECORD_COLS, ids.len());
        for id in &ids {
            if let Some(Some((r, s))) = fold.records.get(id) {
                push_record(&mut records, r, *s)?;
            }
        }
        self.upsert_records_bulk(tx, records).await?;
        let mut keys: Vec<(HhNumber, HhNumber)> = fold.changed_grants.iter().copied().collect();
        keys.sort_unstable();
        let mut grants = Rows::with_capacity(GRANT_COLS, keys.len());
        for k in &keys {
            if let Some(Some((g, s))) = fold.grants.get(k) {
                grants.push([
                    Value::from(hh_col(g.patient)),
                    Value::from(hh_col(g.grantee)),
                    Value::from(ts_col(g.granted_at)),
                    Value::from(g.expires_at.map(ts_col)),
                    Value::from(g.revoked_at.map(ts_col)),
                    Value::from(int("block number", s.block_number)?),
                    Value::from(hash_col(s.tx_hash)),
                ]);
            }
        }
        self.insert_rows(
            tx,
            "writing grants",
            "grants",
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
