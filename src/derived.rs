//! Derived state in sled, used by the writer only: the idempotency keys (with
//! a digest of each command's content, so a retry with other content is
//! refused), the applied marker (seq and hash, and the ledger it belongs to),
//! each a pure function of the log ([`entries_of`]), caught up from the log
//! when a writer opens; and the context snapshot, sealed with its seq, hash
//! and a blake3 check, in a file beside sled's (see [`SNAPSHOT_FILE`]).
//! Entity indexes live in segment index files (`crate::log::index`), which
//! readers can use without a lock; an engine without them (PostgreSQL)
//! keeps its nodes' entity index here (`entities`).
//!
//! Applied records first land in an in-memory pending layer that every read
//! sees; it is written to sled as one batch every `FLUSH_RECORDS` records,
//! after `FLUSH_IDLE_MS` without new records, and on close.
//!
//! Architecture invariant: nothing acknowledged depends on sled being durable
//! (sled's `flush()` calls sync_file_range, not fsync). A lost, stale, damaged
//! or foreign store is rebuilt from the log and loses nothing. A store another
//! process holds, or one on a full disk, is never wiped: the writer refuses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::log::{Head, LogError, LogReader};
use crate::record::{Body, Digest, Hash, StoredRecord};

mod entities;
mod snapshot;
pub use snapshot::read_snapshot_file;

const META_APPLIED: &[u8] = b"m\0applied";
const META_LEDGER: &[u8] = b"m\0ledger";
const META_SNAPSHOT: &[u8] = b"m\0snapshot";
/// What a snapshot's bytes mean: bump when `Context`'s encoding or what
/// folding a record computes changes, so older snapshots are ignored (the
/// log is folded instead). The build's version is checked as well.
pub const SNAPSHOT_FORMAT: u32 = 7;
const CATCH_UP_CHUNK: usize = 4096;
/// Records held in the pending layer before it is written to sled.
pub const FLUSH_RECORDS: usize = 16_384;
/// A pending layer older than this with nothing new arriving is written out.
pub const FLUSH_IDLE_MS: u64 = 50;

/// What went wrong with the derived store.
#[derive(Debug, thiserror::Error)]
pub enum DerivedError {
    #[error("derived store (sled) at {path}: {reason}")]
    Sled { path: String, reason: String },
    #[error("derived store at {0} is held by another process (is another parley writer running on this directory?); it was left alone")]
    Locked(String),
    #[error("derived store at {0}: the disk is full; parley refuses writes until there is room (reads still work from the log)")]
    DiskFull(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// How the derived store was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DerivedOpen {
    /// Why it was wiped and rebuilt from the log, if it was.
    pub rebuilt_because: Option<String>,
    /// Records applied from the log to catch up.
    pub caught_up: u64,
}

fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![tag];
    for p in parts {
        k.push(0);
        k.extend_from_slice(p);
    }
    k
}

/// The digest of what a keyed command asked for: its body, causation and
/// correlation (its time may differ on a retry).
pub fn content_digest(body: &Body, causation: Option<u64>, correlation: Option<&str>) -> Digest {
    let mut h = blake3::Hasher::new();
    // Encoding a record body into a Vec cannot fail (no I/O, no limit here).
    h.update(&bincode::encode_to_vec(body, crate::record::codec_config()).unwrap_or_default());
    h.update(&causation.unwrap_or(0).to_le_bytes());
    match correlation {
        Some(c) => {
            h.update(&[1]);
            h.update(c.as_bytes());
        }
        None => {
            h.update(&[0]);
        }
    }
    Digest(*h.finalize().as_bytes())
}

/// The entries one record adds: its idempotency key, if it has one. Pure:
/// the projector and the consistency check both use it.
pub fn entries_of(stored: &StoredRecord) -> Vec<(Vec<u8>, Vec<u8>)> {
    let env = &stored.record.envelope;
    let Some(k) = &env.idempotency_key else {
        return Vec::new();
    };
    let mut v = env.seq.to_be_bytes().to_vec();
    let body = &stored.record.body;
    v.extend_from_slice(&content_digest(body, env.causation, env.correlation.as_deref()).0);
    vec![(key(b'k', &[env.producer.as_bytes(), k.as_bytes()]), v)]
}

/// Derived state not yet written to sled (or, for checks, a whole fold).
#[derive(Default, PartialEq, Eq, Debug)]
struct Layer {
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    last: Option<(u64, Hash)>,
    records: usize,
}

