//! A [`Disk`] that records every operation the writer makes, in order, and
//! injects disk faults: the power-loss checker (`super::crash_states`) builds
//! every state a crash could leave from its trace, and the fault tests make
//! writes, allocations and fdatasyncs fail (or lie) at a chosen point.
//!
//! Every operation is also done on the real filesystem under it, so the
//! files always show what the page cache would: every write applied.
//! Its boot id is a simulated boot's, so the evidence it writes makes every
//! crash state a power cut for recovery.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::{Disk, DiskFile, OsDisk};
use super::head::BootId;

/// A file as the trace knows it (its names may change by rename).
pub type FileId = u32;

/// The simulated boot every traced writer runs in.
pub const TRACE_BOOT: BootId = [0x5a; 16];

/// Most operations one trace holds: a workload past it is refused, not
/// recorded in part.
pub const TRACE_OPS_MAX: usize = 1 << 20;

/// One operation, as the writer made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A file that existed before the trace, with its bytes then (durable).
    Existing {
        file: FileId,
        path: PathBuf,
        bytes: Vec<u8>,
    },
    Mkdir {
        path: PathBuf,
    },
    Create {
        file: FileId,
        path: PathBuf,
    },
    Write {
        file: FileId,
        offset: u64,
        bytes: Vec<u8>,
    },
    Allocate {
        file: FileId,
        len: u64,
    },
    /// fdatasync or fsync returned success; `lost`: a lying disk dropped the
    /// data it claimed to make durable.
    Sync {
        file: FileId,
        lost: bool,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Remove {
        path: PathBuf,
    },
    SyncDir {
        path: PathBuf,
    },
    /// An operation that failed with an injected fault.
    Failed {
        file: Option<FileId>,
        on: OpKind,
        fault: FaultKind,
    },
    /// The workload was told that every seq up to `seq` is acknowledged.
    Ack {
        seq: u64,
    },
}

/// The kinds of operation a fault can be planted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Write,
    Allocate,
    Sync,
    Rename,
    SyncDir,
}

/// What a planted fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The operation fails with EIO (after a failed fdatasync the page
    /// cache may have dropped the data).
    Eio,
    /// The operation fails with ENOSPC.
    NoSpace,
    /// A write puts down half of its bytes, then fails with ENOSPC.
    ShortWrite,
    /// An fdatasync reports success but the data never reaches the disk.
    LostSync,
}

impl FaultKind {
    fn error(self) -> io::Error {
        match self {
            FaultKind::Eio => io::Error::from_raw_os_error(libc::EIO),
            FaultKind::NoSpace | FaultKind::ShortWrite | FaultKind::LostSync => {
                io::Error::from_raw_os_error(libc::ENOSPC)
            }
        }
    }
}

/// Which files a fault counts and hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Segment files (`*.seg`, `*.seg.tmp`).
    Segments,
    /// `log/head`.
    HeadFile,
}

impl Target {
    fn matches(self, path: &Path) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        match self {
            Target::Segments => name.ends_with(".seg") || name.ends_with(".seg.tmp"),
            Target::HeadFile => name == super::head::HEAD_FILE,
        }
    }
}

/// A fault planted on the `nth` (from 1) operation of kind `on` on `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub on: OpKind,
    pub target: Target,
    pub nth: u64,
    pub kind: FaultKind,
}

#[derive(Default)]
struct Inner {
    ops: Vec<Op>,
    names: BTreeMap<PathBuf, FileId>,
    next_file: FileId,
    faults: Vec<Fault>,
    /// Operations seen per (kind, target), for the faults' `nth`.
    counts: BTreeMap<(u8, u8), u64>,
    full: bool,
}

impl Inner {
    fn push(&mut self, op: Op) {
        if self.ops.len() >= TRACE_OPS_MAX {
            self.full = true;
            return;
        }
        self.ops.push(op);
    }

    fn new_file(&mut self) -> FileId {
        self.next_file += 1;
        self.next_file
    }

    /// The fault planted on this operation, if any (counting it).
    fn fault(&mut self, on: OpKind, path: &Path) -> Option<FaultKind> {
        let mut hit = None;
        for target in [Target::Segments, Target::HeadFile] {
            if !target.matches(path) {
                continue;
            }
            let n = self.counts.entry((on as u8, target as u8)).or_insert(0);
            *n += 1;
            let nth = *n;
            hit = hit.or_else(|| {
                self.faults
                    .iter()
                    .find(|f| f.on == on && f.target == target && f.nth == nth)
                    .map(|f| f.kind)
            });
        }
        hit
    }
}

/// The recording, fault-injecting disk. Clones share one trace.
#[derive(Clone, Default)]
pub struct TraceDisk {
    inner: Arc<Mutex<Inner>>,
}

impl TraceDisk {
    pub fn new() -> TraceDisk {
        TraceDisk::default()
    }

