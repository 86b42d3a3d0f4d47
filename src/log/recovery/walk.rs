//! Recovery's walk of the last segment: every frame checked (hash, link,
//! framing) and every write unit's header and trailer, up to the first
//! problem.

use std::io::BufReader;
use std::path::Path;

use super::units;
use crate::log::fault::Fault;
use crate::log::frame;
use crate::log::scan::{read_full, Opened, SEGMENT_HEADER_BYTES};
use crate::log::unit::{Next, UnitWalk};
use crate::log::LogError;
use crate::record::Hash;

/// A walk of the last segment up to its first problem.
pub(super) struct Walk {
    /// Where the valid data ends: after the last valid frame (version 1) or
    /// the last complete unit (version 2).
    pub(super) end: u64,
    /// The offset of every valid frame before `end`.
    pub(super) offsets: Vec<u64>,
    /// Where the last whole unit begins (version 2).
    pub(super) last_unit: Option<u64>,
    /// The last record before `end`: (seq, hash, offset).
    pub(super) last: Option<(u64, Hash, u64)>,
    /// The link (prev hash) of the first frame, when one is valid.
    pub(super) first_prev: Option<Hash>,
    /// The hashes of the seqs the evidence names, where reached.
    pub(super) found: Vec<(u64, Hash)>,
    pub(super) damage: Option<units::Damage>,
}

pub(super) fn walk(
    path: &Path,
    seg: &Opened,
    first_seq: u64,
    wanted: &[u64],
) -> Result<Walk, LogError> {
    let mut reader = BufReader::with_capacity(1 << 20, &seg.file);
    // The file's position is shared by every handle on it: set it explicitly.
    use std::io::Seek;
    let start = SEGMENT_HEADER_BYTES as u64;
    reader
        .seek(std::io::SeekFrom::Start(start))
        .map_err(|e| LogError::io("seek", path, e))?;
    let mut units = UnitWalk::new(seg.version, start, first_seq);
    let (mut offset, mut seq) = (start, first_seq);
    let mut frames: Vec<(u64, Hash)> = Vec::new();
    let mut first_prev = None;
    let mut found = Vec::new();
    let mut buf = Vec::new();
    let mut damage = None;
    loop {
        buf.resize(frame::HEADER_BYTES, 0);
        let n = read_full(&mut reader, &mut buf, path)?;
        // A trailer's damage is named at its unit's last record.
        let named = if units.at_trailer(offset) {
            seq - 1
        } else {
            seq
        };
        let trailer = units.at_trailer(offset);
        let fail = |reason: Fault, len: Option<u64>| units::Damage {
            seq: named,
            at: offset,
            len,
            reason,
            trailer,
        };
        let header = match units.head(&buf[..n], offset, seq) {
            Ok(Next::End) => break,
            Ok(Next::UnitBegins) => {
                offset += n as u64;
                continue;
            }
            Ok(Next::Trailer(len)) => {
                buf.resize(len, 0);
                let got = read_full(&mut reader, &mut buf[frame::HEADER_BYTES..], path)?;
                let whole = &buf[..frame::HEADER_BYTES + got];
                if let Err(reason) = units.trailer(whole, offset, seq) {
                    damage = Some(fail(reason, Some(len as u64)));
                    break;
                }
                offset += len as u64;
                continue;
            }
            Ok(Next::Frame(h)) => h,
            Err(reason) => {
                damage = Some(fail(reason, None));
                break;
            }
        };
        let len = frame::OVERHEAD_BYTES + header.payload_len;
        buf.resize(len, 0);
        let got = read_full(&mut reader, &mut buf[frame::HEADER_BYTES..], path)?;
        let prev = frames.last().map(|f| f.1);
        let body = &buf[frame::HEADER_BYTES..];
        let (link, hash) = match frame::check_body(&header, body, got, prev, seq) {
            Ok(checked) => checked,
            Err(reason) => {
                damage = Some(fail(reason, Some(len as u64)));
                break;
            }
        };
        first_prev.get_or_insert(link);
        if wanted.contains(&seq) {
            found.push((seq, hash));
        }
        frames.push((offset, hash));
        offset += len as u64;
        seq += 1;
    }
    // Version 2: only whole units count; version 1: every valid frame.
    let (end, count) = if seg.version >= 2 {
        (units.complete_end, units.complete_next_seq - first_seq)
    } else {
        (offset, frames.len() as u64)
    };
    let mut w = Walk::keep(end, count, first_seq, (frames, first_prev), found, damage);
    w.last_unit = units.complete_start;
    Ok(w)
}

impl Walk {
    /// The walk's result, keeping the first `count` frames (those before `end`).
    fn keep(
        end: u64,
        count: u64,
        first_seq: u64,
        (mut frames, first_prev): (Vec<(u64, Hash)>, Option<Hash>),
        mut found: Vec<(u64, Hash)>,
        damage: Option<units::Damage>,
    ) -> Walk {
        let count = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(frames.len());
        let last = count
            .checked_sub(1)
            .map(|i| (first_seq + i as u64, frames[i].1, frames[i].0));
        found.retain(|(s, _)| *s < first_seq + count as u64);
        frames.truncate(count);
        Walk {
            end,
            last_unit: None,
            offsets: frames.into_iter().map(|f| f.0).collect(),
            first_prev: first_prev.filter(|_| last.is_some()),
            last,
            found,
            damage,
        }
    }
}
