//! Pin anywhere: a sealed object exported as a CARv1 file whose one root is
//! the object's CID, so that any IPFS node or pinning service imports and
//! serves it (`ipfs dag import`) under the CID recorded on chain. The blocks
//! are the object's UnixFS DAG exactly as Kubo's importer builds it, leaves
//! first and the root last, in constant memory; the CAR framing is
//! `iroh-car`'s.

use futures::StreamExt;
use healthledger_core::Cid;
use iroh_car::{CarHeader, CarWriter};
use tokio::io::AsyncWrite;

use super::Vault;
use crate::error::{Error, Result};
use crate::records::DataRecord;
use crate::unixfs::{CidHasher, CidOptions};

/// What [`Vault::export_car`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarExport {
    /// The CAR's root: the object's CID.
    pub root: Cid,
    /// Blocks written.
    pub blocks: u64,
    /// Bytes written, header included.
    pub bytes: u64,
}

fn car_error(e: iroh_car::Error) -> Error {
    Error::Car(e.to_string())
}

impl Vault {
    /// The CID profile recorded for `cid`, without unwrapping any key;
    /// refused like a read when it was shredded or its patient erased.
    async fn recorded_profile(&self, cid: &Cid) -> Result<CidOptions> {
        if self.is_shredded(cid).await? {
            return Err(Error::Shredded(cid.to_string()));
        }
        let key_path = self.key_location(cid);
        let Some(record) = Self::read_opt(self.key_store().as_ref(), &key_path).await? else {
            return Err(
                if Self::exists(self.store().as_ref(), &self.object_location(cid)).await? {
                    Error::MissingKey(cid.to_string())
                } else {
                    Error::NotFound(cid.to_string())
                },
            );
        };
        let record = DataRecord::parse(&record, cid.inner())?;
        if self.is_erased(record.patient).await? {
            return Err(Error::Shredded(cid.to_string()));
        }
        Ok(record.profile)
    }

    /// Writes the sealed object `cid` to `out` as a CAR file (see the module
    /// documentation) and flushes it. The ciphertext is hashed again on the
    /// way: stored bytes that do not hash to `cid` end the export with
    /// [`Error::CidMismatch`], and what was written is then no valid CAR of
    /// `cid` (its root block is missing).
    pub async fn export_car<W>(&self, cid: &Cid, out: W) -> Result<CarExport>
    where
        W: AsyncWrite + Send + Unpin,
    {
        let profile = self.recorded_profile(cid).await?;
        let (_, mut ciphertext) = self.ciphertext(cid).await?;
        let mut hasher = CidHasher::with_blocks(profile)
            .map_err(|e| Error::config("CID profile", format!("{profile:?}"), &e.to_string()))?;
        let mut car = CarWriter::new(CarHeader::new_v1(vec![*cid.inner()]), out);
        let mut bytes = car.write_header().await.map_err(car_error)? as u64;
        let mut blocks = 0u64;
        while let Some(chunk) = ciphertext.next().await {
            hasher.update(&chunk?);
            for (block_cid, block) in hasher.take_blocks() {
                bytes += car.write(block_cid, block).await.map_err(car_error)? as u64;
                blocks += 1;
            }
        }
        let (root, rest) = hasher.finish_with_blocks();
        if root != *cid.inner() {
            return Err(Error::CidMismatch {
                cid: cid.to_string(),
                found: root.to_string(),
            });
        }
        for (block_cid, block) in rest {
            bytes += car.write(block_cid, block).await.map_err(car_error)? as u64;
            blocks += 1;
        }
        car.finish().await.map_err(car_error)?;
        Ok(CarExport {
            root: *cid,
            blocks,
            bytes,
        })
    }
}
