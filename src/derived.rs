//! Derived state in sled: the fact projection, the entity → seqs index and the
//! idempotency keys, each a pure function of the log ([`entries_of`]), tagged with
//! the seq and hash it reflects, caught up from the log on open.
//!
//! Applied records first land in an in-memory pending layer that every read sees;
//! it is written to sled as one batch every `FLUSH_RECORDS` records, after
//! `FLUSH_IDLE_MS` without new records, and on close. The entity index is stored
//! as one key per (entity, flushed chunk) holding that chunk's seqs; facts and
//! keys are coalesced (last writer wins). sled then takes a few thousand inserts
//! per chunk instead of one or two per record. A crash loses only the pending
//! layer, which catch-up rebuilds from the log.
//!
//! Architecture invariant: nothing acknowledged depends on sled being durable
//! (sled's `flush()` calls sync_file_range, not fsync). A lost, stale or damaged
//! sled directory is rebuilt from the log and loses nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::log::{Head, LogError, LogReader};
use crate::record::{codec_config, Body, Hash, StoredRecord};
use crate::value::Value;

const META_APPLIED: &[u8] = b"m\0applied";
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
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the derived store reflects seq {applied} but the log ends at seq {head}: records are missing from the log (inspect with `parley verify`; `parley rebuild` accepts the log as it is)")]
    AheadOfLog { applied: u64, head: u64 },
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

/// One derived fact about a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `seq` touched `entity`.
    Index { entity: String, seq: u64 },
    /// A projection or idempotency entry (last writer wins).
    Kv { key: Vec<u8>, value: Vec<u8> },
}

/// The derived entries one record adds. Pure: the projector and the
/// consistency check both use it, so they cannot disagree on meaning.
pub fn entries_of(stored: &StoredRecord) -> Vec<Entry> {
    let env = &stored.record.envelope;
    let seq = env.seq.to_be_bytes();
    let mut out: Vec<Entry> = stored
        .record
        .body
        .entities()
        .into_iter()
        .map(|entity| Entry::Index {
            entity,
            seq: env.seq,
        })
        .collect();
    if let Body::Fact {
        entity,
        attribute,
        value,
    } = &stored.record.body
    {
        let mut v = seq.to_vec();
        // Encoding a small scalar into a Vec cannot fail (no I/O, far below the limit).
        v.extend(bincode::encode_to_vec(value, codec_config()).unwrap_or_default());
        let key = key(b'f', &[entity.as_bytes(), attribute.as_bytes()]);
        out.push(Entry::Kv { key, value: v });
    }
    if let Some(k) = &env.idempotency_key {
        let mut v = seq.to_vec();
        v.extend_from_slice(&stored.hash);
        v.extend_from_slice(&env.recorded_at_ms.to_be_bytes());
        let key = key(b'k', &[env.producer.as_bytes(), k.as_bytes()]);
        out.push(Entry::Kv { key, value: v });
    }
    out
}

/// Derived state not yet written to sled (or, for checks, a whole fold).
#[derive(Default, PartialEq, Eq, Debug)]
struct Layer {
    index: BTreeMap<String, Vec<u64>>,
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    last: Option<(u64, Hash)>,
    records: usize,
}

