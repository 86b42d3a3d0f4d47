//! `log/head`: what the writer knows was acknowledged, and where a running
//! writer's durable head is.
//!
//! Three 512-byte slots, each self-checking (magic, blake3 check):
//! - slots 0 and 1 hold **evidence**, written alternately with a rising
//!   counter and made durable (`fdatasync`): the ledger's state (`open` while
//!   a writer runs, `closed` after a clean close), a (seq, hash) every
//!   record up to which was acknowledged, and the kernel's boot id when the
//!   writer wrote it. A torn evidence write spoils one slot; the other still
//!   holds the previous evidence.
//! - slot 2 holds the **live** durable head, rewritten after every batch
//!   (before its acknowledgements) without an fsync: for readers next to a
//!   running writer, and evidence after a crash too. It is written only after
//!   the records it names are durable, so whichever version of it survives
//!   names acknowledged records; after a process crash (the page cache
//!   survives) it names the last acknowledged batch. Its hash binds it to
//!   the log like the evidence's.
//!
//! Only the writer writes this file. Readers only read it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::{Disk, DiskFile, OsDisk};

use super::LogError;
use crate::record::Hash;

/// The file's name inside `log/`.
pub const HEAD_FILE: &str = "head";
const SLOT_BYTES: usize = 512;
const MAGIC: &[u8; 8] = b"PARLEYHD";
/// Version 2 slots carry the boot id; version 1 slots (older builds) are read.
const VERSION: u32 = 2;
const VERSION_1: u32 = 1;
const KIND_EVIDENCE: u32 = 1;
const KIND_LIVE: u32 = 2;
const LIVE_SLOT: u64 = 2;

/// How the writer left the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A writer runs, or ran and did not close cleanly.
    Open,
    /// The last writer closed cleanly at `seq`: nothing after it was written.
    Closed,
}

/// The kernel's boot id (16 bytes): equal ids mean the same boot, so a
/// writer that stopped without a clean close was killed, and the page cache
/// (every write it made) survived; no power was lost since.
pub type BootId = [u8; 16];

/// Records up to `seq` (whose hash is `hash`) were acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub state: State,
    pub seq: u64,
    pub hash: Hash,
    /// The boot the writer wrote this in (`None`: an older build's slot).
    pub boot: Option<BootId>,
    counter: u64,
}

impl Evidence {
    pub fn new(state: State, seq: u64, hash: Hash) -> Evidence {
        Evidence {
            state,
            seq,
            hash,
            boot: None,
            counter: 0,
        }
    }
}

/// This machine's current boot id, from `/proc/sys/kernel/random/boot_id`
/// (`None` where the kernel does not offer one).
pub fn boot_id() -> Option<BootId> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

struct Slot {
    kind: u32,
    counter: u64,
    state: u32,
    seq: u64,
    hash: Hash,
    boot: Option<BootId>,
}

fn encode(s: &Slot) -> [u8; SLOT_BYTES] {
    let mut b = [0u8; SLOT_BYTES];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&s.kind.to_le_bytes());
    b[16..24].copy_from_slice(&s.counter.to_le_bytes());
    b[24..28].copy_from_slice(&s.state.to_le_bytes());
    b[28] = u8::from(s.boot.is_some());
    b[32..40].copy_from_slice(&s.seq.to_le_bytes());
    b[40..72].copy_from_slice(&s.hash);
    b[88..104].copy_from_slice(&s.boot.unwrap_or_default());
    let check = blake3::hash(&b[..104]);
    b[72..88].copy_from_slice(&check.as_bytes()[..16]);
    b
}

/// A valid slot (version 2, or version 1 without a boot id).
fn decode(b: &[u8]) -> Option<Slot> {
    if b.len() < 104 || &b[..8] != MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let covered = match u32_at(8) {
        VERSION => 104,
        VERSION_1 => 72,
        _ => return None,
    };
    let mut check_input = b[..covered].to_vec();
    if covered == 104 {
        // The check sits inside the covered bytes: it covers them with itself zeroed.
        check_input[72..88].fill(0);
    }
    if blake3::hash(&check_input).as_bytes()[..16] != b[72..88] {
        return None;
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&b[40..72]);
    let boot = (covered == 104 && b[28] == 1).then(|| {
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[88..104]);
        id
    });
    Some(Slot {
        kind: u32_at(12),
        counter: u64_at(16),
        state: u32_at(24),
        seq: u64_at(32),
        hash,
        boot,
    })
}

