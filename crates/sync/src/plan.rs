//! The planner: a pure function from what the cache and the chain say to
//! what to do next. The engine gathers the facts and carries out the plan;
//! everything that decides lives here, so it is tested with plain values.

use healthledger_core::BlockRef;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The facts a plan is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The cache's checkpoint.
    pub checkpoint: Option<BlockRef>,
    /// The chain's canonical block at the checkpoint's height (`None` when
    /// the chain is shorter, or there is no checkpoint).
    pub canonical_at_checkpoint: Option<BlockRef>,
    /// The chain's head.
    pub head: BlockRef,
    /// The chain's finalized block.
    pub finalized: BlockRef,
    /// The contract's deployment block: nothing before it matters.
    pub deployment_block: u64,
}

/// Whether an empty cache starts with a snapshot or by scanning events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// Read the state at one block through the bulk reads (the default:
    /// about one request per hundred entities).
    Snapshot,
    /// Replay every event from the deployment block.
    Events,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Plan {
    /// The cache is at the head.
    Idle,
    /// Install a snapshot of the chain read at `at`.
    Full {
        /// The block to read the snapshot at.
        at: u64,
    },
    /// Apply blocks `from..=to`; those up to `final_to` are final.
    Backfill {
        /// First block to scan.
        from: u64,
        /// Last block to scan (the head).
        to: u64,
        /// Blocks up to here are final (may be below `from`).
        final_to: u64,
    },
    /// The checkpoint is no longer canonical: find the fork point in the
    /// journal ([`fork_point`]) and switch branches.
    Reorg {
        /// The cache's checkpoint height.
        checkpoint: u64,
    },
}

/// Decides the next step.
///
/// - no checkpoint: a snapshot at the finalized block (or at the deployment
///   block while nothing after it is final), or a scan from the deployment
///   block, as `start` says;
/// - a checkpoint the chain no longer has at its height: [`Plan::Reorg`]
///   (a chain shorter than the checkpoint is a reorg too);
/// - a canonical checkpoint below the head: [`Plan::Backfill`] from the
///   block after it;
/// - a canonical checkpoint at the head: [`Plan::Idle`].
pub fn plan(facts: &Facts, start: Start) -> Plan {
    let final_to = facts.finalized.number.min(facts.head.number);
    let Some(cp) = facts.checkpoint else {
        return match start {
            Start::Snapshot => Plan::Full {
                at: final_to.max(facts.deployment_block).min(facts.head.number),
            },
            Start::Events => Plan::Backfill {
                from: facts.deployment_block,
                to: facts.head.number,
                final_to,
            },
        };
    };
    match facts.canonical_at_checkpoint {
        Some(c) if c.hash == cp.hash => {
            if cp.number >= facts.head.number {
                Plan::Idle
            } else {
                Plan::Backfill {
                    from: cp.number + 1,
                    to: facts.head.number,
                    final_to,
                }
            }
        }
        _ => Plan::Reorg {
            checkpoint: cp.number,
        },
    }
}

/// The highest journaled block that is still canonical: where the cache
/// rolls back to before applying the new branch.
///
/// `journal` holds the cache's journaled blocks (any order) and
/// `final_block` its final block (nothing below it can be rolled back),
/// each paired with the chain's block at its height (`None` above the
/// chain's head). The final block is a valid fork point while it is still
/// canonical, even when it is no longer journaled. No canonical candidate,
/// or a fork point below the final block, is [`Error::ReorgTooDeep`].
pub fn fork_point(
    checkpoint: u64,
    journal: &[(BlockRef, Option<BlockRef>)],
    final_block: Option<(BlockRef, Option<BlockRef>)>,
) -> Result<u64> {
    let floor = final_block.map(|(f, _)| f.number);
    let best = journal
        .iter()
        .chain(final_block.iter())
        .filter(|(j, c)| c.is_some_and(|c| c.hash == j.hash))
        .map(|(j, _)| j.number)
        .max();
    match best {
        Some(n) if floor.is_none_or(|f| n >= f) => Ok(n),
        _ => Err(Error::ReorgTooDeep {
            checkpoint,
            depth: checkpoint.saturating_sub(best.or(floor).unwrap_or(0)),
            journaled: journal.len() as u64,
            final_block: floor,
        }),
    }
}

#[cfg(test)]
mod tests {
    use healthledger_core::{B256, Timestamp};

    use super::*;

