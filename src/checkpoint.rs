//! Signed checkpoints: a log no insider can quietly rewrite.
//!
//! A writer given an ed25519 signing key appends a `checkpoint` record
//! signing (ledger id, seq, head hash) of the record before it: when it
//! opens with an unsigned head, every `checkpoint_every` records, and at a
//! clean close. Anyone holding the public key checks them; `export` writes
//! the newest one as a small file to keep elsewhere (a witness), and
//! [`prove`] shows that a log still extends that signed head. Someone with
//! file access can re-hash the chain (and `verify` alone would call it
//! valid) but cannot sign: every checkpoint after the first changed record
//! either no longer matches the chain or no longer verifies.
//!
//! What it does not prove: that records after the newest signed head are
//! the writer's (they are as good as the hash chain), or anything if the
//! signing key was stolen. How precisely a rewrite is located is the
//! distance between checkpoints.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};

use crate::log::LogError;
use crate::reader::LedgerRead;
use crate::record::{Body, Checkpoint, Digest, PublicKey};

/// Records between checkpoints when none is given.
pub const CHECKPOINT_EVERY: u64 = 1_000;
/// Fewest and most records between checkpoints.
pub const CHECKPOINT_EVERY_MIN: u64 = 1;
pub const CHECKPOINT_EVERY_MAX: u64 = 1_000_000_000;
/// The exported file's format name.
pub const EXPORT_FORMAT: &str = "parley-checkpoint/1";
/// Largest exported file or key file read.
const FILE_BYTES_MAX: u64 = 64 << 10;

/// What went wrong with a key, a signature or a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} does not hold a signing key (64 hex digits)", .0.display())]
    BadSigningKey(PathBuf),
    #[error("PARLEY_SIGNING_KEY does not hold a signing key (64 hex digits)")]
    BadSigningKeyEnv,
    #[error("{} can be read by other users (mode {mode:o}): a signing key must be private (chmod 600)", path.display())]
    KeyNotPrivate { path: PathBuf, mode: u32 },
    #[error("{0} is not a public key (64 hex digits, or a file holding them)")]
    BadPublicKey(String),
    #[error("{} already exists: keygen never overwrites a key", .0.display())]
    Exists(PathBuf),
    #[error("{} is not a checkpoint file ({EXPORT_FORMAT}): {why}", path.display())]
    BadFile { path: PathBuf, why: String },
    #[error("the checkpoint's signature does not verify under {key}")]
    BadSignature { key: String },
    #[error("the checkpoint was signed by key {signed_by}, not by the key given ({given})")]
    OtherKey { signed_by: String, given: String },
    #[error("the log holds no checkpoint (run the writer with --signing-key)")]
    NoCheckpoint,
    #[error("{0}")]
    Log(#[from] LogError),
}

/// The writer's signing key. Its `Debug` shows the public key only.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key().to_hex())
    }
}

