//! Ports that fail on purpose: each wraps a real port (the in-memory fakes
//! here) and passes every call through, except the one call a test armed,
//! which fails as `Unavailable` — either without reaching the inner port
//! (the backend refused or was down) or after it (the write took effect
//! and its answer was lost). Hand-written because mockall's mocks cannot
//! delegate an async call to a real port; every method is a plain
//! delegation, so the inner port's behaviour is what the tests see.

mod cache;
mod ledger;
mod vault;

use std::{future::Future, sync::Mutex};

use healthledger_core::{CacheError, Cid, LedgerError, VaultError};

/// How an armed call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The call never reaches the inner port and fails.
    Refuse,
    /// The call reaches the inner port (a write takes effect), then fails
    /// as if its answer was lost on the way back.
    LoseAnswer,
}

#[derive(Debug)]
struct Armed {
    method: &'static str,
    /// Calls of `method` still to pass before the one that fails.
    skip: u32,
    fault: Fault,
}

/// A port wrapped so that one chosen call fails.
#[derive(Debug)]
pub(crate) struct Faulty<P> {
    inner: P,
    armed: Mutex<Option<Armed>>,
    fired: Mutex<Vec<&'static str>>,
    /// The CIDs a vault sealed, in order (only vaults fill it).
    sealed: Mutex<Vec<Cid>>,
}

impl<P> Faulty<P> {
    pub(crate) fn new(inner: P) -> Self {
        Self {
            inner,
            armed: Mutex::new(None),
            fired: Mutex::new(Vec::new()),
            sealed: Mutex::new(Vec::new()),
        }
    }

    /// The wrapped port.
    pub(crate) fn inner(&self) -> &P {
        &self.inner
    }

    /// Makes the `nth` call (1-based, counted from now) of `method` fail
    /// with `fault`; only once.
    pub(crate) fn fail(&self, method: &'static str, nth: u32, fault: Fault) {
        assert!(nth >= 1, "calls are counted from 1");
        *self.armed.lock().unwrap() = Some(Armed {
            method,
            skip: nth - 1,
            fault,
        });
    }

    /// Whether the armed fault fired (and so was used up).
    pub(crate) fn fired(&self, method: &str) -> bool {
        self.fired.lock().unwrap().contains(&method)
    }

    /// The CID of the last object this vault sealed.
    pub(crate) fn last_sealed(&self) -> Option<Cid> {
        self.sealed.lock().unwrap().last().copied()
    }

    fn take(&self, method: &'static str) -> Option<Fault> {
        let mut armed = self.armed.lock().unwrap();
        let a = armed.as_mut().filter(|a| a.method == method)?;
        if a.skip > 0 {
            a.skip -= 1;
            return None;
        }
        let fault = a.fault;
        *armed = None;
        self.fired.lock().unwrap().push(method);
        Some(fault)
    }

    /// Runs `call` (the inner port's future, not yet polled) unless
    /// `method` is the armed call.
    async fn run<T, E: Down>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        match self.take(method) {
            None => call.await,
            Some(Fault::Refuse) => Err(E::down(method, "refused")),
            Some(Fault::LoseAnswer) => {
                let _took_effect = call.await;
                Err(E::down(method, "answer lost"))
            }
        }
    }
}

/// A port error saying the backend is unreachable.
trait Down {
    fn down(method: &str, how: &str) -> Self;
}

impl Down for LedgerError {
    fn down(method: &str, how: &str) -> Self {
        Self::Unavailable(format!("injected fault in {method}: {how}"))
    }
}

impl Down for CacheError {
    fn down(method: &str, how: &str) -> Self {
        Self::Unavailable(format!("injected fault in {method}: {how}"))
    }
}

impl Down for VaultError {
    fn down(method: &str, how: &str) -> Self {
        Self::Unavailable(format!("injected fault in {method}: {how}"))
    }
}