/// What a head file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadFile {
    /// The newest valid evidence, if any slot holds one.
    pub evidence: Option<Evidence>,
    /// The live durable head (seq, hash), if the slot is valid.
    pub live: Option<(u64, Hash)>,
}

/// Reads `log/head`; a missing file is an empty `HeadFile`.
/// Reads of the file a running writer may be rewriting when a slot holds
/// data that does not check.
const TORN_READ_RETRIES: u32 = 64;

pub fn read(log_dir: &Path) -> Result<HeadFile, LogError> {
    let path = log_dir.join(HEAD_FILE);
    let mut bytes = Vec::new();
    for _ in 0..TORN_READ_RETRIES {
        bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HeadFile::default()),
            Err(e) => return Err(LogError::io("read", &path, e)),
        };
        // A running writer rewrites a slot in place while a reader copies it
        // (a read is not atomic against a write): a slot caught half-written
        // is read again. One that stays damaged is left to the checks below.
        let torn = (0..3).any(|i| {
            bytes
                .get(i * SLOT_BYTES..(i + 1) * SLOT_BYTES)
                .is_some_and(|b| b.iter().any(|x| *x != 0) && decode(b).is_none())
        });
        if !torn {
            break;
        }
        std::thread::yield_now();
    }
    let slot = |i: usize| {
        bytes
            .get(i * SLOT_BYTES..(i + 1) * SLOT_BYTES)
            .and_then(decode)
    };
    let evidence = [slot(0), slot(1)]
        .into_iter()
        .flatten()
        .filter(|s| s.kind == KIND_EVIDENCE)
        .max_by_key(|s| s.counter)
        .map(|s| Evidence {
            state: if s.state == 2 {
                State::Closed
            } else {
                State::Open
            },
            seq: s.seq,
            hash: s.hash,
            boot: s.boot,
            counter: s.counter,
        });
    let live = slot(2)
        .filter(|s| s.kind == KIND_LIVE)
        .map(|s| (s.seq, s.hash));
    Ok(HeadFile { evidence, live })
}

/// The writer's handle on `log/head`.
pub struct HeadWriter {
    /// Opened (and created) at the first write: opening writes nothing.
    file: Option<Box<dyn DiskFile>>,
    path: PathBuf,
    disk: Arc<dyn Disk>,
    last: Option<Evidence>,
    /// This writer closed the ledger: later "open" evidence is stale.
    closed: bool,
    /// The boot this writer runs in, written into its evidence.
    boot: Option<BootId>,
}

impl HeadWriter {
    /// A writer for the head file of `log_dir`; `last` is what `read` found.
    /// Nothing is opened or created until the first write.
    pub fn open(log_dir: &Path, last: Option<Evidence>) -> Result<HeadWriter, LogError> {
        Ok(HeadWriter {
            file: None,
            path: log_dir.join(HEAD_FILE),
            disk: OsDisk::shared(),
            last,
            closed: false,
            boot: boot_id(),
        })
    }

    /// Writes through `disk`, in the boot it names.
    pub fn with_disk(mut self, disk: Arc<dyn Disk>) -> HeadWriter {
        self.boot = disk.boot_id();
        self.disk = disk;
        self
    }

    /// Writes evidence as if from boot `boot` (crash and power-cut
    /// simulations: a boot other than this one is a power cut since).
    pub fn in_boot(mut self, boot: Option<BootId>) -> HeadWriter {
        self.boot = boot;
        self
    }

    fn file(&mut self) -> Result<&dyn DiskFile, LogError> {
        if self.file.is_none() {
            let created = !self.path.exists();
            let f = self
                .disk
                .open(&self.path, true)
                .map_err(|e| LogError::io("open", &self.path, e))?;
            if let (true, Some(dir)) = (created, self.path.parent()) {
                // The new name is durable before any evidence relies on it.
                self.disk
                    .sync_dir(dir)
                    .map_err(|e| LogError::io("fsync directory", dir, e))?;
            }
            self.file = Some(f);
        }
        self.file.as_deref().ok_or(LogError::Poisoned("head file"))
    }

