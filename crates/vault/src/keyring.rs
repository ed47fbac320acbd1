//! The KEKs a vault holds: the current one wraps every new subject key, the
//! others only unwrap (the KEK being rotated away from, or the next one while
//! another process rotates to it). A record is unwrapped by the KEK whose id
//! it names, so a reader holding both KEKs of a rotation reads every record
//! whichever way the rotation has got.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keys::{KeyProvider, SecretKey, check_key_id};

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct Keyring {
    current: Arc<dyn KeyProvider>,
    others: Vec<Arc<dyn KeyProvider>>,
}

impl Keyring {
    /// A keyring wrapping under `current`.
    pub(crate) fn new(current: Arc<dyn KeyProvider>) -> Result<Self> {
        check_key_id(current.key_id())?;
        Ok(Self {
            current,
            others: Vec::new(),
        })
    }

    /// Adds a KEK for unwrapping; an id already in the ring is refused.
    pub(crate) fn add(&mut self, kek: Arc<dyn KeyProvider>) -> Result<()> {
        check_key_id(kek.key_id())?;
        if self.get(kek.key_id()).is_some() {
            return Err(Error::config(
                "KEK id",
                kek.key_id(),
                "each KEK of a vault needs its own id",
            ));
        }
        self.others.push(kek);
        Ok(())
    }

    /// The KEK new subject keys are wrapped under.
    pub(crate) fn current(&self) -> &Arc<dyn KeyProvider> {
        &self.current
    }

    /// Makes `new` current, keeping the previous current KEK for unwrapping.
    pub(crate) fn promote(&mut self, new: Arc<dyn KeyProvider>) {
        self.others.retain(|k| k.key_id() != new.key_id());
        let old = std::mem::replace(&mut self.current, new);
        self.others.push(old);
    }

    /// The KEK named `id`, if the ring holds it.
    pub(crate) fn get(&self, id: &str) -> Option<&Arc<dyn KeyProvider>> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.key_id() == id)
    }

    /// The ids of every KEK in the ring, the current one first.
    pub(crate) fn ids(&self) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .map(|k| k.key_id().to_owned())
            .collect()
    }

    /// Whether `candidate` unwraps what the KEK of the same id in this ring
    /// wraps (true when the ring holds no KEK of that id): a KEK configured
    /// twice under one id with other key bytes would make records fail to
    /// unwrap later, so it is caught before anything is written under it.
    pub(crate) async fn agrees_with(&self, candidate: &dyn KeyProvider) -> Result<bool> {
        let Some(held) = self.get(candidate.key_id()) else {
            return Ok(true);
        };
        let probe = SecretKey::generate()?;
        let aad = b"healthledger-vault/kek-probe/v1";
        let wrapped = held.wrap(probe.bytes(), aad).await?;
        Ok(candidate
            .unwrap(&wrapped, aad)
            .await
            .is_ok_and(|k| k.as_slice() == probe.bytes()))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.key_id())
            .field(
                "others",
                &self.others.iter().map(|k| k.key_id()).collect::<Vec<_>>(),
            )
            .finish()
    }
}
