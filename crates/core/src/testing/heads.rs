//! Conformance of [`LedgerPort::new_heads`]: an adapter that announces new
//! heads announces every block mined after the subscription, to every
//! subscriber, and a dropped subscriber breaks nothing. An adapter without
//! a push channel answers `None` and has nothing more to show.

use futures::StreamExt as _;

use super::ledger::ChainControl;
use crate::{LedgerPort, Timestamp};

/// New heads reach every live subscriber, in order, from the first block
/// mined after subscribing.
pub async fn new_heads_announce_every_block(l: &dyn LedgerPort, chain: &dyn ChainControl) {
    let Some(mut first) = l.new_heads().await.expect("new_heads") else {
        return;
    };
    let mut second = l
        .new_heads()
        .await
        .expect("new_heads")
        .expect("an adapter that announced heads once announces them again");
    let dropped = l.new_heads().await.expect("new_heads");
    drop(dropped);
    let start = l.head().await.expect("head").number;
    for _ in 0..3 {
        let at = chain.head_time().await;
        chain.mine_at(Timestamp(at.0 + 1)).await;
    }
    let head = l.head().await.expect("head").number;
    assert!(head >= start + 3, "three blocks were mined after {start}");
    for stream in [&mut first, &mut second] {
        let mut last = start;
        while last < head {
            let number = stream
                .next()
                .await
                .expect("the subscription stays open while the node runs");
            assert!(
                number > last,
                "heads are announced in order: {number} after {last}"
            );
            last = number;
        }
        assert_eq!(last, head, "the last announcement is the head");
    }
}
