//! The vault adapter: envelope-encrypted, IPFS-compatible content-addressed
//! storage implementing [`healthledger_core::VaultPort`] on any
//! `object_store` backend.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use healthledger_core::VaultPort;
//! use healthledger_vault::{Kek, Vault};
//!
//! let vault = Vault::builder("file:///var/lib/healthledger/vault")
//!     .kek(Kek::from_env()?)
//!     .build()?;
//! let sealed = vault.put(bytes::Bytes::from_static(b"lab results")).await?;
//! assert_eq!(vault.get(&sealed.cid).await?, "lab results");
//! # Ok(()) }
//! ```
//!
//! # Backends
//!
//! [`Vault::builder`] takes a URL and hands it to `object_store::parse_url_opts`:
//! `file:///absolute/dir` (the embedded default; every write is fsynced, file
//! and directory, before `put` returns, since its CID may be anchored on chain
//! right after), `memory://`, and behind the
//! features of the same name `s3://bucket/prefix` (`s3`), `gs://bucket`
//! (`gcs`) and `az://container` (`azure`). Store options (endpoints,
//! credentials) go through [`VaultBuilder::option`]; [`VaultPort::health`]
//! reports the URL without credentials, query or fragment.
//!
//! # Layout in the store
//!
//! Under the URL's path:
//! - `objects/<cid>`: the sealed object (ciphertext), named by its CID;
//! - `keys/<cid>`: its key record (the data key wrapped under the KEK), kept
//!   apart from the content so that copies of the content (IPFS pins,
//!   backups, gateways) never carry a usable key;
//! - `shredded/<cid>`: the tombstone of a shredded object;
//! - `incoming/<random>`: large objects being uploaded, before their CID is
//!   known.
//!
//! # Key hierarchy
//!
//! A key-encryption key ([`Kek`], 32 bytes and a public id, from
//! configuration or [`Kek::from_env`]) wraps one fresh random 256-bit data
//! key per object, with AES-256-GCM-SIV and associated data binding the
//! record to the object's CID and the KEK id (see [`keys`] for the record
//! layout). Sealing the same plaintext twice therefore gives two unrelated
//! ciphertexts and CIDs. [`Vault::rotate_kek`] re-wraps every key record
//! under a new KEK without touching content. A vault holds a keyring: the
//! current KEK wraps, and every KEK it holds (see
//! [`VaultBuilder::previous_kek`]) unwraps the records that name it, so reads
//! go on during a rotation, in this process or another, and after one that was
//! interrupted. Once every process wraps under the new KEK and a rotation ran
//! to its end, the old KEK can be destroyed and opens nothing. Key material is zeroized on drop and never printed: `Debug`
//! shows key ids only, errors never quote keys.
//!
//! # Sealed format
//!
//! Content is encrypted with its data key in 64 KiB segments, a STREAM
//! construction as in Tink's streaming AEAD: each segment's nonce is a
//! random 7-byte per-object prefix, the segment index and a last-segment
//! flag, and every segment authenticates the object header. Reordering,
//! dropping, duplicating, truncating or extending segments is detected.
//! The exact layout is in [`seal`]. Any size streams through in constant
//! memory: [`VaultPort::put_stream`] holds one segment, a few 256 KiB
//! batches queued for the CID hashing thread (which runs beside the cipher)
//! and the upload parts in flight (8 MiB, two at a time); reads fetch 4 MiB
//! ranges, two in flight.
//!
//! # CID profile
//!
//! The CID of an object is the CID of its stored ciphertext exactly as
//! Kubo's `ipfs add --only-hash` computes it ([`compute_cid`]): UnixFS
//! `File` nodes in dag-pb, balanced layout, 256 KiB chunks, at most 174
//! links per node, sha2-256. The vault uses CIDv1 with raw leaves (Kubo's
//! `--cid-version=1`) unless [`VaultBuilder::cid_options`] says otherwise,
//! e.g. [`CidOptions::KUBO_V0`] for Kubo's default `Qm…` CIDs. The
//! ciphertext can therefore be pinned to IPFS and fetched from any gateway
//! by the CID recorded on chain.
//!
//! # Reads verify
//!
//! [`VaultPort::get`] recomputes the CID while it streams the ciphertext and
//! checks every segment's tag; on any mismatch it returns `Integrity` and no
//! plaintext. [`VaultPort::get_stream`] releases each batch of segments only
//! after their tags verified; on a mismatch it first releases the segments
//! that verified before the damaged one, then ends with `Integrity`
//! (including the CID check at the end). [`VaultPort::verify`] recomputes
//! the CID of the stored bytes and checks that the key record unwraps,
//! without decrypting content.
//!
//! # Shredding
//!
//! [`VaultPort::shred`] first writes the tombstone, then deletes the key
//! record and the local ciphertext. Reads look for the tombstone before they
//! read the key record, so a shred that stopped half-way already releases
//! nothing, and shredding again finishes it. A rotation never writes a
//! shredded key back: it rewrites a record only if it is unchanged since it
//! was read (a conditional put on its e-tag where the store has them), skips
//! and deletes the records of tombstoned CIDs, and looks for a tombstone again
//! after each rewrite (the argument is in the `rotate` module). Without the data key the content can
//! never be decrypted again, even where copies of the ciphertext survive;
//! `get` says `NotFound` and `verify` says `Shredded` from then on. A
//! deleted key record may still linger in backups of the store or on disk,
//! wrapped under the KEK: rotating the KEK and destroying the old one makes
//! shredding final against those too.
//!
//! [`VaultPort::health`]: healthledger_core::VaultPort::health
//! [`VaultPort::put_stream`]: healthledger_core::VaultPort::put_stream
//! [`VaultPort::get`]: healthledger_core::VaultPort::get
//! [`VaultPort::get_stream`]: healthledger_core::VaultPort::get_stream
//! [`VaultPort::verify`]: healthledger_core::VaultPort::verify
//! [`VaultPort::shred`]: healthledger_core::VaultPort::shred

pub mod error;
pub mod keys;
pub mod seal;
pub mod unixfs;
mod vault;

pub use error::{Error, Result};
pub use keys::Kek;
pub use unixfs::{CidHasher, CidOptions, CidOptionsError, CidVersion, compute_cid};
pub use vault::{Rotation, Vault, VaultBuilder};
