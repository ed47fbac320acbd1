//! What a record's file may be, judged by its content (magic numbers, via
//! the `infer` crate), not by its name or the caller's word, and a stream
//! guard that stops a file at the size limit without holding it in memory.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt as _, stream};
use healthledger_core::{ByteStream, ValidationError, VaultError};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The file types a record may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllowedType {
    /// `application/pdf`.
    Pdf,
    /// `application/msword` (OLE2 compound file).
    Doc,
    /// `application/vnd.openxmlformats-officedocument.wordprocessingml.document`.
    Docx,
    /// `image/jpeg`.
    Jpeg,
    /// `image/png`.
    Png,
    /// `application/dicom` (a DICOM Part 10 file).
    Dicom,
}

impl AllowedType {
    /// Every allowed type.
    pub const ALL: [Self; 6] = [
        Self::Pdf,
        Self::Doc,
        Self::Docx,
        Self::Jpeg,
        Self::Png,
        Self::Dicom,
    ];

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Doc => "application/msword",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Dicom => "application/dicom",
        }
    }

    /// The type whose MIME type is `mime`.
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.mime() == mime)
    }
}

/// How many leading bytes [`sniff`] looks at (DOCX needs the zip's first
/// entry names; DICOM's magic sits at offset 128).
pub const SNIFF_BYTES: usize = 8 * 1024;

/// The allowed type `head` (a file's first bytes) is, if any.
pub fn sniff(head: &[u8]) -> Option<AllowedType> {
    if infer::archive::is_pdf(head) {
        Some(AllowedType::Pdf)
    } else if infer::doc::is_docx(head) {
        Some(AllowedType::Docx)
    } else if infer::doc::is_doc(head) {
        Some(AllowedType::Doc)
    } else if infer::image::is_jpeg(head) {
        Some(AllowedType::Jpeg)
    } else if infer::image::is_png(head) {
        Some(AllowedType::Png)
    } else if infer::archive::is_dcm(head) {
        Some(AllowedType::Dicom)
    } else {
        None
    }
}

/// A checked file: its type, and a stream of all its bytes that ends with
/// an error once more than the limit has passed.
pub(crate) struct CheckedFile {
    pub(crate) kind: AllowedType,
    pub(crate) stream: ByteStream,
    /// Bytes passed so far (the guard's count).
    pub(crate) seen: Arc<AtomicU64>,
}

/// Reads the head of `file`, checks its type against `declared` and the
/// allowed types, and returns a stream of the whole file guarded by
/// `limit`.
pub(crate) async fn check_file(
    mut file: ByteStream,
    declared: &str,
    limit: u64,
) -> Result<CheckedFile> {
    let mut head = BytesMut::new();
    let mut ended = false;
    while head.len() < SNIFF_BYTES {
        match file.next().await {
            Some(chunk) => head.extend_from_slice(&chunk.map_err(Error::from)?),
            None => {
                ended = true;
                break;
            }
        }
    }
    if head.is_empty() {
        return Err(ValidationError::new("file", "", "must not be empty").into());
    }
    if head.len() as u64 > limit {
        return Err(Error::TooLarge {
            size: head.len() as u64,
            limit,
        });
    }
    let kind = sniff(&head).ok_or_else(|| {
        Error::Unsupported(format!(
            "the file's content is none of {}",
            AllowedType::ALL.map(AllowedType::mime).join(", ")
        ))
    })?;
    if kind.mime() != declared {
        return Err(Error::Unsupported(format!(
            "the file is declared {declared:?} but its content is {}",
            kind.mime()
        )));
    }
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let head: Bytes = head.freeze();
    let rest = if ended { stream::empty().boxed() } else { file };
    let guarded = stream::once(async move { Ok(head) })
        .chain(rest)
        .map(move |chunk| {
            let chunk = chunk?;
            let total =
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            if total > limit {
                Err(VaultError::Invalid(format!(
                    "file too large: more than {limit} bytes"
                )))
            } else {
                Ok(chunk)
            }
        })
        .boxed();
    Ok(CheckedFile {
        kind,
        stream: guarded,
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_every_allowed_type_and_nothing_else() {
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM\x02\x00");
        let cases: [(&[u8], Option<AllowedType>); 6] = [
            (b"%PDF-1.7\n...", Some(AllowedType::Pdf)),
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], Some(AllowedType::Jpeg)),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some(AllowedType::Png)),
            (&dicom, Some(AllowedType::Dicom)),
            (b"#!/bin/sh\nrm -rf /\n", None),
            (b"MZ\x90\x00", None),
        ];
        for (bytes, kind) in cases {
            assert_eq!(sniff(bytes), kind);
        }
    }
}
