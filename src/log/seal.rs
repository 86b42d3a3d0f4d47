//! Segment seals (`DIR/index/<first_seq>.seal`): for one sealed segment, a
//! blake3 digest of its whole file, so that a writer's open checks it with
//! one wide (SIMD) hash over its bytes instead of frame by frame.
//!
//! A seal is written only for bytes known to be a valid chain: by the writer
//! that wrote every byte of the segment (it digests what it writes, as it
//! writes it), or by a writer's open right after checking every frame of it.
//! The digest covers every byte of the file (header, units, the zeros after
//! them), so any change to a sealed segment's file fails it.
//!
//! Seals are derived, like index files: a missing, damaged or mismatched
//! seal costs the frame-by-frame check of its segment, which names the
//! damaged seq exactly as before; it never changes what a check decides.
//! `parley verify` and every read command check frames, never seals.
//!
//! Layout (little-endian, 152 B):
//! ```text
//! magic "PARLEYSL" | version u32 | zero u32 | first_seq u64 | last_seq u64
//! | file_bytes u64 | prev_hash [32] | last_hash [32] | digest [32]
//! | check [16] (blake3 of the 136 bytes before it)
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::record::Hash;

const MAGIC: &[u8; 8] = b"PARLEYSL";
const VERSION: u32 = 1;
const BODY_BYTES: usize = 136;
/// Bytes of a seal file.
pub const SEAL_BYTES: usize = BODY_BYTES + 16;
/// Bytes read at a time when digesting a file: large enough for blake3's
/// widest SIMD path, small enough to stay in cache, and below the
/// allocator's mmap threshold (src/allocator.rs), so that the buffer of
/// every segment's check is reused heap, not pages mapped and zeroed anew.
const READ_BYTES: usize = 512 * 1024;

/// What a seal says about its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal {
    pub first_seq: u64,
    pub last_seq: u64,
    /// The segment file's length.
    pub file_bytes: u64,
    /// The hash the segment's first frame links to.
    pub prev_hash: Hash,
    /// The hash of its last record.
    pub last_hash: Hash,
    /// blake3 of the whole file.
    pub digest: Hash,
}

/// The seal file name of the segment starting at `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seal")
}

fn check_of(body: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(body).as_bytes()[..16]);
    out
}

impl Seal {
    pub fn encode(&self) -> [u8; SEAL_BYTES] {
        debug_assert!(self.first_seq >= 1 && self.first_seq <= self.last_seq);
        let mut out = [0u8; SEAL_BYTES];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        for (i, v) in [self.first_seq, self.last_seq, self.file_bytes]
            .into_iter()
            .enumerate()
        {
            out[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        out[40..72].copy_from_slice(&self.prev_hash);
        out[72..104].copy_from_slice(&self.last_hash);
        out[104..136].copy_from_slice(&self.digest);
        let check = check_of(&out[..BODY_BYTES]);
        out[BODY_BYTES..].copy_from_slice(&check);
        out
    }

    /// `None` for anything but a whole, self-consistent seal of this version.
    pub fn decode(bytes: &[u8]) -> Option<Seal> {
        if bytes.len() != SEAL_BYTES
            || &bytes[..8] != MAGIC
            || bytes[BODY_BYTES..] != check_of(&bytes[..BODY_BYTES])
        {
            return None;
        }
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)?
                .try_into()
                .ok()
                .map(u32::from_le_bytes)
        };
        let u64_at = |at: usize| {
            bytes
                .get(at..at + 8)?
                .try_into()
                .ok()
                .map(u64::from_le_bytes)
        };
        let hash_at = |at: usize| -> Option<Hash> { bytes.get(at..at + 32)?.try_into().ok() };
        if u32_at(8)? != VERSION || u32_at(12)? != 0 {
            return None;
        }
        let seal = Seal {
            first_seq: u64_at(16)?,
            last_seq: u64_at(24)?,
            file_bytes: u64_at(32)?,
            prev_hash: hash_at(40)?,
            last_hash: hash_at(72)?,
            digest: hash_at(104)?,
        };
        (seal.first_seq >= 1 && seal.first_seq <= seal.last_seq).then_some(seal)
    }

