//! Conformance of the quarantined logs: stored with their block batch in
//! one transaction, once per position, listed newest first with a count,
//! and gone with their block when a rollback, a branch switch or a
//! snapshot takes the block away.

use super::whole_state::branch;
use super::{block, hh, in_block, record};
use crate::testing::fixtures::date;
use alloy_primitives::keccak256;

use crate::{
    B256, BlockRef, CacheError, CachePort, ChainSnapshot, LedgerEvent, LogPosition, QuarantinedLog,
};

/// A log of `block` at `log_index` that did not decode.
fn undecodable(block: &BlockRef, log_index: u64) -> QuarantinedLog {
    QuarantinedLog {
        at: LogPosition {
            block_number: block.number,
            log_index,
            block_hash: block.hash,
            tx_hash: keccak256([block.hash.as_slice(), &log_index.to_be_bytes()].concat()),
        },
        topic: B256::repeat_byte(0xee),
        reason: format!("unknown event in block {}", block.number),
    }
}

/// The positions listed, newest first.
async fn listed(c: &dyn CachePort) -> (u64, Vec<(u64, u64, B256)>) {
    let q = c.quarantined_logs(100).await.expect("quarantined logs");
    let positions = q
        .newest
        .iter()
        .map(|l| (l.at.block_number, l.at.log_index, l.at.block_hash))
        .collect();
    (q.total, positions)
}

/// Quarantined logs are stored with their batch, all or nothing, once per
/// position; they list newest first with a count; a rollback and a branch
/// switch take those of the undone blocks, a snapshot those above its
/// block, and pruning keeps them.
pub async fn quarantined_logs_go_with_their_blocks(c: &dyn CachePort) {
    let base = 440_000;
    let genesis = block(0, 0);
    let batch = branch(1, 5, 0, base, &genesis);
    let (b2, b3, b4, b5) = (batch[1].0, batch[2].0, batch[3].0, batch[4].0);
    let logs = vec![
        undecodable(&b2, 1),
        undecodable(&b3, 1),
        undecodable(&b3, 2),
        undecodable(&b4, 1),
        undecodable(&b5, 1),
    ];

    // Refusals store nothing and apply nothing.
    let outside = undecodable(&block(9, 0), 0);
    let err = c
        .apply_blocks_quarantining(&batch, &[logs[0].clone(), outside], 2)
        .await
        .expect_err("a log of a block outside the batch");
    assert!(matches!(err, CacheError::Invalid(_)), "outside: {err}");
    let other_fork = undecodable(&block(3, 1), 0);
    let err = c
        .apply_blocks_quarantining(&batch, &[other_fork], 2)
        .await
        .expect_err("a log of another block at a batch height");
    assert!(matches!(err, CacheError::Invalid(_)), "other hash: {err}");
    let mut broken = batch.clone();
    let wrong_patient = record(base + 90, 1, base + 91, "Scan", "MRI", date(2024, 1, 2));
    let wrong_patient = crate::MedicalRecord {
        patient: hh(base + 92),
        ..wrong_patient
    };
    broken[4].1 = in_block(&b5, vec![LedgerEvent::RecordCreated(wrong_patient)]);
    let err = c
        .apply_blocks_quarantining(&broken, &logs, 2)
        .await
        .expect_err("a record of the wrong patient in block 5");
    assert!(matches!(err, CacheError::Invalid(_)), "bad event: {err}");
    assert_eq!(listed(c).await, (0, vec![]), "a refused batch stores none");
    assert_eq!(c.checkpoint().await.expect("checkpoint"), None);

    // Stored with the batch, newest first, and counted.
    c.apply_blocks_quarantining(&batch, &logs, 2)
        .await
        .expect("batch with quarantined logs");
    let all: Vec<(u64, u64, B256)> = logs
        .iter()
        .rev()
        .map(|l| (l.at.block_number, l.at.log_index, l.at.block_hash))
        .collect();
    assert_eq!(listed(c).await, (5, all.clone()));
    let two = c.quarantined_logs(2).await.expect("two newest");
    assert_eq!(two.total, 5, "the count covers every stored log");
    assert_eq!(two.newest, vec![logs[4].clone(), logs[3].clone()]);
    assert_eq!(
        c.quarantined_logs(100).await.expect("all").newest[4],
        logs[0],
        "a log reads back exactly"
    );

    // Once per position: the applied batch again, and a log again.
    c.apply_blocks_quarantining(&batch, &logs, 2)
        .await
        .expect("the same batch again");
    c.apply_blocks_quarantining(&batch[..3], &logs[..3], 2)
        .await
        .expect("an applied prefix again");
    assert_eq!(listed(c).await, (5, all.clone()), "still one per position");

    // A rollback takes the logs of the blocks it undoes.
    c.rollback_to(4).await.expect("roll back block 5");
    assert_eq!(listed(c).await, (4, all[1..].to_vec()));

    // A refused switch changes nothing; a switch replaces the logs above
    // the fork point with the new branch's.
    let new_branch = branch(4, 6, 1, base + 100, &b3);
    let new_logs = vec![undecodable(&new_branch[2].0, 0)];
    let err = c
        .switch_branch_quarantining(3, &new_branch, &[undecodable(&b4, 1)], 2)
        .await
        .expect_err("a log of the old block 4 in the new branch");
    assert!(matches!(err, CacheError::Invalid(_)), "old log: {err}");
    let err = c
        .switch_branch_quarantining(3, &branch(3, 4, 1, base + 100, &b3), &[], 2)
        .await
        .expect_err("block 3 is not above fork point 3");
    assert!(matches!(err, CacheError::Invalid(_)), "at the fork: {err}");
    assert_eq!(listed(c).await, (4, all[1..].to_vec()), "refusals keep");
    c.switch_branch_quarantining(3, &new_branch, &new_logs, 2)
        .await
        .expect("switch to the new branch");
    let six = new_branch[2].0;
    assert_eq!(
        listed(c).await,
        (
            4,
            vec![
                (6, 0, six.hash),
                (3, 2, b3.hash),
                (3, 1, b3.hash),
                (2, 1, b2.hash),
            ]
        )
    );

    // Pruning keeps them; a snapshot takes those above its block.
    c.prune_journal(7).await.expect("prune");
    assert_eq!(listed(c).await.0, 4, "pruning keeps quarantined logs");
    c.replace_chain_state(&block(3, 0), &ChainSnapshot::default())
        .await
        .expect("snapshot at block 3");
    assert_eq!(
        listed(c).await,
        (3, vec![(3, 2, b3.hash), (3, 1, b3.hash), (2, 1, b2.hash)])
    );
}