impl Layer {
    /// Adds `records`' entries (with their entity index when `entities`).
    fn merge(&mut self, records: &[StoredRecord], entities: bool) {
        for r in records {
            self.kv.extend(entries_of(r));
            if entities {
                self.kv.extend(entities::entries(r));
            }
            self.last = Some((r.record.envelope.seq, r.hash));
            self.records += 1;
        }
    }
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// The original record of an idempotency key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyed {
    pub seq: u64,
    pub content: Digest,
}

/// The sled-backed derived store.
pub struct Derived {
    path: String,
    db: sled::Db,
    tree: sled::Tree,
    pending: Mutex<Layer>,
    /// Where the context snapshot lives: a file beside sled's own
    /// (`None`: a temporary store keeps it in memory).
    snapshot_file: Option<PathBuf>,
    snapshot_mem: Mutex<Option<Vec<u8>>>,
    /// The applied marker's file (`None` for a temporary store).
    marker_file: Option<PathBuf>,
    /// Whether it keeps the entity index (`entities`).
    entities: bool,
}

/// The context snapshot's file in the store's directory. Not a sled value:
/// sled 0.34 keeps memory for every version of a large value written (with
/// a 2.5 MB snapshot every 131,072 records a writer grew from 93 MiB at 1 M
/// records to 162 MiB at 3 M; with the file, 69 MiB to 71 MiB).
pub const SNAPSHOT_FILE: &str = "context.snapshot";

/// 20 ms waits for a locked store to be let go (2 s in all).
const LOCK_WAITS: u32 = 100;

/// Why sled did not open, as the caller must treat it.
enum OpenFailure {
    Locked,
    DiskFull,
    Damaged(String),
}

fn classify(e: &sled::Error) -> OpenFailure {
    if let sled::Error::Io(io) = e {
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") {
            return OpenFailure::Locked;
        }
        if io.raw_os_error() == Some(libc::ENOSPC) || io.kind() == std::io::ErrorKind::StorageFull {
            return OpenFailure::DiskFull;
        }
    }
    OpenFailure::Damaged(e.to_string())
}

fn attempt(p: &PathBuf) -> Result<sled::Db, OpenFailure> {
    let config = sled::Config::new().path(p).cache_capacity(64 << 20);
    // sled may panic on some damaged files instead of returning an error;
    // a damaged derived store must never take the ledger down.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(OpenFailure::Damaged("sled panicked while opening".into())),
    }
}

impl Derived {
    fn err(&self, e: impl std::fmt::Display) -> DerivedError {
        let reason = e.to_string();
        if reason.contains("No space left") {
            return DerivedError::DiskFull(self.path.clone());
        }
        DerivedError::Sled {
            path: self.path.clone(),
            reason,
        }
    }

    fn from_db(path: String, db: sled::Db, dir: Option<&Path>) -> Result<Derived, DerivedError> {
        let tree = db.open_tree("derived").map_err(|e| DerivedError::Sled {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // Snapshots of earlier builds lived in sled: drop the value, if any.
        tree.remove(META_SNAPSHOT).map_err(|e| DerivedError::Sled {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Derived {
            path,
            db,
            tree,
            pending: Mutex::new(Layer::default()),
            snapshot_file: dir.map(|d| d.join(SNAPSHOT_FILE)),
            snapshot_mem: Mutex::new(None),
            marker_file: dir.map(|d| d.join(crate::log::marker::MARKER_FILE)),
            entities: false,
        })
    }

    /// The same store, keeping the entity index from now on (before its
    /// first `catch_up`, which rebuilds a store that kept none).
    pub fn with_entity_index(mut self) -> Derived {
        self.entities = true;
        self
    }

    /// Opens the store at `path`. A store that is damaged is wiped and
    /// recreated; one another process holds, or one on a full disk, is refused.
    pub fn open(path: &Path) -> Result<(Derived, Option<String>), DerivedError> {
        let shown = path.display().to_string();
        let path_buf = path.to_path_buf();
        // The caller holds the writer's lock on log/, so a lock on the store
        // is either a store this process closed a moment ago (sled's flusher
        // thread lets go of its file lock shortly after the last handle is
        // dropped) or a foreign process: wait a bounded time, then refuse.
        let mut first = attempt(&path_buf);
        for _ in 0..LOCK_WAITS {
            if !matches!(first, Err(OpenFailure::Locked)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            first = attempt(&path_buf);
        }
        match first {
            Ok(db) => Ok((Derived::from_db(shown, db, Some(path))?, None)),
            Err(OpenFailure::Locked) => Err(DerivedError::Locked(shown)),
            Err(OpenFailure::DiskFull) => Err(DerivedError::DiskFull(shown)),
            Err(OpenFailure::Damaged(reason)) => {
                tracing::warn!(path = %shown, %reason, "derived store does not open; rebuilding it from the log");
                std::fs::remove_dir_all(path).map_err(|e| DerivedError::Sled {
                    path: shown.clone(),
                    reason: format!("cannot remove damaged store: {e}"),
                })?;
                let db = attempt(&path_buf).map_err(|f| match f {
                    OpenFailure::Locked => DerivedError::Locked(shown.clone()),
                    OpenFailure::DiskFull => DerivedError::DiskFull(shown.clone()),
                    OpenFailure::Damaged(r) => DerivedError::Sled {
                        path: shown.clone(),
                        reason: r,
                    },
                })?;
                Ok((Derived::from_db(shown, db, Some(path))?, Some(reason)))
            }
        }
    }

    /// A store that lives only as long as the process (in-memory ledgers).
    pub fn temporary() -> Result<Derived, DerivedError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| DerivedError::Sled {
                path: "(temporary)".into(),
                reason: e.to_string(),
            })?;
        Derived::from_db("(temporary)".into(), db, None)
    }

    fn layer(&self) -> Result<MutexGuard<'_, Layer>, DerivedError> {
        self.pending
            .lock()
            .map_err(|_| self.err("pending layer lock poisoned by a panicked thread"))
    }

    /// The seq and hash of the last record written to sled.
    pub fn applied(&self) -> Result<Option<(u64, Hash)>, DerivedError> {
        let Some(v) = self.tree.get(META_APPLIED).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let seq = be_u64(&v).ok_or_else(|| self.err("applied marker is malformed"))?;
        let hash: Hash = v
            .get(8..40)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| self.err("applied marker is malformed"))?;
        Ok(Some((seq, hash)))
    }

