//! Property tests: parse/display round trips, and no parser panics on any
//! input.

use healthledger_core::{
    B256, BlockRef, BloodGroup, Cid, ContentType, DateOfBirth, Email, HhNumber, Name, PhoneNumber,
    RecordId, Role, Timestamp, WalletAddress,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn hh_numbers_round_trip(n in 100_000u32..=999_999) {
        let hh = HhNumber::new(n).unwrap();
        prop_assert_eq!(hh.to_string().parse::<HhNumber>().unwrap(), hh);
    }

    #[test]
    fn out_of_range_hh_numbers_are_rejected(n in prop_oneof![0u32..100_000, 1_000_000u32..]) {
        for err in [
            HhNumber::new(n).expect_err("out of range"),
            n.to_string().parse::<HhNumber>().expect_err("out of range"),
        ] {
            // The error names the kind, the value and the rule.
            prop_assert_eq!(err.what, "HH number");
            prop_assert_eq!(&err.value, &n.to_string());
            prop_assert!(!err.rule.is_empty());
        }
    }

    #[test]
    fn record_ids_round_trip(n in 100_000u32..=999_999, serial in any::<u64>()) {
        let id = RecordId::new(HhNumber::new(n).unwrap(), serial);
        prop_assert_eq!(id.to_string().parse::<RecordId>().unwrap(), id);
    }

    #[test]
    fn cids_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256), v0 in any::<bool>()) {
        let c = healthledger_core::testing::fixtures::cid_of(&bytes);
        let inner = if v0 { cid::Cid::new_v0(*c.inner().hash()).unwrap() } else { *c.inner() };
        let c = Cid::from_inner(inner);
        prop_assert_eq!(c.to_string().parse::<Cid>().unwrap(), c);
        prop_assert_eq!(Cid::from_bytes(&c.to_bytes()).unwrap(), c);
    }

    #[test]
    fn block_refs_round_trip(
        number in any::<u64>(),
        h in any::<[u8; 32]>(),
        p in any::<[u8; 32]>(),
        t in any::<u64>(),
    ) {
        let b = BlockRef { number, hash: B256::from(h), parent_hash: B256::from(p), timestamp: Timestamp(t) };
        prop_assert_eq!(b.to_string().parse::<BlockRef>().unwrap(), b);
    }

    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = s.parse::<HhNumber>();
        let _ = s.parse::<RecordId>();
        let _ = s.parse::<Cid>();
        let _ = s.parse::<BlockRef>();
        let _ = s.parse::<WalletAddress>();
        let _ = s.parse::<Role>();
        let _ = s.parse::<Email>();
        let _ = s.parse::<Name>();
        let _ = s.parse::<BloodGroup>();
        let _ = s.parse::<DateOfBirth>();
        let _ = s.parse::<PhoneNumber>();
        let _ = s.parse::<ContentType>();
    }

    #[test]
    fn near_miss_parsers_never_panic(s in "(record-|Qm|bafy|0x|[0-9]{1,3}:0x)?[0-9a-zA-Z:+-]{0,80}") {
        let _ = s.parse::<RecordId>();
        let _ = s.parse::<Cid>();
        let _ = s.parse::<BlockRef>();
        let _ = s.parse::<WalletAddress>();
        let _ = s.parse::<HhNumber>();
    }
}