impl SigningKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<SigningKey, CheckpointError> {
        let path = Path::new("/dev/urandom");
        let mut seed = [0u8; 32];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|source| CheckpointError::Io {
                op: "read",
                path: path.into(),
                source,
            })?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// A key from its 64 hex digits.
    pub fn from_hex(text: &str) -> Option<SigningKey> {
        let seed = crate::record::HexBytes::<32>::from_hex(text)?;
        Some(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed.0)))
    }

    /// Reads a key file (`keygen`'s `signing.key`); refuses one other users
    /// can read.
    pub fn load(path: &Path) -> Result<SigningKey, CheckpointError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |op| {
            move |source| CheckpointError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        };
        let meta = std::fs::metadata(path).map_err(io("read"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CheckpointError::KeyNotPrivate {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = read_small(path)?;
        SigningKey::from_hex(&text).ok_or_else(|| CheckpointError::BadSigningKey(path.into()))
    }

    pub fn public_key(&self) -> PublicKey {
        crate::record::HexBytes(self.0.verifying_key().to_bytes())
    }

    /// The checkpoint of the head at `seq`.
    pub fn sign(&self, ledger_id: &str, seq: u64, head_hash: Digest) -> Checkpoint {
        let bytes = Checkpoint::signed_bytes(ledger_id, seq, &head_hash);
        let signature = self.0.sign(&bytes).to_bytes();
        Checkpoint {
            ledger_id: ledger_id.to_owned(),
            seq,
            head_hash,
            public_key: self.public_key(),
            signature: crate::record::HexBytes(signature),
        }
    }
}

fn read_small(path: &Path) -> Result<String, CheckpointError> {
    let io = |source| CheckpointError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(io)?;
    Ok(text)
}

/// A public key given as 64 hex digits or as a file holding them.
pub fn public_key(given: &str) -> Result<PublicKey, CheckpointError> {
    if let Some(k) = crate::record::HexBytes::from_hex(given) {
        return Ok(k);
    }
    let text = read_small(Path::new(given))
        .map_err(|_| CheckpointError::BadPublicKey(given.to_owned()))?;
    crate::record::HexBytes::from_hex(&text)
        .ok_or_else(|| CheckpointError::BadPublicKey(given.to_owned()))
}

/// Writes a new key pair into `dir`: `signing.key` (mode 600) and
/// `signing.pub`. Never overwrites.
pub fn keygen(dir: &Path) -> Result<(PathBuf, PublicKey), CheckpointError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { op, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let (private, public) = (dir.join("signing.key"), dir.join("signing.pub"));
    for p in [&private, &public] {
        if p.exists() {
            return Err(CheckpointError::Exists(p.clone()));
        }
    }
    let key = SigningKey::generate()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .map_err(io("create", &private))?;
    writeln!(f, "{}", crate::record::to_hex(key.0.as_bytes()))
        .and_then(|()| f.sync_all())
        .map_err(io("write", &private))?;
    std::fs::write(&public, format!("{}\n", key.public_key().to_hex()))
        .map_err(io("write", &public))?;
    Ok((private, key.public_key()))
}

/// Checks `cp`'s signature under `key`.
pub fn check_signature(cp: &Checkpoint, key: &PublicKey) -> Result<(), CheckpointError> {
    let bad = || CheckpointError::BadSignature { key: key.to_hex() };
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&key.0).map_err(|_| bad())?;
    let signature = ed25519_dalek::Signature::from_bytes(&cp.signature.0);
    let bytes = Checkpoint::signed_bytes(&cp.ledger_id, cp.seq, &cp.head_hash);
    verifying
        .verify_strict(&bytes, &signature)
        .map_err(|_| bad())
}

/// The file a witness keeps: a checkpoint and where it is in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exported {
    pub format: String,
    /// The seq of the checkpoint record itself.
    pub record_seq: u64,
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
}

impl Exported {
    /// Reads and parses an exported file.
    pub fn read(path: &Path) -> Result<Exported, CheckpointError> {
        let text = read_small(path)?;
        let bad = |why: String| CheckpointError::BadFile {
            path: path.to_path_buf(),
            why,
        };
        let e: Exported = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if e.format != EXPORT_FORMAT {
            return Err(bad(format!("its format is `{}`", e.format)));
        }
        if e.record_seq != e.checkpoint.seq + 1 {
            return Err(bad(
                "record_seq is not the seq after the head it signs".into()
            ));
        }
        Ok(e)
    }
}

/// The newest checkpoint record in the log.
pub fn newest(reader: &dyn LedgerRead) -> Result<Exported, CheckpointError> {
    let head = reader.head_seq();
    let mut found = None;
    reader.scan(1, head, &mut |r| {
        if let Body::Checkpoint { checkpoint } = &r.record.body {
            found = Some(Exported {
                format: EXPORT_FORMAT.into(),
                record_seq: r.record.envelope.seq,
                checkpoint: (**checkpoint).clone(),
            });
        }
        Ok(())
    })?;
    found.ok_or(CheckpointError::NoCheckpoint)
}

/// What [`prove`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Proven {
    pub ok: bool,
    /// The signed head checked against (the file's, or the newest in the log).
    pub signed_seq: u64,
    pub log_head: u64,
    /// Checkpoints in the log signed by the key whose signature and head
    /// both hold.
    pub checkpoints_held: u64,
    /// The last seq a checkpoint signed by the key still vouches for.
    pub vouched_to: u64,
    /// Where the log departs from what was signed: the first seq that may
    /// differ (every seq up to `vouched_to` holds) …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departs_from: Option<u64>,
    /// … and the seq by which it surely does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departs_by: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Proven {
    fn depart(&mut self, from: u64, by: u64, why: String) {
        self.ok = false;
        self.departs_from = Some(from);
        self.departs_by = Some(by.max(from));
        self.reason = Some(why);
    }
}

