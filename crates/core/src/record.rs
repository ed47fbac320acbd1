//! Medical record pointers: the metadata and CID that go on chain. The
//! content itself lives only in the vault, encrypted.

use std::{fmt, str::FromStr};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{Cid, HhNumber, Label, Name, RecordId, Timestamp, ValidationError};

/// A MIME content type such as `application/pdf` or `image/dicom`:
/// `type/subtype` of RFC 6838 token characters, at most 127 bytes, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentType(String);

impl ContentType {
    /// Validates `value` and lowercases it.
    pub fn new(value: &str) -> Result<Self, ValidationError> {
        let rule = "expected type/subtype of letters, digits and !#$&^_.+- (at most 127 bytes)";
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
        };
        match value.split_once('/') {
            Some((t, s)) if value.len() <= 127 && token(t) && token(s) => {
                Ok(Self(value.to_ascii_lowercase()))
            }
            _ => Err(ValidationError::new("content type", value, rule)),
        }
    }

    /// The content type.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContentType {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ContentType {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<ContentType> for String {
    fn from(v: ContentType) -> String {
        v.0
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Public metadata of a record: what the test was, when, and what kind of
/// file holds the result. Never the result itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The test's name, e.g. `Complete blood count`.
    pub test_name: Name,
    /// The record type, e.g. `lab-result`, `x-ray`, `mri`, `prescription`.
    pub record_type: Label,
    /// The date of the test.
    pub date: NaiveDate,
    /// The content type of the (plaintext) file.
    pub content_type: ContentType,
    /// The plaintext size in bytes.
    pub size: u64,
}

impl RecordMeta {
    /// The words a free-text search matches: test name, record type and
    /// content type, lowercased and split on anything not alphanumeric.
    pub fn search_words(&self) -> Vec<String> {
        search_words(&format!(
            "{} {} {}",
            self.test_name, self.record_type, self.content_type
        ))
    }
}

/// Splits `text` into lowercase alphanumeric words, the tokenization every
/// cache backend's free-text search agrees on.
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// What a creator submits to create a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    /// The record's id; its patient is the record's patient.
    pub id: RecordId,
    /// The doctor or diagnostic center creating it.
    pub creator: HhNumber,
    /// The CID of the sealed (encrypted) content in the vault.
    pub cid: Cid,
    /// Public metadata.
    pub meta: RecordMeta,
}

/// A record as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MedicalRecord {
    /// The record's id.
    pub id: RecordId,
    /// The patient it belongs to (always `id.patient()`).
    pub patient: HhNumber,
    /// The doctor or diagnostic center that created it.
    pub creator: HhNumber,
    /// The CID of the sealed content.
    pub cid: Cid,
    /// Public metadata.
    pub meta: RecordMeta,
    /// When the record landed on chain (block timestamp).
    pub created_at: Timestamp,
}

impl MedicalRecord {
    /// The record that `new` becomes when it lands at `created_at`.
    pub fn from_new(new: NewRecord, created_at: Timestamp) -> Self {
        Self {
            patient: new.id.patient(),
            id: new.id,
            creator: new.creator,
            cid: new.cid,
            meta: new.meta,
            created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_checked_and_lowercased() {
        assert_eq!(
            ContentType::new("Application/PDF").unwrap().as_str(),
            "application/pdf"
        );
        assert!(ContentType::new("image/dicom").is_ok());
        for bad in [
            "pdf",
            "/pdf",
            "application/",
            "a/b/c",
            "text/plain; charset=utf-8",
        ] {
            assert!(ContentType::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_words_split_and_lowercase() {
        assert_eq!(
            search_words("Complete Blood-Count (CBC)"),
            ["complete", "blood", "count", "cbc"]
        );
    }
}
