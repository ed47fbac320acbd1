//! Background work the application schedules: follow mode (live sync under
//! the cache's writer lease) as a task with a stop handle.

use std::sync::Arc;

use healthledger_sync::{Stopper, SyncEngine};
use tokio::task::JoinHandle;

use crate::{App, Result};

/// A running background job; [`Self::stop`] asks it to finish its current
/// batch and waits for it.
#[derive(Debug)]
pub struct Job {
    stopper: Stopper,
    task: JoinHandle<Result<()>>,
}

impl Job {
    /// Asks the job to stop after its current step and waits for it.
    pub async fn stop(self) -> Result<()> {
        self.stopper.stop();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(crate::Error::Unavailable(format!("the job panicked: {e}"))),
        }
    }
}

impl App {
    /// Starts follow mode on a task: the engine syncs to the head on every
    /// poll while it holds the writer lease (a standby otherwise).
    pub fn spawn_follow(&self) -> Job {
        let engine: Arc<SyncEngine> = self.sync.clone();
        let stopper = engine.stopper();
        let task = tokio::spawn(async move { Ok(engine.follow().await?) });
        Job { stopper, task }
    }
}
