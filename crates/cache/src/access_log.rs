//! The hash-chained access log: serialized appends, pages, verification
//! against the audit anchor and digests to anchor.

use healthledger_core::{
    AccessLogEntry, B256, CacheError, CacheResult, HhNumber, LogVerification, NewAccessLogEntry,
};
use sea_orm::{DatabaseTransaction, QueryResult};

use crate::SqlCache;
use crate::convert::{
    clamp, get, hash_col, hash_of, hh_col, hh_of, int, parse, ts_col, ts_of, uint,
};
use crate::dialect::{Params, vals};
use crate::error::{Error, Result};

const ACCESS_LOG_COLS: &str =
    "seq, at, actor, patient, record_id, action, allowed, prev_hash, hash";

/// How many access-log rows verification reads per query.
const VERIFY_PAGE: i64 = 1_000;

impl SqlCache {
    pub(crate) fn log_entry_of_row(row: &QueryResult) -> Result<AccessLogEntry> {
        let t = "access_log";
        let action: i64 = get(row, t, "action")?;
        let record: Option<String> = get(row, t, "record_id")?;
        Ok(AccessLogEntry {
            seq: uint(t, "seq", get(row, t, "seq")?)?,
            entry: NewAccessLogEntry {
                at: ts_of(get(row, t, "at")?),
                actor: hh_of(t, get(row, t, "actor")?)?,
                patient: hh_of(t, get(row, t, "patient")?)?,
                record: record.map(|r| parse(t, r)).transpose()?,
                action: u8::try_from(action)
                    .ok()
                    .and_then(healthledger_core::AccessAction::from_code)
                    .ok_or_else(|| Error::corrupt(t, format!("invalid action code {action}")))?,
                allowed: get(row, t, "allowed")?,
            },
            prev_hash: hash_of(t, &get::<Vec<u8>>(row, t, "prev_hash")?)?,
            hash: hash_of(t, &get::<Vec<u8>>(row, t, "hash")?)?,
        })
    }

    pub(crate) async fn append_in(
        &self,
        tx: &DatabaseTransaction,
        entry: &NewAccessLogEntry,
    ) -> CacheResult<AccessLogEntry> {
        if self.pg() {
            // Appends serialize on this lock, so seqs have no gaps; plain
            // reads (ACCESS SHARE) go on.
            self.exec(
                tx,
                "locking the access log",
                "LOCK TABLE access_log IN EXCLUSIVE MODE",
                vec![],
            )
            .await?;
        }
        let last = self
            .one(
                tx,
                "reading the access log's head",
                "SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1",
                vec![],
            )
            .await?;
        let (seq, prev) = match last {
            Some(row) => (
                uint("access_log", "seq", get(&row, "access_log", "seq")?)? + 1,
                hash_of("access_log", &get::<Vec<u8>>(&row, "access_log", "hash")?)?,
            ),
            None => (1, B256::ZERO),
        };
        let linked = AccessLogEntry::link(seq, entry.clone(), prev);
        self.exec(
            tx,
            "appending to the access log",
            &format!("INSERT INTO access_log ({ACCESS_LOG_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            vals![
                int("access-log seq", seq)?,
                ts_col(entry.at),
                hh_col(entry.actor),
                hh_col(entry.patient),
                entry.record.map(|r| r.to_string()),
                i64::from(entry.action.code()),
                entry.allowed,
                hash_col(prev),
                hash_col(linked.hash)
            ],
        )
        .await?;
        Ok(linked)
    }

    /// A page of the access log ([`CachePort::access_log`](healthledger_core::CachePort::access_log)).
    pub(crate) async fn read_access_log(
        &self,
        patient: Option<HhNumber>,
        after_seq: u64,
        limit: u64,
    ) -> CacheResult<Vec<AccessLogEntry>> {
        let mut p = Params::default();
        let mut sql = format!(
            "SELECT {ACCESS_LOG_COLS} FROM access_log WHERE seq > {}",
            p.push(clamp(after_seq))
        );
        if let Some(patient) = patient {
            sql += &format!(" AND patient = {}", p.push(hh_col(patient)));
        }
        sql += &format!(" ORDER BY seq LIMIT {}", p.push(clamp(limit)));
        self.all(&self.read, "reading the access log", &sql, p.0)
            .await?
            .iter()
            .map(Self::log_entry_of_row)
            .collect::<Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// Walks the hash chain against the anchor ([`CachePort::verify_access_log`](healthledger_core::CachePort::verify_access_log)).
    pub(crate) async fn verify_access_log_chain(&self) -> CacheResult<LogVerification> {
        let page_sql = format!(
            "SELECT {ACCESS_LOG_COLS} FROM access_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        // The anchor is read before the walk: entries it covers were
        // appended before it was, so a later anchor cannot cover entries
        // this walk has not seen.
        let anchor = self.load_anchor(&self.read).await?.map(|(a, _)| a);
        let mut anchored_hash = None;
        let mut expected: u64 = 1;
        let mut prev = B256::ZERO;
        let mut after: i64 = i64::MIN;
        let mut first_broken = None;
        'pages: loop {
            let rows = self
                .all(
                    &self.read,
                    "verifying the access log",
                    &page_sql,
                    vals![after, VERIFY_PAGE],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let raw_seq: i64 = get(row, "access_log", "seq")?;
                after = raw_seq;
                let stored_seq = u64::try_from(raw_seq).unwrap_or(0);
                // A row that no longer decodes was edited: it is the break.
                match Self::log_entry_of_row(row) {
                    Ok(e) if e.seq == expected && e.prev_hash == prev && e.is_self_consistent() => {
                        if anchor.is_some_and(|a| a.last_seq == e.seq) {
                            anchored_hash = Some(e.hash);
                        }
                        prev = e.hash;
                        expected += 1;
                    }
                    _ => {
                        first_broken = Some(expected.min(stored_seq.max(1)));
                        break 'pages;
                    }
                }
            }
        }
        let count = self
            .one(
                &self.read,
                "counting the access log",
                "SELECT COUNT(*) AS n FROM access_log",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::corrupt("access_log", "no count"))?;
        let walked = LogVerification {
            entries: uint("access_log", "count", get(&count, "access_log", "n")?)?,
            first_broken,
        };
        Ok(walked.verify_against_anchor(anchored_hash, anchor.as_ref()))
    }

    /// The hash of one access-log entry ([`CachePort::access_log_digest`](healthledger_core::CachePort::access_log_digest)).
    pub(crate) async fn access_log_hash(&self, up_to_seq: u64) -> CacheResult<B256> {
        let row = match i64::try_from(up_to_seq) {
            Ok(seq) => {
                self.one(
                    &self.read,
                    "reading an access-log digest",
                    "SELECT hash FROM access_log WHERE seq = $1",
                    vals![seq],
                )
                .await?
            }
            Err(_) => None,
        };
        let row =
            row.ok_or_else(|| CacheError::NotFound(format!("access-log entry {up_to_seq}")))?;
        Ok(hash_of(
            "access_log",
            &get::<Vec<u8>>(&row, "access_log", "hash")?,
        )?)
    }
}
