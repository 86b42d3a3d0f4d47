//! The context snapshot of a derived store: sealed with its format, the
//! build, its seq and record hash and a blake3 check, kept in a file beside
//! sled's (in memory for a temporary store), and checked against a fold of
//! the log by `verify --derived`.

use super::{be_u64, Derived, DerivedError, SNAPSHOT_FORMAT};
use crate::log::LogReader;
use crate::record::Hash;

/// A stored snapshot's parts, or `None` when it is from another format or
/// build, cut short, or its bytes do not match their checksum.
fn parse_snapshot(mut v: Vec<u8>) -> Option<(u64, Hash, Vec<u8>)> {
    let format = u32::from_be_bytes(v.get(0..4)?.try_into().ok()?);
    let len = usize::from(*v.get(4)?);
    let version = v.get(5..5 + len)?;
    if format != SNAPSHOT_FORMAT || version != env!("CARGO_PKG_VERSION").as_bytes() {
        return None;
    }
    let rest = v.get(5 + len..)?;
    let seq = be_u64(rest)?;
    let hash: Hash = rest.get(8..40)?.try_into().ok()?;
    let sum = rest.get(40..72)?;
    let bytes = rest.get(72..)?;
    if blake3::hash(bytes).as_bytes() != sum {
        return None;
    }
    // The context's bytes stay where they were read (tens of MB): only the
    // header in front of them is removed.
    let start = 5 + len + 72;
    v.drain(..start);
    Some((seq, hash, v))
}

/// The context snapshot a writer left in its store directory `dir`
/// (`DIR/derived`), read as a plain file: nothing is opened, locked or
/// written, so a read-only view may call it beside a running writer (the
/// writer replaces the file by a rename: this reads one whole snapshot or
/// the other). `None` when the file is missing or unreadable, from another
/// format or build, or fails its check.
pub fn read_snapshot_file(dir: &std::path::Path) -> Option<(u64, Hash, Vec<u8>)> {
    std::fs::read(dir.join(super::SNAPSHOT_FILE))
        .ok()
        .and_then(parse_snapshot)
}

impl Derived {
    /// Stores a context snapshot: the context folded up to `seq`, whose
    /// record has hash `hash`. Derived state like the rest: a snapshot that is
    /// missing, stale or damaged only costs a longer fold at open.
    pub fn put_snapshot(&self, seq: u64, hash: Hash, bytes: &[u8]) -> Result<(), DerivedError> {
        let mut head = Vec::with_capacity(128);
        head.extend_from_slice(&SNAPSHOT_FORMAT.to_be_bytes());
        let version = env!("CARGO_PKG_VERSION").as_bytes();
        head.push(u8::try_from(version.len()).unwrap_or(u8::MAX));
        head.extend_from_slice(version);
        head.extend_from_slice(&seq.to_be_bytes());
        head.extend_from_slice(&hash);
        head.extend_from_slice(blake3::hash(bytes).as_bytes());
        let Some(file) = &self.snapshot_file else {
            head.extend_from_slice(bytes);
            *self
                .snapshot_mem
                .lock()
                .map_err(|_| self.err("snapshot lock poisoned"))? = Some(head);
            return Ok(());
        };
        // Written aside, then renamed over the old one: a reader sees one
        // whole snapshot or the other. No fsync: after a crash, a damaged or
        // missing file fails its check and the log is folded instead. The
        // context's bytes are written as they are, never copied (a snapshot
        // is tens of MB).
        let tmp = file.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&head)?;
            f.write_all(bytes)?;
            drop(f);
            std::fs::rename(&tmp, file)
        };
        write().map_err(|e| self.err(format!("write {}: {e}", file.display())))
    }

    /// The stored snapshot, if one was written by this build's format and
    /// its bytes check: (seq, the record's hash at seq, context bytes).
    pub fn snapshot(&self) -> Result<Option<(u64, Hash, Vec<u8>)>, DerivedError> {
        let Some(file) = &self.snapshot_file else {
            let mem = self
                .snapshot_mem
                .lock()
                .map_err(|_| self.err("snapshot lock poisoned"))?;
            return Ok(mem.clone().and_then(parse_snapshot));
        };
        match std::fs::read(file) {
            Ok(v) => Ok(parse_snapshot(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(format!("read {}: {e}", file.display()))),
        }
    }

    /// A stored snapshot of this log must equal a fold of the log to its seq.
    pub(super) fn snapshot_difference(
        &self,
        reader: &dyn LogReader,
        head_seq: u64,
    ) -> Result<Option<String>, DerivedError> {
        let Some((seq, hash, bytes)) = self.snapshot()? else {
            return Ok(None);
        };
        if seq == 0 || seq > head_seq {
            return Ok(Some(format!(
                "the context snapshot is at seq {seq}, beyond the log's head {head_seq}"
            )));
        }
        let at = reader.read(&[seq], head_seq)?;
        if at.first().is_none_or(|r| r.hash != hash) {
            return Ok(Some(format!(
                "the context snapshot at seq {seq} belongs to another log"
            )));
        }
        let snap = match crate::context::Context::from_snapshot(&bytes) {
            Ok(c) => c,
            Err(e) => return Ok(Some(format!("the context snapshot at seq {seq}: {e}"))),
        };
        let folded = crate::reader::fold(reader, seq)?;
        if snap.state_hash() != folded.state_hash() {
            return Ok(Some(format!(
                "the context snapshot at seq {seq} differs from a fold of the log"
            )));
        }
        Ok(None)
    }
}
