//! Conversions between domain values and column values, by hand: database
//! rows never leave this crate.

use chrono::{Datelike as _, NaiveDate};
use healthledger_core::{B256, HhNumber, RecordId, Role, Timestamp};
use sea_orm::QueryResult;

use crate::error::{Error, Result};

/// The sign bit, flipped to turn a `u64` into an order-preserving `i64`.
const SIGN: u64 = 1 << 63;

/// A `u64` as a column value, refusing values above `i64::MAX`.
pub(crate) fn int(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::OutOfRange { what, value })
}

/// A `u64` query bound, clamped to the largest storable value (every stored
/// value is at most that, so comparisons keep their meaning).
pub(crate) fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored non-negative integer back as a `u64`.
pub(crate) fn uint(table: &'static str, what: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::corrupt(table, format!("negative {what} {value}")))
}

/// Any `u64` as an `i64` with the same order (the sign bit flipped): a
/// bijection, so every value round-trips and SQL comparisons and `ORDER BY`
/// on the column mean what they mean on the `u64`s.
pub(crate) fn ordered(value: u64) -> i64 {
    i64::from_be_bytes((value ^ SIGN).to_be_bytes())
}

/// The `u64` an [`ordered`] column value encodes.
pub(crate) fn unordered(key: i64) -> u64 {
    u64::from_be_bytes(key.to_be_bytes()) ^ SIGN
}

/// A record serial (any `u64`) as an `i64` with the same order.
pub(crate) fn serial_key(serial: u64) -> i64 {
    ordered(serial)
}

/// The serial a [`serial_key`] encodes.
pub(crate) fn serial_of_key(key: i64) -> u64 {
    unordered(key)
}

/// An HH number column value.
pub(crate) fn hh_col(hh: HhNumber) -> i64 {
    i64::from(hh.get())
}

/// An HH number from a column.
pub(crate) fn hh_of(table: &'static str, value: i64) -> Result<HhNumber> {
    u32::try_from(value)
        .ok()
        .and_then(|v| HhNumber::new(v).ok())
        .ok_or_else(|| Error::corrupt(table, format!("invalid HH number {value}")))
}

/// A role column value.
pub(crate) fn role_col(role: Role) -> i64 {
    i64::from(role.code())
}

/// A role from a column.
pub(crate) fn role_of(table: &'static str, value: i64) -> Result<Role> {
    u8::try_from(value)
        .ok()
        .and_then(|c| Role::from_code(c).ok())
        .ok_or_else(|| Error::corrupt(table, format!("invalid role code {value}")))
}

/// A timestamp column value: [`ordered`], so that every `u64` the chain
/// accepts (a grant may expire at `u64::MAX`) is stored losslessly and
/// compares with `now` as the `u64`s do. Every timestamp column and every
/// bound compared with one goes through here (migration 4 moved the rows
/// written before).
pub(crate) fn ts_col(t: Timestamp) -> i64 {
    ordered(t.0)
}

/// A timestamp from a column written by [`ts_col`].
pub(crate) fn ts_of(value: i64) -> Timestamp {
    Timestamp(unordered(value))
}

/// A 32-byte hash column value.
pub(crate) fn hash_col(h: B256) -> Vec<u8> {
    h.as_slice().to_vec()
}

/// A 32-byte hash from a column.
pub(crate) fn hash_of(table: &'static str, value: &[u8]) -> Result<B256> {
    if value.len() == 32 {
        Ok(B256::from_slice(value))
    } else {
        Err(Error::corrupt(
            table,
            format!("hash of {} bytes, expected 32", value.len()),
        ))
    }
}

/// A date as days since 0001-01-01 (an exact, ordered integer on every
/// backend).
pub(crate) fn date_col(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

/// A date from a column.
pub(crate) fn date_of(table: &'static str, value: i64) -> Result<NaiveDate> {
    i32::try_from(value)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| Error::corrupt(table, format!("invalid day number {value}")))
}

/// A record id from its patient and serial-key columns.
pub(crate) fn record_id_of(table: &'static str, patient: i64, key: i64) -> Result<RecordId> {
    Ok(RecordId::new(hh_of(table, patient)?, serial_of_key(key)))
}

/// Parses a text column into a domain value.
pub(crate) fn parse<T>(table: &'static str, value: String) -> Result<T>
where
    T: TryFrom<String>,
    T::Error: std::fmt::Display,
{
    T::try_from(value).map_err(|e| Error::corrupt(table, e))
}

/// Reads one column, naming the table and column on failure.
pub(crate) fn get<T: sea_orm::TryGetable>(
    row: &QueryResult,
    table: &'static str,
    col: &str,
) -> Result<T> {
    row.try_get::<T>("", col)
        .map_err(|e| Error::corrupt(table, format!("column {col}: {e}")))
}

/// The words a document or query is made of, as one space-joined string.
pub(crate) fn words_doc(words: &[String]) -> String {
    words.join(" ")
}

/// The `(low, high)` bounds such that a string starts with `prefix` exactly
/// when `low <= s < high` in code-point order; `high` is `None` when no
/// upper bound is needed.
pub(crate) fn prefix_bounds(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_keys_preserve_order() {
        let serials = [0, 1, 42, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX];
        for w in serials.windows(2) {
            assert!(serial_key(w[0]) < serial_key(w[1]), "{w:?}");
        }
        for s in serials {
            assert_eq!(serial_of_key(serial_key(s)), s);
        }
    }

    #[test]
    fn timestamps_round_trip_in_order() {
        let times = [
            0,
            1,
            1_750_000_000,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX,
        ];
        for w in times.windows(2) {
            assert!(ts_col(Timestamp(w[0])) < ts_col(Timestamp(w[1])), "{w:?}");
        }
        for t in times {
            assert_eq!(ts_of(ts_col(Timestamp(t))), Timestamp(t));
        }
        assert_eq!(ts_col(Timestamp(0)), i64::MIN, "migration 4 adds i64::MIN");
    }

    #[test]
    fn prefix_bounds_cover_exactly_the_prefixed() {
        assert_eq!(prefix_bounds("asha").as_deref(), Some("ashb"));
        assert_eq!(prefix_bounds(""), None);
        assert_eq!(prefix_bounds("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_bounds("\u{D7FF}").as_deref(), Some("\u{E000}"));
        let high = prefix_bounds("ash").unwrap();
        for s in ["ash", "asha", "ash\u{10FFFF}zz"] {
            assert!(s >= "ash" && s < high.as_str(), "{s}");
        }
        for s in ["asg", "asi", "as"] {
            assert!(!(s >= "ash" && s < high.as_str()), "{s}");
        }
    }

    #[test]
    fn dates_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 2, 10).unwrap();
        assert_eq!(date_of("t", date_col(d)).unwrap(), d);
        assert!(date_col(d) > date_col(NaiveDate::from_ymd_opt(2026, 1, 10).unwrap()));
    }
}
