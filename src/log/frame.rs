//! The frame: how one record is laid out in a segment file.
//!
//! ```text
//! offset  size  field
//!      0     4  payload_len      u32 LE, 1..=RECORD_BYTES_MAX (0 = end of data)
//!      4     1  codec            1 = bincode 2.0.1, fixed-int LE (record::codec_config)
//!      5     3  reserved         zero
//!      8     8  batch_first_seq  u64 LE: seq of the first record of the write batch
//!     16     4  header_check     first 4 bytes of blake3(bytes 0..16)
//!     20    32  prev_hash        hash of the previous record (zero for genesis)
//!     52     N  payload          the record's canonical bytes
//!   52+N    32  hash             blake3(prev_hash ‖ payload)
//! ```
//! Every byte of a frame is covered by a check, so a frame is self-validating:
//! recovery can tell a torn final batch from damage to acknowledged data.

use super::fault::{Fault, Piece};
use crate::record::{chain_hash, Hash, RECORD_BYTES_MAX};

/// Bytes before the payload's prev_hash.
pub const HEADER_BYTES: usize = 20;
/// Bytes a frame adds to its payload.
pub const OVERHEAD_BYTES: usize = HEADER_BYTES + 32 + 32;
/// The codec of format version 1.
pub const CODEC_BINCODE2: u8 = 1;

/// A record encoded and hashed, ready to be framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRecord {
    pub seq: u64,
    pub recorded_at_ms: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
    pub payload: Vec<u8>,
}

impl EncodedRecord {
    /// Frame size of this record on disk.
    pub fn frame_len(&self) -> usize {
        OVERHEAD_BYTES + self.payload.len()
    }
}

fn header_check(header16: &[u8]) -> [u8; 4] {
    let digest = blake3::hash(header16);
    let mut out = [0u8; 4];
    out.copy_from_slice(&digest.as_bytes()[..4]);
    out
}

/// Appends the frame of `record` to `out`.
pub fn write_frame(out: &mut Vec<u8>, batch_first_seq: u64, record: &EncodedRecord) {
    debug_assert!(!record.payload.is_empty() && record.payload.len() <= RECORD_BYTES_MAX);
    let start = out.len();
    // The payload length fits in u32: it is at most RECORD_BYTES_MAX (1 MiB).
    let len = u32::try_from(record.payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[CODEC_BINCODE2, 0, 0, 0]);
    out.extend_from_slice(&batch_first_seq.to_le_bytes());
    let check = header_check(&out[start..start + 16]);
    out.extend_from_slice(&check);
    out.extend_from_slice(&record.prev_hash);
    out.extend_from_slice(&record.payload);
    out.extend_from_slice(&record.hash);
    debug_assert_eq!(out.len() - start, record.frame_len());
}

/// A frame read back, borrowing its bytes.
#[derive(Debug)]
pub struct Frame<'a> {
    pub batch_first_seq: u64,
    pub prev_hash: Hash,
    pub payload: &'a [u8],
    pub hash: Hash,
    /// Bytes the whole frame occupies.
    pub len: usize,
}

impl Frame<'_> {
    /// True when the stored hash is blake3(prev_hash ‖ payload).
    pub fn self_valid(&self) -> bool {
        chain_hash(&self.prev_hash, self.payload) == self.hash
    }
}

/// Splits the bytes after a frame header (`prev_hash ‖ payload ‖ hash`) and
/// checks the hash; `None` when it does not hold.
pub fn split_checked(body: &[u8], payload_len: usize) -> Option<(Hash, &[u8], Hash)> {
    if body.len() != payload_len + 64 {
        return None;
    }
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&body[..32]);
    let payload = &body[32..32 + payload_len];
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&body[32 + payload_len..]);
    (chain_hash(&prev_hash, payload) == hash).then_some((prev_hash, payload, hash))
}

/// Checks the bytes after a frame header (`body`: prev_hash, payload, hash,
/// of which `got` were read) of the frame at `seq`, against the hash it must
/// link to (`prev`, if known): hash, link and batch. Returns
/// (prev_hash, hash); `Err` says what is wrong.
pub fn check_body(
    header: &Header,
    body: &[u8],
    got: usize,
    prev: Option<Hash>,
    seq: u64,
) -> Result<(Hash, Hash), Fault> {
    if got < body.len() {
        return Err(Fault::CutShort {
            piece: Piece::Frame,
            got,
            needed: body.len(),
        });
    }
    let (prev_hash, _, hash) =
        split_checked(body, header.payload_len).ok_or(Fault::HashMismatch)?;
    if prev.is_some_and(|p| p != prev_hash) {
        return Err(Fault::Unlinked);
    }
    if header.batch_first_seq > seq {
        return Err(Fault::BatchAfterSelf {
            batch_first_seq: header.batch_first_seq,
        });
    }
    Ok((prev_hash, hash))
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub payload_len: usize,
    pub batch_first_seq: u64,
}

