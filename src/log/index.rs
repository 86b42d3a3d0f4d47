//! Segment index files (`DIR/index/<first_seq>.idx`): for one sealed segment,
//! the offset of every frame and, for every entity, the seqs that name it.
//! Written once by the writer's projector when the segment is sealed (and a
//! `.partial` for the active segment now and then), never changed after, read
//! by any process without a lock. They are derived: a missing or damaged file
//! costs a scan of its segment, never a wrong answer.
//!
//! Layout (little-endian):
//! ```text
//! header  136 B  magic "PARLEYIX" | version u32 | partial u32 | first_seq u64 | count u64
//!                | last_hash [32] | offsets_at u64 | table_at u64 | entities u64
//!                | names_at u64 | seqs_at u64 | body_check [16] (blake3 of bytes 136..)
//!                | check [16] (blake3 of bytes 0..120)
//! offsets        count × u64: the frame offset of seq first_seq + i
//! table          entities × 48 B, sorted by name: name_at u64 | name_len u32 | pad u32
//!                | seqs_at u64 | seqs_len u64 | check [16] (blake3 of the 32 bytes
//!                before it, the name and the seqs)
//! names, seqs    the entity names (UTF-8) and their seqs (u64 each)
//! ```
//! Every entry carries its own check, so a lookup verifies exactly what it
//! reads (a binary search reads about log2(entities) entries).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::record::Hash;

const MAGIC: &[u8; 8] = b"PARLEYIX";
const VERSION: u32 = 1;
const HEADER_BYTES: u64 = 136;
const ENTRY_BYTES: u64 = 48;
/// Longest entity name an entry may hold: `kind:` and an identifier of
/// `ID_CHARS_MAX` characters of up to 4 bytes each.
const NAME_BYTES_MAX: usize = 16 + 4 * crate::bounds::ID_CHARS_MAX;

/// The index file name of the sealed segment starting at `first_seq`.
pub fn file_name(first_seq: u64, partial: bool) -> String {
    let ext = if partial { "partial" } else { "idx" };
    format!("{first_seq:020}.{ext}")
}

/// An index being built, or built from a file's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    pub first_seq: u64,
    pub offsets: Vec<u64>,
    pub last_hash: Hash,
    /// Entity text form → seqs naming it, ascending.
    pub entities: BTreeMap<String, Vec<u64>>,
}

impl SegmentIndex {
    pub fn new(first_seq: u64) -> SegmentIndex {
        SegmentIndex {
            first_seq,
            ..SegmentIndex::default()
        }
    }

    /// The next record of the segment, as the writer's projector and a
    /// rebuild take it: its offset, hash and the entities it names. Each
    /// name is written into one buffer; only an entity new to the segment
    /// costs an allocation.
    pub fn push_record(&mut self, r: &crate::record::StoredRecord, offset: u64) {
        use std::fmt::Write as _;
        let seq = r.record.envelope.seq;
        self.push_offset(seq, offset, r.hash);
        let mut name = String::with_capacity(64);
        for e in r.record.index_entities() {
            name.clear();
            // Writing into a String cannot fail.
            let _ = write!(name, "{e}");
            self.note(&name, seq);
        }
    }

    /// The next record of the segment: its offset, hash and entities.
    pub fn push(&mut self, seq: u64, offset: u64, hash: Hash, entities: &[String]) {
        self.push_offset(seq, offset, hash);
        for e in entities {
            self.note(e, seq);
        }
    }

    fn push_offset(&mut self, seq: u64, offset: u64, hash: Hash) {
        debug_assert_eq!(seq, self.first_seq + self.offsets.len() as u64);
        debug_assert!(
            self.offsets.last().is_none_or(|o| *o < offset),
            "offsets ascend"
        );
        self.offsets.push(offset);
        self.last_hash = hash;
    }

    /// `seq` names `entity` (once, however often the record names it).
    fn note(&mut self, entity: &str, seq: u64) {
        match self.entities.get_mut(entity) {
            Some(seqs) => {
                if seqs.last() != Some(&seq) {
                    debug_assert!(seqs.last().is_none_or(|l| *l < seq), "seqs ascend");
                    seqs.push(seq);
                }
            }
            None => {
                self.entities.insert(entity.to_owned(), vec![seq]);
            }
        }
    }

    /// The whole index a file holds, every entry checked (a `.partial`
    /// file taken up again by a writer's open).
    pub fn load(file: &IndexFile) -> Result<SegmentIndex, IndexError> {
        file.check_all()?;
        let mut entities = BTreeMap::new();
        // Bounded by the file's entry count, which `open` checked fits it.
        for i in 0..file.entities {
            let (name, seqs) = file.entry(i)?;
            entities.insert(name, seqs);
        }
        Ok(SegmentIndex {
            first_seq: file.first_seq,
            offsets: file.offsets()?,
            last_hash: file.last_hash,
            entities,
        })
    }

