//! Background work the application schedules: follow mode (live sync under
//! the cache's writer lease) and the periodic anchoring of the access log's
//! digest on chain, each a task with a stop handle.

use std::sync::Arc;

use healthledger_sync::{
    Stopper, SyncEngine,
    integrity::{AnchorConfig, AnchorJob},
};
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

    /// Starts the anchoring job on a task: every
    /// [`crate::Settings::anchor_interval`] it audits the access log and,
    /// when at least [`crate::Settings::anchor_min_entries`] entries are new,
    /// anchors its digest on chain (the app's key must be a registrar).
    pub fn spawn_anchoring(&self) -> Job {
        let job = AnchorJob::new(
            (*self.sync).clone(),
            AnchorConfig {
                interval: self.settings.anchor_interval,
                min_batch: self.settings.anchor_min_entries.max(1),
            },
        );
        let stopper = job.stopper();
        let task = tokio::spawn(async move { Ok(job.run().await?) });
        Job { stopper, task }
    }
}
