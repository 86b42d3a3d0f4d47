//! The seq → offset index of segment files, so a reader can fetch one record
//! with one `pread` instead of walking the frames before it.
//!
//! The writer knows every frame's offset: it keeps the active segment's offsets
//! in memory (shared with readers) and, when it seals a segment, hands them to an
//! [`OffsetStore`] (the derived store) in chunks of [`CHUNK`]. A chunk that is
//! missing or stale is rebuilt by walking the segment's frame headers once.
//!
//! Architecture invariant: the index is derived and only a hint. Every record
//! read through it is checked against its own hash and its seq; a mismatch falls
//! back to the walk, so a wrong offset can never return a wrong record.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::frame::{parse_header, split_checked, HEADER_BYTES};
use super::scan::{check_segment_header, list_segments, read_full, SEGMENT_HEADER_BYTES};
use super::LogError;
use crate::record::{Record, StoredRecord};

/// Offsets per stored chunk.
pub const CHUNK: u64 = 4096;

/// Where sealed segments' offsets are kept (the derived store).
pub trait OffsetStore: Send + Sync {
    /// Offsets of frames `chunk * CHUNK ..` of the segment starting at `segment`.
    fn chunk(&self, segment: u64, chunk: u64) -> Option<Vec<u64>>;
    /// Stores them; failures only cost a later walk.
    fn put(&self, segment: u64, chunk: u64, offsets: &[u64]);
}

/// Stores a whole segment's offsets, chunk by chunk.
pub fn put_all(store: &dyn OffsetStore, segment: u64, offsets: &[u64]) {
    for (i, chunk) in offsets.chunks(CHUNK as usize).enumerate() {
        store.put(segment, i as u64, chunk);
    }
}

/// The active segment's frame offsets, shared by the writer and readers.
#[derive(Debug, Default)]
pub struct ActiveOffsets {
    /// First seq of the active segment (0: none yet).
    pub segment: u64,
    pub offsets: Vec<u64>,
}

pub type SharedActive = Arc<RwLock<ActiveOffsets>>;

/// Every frame offset of a segment, by walking its frame headers.
pub fn walk_offsets(path: &Path, first_seq: u64) -> Result<Vec<u64>, LogError> {
    let file = File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let n = read_full(&mut reader, &mut header, path)?;
    check_segment_header(&header[..n], first_seq).map_err(|reason| LogError::Corrupt {
        seq: first_seq,
        reason,
    })?;
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES as u64;
    let mut frame_head = [0u8; HEADER_BYTES];
    loop {
        let n = read_full(&mut reader, &mut frame_head, path)?;
        let seq = first_seq + out.len() as u64;
        let h = match parse_header(&frame_head[..n]) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(out),
            Err(reason) => return Err(LogError::Corrupt { seq, reason }),
        };
        out.push(at);
        let rest = h.payload_len + 64;
        reader
            .seek_relative(i64::try_from(rest).unwrap_or(i64::MAX))
            .map_err(|e| LogError::io("seek", path, e))?;
        at += (HEADER_BYTES + rest) as u64;
    }
}

/// The record at `offset`, if it is record `seq` and its hash holds.
fn read_at(
    file: &File,
    offset: u64,
    seq: u64,
    path: &Path,
) -> Result<Option<StoredRecord>, LogError> {
    let mut head = [0u8; HEADER_BYTES];
    if file.read_exact_at(&mut head, offset).is_err() {
        return Ok(None);
    }
    let Ok(Some(h)) = parse_header(&head) else {
        return Ok(None);
    };
    let mut body = vec![0u8; h.payload_len + 64];
    if let Err(e) = file.read_exact_at(&mut body, offset + HEADER_BYTES as u64) {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(LogError::io("read", path, e))
        };
    }
    let Some((prev_hash, payload, hash)) = split_checked(&body, h.payload_len) else {
        return Ok(None);
    };
    match Record::decode(payload) {
        Ok(record) if record.envelope.seq == seq => Ok(Some(StoredRecord {
            prev_hash,
            hash,
            record,
        })),
        _ => Ok(None),
    }
}

/// Reads the records at `seqs` (ascending) with one `pread` each, using the
/// active offsets and the store; rebuilds what is missing or stale.
pub fn read_indexed(
    dir: &Path,
    active: &SharedActive,
    store: &dyn OffsetStore,
    seqs: &[u64],
) -> Result<Vec<StoredRecord>, LogError> {
    let segments = list_segments(dir)?;
    let mut out = Vec::with_capacity(seqs.len());
    let mut rest = seqs;
    for (i, (first, path)) in segments.iter().enumerate() {
        let next = segments.get(i + 1).map_or(u64::MAX, |s| s.0);
        let split = rest.partition_point(|s| *s < next);
        let (here, later) = rest.split_at(split);
        rest = later;
        if here.is_empty() {
            continue;
        }
        let file = File::open(path).map_err(|e| LogError::io("open", path, e))?;
        let active_offsets: Option<Vec<u64>> =
            active.read().ok().filter(|a| a.segment == *first).map(|a| {
                here.iter()
                    .filter_map(|s| a.offsets.get((s - first) as usize).copied())
                    .collect()
            });
        let mut chunks: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut walked: Option<Vec<u64>> = None;
        for (k, &seq) in here.iter().enumerate() {
            let idx = seq - first;
            let hint = match &active_offsets {
                Some(offs) => offs.get(k).copied(),
                None => {
                    let chunk = idx / CHUNK;
                    if let std::collections::btree_map::Entry::Vacant(e) = chunks.entry(chunk) {
                        e.insert(store.chunk(*first, chunk).unwrap_or_default());
                    }
                    chunks
                        .get(&chunk)
                        .and_then(|c| c.get((idx % CHUNK) as usize).copied())
                }
            };
            if let Some(r) = hint
                .map(|o| read_at(&file, o, seq, path))
                .transpose()?
                .flatten()
            {
                out.push(r);
                continue;
            }
            // Missing or stale: walk the segment once and remember it.
            if walked.is_none() {
                let offs = walk_offsets(path, *first)?;
                if active_offsets.is_none() {
                    put_all(store, *first, &offs);
                }
                walked = Some(offs);
            }
            let offset = walked.as_ref().and_then(|w| w.get(idx as usize).copied());
            match offset
                .map(|o| read_at(&file, o, seq, path))
                .transpose()?
                .flatten()
            {
                Some(r) => out.push(r),
                None => {
                    return Err(LogError::Corrupt {
                        seq,
                        reason: format!("record {seq} is not where the log says, or is damaged"),
                    })
                }
            }
        }
    }
    if let Some(missing) = rest.first() {
        return Err(LogError::Corrupt {
            seq: *missing,
            reason: format!("seq {missing} is not in the log"),
        });
    }
    Ok(out)
}