    /// The last seq the index covers (`first_seq - 1` when empty).
    pub fn last_seq(&self) -> u64 {
        (self.first_seq + self.offsets.len() as u64).saturating_sub(1)
    }

    pub(crate) fn encode(&self, partial: bool) -> Vec<u8> {
        let count = self.offsets.len() as u64;
        let offsets_at = HEADER_BYTES;
        let table_at = offsets_at + 8 * count;
        let n = self.entities.len() as u64;
        let names_at = table_at + ENTRY_BYTES * n;
        let names_len: u64 = self.entities.keys().map(|k| k.len() as u64).sum();
        let seqs_at = names_at + names_len;
        let mut out = vec![0u8; HEADER_BYTES as usize];
        out[..8].copy_from_slice(MAGIC);
        put32(&mut out, 8, VERSION);
        put32(&mut out, 12, u32::from(partial));
        for (i, v) in [self.first_seq, count].into_iter().enumerate() {
            put64(&mut out, 16 + 8 * i, v);
        }
        out[32..64].copy_from_slice(&self.last_hash);
        for (i, v) in [offsets_at, table_at, n, names_at, seqs_at]
            .into_iter()
            .enumerate()
        {
            put64(&mut out, 64 + 8 * i, v);
        }
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        let (mut name_at, mut seq_at) = (names_at, seqs_at);
        for (name, seqs) in &self.entities {
            let mut e = [0u8; ENTRY_BYTES as usize];
            put64(&mut e, 0, name_at);
            put32(&mut e, 8, u32::try_from(name.len()).unwrap_or(u32::MAX));
            put64(&mut e, 16, seq_at);
            put64(&mut e, 24, seqs.len() as u64);
            let seq_bytes: Vec<u8> = seqs.iter().flat_map(|s| s.to_le_bytes()).collect();
            let check = entry_check(&e[..32], name.as_bytes(), &seq_bytes);
            e[32..48].copy_from_slice(&check);
            out.extend_from_slice(&e);
            name_at += name.len() as u64;
            seq_at += seq_bytes.len() as u64;
        }
        for name in self.entities.keys() {
            out.extend_from_slice(name.as_bytes());
        }
        for seqs in self.entities.values() {
            for s in seqs {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        let body = blake3::hash(&out[HEADER_BYTES as usize..]);
        out[104..120].copy_from_slice(&body.as_bytes()[..16]);
        let check = blake3::hash(&out[..120]);
        out[120..136].copy_from_slice(&check.as_bytes()[..16]);
        out
    }

    /// Writes the index into `dir` (atomically: a temp file, then a rename).
    /// Index files are derived, so no fsync: a torn one fails its checks.
    pub fn write(&self, dir: &Path, partial: bool) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file_name(self.first_seq, partial));
        let tmp = dir.join(format!("{}.tmp", file_name(self.first_seq, partial)));
        std::fs::write(&tmp, self.encode(partial))?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn get64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn entry_check(head: &[u8], name: &[u8], seqs: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(head);
    h.update(name);
    h.update(seqs);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// An index file opened for lookups.
pub struct IndexFile {
    file: File,
    path: PathBuf,
    pub partial: bool,
    pub first_seq: u64,
    pub count: u64,
    pub last_hash: Hash,
    offsets_at: u64,
    table_at: u64,
    entities: u64,
}

/// Why an index file cannot be used (it is then ignored and rebuilt).
#[derive(Debug, thiserror::Error)]
#[error("index file {}: {reason}", path.display())]
pub struct IndexError {
    pub path: PathBuf,
    pub reason: String,
}

impl IndexFile {
    fn bad(path: &Path, reason: impl Into<String>) -> IndexError {
        IndexError {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub fn open(path: &Path) -> Result<IndexFile, IndexError> {
        let file = File::open(path).map_err(|e| Self::bad(path, e.to_string()))?;
        let len = file
            .metadata()
            .map_err(|e| Self::bad(path, e.to_string()))?
            .len();
        let mut h = [0u8; HEADER_BYTES as usize];
        file.read_exact_at(&mut h, 0)
            .map_err(|e| Self::bad(path, format!("header: {e}")))?;
        if &h[..8] != MAGIC || get32(&h, 8) != VERSION {
            return Err(Self::bad(path, "not a version-1 index file"));
        }
        if blake3::hash(&h[..120]).as_bytes()[..16] != h[120..136] {
            return Err(Self::bad(path, "header check does not match"));
        }
        let mut last_hash = [0u8; 32];
        last_hash.copy_from_slice(&h[32..64]);
        let idx = IndexFile {
            partial: get32(&h, 12) == 1,
            first_seq: get64(&h, 16),
            count: get64(&h, 24),
            last_hash,
            offsets_at: get64(&h, 64),
            table_at: get64(&h, 72),
            entities: get64(&h, 80),
            path: path.to_path_buf(),
            file,
        };
        let seqs_at = get64(&h, 96);
        let sane = idx.offsets_at == HEADER_BYTES
            && idx.table_at == HEADER_BYTES + 8 * idx.count
            && seqs_at <= len
            && idx.table_at + ENTRY_BYTES * idx.entities <= len;
        if !sane {
            return Err(Self::bad(path, "sections do not fit the file"));
        }
        Ok(idx)
    }

    /// The last seq the file covers.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.count - 1
    }

    /// Reads the whole file and checks it against its body check (what a
    /// writer does before trusting a file it did not write this run).
    pub fn check_all(&self) -> Result<(), IndexError> {
        let mut h = [0u8; HEADER_BYTES as usize];
        self.file
            .read_exact_at(&mut h, 0)
            .map_err(|e| Self::bad(&self.path, e.to_string()))?;
        // Streamed through one small buffer (an index file is MBs, read at
        // every open), from the same file the header came from.
        let (_, digest) = super::seal::digest_from(&self.file, HEADER_BYTES)
            .map_err(|e| Self::bad(&self.path, e.to_string()))?;
        if digest[..16] != h[104..120] {
            return Err(Self::bad(&self.path, "body check does not match"));
        }
        Ok(())
    }

    /// The frame offset of `seq`, if the file covers it.
    pub fn offset(&self, seq: u64) -> Option<u64> {
        if seq < self.first_seq || seq > self.last_seq() {
            return None;
        }
        let mut b = [0u8; 8];
        let at = self.offsets_at + 8 * (seq - self.first_seq);
        self.file.read_exact_at(&mut b, at).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Every frame offset (for a reader walking the segment).
    pub fn offsets(&self) -> Result<Vec<u64>, IndexError> {
        let mut b = vec![0u8; usize::try_from(8 * self.count).unwrap_or(0)];
        self.file
            .read_exact_at(&mut b, self.offsets_at)
            .map_err(|e| Self::bad(&self.path, e.to_string()))?;
        Ok(b.chunks_exact(8).map(|c| get64(c, 0)).collect())
    }

    /// The checked entry `i`: (name, seqs).
    fn entry(&self, i: u64) -> Result<(String, Vec<u64>), IndexError> {
        let bad = |r: String| Self::bad(&self.path, r);
        let mut e = [0u8; ENTRY_BYTES as usize];
        self.file
            .read_exact_at(&mut e, self.table_at + ENTRY_BYTES * i)
            .map_err(|x| bad(x.to_string()))?;
        let (name_at, name_len) = (get64(&e, 0), get32(&e, 8) as usize);
        let (seqs_at, seqs_len) = (get64(&e, 16), get64(&e, 24));
        if name_len > NAME_BYTES_MAX || seqs_len > self.count {
            return Err(bad(format!("entry {i} is out of range")));
        }
        let mut name = vec![0u8; name_len];
        self.file
            .read_exact_at(&mut name, name_at)
            .map_err(|x| bad(x.to_string()))?;
        let mut seqs = vec![0u8; usize::try_from(8 * seqs_len).unwrap_or(0)];
        self.file
            .read_exact_at(&mut seqs, seqs_at)
            .map_err(|x| bad(x.to_string()))?;
        if entry_check(&e[..32], &name, &seqs) != e[32..48] {
            return Err(bad(format!("entry {i} does not match its check")));
        }
        let name = String::from_utf8(name).map_err(|_| bad(format!("entry {i}: name")))?;
        Ok((name, seqs.chunks_exact(8).map(|c| get64(c, 0)).collect()))
    }

    /// The seqs that name `entity`, by binary search over checked entries.
    pub fn entity_seqs(&self, entity: &str) -> Result<Vec<u64>, IndexError> {
        let (mut lo, mut hi) = (0u64, self.entities);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (name, seqs) = self.entry(mid)?;
            match name.as_str().cmp(entity) {
                std::cmp::Ordering::Equal => return Ok(seqs),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_entry_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = SegmentIndex::new(10);
        for i in 0..100u64 {
            let names = vec![format!("sku:S{}", i % 7), "run:r".to_owned()];
            idx.push(10 + i, 64 + i * 100, [i as u8; 32], &names);
        }
        let path = idx.write(dir.path(), false).unwrap();
        let f = IndexFile::open(&path).unwrap();
        assert_eq!((f.first_seq, f.count, f.last_seq()), (10, 100, 109));
        assert_eq!(f.offset(15), Some(64 + 500));
        assert_eq!(f.offset(110), None);
        assert_eq!(f.entity_seqs("sku:S3").unwrap().len(), 14);
        assert!(f.entity_seqs("sku:S9").unwrap().is_empty());
        assert_eq!(f.offsets().unwrap(), idx.offsets);
        // Flip a byte in the seqs section: the lookup notices.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let f = IndexFile::open(&path).unwrap();
        let all: Vec<_> = (0..7)
            .map(|i| f.entity_seqs(&format!("sku:S{i}")))
            .collect();
        assert!(all.iter().any(Result::is_err) || f.entity_seqs("run:r").is_err());
    }
}