impl Layer {
    fn merge(&mut self, records: &[StoredRecord]) {
        for r in records {
            for e in entries_of(r) {
                match e {
                    Entry::Index { entity, seq } => self.index.entry(entity).or_default().push(seq),
                    Entry::Kv { key, value } => {
                        self.kv.insert(key, value);
                    }
                }
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
pub struct KeyedRecord {
    pub seq: u64,
    pub hash: Hash,
    pub recorded_at_ms: u64,
}

fn offsets_key(segment: u64, chunk: u64) -> Vec<u8> {
    key(b'o', &[&segment.to_be_bytes(), &chunk.to_be_bytes()])
}

impl crate::log::offsets::OffsetStore for Derived {
    fn chunk(&self, segment: u64, chunk: u64) -> Option<Vec<u64>> {
        let v = self.tree.get(offsets_key(segment, chunk)).ok()??;
        Some(v.chunks_exact(8).filter_map(be_u64).collect())
    }

    fn put(&self, segment: u64, chunk: u64, offsets: &[u64]) {
        let value: Vec<u8> = offsets.iter().flat_map(|o| o.to_be_bytes()).collect();
        if let Err(e) = self.tree.insert(offsets_key(segment, chunk), value) {
            tracing::warn!(error = %e, segment, "could not store segment offsets; reads will walk the segment");
        }
    }
}

/// The sled-backed derived store.
pub struct Derived {
    path: String,
    db: sled::Db,
    tree: sled::Tree,
    pending: Mutex<Layer>,
}

impl Derived {
    fn err(&self, e: impl std::fmt::Display) -> DerivedError {
        DerivedError::Sled {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn from_db(path: String, db: sled::Db) -> Result<Derived, DerivedError> {
        let tree = db.open_tree("derived").map_err(|e| DerivedError::Sled {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Derived {
            path,
            db,
            tree,
            pending: Mutex::new(Layer::default()),
        })
    }

    /// Opens the store at `path`; a store that does not open is wiped and recreated.
    pub fn open(path: &Path) -> Result<(Derived, Option<String>), DerivedError> {
        let shown = path.display().to_string();
        let attempt = |p: &PathBuf| {
            let config = sled::Config::new().path(p).cache_capacity(64 << 20);
            // sled may panic on some damaged files instead of returning an error;
            // a damaged derived store must never take the ledger down.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
                .map_err(|_| "sled panicked while opening".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let path_buf = path.to_path_buf();
        match attempt(&path_buf) {
            Ok(db) => Ok((Derived::from_db(shown, db)?, None)),
            Err(reason) => {
                tracing::warn!(path = %shown, %reason, "derived store does not open; rebuilding it from the log");
                std::fs::remove_dir_all(path).map_err(|e| DerivedError::Sled {
                    path: shown.clone(),
                    reason: format!("cannot remove damaged store: {e}"),
                })?;
                let db = attempt(&path_buf).map_err(|reason| DerivedError::Sled {
                    path: shown.clone(),
                    reason,
                })?;
                Ok((Derived::from_db(shown, db)?, Some(reason)))
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
        Derived::from_db("(temporary)".into(), db)
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

    /// Applies records (in log order, continuing the applied seq): visible to
    /// reads at once, written to sled when the pending layer is full.
    pub fn apply(&self, records: &[StoredRecord]) -> Result<(), DerivedError> {
        let mut layer = self.layer()?;
        layer.merge(records);
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
        for (entity, seqs) in &layer.index {
            let first = seqs.first().copied().unwrap_or(0).to_be_bytes();
            let value: Vec<u8> = seqs.iter().flat_map(|s| s.to_be_bytes()).collect();
            batch.insert(key(b'e', &[entity.as_bytes(), &first]), value);
        }
        for (k, v) in &layer.kv {
            batch.insert(k.as_slice(), v.as_slice());
        }
        let mut marker = seq.to_be_bytes().to_vec();
        marker.extend_from_slice(&hash);
        batch.insert(META_APPLIED, marker);
        self.tree.apply_batch(batch).map_err(|e| self.err(e))?;
        *layer = Layer::default();
        Ok(())
    }

    /// Removes everything (before a rebuild).
    pub fn clear(&self) -> Result<(), DerivedError> {
        *self.layer()? = Layer::default();
        self.tree.clear().map_err(|e| self.err(e))
    }

    /// Writes the pending layer and sled's buffers out (not a durability
    /// promise; see module docs).
    pub fn flush(&self) -> Result<(), DerivedError> {
        self.flush_pending()?;
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, DerivedError> {
        if let Some(v) = self.layer()?.kv.get(k) {
            return Ok(Some(v.clone()));
        }
        Ok(self
            .tree
            .get(k)
            .map_err(|e| self.err(e))?
            .map(|v| v.to_vec()))
    }

    /// The record a (producer, idempotency key) first appended.
    pub fn keyed(
        &self,
        producer: &str,
        key_text: &str,
    ) -> Result<Option<KeyedRecord>, DerivedError> {
        let k = key(b'k', &[producer.as_bytes(), key_text.as_bytes()]);
        let Some(v) = self.get(&k)? else {
            return Ok(None);
        };
        let bad = || self.err("idempotency entry is malformed");
        Ok(Some(KeyedRecord {
            seq: be_u64(&v).ok_or_else(bad)?,
            hash: v
                .get(8..40)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(bad)?,
            recorded_at_ms: v.get(40..).and_then(be_u64).ok_or_else(bad)?,
        }))
    }

    /// The current value of `entity.attribute` and the seq that wrote it.
    pub fn fact(
        &self,
        entity: &str,
        attribute: &str,
    ) -> Result<Option<(Value, u64)>, DerivedError> {
        let k = key(b'f', &[entity.as_bytes(), attribute.as_bytes()]);
        let Some(v) = self.get(&k)? else {
            return Ok(None);
        };
        let seq = be_u64(&v).ok_or_else(|| self.err("fact entry is malformed"))?;
        let (value, _): (Value, usize) = bincode::decode_from_slice(&v[8..], codec_config())
            .map_err(|e| self.err(format!("fact entry is malformed: {e}")))?;
        Ok(Some((value, seq)))
    }

    /// Every seq that touched `entity`, ascending.
    pub fn entity_seqs(&self, entity: &str) -> Result<Vec<u64>, DerivedError> {
        let prefix = key(b'e', &[entity.as_bytes(), b""]);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.extend(v.chunks_exact(8).filter_map(be_u64));
        }
        if let Some(pending) = self.layer()?.index.get(entity) {
            out.extend(pending);
        }
        Ok(out)
    }

    /// Brings the store up to `head`: wipes it when it reflects a record the log
    /// does not hold (another ledger, a restored backup), then applies the tail.
    pub fn catch_up(
        &self,
        reader: &dyn LogReader,
        head: Option<Head>,
    ) -> Result<DerivedOpen, DerivedError> {
        let mut report = DerivedOpen::default();
        let head_seq = head.map_or(0, |h| h.seq);
        let mut from = 1;
        if let Some((seq, hash)) = self.applied()? {
            if seq > head_seq {
                // sled is written only after the log is durable, so it can lag the
                // log but never lead it: the log lost records.
                return Err(DerivedError::AheadOfLog {
                    applied: seq,
                    head: head_seq,
                });
            }
            let mut log_hash = None;
            if seq <= head_seq {
                reader.scan(seq, seq, &mut |r| {
                    log_hash = Some(r.hash);
                    Ok(())
                })?;
            }
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
                        return Err(LogError::Layout("derived store failed".into()));
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
            expected.merge(std::slice::from_ref(&r));
            Ok(())
        })?;
        let mut actual = Layer::default();
        for item in self.tree.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            // The offset index is a hint checked at every read (log::offsets).
            if k.as_ref() == META_APPLIED || k.first() == Some(&b'o') {
                continue;
            }
            if k.first() == Some(&b'e') {
                // e \0 entity \0 first_seq(8, big-endian: may hold zero bytes)
                if k.len() < 2 + 1 + 8 {
                    return Ok(Some(format!(
                        "malformed index key {:?}",
                        String::from_utf8_lossy(&k)
                    )));
                }
                let entity = String::from_utf8_lossy(&k[2..k.len() - 9]).into_owned();
                let seqs = actual.index.entry(entity).or_default();
                seqs.extend(v.chunks_exact(8).filter_map(be_u64));
            } else {
                actual.kv.insert(k.to_vec(), v.to_vec());
            }
        }
        actual.last = self.applied()?;
        {
            let pending = self.layer()?;
            for (entity, seqs) in &pending.index {
                actual.index.entry(entity.clone()).or_default().extend(seqs);
            }
            for (k, v) in &pending.kv {
                actual.kv.insert(k.clone(), v.clone());
            }
            if pending.last.is_some() {
                actual.last = pending.last;
            }
        }
        if actual.last != expected.last {
            return Ok(Some(format!(
                "derived store reflects seq {:?}, the log's head is seq {head_seq}",
                actual.last.map(|a| a.0)
            )));
        }
        if actual.index != expected.index {
            let first = expected
                .index
                .iter()
                .find(|(e, s)| actual.index.get(*e) != Some(*s))
                .map_or_else(
                    || "an entity the log does not name".to_owned(),
                    |(e, _)| e.clone(),
                );
            return Ok(Some(format!(
                "entity index differs from the log for {first}"
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
        Ok(None)
    }
}