    /// The genesis hash of the ledger this store belongs to, if recorded.
    pub fn binding(&self) -> Result<Option<Hash>, DerivedError> {
        let Some(v) = self.tree.get(META_LEDGER).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        Ok(v.as_ref().try_into().ok())
    }

    /// Applies records (in log order, continuing the applied seq): visible to
    /// reads at once, written to sled when the pending layer is full.
    pub fn apply(&self, records: &[StoredRecord]) -> Result<(), DerivedError> {
        let mut layer = self.layer()?;
        layer.merge(records, self.entities);
        if layer.records >= FLUSH_RECORDS {
            self.write_layer(&mut layer)?;
        }
        Ok(())
    }

    /// Writes the pending layer to sled in one atomic batch with the applied marker.
    pub fn flush_pending(&self) -> Result<(), DerivedError> {
        let mut layer = self.layer()?;
        self.write_layer(&mut layer)
    }

    fn write_layer(&self, layer: &mut Layer) -> Result<(), DerivedError> {
        let Some((seq, hash)) = layer.last else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for (k, v) in &layer.kv {
            batch.insert(k.as_slice(), v.as_slice());
        }
        let mut marker = seq.to_be_bytes().to_vec();
        marker.extend_from_slice(&hash);
        batch.insert(META_APPLIED, marker);
        self.tree.apply_batch(batch).map_err(|e| self.err(e))?;
        *layer = Layer::default();
        self.write_marker(seq, hash)
    }

