//! Chain-data rows, one module per table family, converted to and from
//! domain values by hand.

use healthledger_core::{CacheCounts, CacheResult, ChainSource};
use sea_orm::QueryResult;

use crate::SqlCache;
use crate::convert::{get, hash_of, uint};
use crate::error::{Error, Result};

mod anchor;
mod grants;
mod profiles;
mod records;

pub(crate) use profiles::{PROFILE_SELECT, patient_of_row, profile_of_row};

pub(crate) fn source_of(
    row: &QueryResult,
    table: &'static str,
    block: &str,
    tx: &str,
) -> Result<ChainSource> {
    Ok(ChainSource {
        block_number: uint(table, "block number", get(row, table, block)?)?,
        tx_hash: hash_of(table, &get::<Vec<u8>>(row, table, tx)?)?,
    })
}

impl SqlCache {
    /// Row counts ([`CachePort::counts`](healthledger_core::CachePort::counts)).
    pub(crate) async fn count_rows(&self) -> CacheResult<CacheCounts> {
        let row = self
            .one(
                &self.read,
                "counting rows",
                "SELECT (SELECT COUNT(*) FROM patients) AS patients,
                    (SELECT COUNT(*) FROM doctors) AS doctors,
                    (SELECT COUNT(*) FROM diagnostic_centers) AS diagnostic_centers,
                    (SELECT COUNT(*) FROM records) AS records,
                    (SELECT COUNT(*) FROM grants) AS grants,
                    (SELECT COUNT(*) FROM access_log) AS access_log,
                    (SELECT COUNT(*) FROM journal) AS journal",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::corrupt("counts", "no row"))?;
        let n = |col: &str| -> Result<u64> { uint("counts", col, get(&row, "counts", col)?) };
        Ok(CacheCounts {
            patients: n("patients")?,
            doctors: n("doctors")?,
            diagnostic_centers: n("diagnostic_centers")?,
            records: n("records")?,
            grants: n("grants")?,
            access_log: n("access_log")?,
            journal: n("journal")?,
        })
    }
}