    /// Writes new evidence durably, into the slot the newest evidence is not
    /// in. After this writer recorded a clean close, "open" evidence (a late
    /// periodic update) is ignored.
    pub fn record(&mut self, state: State, seq: u64, hash: Hash) -> Result<(), LogError> {
        if self.closed && state == State::Open {
            return Ok(());
        }
        self.closed = state == State::Closed;
        let counter = self.last.map_or(1, |e| e.counter + 1);
        let st = match state {
            State::Open => 1,
            State::Closed => 2,
        };
        let slot = encode(&Slot {
            kind: KIND_EVIDENCE,
            counter,
            state: st,
            seq,
            hash,
            boot: self.boot,
        });
        let at = (counter % 2) * SLOT_BYTES as u64;
        let path = self.path.clone();
        let file = self.file()?;
        file.write_all_at(&slot, at)
            .map_err(|e| LogError::io("write", &path, e))?;
        file.sync_data()
            .map_err(|e| LogError::io("fdatasync", &path, e))?;
        self.last = Some(Evidence {
            state,
            seq,
            hash,
            boot: self.boot,
            counter,
        });
        Ok(())
    }

    /// Publishes the live durable head (no fsync): for readers next to the
    /// writer, and evidence after a crash (see the module's notes).
    pub fn publish_live(&mut self, seq: u64, hash: Hash) -> Result<(), LogError> {
        let slot = encode(&Slot {
            kind: KIND_LIVE,
            counter: seq,
            state: 0,
            seq,
            hash,
            boot: self.boot,
        });
        let path = self.path.clone();
        self.file()?
            .write_all_at(&slot, LIVE_SLOT * SLOT_BYTES as u64)
            .map_err(|e| LogError::io("write", &path, e))
    }

    /// The evidence last recorded.
    pub fn last(&self) -> Option<Evidence> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_alternates_and_survives_a_torn_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HeadWriter::open(dir.path(), None).unwrap();
        w.record(State::Open, 5, [1; 32]).unwrap();
        w.record(State::Open, 9, [2; 32]).unwrap();
        w.publish_live(11, [3; 32]).unwrap();
        let h = read(dir.path()).unwrap();
        assert_eq!(h.evidence.map(|e| e.seq), Some(9));
        assert_eq!(h.live, Some((11, [3; 32])));
        // Spoil the newest evidence slot: the older one still speaks.
        let path = dir.path().join(HEAD_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        // The second record used counter 2: slot 0.
        let newest = 0;
        bytes[newest + 40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let h = read(dir.path()).unwrap();
        assert_eq!(h.evidence.map(|e| e.seq), Some(5));
        let mut w = HeadWriter::open(dir.path(), h.evidence).unwrap();
        w.record(State::Closed, 12, [4; 32]).unwrap();
        let h = read(dir.path()).unwrap();
        assert_eq!(
            h.evidence.map(|e| (e.state, e.seq)),
            Some((State::Closed, 12))
        );
    }

    #[test]
    fn evidence_names_the_boot_and_every_byte_of_it_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HeadWriter::open(dir.path(), None).unwrap();
        w.record(State::Open, 5, [1; 32]).unwrap();
        let h = read(dir.path()).unwrap();
        assert_eq!(h.evidence.and_then(|e| e.boot), boot_id());
        let path = dir.path().join(HEAD_FILE);
        let bytes = std::fs::read(&path).unwrap();
        // Counter 1 writes slot 1.
        for i in SLOT_BYTES..SLOT_BYTES + 104 {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            std::fs::write(&path, &b).unwrap();
            assert_eq!(read(dir.path()).unwrap().evidence, None, "flip at {i}");
        }
    }

    #[test]
    fn a_version_1_slot_is_read_without_a_boot() {
        let mut b = [0u8; SLOT_BYTES];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION_1.to_le_bytes());
        b[12..16].copy_from_slice(&KIND_EVIDENCE.to_le_bytes());
        b[16..24].copy_from_slice(&3u64.to_le_bytes());
        b[24..28].copy_from_slice(&2u32.to_le_bytes());
        b[32..40].copy_from_slice(&7u64.to_le_bytes());
        let check = blake3::hash(&b[..72]);
        b[72..88].copy_from_slice(&check.as_bytes()[..16]);
        let s = decode(&b).unwrap();
        assert_eq!(
            (s.kind, s.counter, s.state, s.seq, s.boot),
            (1, 3, 2, 7, None)
        );
    }
}