/// The walk over the log that [`prove`] makes.
struct Walk<'a> {
    key: &'a PublicKey,
    ledger_id: Option<String>,
    held: u64,
    vouched_to: u64,
    /// The first checkpoint record of the key that does not hold.
    first_bad: Option<(u64, u64)>,
    /// The signed head to find, and the hash the log has there.
    target: Option<u64>,
    found: Option<crate::record::Hash>,
}

impl Walk<'_> {
    fn visit(&mut self, r: &crate::record::StoredRecord) {
        let seq = r.record.envelope.seq;
        if let Body::Genesis { ledger_id, .. } = &r.record.body {
            self.ledger_id = Some(ledger_id.clone());
        }
        if self.target == Some(seq) {
            self.found = Some(r.hash);
        }
        let Body::Checkpoint { checkpoint: cp } = &r.record.body else {
            return;
        };
        if cp.public_key != *self.key || self.first_bad.is_some() {
            return;
        }
        let holds = check_signature(cp, self.key).is_ok()
            && cp.seq + 1 == seq
            && cp.head_hash.0 == r.prev_hash
            && self.ledger_id.as_deref() == Some(cp.ledger_id.as_str());
        if holds {
            self.held += 1;
            self.vouched_to = cp.seq;
        } else {
            self.first_bad = Some((seq, cp.seq));
        }
    }
}

/// Checks every checkpoint the log holds that `key` signed and, given an
/// exported checkpoint (`signed`), that the log still extends its head.
/// Damage to the chain itself is an error (as `verify` reports it).
pub fn prove(
    reader: &dyn LedgerRead,
    key: &PublicKey,
    signed: Option<&Exported>,
) -> Result<Proven, CheckpointError> {
    if let Some(e) = signed {
        if e.checkpoint.public_key != *key {
            return Err(CheckpointError::OtherKey {
                signed_by: e.checkpoint.public_key.to_hex(),
                given: key.to_hex(),
            });
        }
        check_signature(&e.checkpoint, key)?;
    }
    let head = reader.head_seq();
    let mut walk = Walk {
        key,
        ledger_id: None,
        held: 0,
        vouched_to: 0,
        first_bad: None,
        target: signed.map(|e| e.checkpoint.seq),
        found: None,
    };
    reader.scan(1, head, &mut |r| {
        walk.visit(&r);
        Ok(())
    })?;
    let mut out = Proven {
        ok: true,
        signed_seq: signed.map_or(walk.vouched_to, |e| e.checkpoint.seq),
        log_head: head,
        checkpoints_held: walk.held,
        vouched_to: walk.vouched_to,
        departs_from: None,
        departs_by: None,
        reason: None,
    };
    let from = walk.vouched_to + 1;
    if let Some(e) = signed {
        let cp = &e.checkpoint;
        if walk.ledger_id.as_deref() != Some(cp.ledger_id.as_str()) {
            out.depart(1, 1, format!("the log is not ledger {}", cp.ledger_id));
        } else if head < cp.seq {
            let from = if walk.first_bad.is_some() {
                from
            } else {
                head + 1
            };
            out.depart(from, cp.seq, format!("the log ends at seq {head}, before the signed head at seq {}: it was cut short", cp.seq));
        } else if walk.found != Some(cp.head_hash.0) {
            let by = walk.first_bad.map_or(cp.seq, |b| b.1.min(cp.seq));
            out.depart(from, by, format!("the record at seq {} is not the one signed (its hash is {}, the checkpoint signed {}): the log was rewritten", cp.seq, walk.found.map(|h| crate::record::to_hex(&h)).unwrap_or_default(), cp.head_hex()));
        }
    }
    if let (Some((at, claims)), true) = (walk.first_bad, out.ok) {
        out.depart(from, claims.min(at), format!("the checkpoint at seq {at} does not hold under this key (its signature or the head it signs, seq {claims}, does not match the log): the log was rewritten"));
    } else if walk.held == 0 && signed.is_none() && out.ok {
        out.ok = false;
        out.reason = Some("no checkpoint in the log is signed by this key".into());
    }
    Ok(out)
}
