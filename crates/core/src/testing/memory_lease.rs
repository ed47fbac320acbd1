//! [`InMemoryLease`]: a [`WriterLease`] between handles of one process,
//! for tests of followers and standbys.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;

use crate::{CacheResult, WriterLease};

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// A lease shared by the handles [`Self::handle`] makes; [`Self::kill`]
/// makes a holder lose it as a dead process would.
#[derive(Debug, Clone)]
pub struct InMemoryLease {
    holder: Arc<Mutex<Option<u64>>>,
    id: u64,
}

impl InMemoryLease {
    /// A new lease and a first handle on it.
    pub fn new() -> Self {
        Self {
            holder: Arc::default(),
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Another handle on the same lease (another follower).
    pub fn handle(&self) -> Self {
        Self {
            holder: Arc::clone(&self.holder),
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This handle's holder dies: the lease is free.
    pub fn kill(&self) {
        let mut h = self.lock();
        if *h == Some(self.id) {
            *h = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.holder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for InMemoryLease {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl WriterLease for InMemoryLease {
    async fn try_acquire(&self) -> CacheResult<bool> {
        let mut h = self.lock();
        match *h {
            None => {
                *h = Some(self.id);
                Ok(true)
            }
            Some(id) => Ok(id == self.id),
        }
    }

    async fn is_held(&self) -> CacheResult<bool> {
        Ok(*self.lock() == Some(self.id))
    }

    async fn release(&self) -> CacheResult<()> {
        self.kill();
        Ok(())
    }

    fn describe(&self) -> String {
        format!("in-memory lease (handle {})", self.id)
    }
}
