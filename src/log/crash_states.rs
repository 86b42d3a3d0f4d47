//! The states a power cut can leave, built from a [`super::trace`] of the
//! writer's operations (after ALICE and CrashMonkey).
//!
//! The model, per POSIX and what Linux filesystems are allowed to do:
//! - A write is durable once an fdatasync or fsync of its file returned
//!   success (unless that sync lied: its writes are lost). Until then each
//!   512-byte sector it touched may hold the new bytes or the old ones,
//!   independently of every other write: kept, dropped, or torn.
//! - A size change (an allocation) is durable with the file's next sync;
//!   until then it may or may not have happened.
//! - A directory's new entries (a created file or directory, a rename, a
//!   removal) are durable once the directory was fsynced. Until then some
//!   prefix of them, in the order they were made, happened.
//!
//! A crash state is the operations up to some point, with one such choice
//! for everything not yet durable. [`materialize`] writes it as files.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::trace::{FileId, Op};

/// The sector size a torn write is torn at.
pub const SECTOR_BYTES: u64 = 512;
/// Largest file a crash state writes (bounds memory per state).
pub const STATE_FILE_BYTES_MAX: u64 = 1 << 30;

/// How the non-durable parts of a state are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Everything written survived (what a process crash leaves).
    KeepAll,
    /// Only what was made durable survived.
    DropAll,
    /// Each write kept, dropped or torn at random, and a random prefix of
    /// each directory's pending entries, from this seed.
    Random(u64),
}

/// The crash state's choices, drawn in a fixed order from one seed.
struct Picker {
    crash: Crash,
    rng: u64,
}

impl Picker {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough for choosing; the seed reproduces the state.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn prefix(&mut self, pending: usize) -> usize {
        match self.crash {
            Crash::KeepAll => pending,
            Crash::DropAll => 0,
            Crash::Random(_) => (self.next() % (pending as u64 + 1)) as usize,
        }
    }

    /// Which of `sectors` sectors of a pending write survive.
    fn sectors(&mut self, sectors: usize) -> Vec<bool> {
        match self.crash {
            Crash::KeepAll => vec![true; sectors],
            Crash::DropAll => vec![false; sectors],
            Crash::Random(_) => match self.next() % 10 {
                0..=3 => vec![true; sectors],
                4..=6 => vec![false; sectors],
                _ => (0..sectors).map(|_| self.next() % 2 == 0).collect(),
            },
        }
    }
}

#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, bytes: Vec<u8> },
    Allocate { len: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    File(FileId),
    Dir,
}

#[derive(Clone, Debug)]
enum DirOp {
    Add(PathBuf, Entry),
    Remove(PathBuf),
    Rename(PathBuf, PathBuf),
}

/// The durable state after some operations, and what is still pending.
#[derive(Default)]
struct Model {
    durable: BTreeMap<FileId, Vec<u8>>,
    pending: BTreeMap<FileId, Vec<Pending>>,
    names: BTreeMap<PathBuf, Entry>,
    dir_ops: BTreeMap<PathBuf, Vec<DirOp>>,
    /// Directories the trace made (others existed before it, durably).
    made: std::collections::BTreeSet<PathBuf>,
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn apply_dir_op(names: &mut BTreeMap<PathBuf, Entry>, op: &DirOp) {
    match op {
        DirOp::Add(path, entry) => {
            names.insert(path.clone(), *entry);
        }
        DirOp::Remove(path) => {
            names.remove(path);
        }
        DirOp::Rename(from, to) => {
            if let Some(entry) = names.remove(from) {
                names.insert(to.clone(), entry);
            }
        }
    }
}

fn apply(content: &mut Vec<u8>, item: &Pending, keep: &[bool]) {
    match item {
        Pending::Allocate { len } => {
            if keep.first().copied().unwrap_or(false) && (content.len() as u64) < *len {
                content.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0);
            }
        }
        Pending::Write { offset, bytes } => {
            let first_sector = offset / SECTOR_BYTES;
            for (i, b) in bytes.iter().enumerate() {
                let at = offset + i as u64;
                let sector = (at / SECTOR_BYTES - first_sector) as usize;
                if !keep.get(sector).copied().unwrap_or(false) {
                    continue;
                }
                let at = usize::try_from(at).unwrap_or(usize::MAX);
                if content.len() <= at {
                    content.resize(at + 1, 0);
                }
                content[at] = *b;
            }
        }
    }
}

fn sectors_of(item: &Pending) -> usize {
    match item {
        Pending::Allocate { .. } => 1,
        Pending::Write { offset, bytes } => {
            let end = offset + bytes.len() as u64;
            (end.div_ceil(SECTOR_BYTES) - offset / SECTOR_BYTES) as usize
        }
    }
}