    fn b(number: u64, fork: u8) -> BlockRef {
        let h = |n: u64, f: u8| {
            let mut x = [0u8; 32];
            x[..8].copy_from_slice(&n.to_be_bytes());
            x[31] = f;
            B256::from(x)
        };
        BlockRef {
            number,
            hash: h(number, fork),
            parent_hash: h(number.saturating_sub(1), fork),
            timestamp: Timestamp(1_000 + number),
        }
    }

    fn facts(cp: Option<BlockRef>, canon: Option<BlockRef>, head: u64, fin: u64) -> Facts {
        Facts {
            checkpoint: cp,
            canonical_at_checkpoint: canon,
            head: b(head, 0),
            finalized: b(fin, 0),
            deployment_block: 5,
        }
    }

    #[test]
    fn an_empty_cache_starts_from_a_snapshot_or_the_deployment() {
        assert_eq!(
            plan(&facts(None, None, 100, 90), Start::Snapshot),
            Plan::Full { at: 90 }
        );
        // Nothing final after the deployment yet: the deployment block.
        assert_eq!(
            plan(&facts(None, None, 10, 2), Start::Snapshot),
            Plan::Full { at: 5 }
        );
        // A node reporting a finalized block above its head.
        assert_eq!(
            plan(&facts(None, None, 10, 12), Start::Snapshot),
            Plan::Full { at: 10 }
        );
        assert_eq!(
            plan(&facts(None, None, 100, 90), Start::Events),
            Plan::Backfill {
                from: 5,
                to: 100,
                final_to: 90
            }
        );
    }

    #[test]
    fn a_canonical_checkpoint_continues_or_idles() {
        let cp = b(50, 0);
        assert_eq!(
            plan(&facts(Some(cp), Some(cp), 100, 90), Start::Snapshot),
            Plan::Backfill {
                from: 51,
                to: 100,
                final_to: 90
            }
        );
        assert_eq!(
            plan(&facts(Some(cp), Some(cp), 50, 40), Start::Events),
            Plan::Idle
        );
    }

    #[test]
    fn a_checkpoint_off_the_chain_is_a_reorg() {
        let cp = b(50, 1);
        assert_eq!(
            plan(&facts(Some(cp), Some(b(50, 0)), 100, 40), Start::Snapshot),
            Plan::Reorg { checkpoint: 50 }
        );
        // The chain got shorter than the checkpoint.
        assert_eq!(
            plan(&facts(Some(cp), None, 48, 40), Start::Snapshot),
            Plan::Reorg { checkpoint: 50 }
        );
    }

    #[test]
    fn the_fork_point_is_the_highest_canonical_journaled_block() {
        let journal: Vec<_> = (41..=50)
            .map(|n| (b(n, if n > 45 { 1 } else { 0 }), Some(b(n, 0))))
            .collect();
        let fin = Some((b(40, 0), Some(b(40, 0))));
        assert_eq!(fork_point(50, &journal, fin).unwrap(), 45);
        // Above the chain's head counts as not canonical.
        let mut short = journal.clone();
        for (_, c) in short.iter_mut().skip(7) {
            *c = None;
        }
        assert_eq!(fork_point(50, &short, fin).unwrap(), 45);
        // Every journaled block reorganized: back to the final block.
        let all: Vec<_> = (41..=50).map(|n| (b(n, 1), Some(b(n, 0)))).collect();
        assert_eq!(fork_point(50, &all, fin).unwrap(), 40);
    }

    #[test]
    fn a_reorg_beyond_the_journal_names_its_depth() {
        let journal: Vec<_> = (41..=50).map(|n| (b(n, 1), Some(b(n, 0)))).collect();
        // Even the final block is gone: finality was broken.
        match fork_point(50, &journal, Some((b(40, 1), Some(b(40, 0))))) {
            Err(Error::ReorgTooDeep {
                checkpoint: 50,
                depth: 10,
                journaled: 10,
                final_block: Some(40),
            }) => {}
            other => panic!("expected ReorgTooDeep, got {other:?}"),
        }
        match fork_point(50, &[], None) {
            Err(Error::ReorgTooDeep { depth: 50, .. }) => {}
            other => panic!("expected ReorgTooDeep, got {other:?}"),
        }
    }

    #[test]
    fn a_fork_below_the_final_block_is_refused() {
        // A journal row left below the final block (a batch applied as
        // final after older rows) cannot be a fork point.
        let journal = vec![(b(30, 0), Some(b(30, 0))), (b(45, 1), Some(b(45, 0)))];
        assert!(matches!(
            fork_point(45, &journal, Some((b(40, 1), Some(b(40, 0))))),
            Err(Error::ReorgTooDeep { .. })
        ));
    }
}