/// What stands at an offset.
#[derive(Debug)]
pub enum Parsed<'a> {
    Frame(Frame<'a>),
    /// Zeroes: the end of the written data.
    End,
    Bad(Fault),
}

/// Reads a frame header; `Ok(None)` when the 20 bytes are all zero (end of data).
pub fn parse_header(bytes: &[u8]) -> Result<Option<Header>, Fault> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    if bytes.len() < HEADER_BYTES {
        return Err(Fault::CutShort {
            piece: Piece::FrameHeader,
            got: bytes.len(),
            needed: HEADER_BYTES,
        });
    }
    if header_check(&bytes[..16]) != bytes[16..20] {
        return Err(Fault::Checksum(Piece::FrameHeader));
    }
    let payload_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if bytes[4] != CODEC_BINCODE2 {
        return Err(Fault::UnknownCodec(bytes[4]));
    }
    if bytes[5..8] != [0, 0, 0] {
        return Err(Fault::ReservedNotZero);
    }
    if payload_len == 0 || payload_len > RECORD_BYTES_MAX {
        return Err(Fault::PayloadLength(payload_len));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[8..16]);
    Ok(Some(Header {
        payload_len,
        batch_first_seq: u64::from_le_bytes(seq),
    }))
}

/// Parses the frame at the start of `buf` (the rest of the written region).
pub fn parse_frame(buf: &[u8]) -> Parsed<'_> {
    let head_len = buf.len().min(HEADER_BYTES);
    let header = match parse_header(&buf[..head_len]) {
        Ok(Some(h)) => h,
        Ok(None) => return Parsed::End,
        Err(e) => return Parsed::Bad(e),
    };
    let total = OVERHEAD_BYTES + header.payload_len;
    if buf.len() < total {
        return Parsed::Bad(Fault::CutShort {
            piece: Piece::Frame,
            got: buf.len(),
            needed: total,
        });
    }
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&buf[HEADER_BYTES..HEADER_BYTES + 32]);
    let payload = &buf[HEADER_BYTES + 32..HEADER_BYTES + 32 + header.payload_len];
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&buf[total - 32..total]);
    Parsed::Frame(Frame {
        batch_first_seq: header.batch_first_seq,
        prev_hash,
        payload,
        hash,
        len: total,
    })
}

/// After damage at `bad_offset` in `data` (expected seq `bad_seq`): is there a
/// self-valid frame further on that belongs to a later write batch? If so the
/// damaged batch was followed by another one, so it had been fsynced and
/// acknowledged: the damage is corruption, not a torn tail.
pub fn later_batch_exists(data: &[u8], bad_offset: usize, bad_seq: u64) -> bool {
    let mut at = bad_offset + 1;
    while at + OVERHEAD_BYTES <= data.len() {
        // Cheap filters before hashing: codec and reserved bytes.
        if data[at + 4] == CODEC_BINCODE2 && data[at + 5..at + 8] == [0, 0, 0] {
            if let Parsed::Frame(f) = parse_frame(&data[at..]) {
                if f.batch_first_seq > bad_seq && f.self_valid() {
                    return true;
                }
            }
        }
        at += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(payload: &[u8]) -> EncodedRecord {
        let prev = [7u8; 32];
        EncodedRecord {
            seq: 3,
            recorded_at_ms: 0,
            prev_hash: prev,
            hash: chain_hash(&prev, payload),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn frame_round_trip_and_every_byte_is_checked() {
        let r = rec(b"hello record");
        let mut buf = Vec::new();
        write_frame(&mut buf, 3, &r);
        match parse_frame(&buf) {
            Parsed::Frame(f) => {
                assert!(f.self_valid());
                assert_eq!(f.payload, b"hello record");
                assert_eq!(f.len, buf.len());
            }
            other => panic!("{other:?}"),
        }
        for i in 0..buf.len() {
            let mut damaged = buf.clone();
            damaged[i] ^= 0x01;
            let ok = matches!(parse_frame(&damaged), Parsed::Frame(f) if f.self_valid());
            assert!(!ok, "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn zeroes_are_the_end() {
        assert!(matches!(parse_frame(&[0u8; 64]), Parsed::End));
        assert!(matches!(parse_frame(&[]), Parsed::End));
        assert!(matches!(parse_frame(&[1, 0]), Parsed::Bad(_)));
    }
}