    /// Writes it into `dir` (a temp file, then a rename; not synced: derived).
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file_name(self.first_seq));
        let tmp = path.with_extension("seal.tmp");
        std::fs::write(&tmp, self.encode())?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// The seal of the segment at `first_seq` in `dir`, if a whole one is there.
    pub fn read(dir: &Path, first_seq: u64) -> Option<Seal> {
        let bytes = std::fs::read(dir.join(file_name(first_seq))).ok()?;
        Seal::decode(&bytes).filter(|s| s.first_seq == first_seq)
    }
}

/// blake3 of a whole file and its length, read `READ_BYTES` at a time.
pub fn digest_file(path: &Path) -> std::io::Result<(u64, Hash)> {
    digest_from(&File::open(path)?, 0)
}

/// blake3 of `file`'s bytes from offset `from` to its end, and how many
/// there were, read `READ_BYTES` at a time with `pread` (the file's
/// position is unchanged).
pub fn digest_from(file: &File, from: u64) -> std::io::Result<(u64, Hash)> {
    use std::os::unix::fs::FileExt;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_BYTES];
    let mut len = 0u64;
    loop {
        let n = match file.read_at(&mut buf, from + len) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, *hasher.finalize().as_bytes()))
}

/// The writer's running digest of the segment it is filling, from its first
/// byte: it becomes the segment's seal when the segment is sealed.
#[derive(Clone, Debug)]
pub struct Sealer {
    hasher: blake3::Hasher,
    /// Bytes digested so far: always the segment's write offset.
    bytes: u64,
    prev_hash: Hash,
}

impl Sealer {
    /// A digest that starts with the new segment's header.
    pub fn new(header: &[u8], prev_hash: Hash) -> Sealer {
        let mut hasher = blake3::Hasher::new();
        hasher.update(header);
        Sealer {
            hasher,
            bytes: header.len() as u64,
            prev_hash,
        }
    }

    /// The bytes written at `offset`, which must be where the last ended.
    /// `false` (and the digest is dropped by the caller) when they are not.
    pub fn wrote(&mut self, offset: u64, bytes: &[u8]) -> bool {
        if offset != self.bytes {
            return false;
        }
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        true
    }

    /// The seal of the segment, whose file is `file_bytes` long (the zeros
    /// after the last unit are digested here) and whose last record is
    /// `(last_seq, last_hash)`.
    pub fn finish(mut self, first_seq: u64, file_bytes: u64, last: (u64, Hash)) -> Option<Seal> {
        if file_bytes < self.bytes || last.0 < first_seq {
            return None;
        }
        let zeros = [0u8; 64 << 10];
        let mut left = file_bytes - self.bytes;
        // Bounded: at most `file_bytes / 64 KiB` rounds.
        while left > 0 {
            let n = usize::try_from(left).map_or(zeros.len(), |l| l.min(zeros.len()));
            self.hasher.update(&zeros[..n]);
            left -= n as u64;
        }
        Some(Seal {
            first_seq,
            last_seq: last.0,
            file_bytes,
            prev_hash: self.prev_hash,
            last_hash: last.1,
            digest: *self.hasher.finalize().as_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal() -> Seal {
        Seal {
            first_seq: 5,
            last_seq: 9,
            file_bytes: 4096,
            prev_hash: [1; 32],
            last_hash: [2; 32],
            digest: [3; 32],
        }
    }

    #[test]
    fn a_seal_round_trips_and_any_flipped_bit_is_refused() {
        let bytes = seal().encode();
        assert_eq!(Seal::decode(&bytes), Some(seal()));
        for bit in 0..SEAL_BYTES * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Seal::decode(&b), None, "bit {bit}");
        }
        assert_eq!(Seal::decode(&bytes[..SEAL_BYTES - 1]), None);
    }

    #[test]
    fn the_running_digest_is_the_files_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let mut file = vec![7u8; 100];
        let mut s = Sealer::new(&file, [9; 32]);
        assert!(s.wrote(100, &[1, 2, 3]));
        assert!(!s.clone().wrote(50, &[1]), "a write elsewhere is refused");
        file.extend_from_slice(&[1, 2, 3]);
        file.resize(200_000, 0);
        std::fs::write(&path, &file).unwrap();
        let seal = s.finish(5, 200_000, (9, [2; 32])).unwrap();
        assert_eq!(digest_file(&path).unwrap(), (200_000, seal.digest));
        assert_eq!(seal.prev_hash, [9; 32]);
    }
}
