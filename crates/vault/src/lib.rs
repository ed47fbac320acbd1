//! The vault adapter: envelope-encrypted, IPFS-compatible content-addressed
//! storage implementing [`healthledger_core::VaultPort`] on any
//! `object_store` backend, with its keys in a key store of their own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use healthledger_core::{HhNumber, VaultPort};
//! use healthledger_vault::{Kek, Vault};
//!
//! let vault = Vault::builder("file:///var/lib/healthledger/vault")
//!     .key_store("file:///var/lib/healthledger/vault-keys")
//!     // The key store's backups are kept 35 days: erasure is final after that.
//!     .erasure_horizon(Duration::from_secs(35 * 24 * 3600))
//!     .kek(Kek::from_env()?)
//!     .build()?;
//! let patient = HhNumber::new(555_555)?;
//! let sealed = vault.put(patient, bytes::Bytes::from_static(b"lab results")).await?;
//! assert_eq!(vault.get(patient, &sealed.cid).await?, "lab results");
//! vault.erase_patient(patient).await?; // every object of theirs, at once
//! # Ok(()) }
//! ```
//!
//! # Backends
//!
//! [`Vault::builder`] takes the content store's URL and
//! [`VaultBuilder::key_store`] the key store's, each handed to
//! `object_store::parse_url_opts`: `file:///absolute/dir` (the embedded
//! default; every write is fsynced, file and directory, before `put` returns,
//! since its CID may be anchored on chain right after), `memory://`, and
//! behind the features of the same name `s3://bucket/prefix` (`s3`),
//! `gs://bucket` (`gcs`) and `az://container` (`azure`). Store options
//! (endpoints, credentials) go through [`VaultBuilder::option`] and
//! [`VaultBuilder::key_store_option`]; [`VaultPort::health`] reports both URLs
//! without credentials, query or fragment. The key store's URL must be neither
//! the content's nor inside it (nor around it), so that backups, versions,
//! pins and copies of the content never carry a key.
//!
//! # Layout
//!
//! In the content store, under its URL's path:
//! - `objects/<cid>`: the sealed object (ciphertext), named by its CID;
//!   [`VaultPort::objects`] lists them in CID order, with their sizes and
//!   the store's last-modified times;
//! - `incoming/<random>`: large objects being uploaded, before their CID is
//!   known.
//!
//! In the key store (formats in [`records`]):
//! - `subjects/<HH number>`: a patient's subject key, wrapped by the KEK;
//! - `keys/<cid>`: an object's data key, wrapped by its patient's subject key,
//!   with the patient and the CID profile the object was addressed with;
//! - `shredded/<cid>` and `erased/<HH number>`: tombstones;
//! - `rotation`: the two KEK ids of a rotation under way.
//!
//! # Key hierarchy and erasure
//!
//! A key-encryption key behind the [`KeyProvider`] trait (the local [`Kek`],
//! 32 bytes and a public id from configuration or [`Kek::from_env`]; a KMS or
//! an HSM can implement the trait) wraps one random 256-bit subject key per
//! patient, and each subject key wraps one fresh random data key per object,
//! all with AES-256-GCM-SIV and associated data binding each record to its
//! patient, its CID and its KEK id. Sealing the same plaintext twice gives two
//! unrelated ciphertexts and CIDs.
//!
//! [`VaultPort::erase_patient`] writes the patient's tombstone, then deletes
//! their one subject record: every data key of theirs stops unwrapping at
//! once, wherever copies of the ciphertext or of the data key records survive.
//! [`VaultPort::shred`] does the same for one object: tombstone, then its data
//! key record, then its ciphertext.
//!
//! **The erasure horizon.** A deleted record lives on in whatever keeps old
//! versions of the key store: its backups, snapshots, object versioning,
//! replicas. Until those expire, whoever restores one (with the KEK) can
//! decrypt again. That retention is the erasure horizon: it must be stated
//! ([`VaultBuilder::erasure_horizon`]) and [`VaultPort::health`] reports it, so
//! nobody promises more. The key store is small (a hundred bytes a patient
//! and an object), so a short retention is cheap; the content store can be
//! backed up and pinned for any length of time without moving the horizon.
//! Rotating the KEK and destroying the old one also ends the life of every
//! older copy of the key store.
//!
//! # Rotation
//!
//! [`Vault::rotate_kek`] re-wraps the subject records (one per patient; data
//! key records and content are not touched) under a new KEK. A vault holds a
//! keyring: the current KEK wraps, and every KEK it holds (see
//! [`VaultBuilder::previous_kek`]) unwraps the records that name it, so reads
//! go on during a rotation, in this process or another, and after one that was
//! interrupted; a reader holding only one KEK of a rotation under way gets
//! [`Error::RotationInProgress`]. Once every process wraps under the new KEK
//! and a rotation ran to its end, the old KEK can be destroyed and opens
//! nothing. Key material is zeroized on drop and never printed: `Debug` shows
//! key ids only, errors never quote keys.
//!
//! # Sealed format
//!
//! Content is encrypted with its data key in 64 KiB segments, a STREAM
//! construction as in Tink's streaming AEAD: each segment's nonce is a
//! random 7-byte per-object prefix, the segment index and a last-segment
//! flag, and every segment authenticates the object header. Reordering,
//! dropping, duplicating, truncating or extending segments is detected.
//! The exact layout is in [`seal`]. Any size streams through in constant
//! memory: [`VaultPort::put_stream`] holds two 1 MiB batches (one being
//! encrypted, the one before it being hashed; small, so that a batch's
//! ciphertext is still in the caches when it is hashed and stored) and what
//! the store has not written yet (upload parts of 8 MiB, two in flight; on
//! `file://`, sixteen batches queued for the file's writers); reads fetch
//! 4 MiB ranges, two in flight (on `file://` read by the vault's own thread
//! from one open file into buffers reused once the reader let go of them),
//! and each range is one job. `get` decrypts a whole object into an
//! anonymous mapping that asks for transparent huge pages, so its fresh
//! memory is faulted in 2 MiB at a time rather than 4 KiB. Segments are
//! independent (each nonce names its index) and so are raw leaves (one
//! SHA-256 each): each batch is one job, sent straight to rayon's pool,
//! that encrypts (or decrypts) its segments and hashes leaves in one
//! `rayon::join`, so work stealing keeps both cores busy with either,
//! rather than the cipher on one core and the hashing on the other. Output
//! buffers are reused once the store or the reader let go of them, and
//! never zero-filled before the cipher overwrites them. On `file://` under
//! Linux, large objects are written past the page cache (`O_DIRECT`),
//! straight from those buffers: the seal cuts its batches on 4 KiB
//! boundaries of the object in page-aligned buffers, so the kernel copies
//! nothing and the writer threads leave both cores to the cipher and the
//! hashing. Reads go through the page cache: the first read of such an
//! object comes from the disk, later ones of an object in use from memory.
//! Elsewhere (or on a filesystem without direct I/O) the upload goes
//! through the page cache and is flushed every 16 MiB while it is written,
//! so the fsync before `put` returns waits for the tail only. The bench
//! (`benches/vault.rs`) prints each rate beside the two-core bound
//! `2 / (1/AES + 1/SHA-256)` measured in the same run.
//!
//! # Decrypt anywhere, pin anywhere
//!
//! [`open_sealed`] (and [`open_sealed_stream`]) open a sealed object fetched
//! from anywhere, an IPFS gateway, a CAR file or a backup, with its
//! [`ObjectKey`]: from [`Vault::object_key`], or recovered from a copy of
//! the key store and the KEK ([`ObjectKey::from_records`]). They verify as
//! `get` and `get_stream` do. [`Vault::export_car`] writes a sealed object
//! as a CARv1 file whose root is its CID, for any IPFS node or pinning
//! service to import.
//!
//! # CID profile
//!
//! The CID of an object is the CID of its stored ciphertext exactly as
//! Kubo's `ipfs add --only-hash` computes it ([`compute_cid`]): UnixFS
//! `File` nodes in dag-pb, balanced layout, 256 KiB chunks, at most 174
//! links per node, sha2-256. The vault uses CIDv1 with raw leaves (Kubo's
//! `--cid-version=1`) unless [`VaultBuilder::cid_options`] says otherwise,
//! e.g. [`CidOptions::KUBO_V0`] for Kubo's default `Qm…` CIDs. The profile
//! is recorded in each object's data key record, so changing the options
//! never makes older objects unreadable. The
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
//! the CID of the stored bytes and checks that the keys unwrap, without
//! decrypting content; [`Vault::check_keys`] says why they do not, as an
//! [`Error`] variant (tampered, wrong or missing KEK, rotation in progress,
//! missing key record). Through the port each of these is `Integrity` with
//! the matching `healthledger_core::IntegrityReason`, so callers match on
//! the reason, never on the message.
//!
//! Every read names the patient the caller expects the object to belong
//! to; the data key record names (and authenticates) its owner, and an
//! object of anyone else is [`Error::WrongPatient`] (`VaultError::WrongPatient`
//! through the port) before any content is decrypted. A record of patient A
//! whose CID points at patient B's object (a creator may put any CID on
//! chain) so never opens B's content for A's readers.
//!
//! # Orderings that survive a crash
//!
//! Reads look for tombstones before they read the records they guard, and
//! shredding and erasing write their tombstone first: a shred or an erasure
//! that stopped half-way already releases nothing, and running it again
//! finishes it. A rotation never writes an erased key back: it rewrites a
//! record only if it is unchanged since it was read (a conditional put on its
//! e-tag where the store has them), skips and deletes the records of erased
//! patients, and looks for the tombstone again after each rewrite; a `put`
//! that created a subject record while the patient was being erased deletes
//! it again (the argument is in the `rotate` module).
//!
//! What a crash between two steps leaves behind (an upload in `incoming/`
//! never renamed, an object whose data key record was never written, the
//! ciphertext of a shred that stopped before deleting it) is removed by
//! [`Vault::gc`], once it is older than a grace period that must exceed the
//! longest upload; it never touches an object that has its key record.
//!
//!
//! [`VaultPort::health`]: healthledger_core::VaultPort::health
//! [`VaultPort::put_stream`]: healthledger_core::VaultPort::put_stream
//! [`VaultPort::get`]: healthledger_core::VaultPort::get
//! [`VaultPort::get_stream`]: healthledger_core::VaultPort::get_stream
//! [`VaultPort::verify`]: healthledger_core::VaultPort::verify
//! [`VaultPort::shred`]: healthledger_core::VaultPort::shred
//! [`VaultPort::erase_patient`]: healthledger_core::VaultPort::erase_patient
//! [`VaultPort::objects`]: healthledger_core::VaultPort::objects

mod buffer;
pub mod error;
mod keyring;
pub mod keys;
pub mod records;
pub mod seal;
pub mod unixfs;
mod vault;

pub use error::{Error, Result};
pub use keys::{Kek, KeyProvider};
pub use unixfs::{CidHasher, CidOptions, CidOptionsError, CidVersion, compute_cid};
pub use vault::{
    CarExport, GcReport, ObjectKey, Rotation, StoreAt, Vault, VaultBuilder, open_sealed,
    open_sealed_stream,
};
