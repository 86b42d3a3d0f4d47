//! Derived state in sled: the fact projection, the entity → seqs index and the
//! idempotency keys, each a pure function of the log ([`entries_of`]), tagged with
//! the seq and hash it reflects, caught up from the log on open.
//!
//! Architecture invariant: nothing acknowledged depends on sled being durable
//! (sled's `flush()` calls sync_file_range, not fsync). A lost, stale or damaged
//! sled directory is rebuilt from the log and loses nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::log::{Head, LogError, LogReader};
use crate::record::{codec_config, Body, Hash, StoredRecord};
use crate::value::Value;

const META_APPLIED: &[u8] = b"m\0applied";
const CATCH_UP_CHUNK: usize = 4096;

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

/// The derived key/value pairs one record adds. Pure: the projector and the
/// consistency check both use it, so they cannot disagree on meaning.
pub fn entries_of(stored: &StoredRecord) -> Vec<(Vec<u8>, Vec<u8>)> {
    let env = &stored.record.envelope;
    let seq = env.seq.to_be_bytes();
    let mut out = Vec::new();
    for entity in stored.record.body.entities() {
        out.push((key(b'e', &[entity.as_bytes(), &seq]), Vec::new()));
    }
    if let Body::Fact {
        entity,
        attribute,
        value,
    } = &stored.record.body
    {
        let mut v = seq.to_vec();
        // Encoding a small scalar into a Vec cannot fail (no I/O, far below the limit).
        v.extend(bincode::encode_to_vec(value, codec_config()).unwrap_or_default());
        out.push((key(b'f', &[entity.as_bytes(), attribute.as_bytes()]), v));
    }
    if let Some(k) = &env.idempotency_key {
        let mut v = seq.to_vec();
        v.extend_from_slice(&stored.hash);
        v.extend_from_slice(&env.recorded_at_ms.to_be_bytes());
        out.push((key(b'k', &[env.producer.as_bytes(), k.as_bytes()]), v));
    }
    out
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

/// The sled-backed derived store.
pub struct Derived {
    path: String,
    db: sled::Db,
    tree: sled::Tree,
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
        Ok(Derived { path, db, tree })
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

    /// The seq and hash of the last record applied.
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

    /// Applies records (in log order, continuing the applied seq) in one atomic batch.
    pub fn apply(&self, records: &[StoredRecord]) -> Result<(), DerivedError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for r in records {
            for (k, v) in entries_of(r) {
                batch.insert(k, v);
            }
        }
        let mut marker = last.record.envelope.seq.to_be_bytes().to_vec();
        marker.extend_from_slice(&last.hash);
        batch.insert(META_APPLIED, marker);
        self.tree.apply_batch(batch).map_err(|e| self.err(e))
    }

    /// Removes everything (before a rebuild).
    pub fn clear(&self) -> Result<(), DerivedError> {
        self.tree.clear().map_err(|e| self.err(e))
    }

    /// Writes sled's buffers out (not a durability promise; see module docs).
    pub fn flush(&self) -> Result<(), DerivedError> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    /// The record a (producer, idempotency key) first appended.
    pub fn keyed(
        &self,
        producer: &str,
        key_text: &str,
    ) -> Result<Option<KeyedRecord>, DerivedError> {
        let k = key(b'k', &[producer.as_bytes(), key_text.as_bytes()]);
        let Some(v) = self.tree.get(k).map_err(|e| self.err(e))? else {
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
        let Some(v) = self.tree.get(k).map_err(|e| self.err(e))? else {
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
            let (k, _) = item.map_err(|e| self.err(e))?;
            let seq =
                be_u64(&k[prefix.len()..]).ok_or_else(|| self.err("index entry is malformed"))?;
            out.push(seq);
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
        report.caught_up = head_seq + 1 - from;
        Ok(report)
    }

    /// Compares the store with a fresh fold of the log up to `head_seq`. `None`
    /// when they agree; otherwise the first difference.
    pub fn differences(
        &self,
        reader: &dyn LogReader,
        head_seq: u64,
    ) -> Result<Option<String>, DerivedError> {
        let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut last_hash = None;
        reader.scan(1, head_seq, &mut |r| {
            expected.extend(entries_of(&r));
            last_hash = Some(r.hash);
            Ok(())
        })?;
        match (self.applied()?, last_hash) {
            (Some((seq, hash)), Some(h)) if seq == head_seq && hash == h => {}
            (None, None) => {}
            (applied, _) => {
                return Ok(Some(format!(
                    "derived store reflects seq {:?}, the log's head is seq {head_seq}",
                    applied.map(|a| a.0)
                )))
            }
        }
        let mut want = expected.iter();
        for item in self.tree.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if k.as_ref() == META_APPLIED {
                continue;
            }
            match want.next() {
                Some((wk, wv)) if wk.as_slice() == k.as_ref() && wv.as_slice() == v.as_ref() => {}
                Some((wk, _)) => {
                    return Ok(Some(format!(
                        "derived entry {:?} differs from the log's {:?}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(wk)
                    )))
                }
                None => {
                    return Ok(Some(format!(
                        "derived entry {:?} is not in the log",
                        String::from_utf8_lossy(&k)
                    )))
                }
            }
        }
        Ok(want
            .next()
            .map(|(wk, _)| format!("derived store lacks {:?}", String::from_utf8_lossy(wk))))
    }
}