    /// Writes the marker file (no fsync: whichever version of it survives
    /// names records that were durable before it was written).
    fn write_marker(&self, seq: u64, hash: Hash) -> Result<(), DerivedError> {
        let (Some(file), Some(genesis)) = (&self.marker_file, self.binding()?) else {
            return Ok(());
        };
        let bytes = crate::log::marker::encode(&genesis, seq, &hash);
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, file))
            .map_err(|e| self.err(format!("write {}: {e}", file.display())))
    }

    /// Removes everything (before a rebuild).
    pub fn clear(&self) -> Result<(), DerivedError> {
        *self.layer()? = Layer::default();
        *self
            .snapshot_mem
            .lock()
            .map_err(|_| self.err("snapshot lock poisoned"))? = None;
        for file in [&self.snapshot_file, &self.marker_file]
            .into_iter()
            .flatten()
        {
            match std::fs::remove_file(file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(format!("remove {}: {e}", file.display()))),
            }
        }
        self.tree.clear().map_err(|e| self.err(e))
    }

    /// Writes the pending layer and sled's buffers out (not a durability
    /// promise; see module docs).
    pub fn flush(&self) -> Result<(), DerivedError> {
        self.flush_pending()?;
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    /// The record a (producer, idempotency key) first appended.
    pub fn keyed(&self, producer: &str, key_text: &str) -> Result<Option<Keyed>, DerivedError> {
        let k = key(b'k', &[producer.as_bytes(), key_text.as_bytes()]);
        let pending = self.layer()?.kv.get(&k).cloned();
        let v = match pending {
            Some(v) => v,
            None => match self.tree.get(&k).map_err(|e| self.err(e))? {
                Some(v) => v.to_vec(),
                None => return Ok(None),
            },
        };
        let bad = || self.err("idempotency entry is malformed");
        Ok(Some(Keyed {
            seq: be_u64(&v).ok_or_else(bad)?,
            content: Digest(
                v.get(8..40)
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(bad)?,
            ),
        }))
    }

    /// Brings the store up to `head`: wipes it when it belongs to another
    /// ledger or reflects a record the log does not hold, then applies the tail.
    pub fn catch_up(
        &self,
        reader: &dyn LogReader,
        head: Option<Head>,
        genesis: Hash,
    ) -> Result<DerivedOpen, DerivedError> {
        let mut report = DerivedOpen::default();
        let head_seq = head.map_or(0, |h| h.seq);
        let ledger = self.tree.get(META_LEDGER).map_err(|e| self.err(e))?;
        if ledger.as_deref().is_some_and(|l| l != genesis) {
            report.rebuilt_because = Some("it belongs to another ledger".into());
            self.clear()?;
        }
        let unindexed = self.entities
            && self.applied()?.is_some()
            && self
                .tree
                .get(entities::META_ENTITIES)
                .map_err(|e| self.err(e))?
                .is_none();
        if unindexed {
            report.rebuilt_because = Some("it keeps no entity index".into());
            self.clear()?;
        }
        self.tree
            .insert(META_LEDGER, &genesis[..])
            .map_err(|e| self.err(e))?;
        if self.entities {
            self.tree
                .insert(entities::META_ENTITIES, &[1u8][..])
                .map_err(|e| self.err(e))?;
        }
        let mut from = 1;
        if let Some((seq, hash)) = self.applied()? {
            // One record, read where the index says it is (a scan would
            // check every frame before it in its segment).
            let log_hash = if seq <= head_seq {
                reader.read(&[seq], head_seq)?.first().map(|r| r.hash)
            } else {
                None
            };
            if log_hash == Some(hash) {
                from = seq + 1;
            } else {
                report.rebuilt_because = Some(format!(
                    "it reflects seq {seq}, which the log does not hold with the same hash"
                ));
                self.clear()?;
            }
        }
        if from > head_seq {
            return Ok(report);
        }
        let mut chunk = Vec::with_capacity(CATCH_UP_CHUNK);
        let mut failure = None;
        reader
            .scan(from, head_seq, &mut |r| {
                chunk.push(r);
                if chunk.len() == CATCH_UP_CHUNK {
                    if let Err(e) = self.apply(&chunk) {
                        failure = Some(e);
                        return Err(LogError::Stopped);
                    }
                    chunk.clear();
                }
                Ok(())
            })
            .map_err(|e| failure.take().unwrap_or(DerivedError::Log(e)))?;
        self.apply(&chunk)?;
        self.flush_pending()?;
        report.caught_up = head_seq + 1 - from;
        Ok(report)
    }

    /// Compares the store (sled plus the pending layer) with a fresh fold of the
    /// log up to `head_seq`. `None` when they agree; otherwise the first difference.
    pub fn differences(
        &self,
        reader: &dyn LogReader,
        head_seq: u64,
    ) -> Result<Option<String>, DerivedError> {
        let mut expected = Layer::default();
        reader.scan(1, head_seq, &mut |r| {
            expected.merge(std::slice::from_ref(&r), self.entities);
            Ok(())
        })?;
        let mut actual = Layer::default();
        for item in self.tree.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if k.first() == Some(&b'm') {
                continue;
            }
            actual.kv.insert(k.to_vec(), v.to_vec());
        }
        actual.last = self.applied()?;
        {
            let pending = self.layer()?;
            actual.kv.extend(pending.kv.clone());
            if pending.last.is_some() {
                actual.last = pending.last;
            }
        }
        if actual.last != expected.last {
            let reflects = actual
                .last
                .map_or_else(|| "no record".to_owned(), |(seq, _)| format!("seq {seq}"));
            return Ok(Some(format!(
                "derived store reflects {reflects}, the log's head is seq {head_seq}"
            )));
        }
        if actual.kv != expected.kv {
            let first = expected
                .kv
                .iter()
                .find(|(k, v)| actual.kv.get(*k) != Some(*v))
                .map_or_else(
                    || "an entry the log does not hold".to_owned(),
                    |(k, _)| String::from_utf8_lossy(k).into_owned(),
                );
            return Ok(Some(format!("derived entry differs from the log: {first}")));
        }
        self.snapshot_difference(reader, head_seq)
    }
}
