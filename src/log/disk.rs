//! The seam between the segment engine's write path and the filesystem:
//! every create, write, allocation, fdatasync, rename, removal and directory
//! fsync the writer makes goes through a [`Disk`]. [`OsDisk`] is the real
//! one; [`super::trace::TraceDisk`] records each operation (for the
//! power-loss checker, `super::crash_states`) and injects disk faults.
//!
//! Readers and recovery's analysis read files directly: they never write.
//!
//! Architecture invariant: the writer makes no durable change to `log/`
//! except through its `Disk`, so a trace of the `Disk` is a trace of every
//! write the ledger's truth depends on.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::head::BootId;

/// An open file of the log, as the writer uses it.
pub trait DiskFile: Send + Sync {
    /// Writes all of `buf` at `offset` (not durable until a sync).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: the data and the size needed to read it are durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: data and metadata are durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Makes the file at least `len` bytes long with its blocks allocated.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn size_bytes(&self) -> io::Result<u64>;
}

/// The filesystem under the writer, and the machine it runs on.
pub trait Disk: Send + Sync {
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Opens a file for reading and writing, creating it when `create`.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>>;
    /// Renames within one directory (durable after `sync_dir`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its missing parents (durable after
    /// `sync_dir` of each new directory's parent).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `fsync` of a directory: its entries are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The kernel's boot id, written into `log/head`'s evidence (a
    /// simulated disk names a boot of its own: its crashes are power cuts).
    fn boot_id(&self) -> Option<BootId>;
}

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsDisk;

impl OsDisk {
    /// The shared handle most callers want.
    pub fn shared() -> Arc<dyn Disk> {
        Arc::new(OsDisk)
    }
}

struct OsFile(File);

impl DiskFile for OsFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let off = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: the fd is open and owned by `self.0` for the duration of the call.
        let rc = unsafe { libc::posix_fallocate(self.0.as_raw_fd(), 0, off) };
        match rc {
            0 => Ok(()),
            // Filesystems without fallocate: a sparse extension.
            libc::EOPNOTSUPP | libc::EINVAL => self.0.set_len(len.max(self.size_bytes()?)),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Disk for OsDisk {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(OsFile(f)))
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(OsFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn boot_id(&self) -> Option<BootId> {
        super::head::boot_id()
    }
}
