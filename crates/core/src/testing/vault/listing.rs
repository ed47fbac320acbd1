//! Conformance behaviours of [`VaultPort::objects`]: the listing of what a
//! vault stores, page by page.

use futures::{StreamExt, stream};

use super::{content, patient};
use crate::{Cid, StoredObject, Timestamp, VaultPort};

/// Every object `v` lists, in pages of `limit`, checking that every page
/// but the last is full.
pub async fn list_all(v: &dyn VaultPort, limit: usize) -> Vec<StoredObject> {
    let mut all: Vec<StoredObject> = Vec::new();
    loop {
        let after = all.last().map(|o| o.cid);
        let page = v.objects(after, limit).await.expect("objects");
        assert!(page.len() <= limit, "a page of {limit} held {}", page.len());
        let last = page.len() < limit;
        all.extend(page);
        if last {
            return all;
        }
    }
}

/// `objects` lists every stored object once, in the order of the CIDs'
/// strings, whatever the page size; each with its stored size and the time
/// it was sealed; shredded objects are left out; `after` is exclusive, also
/// for a CID the vault never stored; `limit` bounds every page.
pub async fn objects_are_listed_in_cid_order_page_by_page(v: &dyn VaultPort) {
    let before = Timestamp::now();
    let mut sealed = Vec::new();
    for i in 0..6u8 {
        let data = content(700 * usize::from(i), i);
        sealed.push(
            v.put(patient(40 + u32::from(i % 2)), data)
                .await
                .expect("put"),
        );
    }
    let chunks = vec![Ok(content(300_000, 1)), Ok(content(1, 2))];
    sealed.push(
        v.put_stream(patient(40), stream::iter(chunks).boxed())
            .await
            .expect("put_stream"),
    );
    let gone = v.put(patient(41), content(10, 3)).await.expect("put");
    v.shred(&gone.cid).await.expect("shred");
    let sealed_by = Timestamp::now();

    let everything = list_all(v, 10_000).await;
    let names: Vec<String> = everything.iter().map(|o| o.cid.to_string()).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "objects are not in strictly increasing CID order: {names:?}"
    );
    for page in [1, 3, 7] {
        assert_eq!(list_all(v, page).await, everything, "pages of {page}");
    }
    for object in &sealed {
        let listed = everything
            .iter()
            .find(|o| o.cid == object.cid)
            .unwrap_or_else(|| panic!("{} is not listed", object.cid));
        assert_eq!(listed.stored_size, object.stored_size, "{}", object.cid);
        // Stores keep times to the second or finer; a second of slack
        // covers one that rounds rather than truncates.
        assert!(
            before.secs() <= listed.sealed_at.secs() + 1
                && listed.sealed_at.secs() <= sealed_by.secs() + 1,
            "{} sealed at {}, not between {before} and {sealed_by}",
            object.cid,
            listed.sealed_at
        );
    }
    assert!(
        everything.iter().all(|o| o.cid != gone.cid),
        "the shredded {} is listed",
        gone.cid
    );

    assert!(v.objects(None, 0).await.expect("limit 0").is_empty());
    let first = everything[0].cid;
    assert_eq!(
        v.objects(Some(first), 2).await.expect("after the first"),
        everything[1..3]
    );
    let last = everything[everything.len() - 1].cid;
    assert!(
        v.objects(Some(last), 5)
            .await
            .expect("after the last")
            .is_empty()
    );
    // After a CID the vault never stored: the objects whose CIDs sort
    // after its string.
    let stranger: Cid = crate::testing::fixtures::cid_of(b"never stored by the listing test");
    let expected: Vec<StoredObject> = everything
        .iter()
        .filter(|o| o.cid.to_string() > stranger.to_string())
        .cloned()
        .collect();
    assert_eq!(
        v.objects(Some(stranger), 10_000)
            .await
            .expect("after a stranger"),
        expected
    );
}