    /// The same disk with `fault` planted too.
    pub fn plant(self, fault: Fault) -> TraceDisk {
        self.lock().faults.push(fault);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the trace was held poisons only a test's own disk.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records every file under `dir` as existing (durable) before the
    /// trace, so a crash state holds the files the writer never touched too.
    pub fn adopt(&self, dir: &Path) -> io::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                self.adopt(&path)?;
            } else {
                let mut inner = self.lock();
                self.id_of(&mut inner, &path)?;
            }
        }
        Ok(())
    }

    /// Marks every seq up to `seq` acknowledged to the workload.
    pub fn ack(&self, seq: u64) {
        self.lock().push(Op::Ack { seq });
    }

    /// The operations so far, in order; `None` once more than
    /// [`TRACE_OPS_MAX`] were made (the trace is then incomplete).
    pub fn ops(&self) -> Option<Vec<Op>> {
        let inner = self.lock();
        (!inner.full).then(|| inner.ops.clone())
    }

    /// The id a path names now, recording the file as existing when the
    /// trace has not seen it.
    fn id_of(&self, inner: &mut Inner, path: &Path) -> io::Result<FileId> {
        if let Some(id) = inner.names.get(path) {
            return Ok(*id);
        }
        let bytes = std::fs::read(path)?;
        let file = inner.new_file();
        inner.names.insert(path.to_path_buf(), file);
        inner.push(Op::Existing {
            file,
            path: path.to_path_buf(),
            bytes,
        });
        Ok(file)
    }

    fn wrap(&self, file: FileId, path: &Path, real: Box<dyn DiskFile>) -> Box<dyn DiskFile> {
        Box::new(TraceFile {
            disk: self.clone(),
            file,
            path: path.to_path_buf(),
            real,
        })
    }

    /// Runs `op` unless a fault is planted on it, recording either.
    fn guarded(
        &self,
        on: OpKind,
        path: &Path,
        file: Option<FileId>,
        op: impl FnOnce() -> io::Result<Op>,
    ) -> io::Result<()> {
        let mut inner = self.lock();
        if let Some(fault) = inner.fault(on, path) {
            inner.push(Op::Failed { file, on, fault });
            return Err(fault.error());
        }
        let done = op()?;
        inner.push(done);
        Ok(())
    }
}

impl Disk for TraceDisk {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut inner = self.lock();
        if let Some(fault) = inner.fault(OpKind::Create, path) {
            inner.push(Op::Failed {
                file: None,
                on: OpKind::Create,
                fault,
            });
            return Err(fault.error());
        }
        let real = OsDisk.create_new(path)?;
        let file = inner.new_file();
        inner.names.insert(path.to_path_buf(), file);
        inner.push(Op::Create {
            file,
            path: path.to_path_buf(),
        });
        drop(inner);
        Ok(self.wrap(file, path, real))
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>> {
        let mut inner = self.lock();
        let existed = path.exists();
        let real = OsDisk.open(path, create)?;
        let file = if existed {
            self.id_of(&mut inner, path)?
        } else {
            let file = inner.new_file();
            inner.names.insert(path.to_path_buf(), file);
            inner.push(Op::Create {
                file,
                path: path.to_path_buf(),
            });
            file
        };
        drop(inner);
        Ok(self.wrap(file, path, real))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.guarded(OpKind::Rename, from, None, || {
            OsDisk.rename(from, to)?;
            Ok(Op::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
            })
        })?;
        let mut inner = self.lock();
        if let Some(id) = inner.names.remove(from) {
            inner.names.insert(to.to_path_buf(), id);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        OsDisk.remove_file(path)?;
        inner.names.remove(path);
        inner.push(Op::Remove {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(path);
        while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            missing.push(p.to_path_buf());
            at = p.parent();
        }
        OsDisk.create_dir_all(path)?;
        let mut inner = self.lock();
        for path in missing.into_iter().rev() {
            inner.push(Op::Mkdir { path });
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.guarded(OpKind::SyncDir, dir, None, || {
            OsDisk.sync_dir(dir)?;
            Ok(Op::SyncDir {
                path: dir.to_path_buf(),
            })
        })
    }

    fn boot_id(&self) -> Option<BootId> {
        Some(TRACE_BOOT)
    }
}

struct TraceFile {
    disk: TraceDisk,
    file: FileId,
    path: PathBuf,
    real: Box<dyn DiskFile>,
}

impl DiskFile for TraceFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut inner = self.disk.lock();
        let fault = inner.fault(OpKind::Write, &self.path);
        let part = match fault {
            Some(FaultKind::ShortWrite) => &buf[..buf.len() / 2],
            Some(_) => &buf[..0],
            None => buf,
        };
        if !part.is_empty() {
            self.real.write_all_at(part, offset)?;
            inner.push(Op::Write {
                file: self.file,
                offset,
                bytes: part.to_vec(),
            });
        }
        match fault {
            Some(fault) => {
                inner.push(Op::Failed {
                    file: Some(self.file),
                    on: OpKind::Write,
                    fault,
                });
                Err(fault.error())
            }
            None => Ok(()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(false)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(true)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let file = self.file;
        self.disk
            .guarded(OpKind::Allocate, &self.path, Some(file), || {
                self.real.allocate(len)?;
                Ok(Op::Allocate { file, len })
            })
    }

    fn size_bytes(&self) -> io::Result<u64> {
        self.real.size_bytes()
    }
}

impl TraceFile {
    fn sync(&self, all: bool) -> io::Result<()> {
        let mut inner = self.disk.lock();
        let fault = inner.fault(OpKind::Sync, &self.path);
        if let Some(fault) = fault.filter(|f| *f != FaultKind::LostSync) {
            inner.push(Op::Failed {
                file: Some(self.file),
                on: OpKind::Sync,
                fault,
            });
            return Err(fault.error());
        }
        if all {
            self.real.sync_all()?;
        } else {
            self.real.sync_data()?;
        }
        inner.push(Op::Sync {
            file: self.file,
            lost: fault == Some(FaultKind::LostSync),
        });
        Ok(())
    }
}