impl Model {
    fn step(&mut self, op: &Op) {
        match op {
            Op::Existing { file, path, bytes } => {
                self.durable.insert(*file, bytes.clone());
                self.names.insert(path.clone(), Entry::File(*file));
            }
            Op::Mkdir { path } => {
                self.made.insert(path.clone());
                self.dir_op(DirOp::Add(path.clone(), Entry::Dir), path);
            }
            Op::Create { file, path } => {
                self.durable.insert(*file, Vec::new());
                self.dir_op(DirOp::Add(path.clone(), Entry::File(*file)), path);
            }
            Op::Write {
                file,
                offset,
                bytes,
            } => self.pending.entry(*file).or_default().push(Pending::Write {
                offset: *offset,
                bytes: bytes.clone(),
            }),
            Op::Allocate { file, len } => self
                .pending
                .entry(*file)
                .or_default()
                .push(Pending::Allocate { len: *len }),
            Op::Sync { file, lost } => {
                let items = self.pending.remove(file).unwrap_or_default();
                if !lost {
                    let content = self.durable.entry(*file).or_default();
                    for item in &items {
                        apply(content, item, &vec![true; sectors_of(item)]);
                    }
                }
            }
            Op::Rename { from, to } => self.dir_op(DirOp::Rename(from.clone(), to.clone()), from),
            Op::Remove { path } => self.dir_op(DirOp::Remove(path.clone()), path),
            Op::SyncDir { path } => {
                for op in self.dir_ops.remove(path).unwrap_or_default() {
                    apply_dir_op(&mut self.names, &op);
                }
            }
            Op::Failed { .. } | Op::Ack { .. } => {}
        }
    }

    fn dir_op(&mut self, op: DirOp, path: &Path) {
        self.dir_ops.entry(parent(path)).or_default().push(op);
    }

    /// The files and directories of one crash state.
    fn crash(&self, picker: &mut Picker) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut names = self.names.clone();
        for ops in self.dir_ops.values() {
            let applied = picker.prefix(ops.len());
            for op in &ops[..applied] {
                apply_dir_op(&mut names, op);
            }
        }
        let mut out = BTreeMap::new();
        for (path, entry) in &names {
            let content = match entry {
                Entry::Dir => None,
                Entry::File(id) => {
                    let mut content = self.durable.get(id).cloned().unwrap_or_default();
                    for item in self.pending.get(id).map_or(&[][..], Vec::as_slice) {
                        let keep = picker.sectors(sectors_of(item));
                        apply(&mut content, item, &keep);
                    }
                    Some(content)
                }
            };
            out.insert(path.clone(), content);
        }
        out
    }
}

/// What one crash point offers: the highest seq acknowledged before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashPoint {
    /// Operations done before the crash.
    pub ops: usize,
    /// Every seq up to this was acknowledged before the crash.
    pub acked: u64,
}

/// Every crash point of a trace: before each operation, and after the last.
pub fn points(ops: &[Op]) -> Vec<CrashPoint> {
    let mut acked = 0;
    let mut out = Vec::with_capacity(ops.len() + 1);
    for (i, op) in ops.iter().enumerate() {
        out.push(CrashPoint { ops: i, acked });
        if let Op::Ack { seq } = op {
            acked = acked.max(*seq);
        }
    }
    out.push(CrashPoint {
        ops: ops.len(),
        acked,
    });
    out
}

/// Writes the state a crash after `ops[..point.ops]` leaves, chosen by
/// `crash`, under `out`: every traced path under `root` lands at the same
/// place under `out` (paths outside `root` are left out). Returns the
/// state's digest (equal digests: the same state).
pub fn materialize(
    ops: &[Op],
    point: CrashPoint,
    crash: Crash,
    root: &Path,
    out: &Path,
) -> io::Result<[u8; 32]> {
    let mut model = Model::default();
    for op in &ops[..point.ops.min(ops.len())] {
        model.step(op);
    }
    let seed = match crash {
        Crash::Random(seed) => seed | 1,
        _ => 1,
    };
    let mut picker = Picker { crash, rng: seed };
    let state = model.crash(&mut picker);
    let mut digest = blake3::Hasher::new();
    for (path, content) in &state {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        // An entry whose directory the trace made and did not survive is
        // unreachable (directories from before the trace are there).
        let reachable = rel.ancestors().skip(1).all(|a| {
            let a = root.join(a);
            !model.made.contains(&a) || matches!(state.get(&a), Some(None))
        });
        if !reachable || rel.as_os_str().is_empty() {
            continue;
        }
        digest.update(rel.as_os_str().as_encoded_bytes());
        let target = out.join(rel);
        match content {
            None => std::fs::create_dir_all(&target)?,
            Some(bytes) => {
                if bytes.len() as u64 > STATE_FILE_BYTES_MAX {
                    return Err(io::ErrorKind::FileTooLarge.into());
                }
                if let Some(dir) = target.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                digest.update(&(bytes.len() as u64).to_le_bytes());
                digest.update(bytes);
                std::fs::write(&target, bytes)?;
            }
        }
    }
    Ok(*digest.finalize().as_bytes())
}
