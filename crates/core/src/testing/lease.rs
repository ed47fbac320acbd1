//! The [`WriterLease`] conformance suite: two handles on one lease (two
//! followers of one cache). What a dead holder looks like is the backend's
//! to stage (a dropped connection, a killed process); its test checks that
//! the lease is then free.

use crate::WriterLease;

/// Runs every lease behaviour on two fresh handles of one lease.
pub async fn all(a: &dyn WriterLease, b: &dyn WriterLease) {
    one_holder_at_a_time(a, b).await;
}

/// At most one handle holds the lease; acquiring again is harmless; a
/// release lets the other take it.
pub async fn one_holder_at_a_time(a: &dyn WriterLease, b: &dyn WriterLease) {
    assert!(!a.is_held().await.expect("is_held"), "nobody holds it yet");
    assert!(
        a.try_acquire().await.expect("acquire"),
        "a free lease is taken"
    );
    assert!(
        a.try_acquire().await.expect("acquire"),
        "taking it again holds"
    );
    assert!(a.is_held().await.expect("is_held"));
    assert!(
        !b.try_acquire().await.expect("acquire"),
        "a held lease is refused"
    );
    assert!(!b.is_held().await.expect("is_held"));
    a.release().await.expect("release");
    assert!(!a.is_held().await.expect("is_held"), "released");
    assert!(
        b.try_acquire().await.expect("acquire"),
        "the standby takes over"
    );
    assert!(
        !a.try_acquire().await.expect("acquire"),
        "now the first waits"
    );
    b.release().await.expect("release");
    b.release().await.expect("releasing twice is harmless");
    assert!(!a.describe().is_empty());
}

#[cfg(test)]
mod tests {
    use crate::testing::InMemoryLease;

    #[tokio::test]
    async fn the_in_memory_lease_passes_the_suite() {
        let a = InMemoryLease::new();
        let b = a.handle();
        super::all(&a, &b).await;
        assert!(crate::WriterLease::try_acquire(&a).await.unwrap());
        a.kill();
        assert!(
            crate::WriterLease::try_acquire(&b).await.unwrap(),
            "a dead holder's lease is free"
        );
    }
}
