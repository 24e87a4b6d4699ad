//! The file-system seam: every byte the store reads or writes goes through [`Fs`], so tests can
//! swap the real disk for [`FaultyFs`], which fails, runs out of space, turns read-only, or
//! "stops the process" (tears the write in progress and refuses everything after) at the N-th
//! operation that changes the disk.
//!
//! The operations are deliberately the few the commit protocol needs (write a new file, append,
//! fsync a file, rename, fsync a directory, remove, truncate), so a crash test can enumerate every
//! boundary of a save by counting them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The operations the store performs on a file system. Paths are absolute or relative to the
/// process's working directory; every method returns the raw `io::Error` (callers add the path).
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Reads at most `len` bytes of a file from `offset` (fewer at its end): a large file read a
    /// window at a time. The default reads the whole file and cuts the window out of it.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let all = self.read(path)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
        let end = start.saturating_add(len).min(all.len());
        Ok(all[start..end].to_vec())
    }
    /// The file names (not paths) in a directory, unsorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates (or truncates) a file and writes `bytes` into it; not yet durable.
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Appends `bytes` to an existing file; not yet durable.
    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Makes a file's content durable (fdatasync).
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Cuts a file to `len` bytes.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
}

/// The real file system (std::fs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut window = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut window)?;
        Ok(window)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = File::create(path)?;
        file.write_all(bytes)
    }

    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().append(true).open(path)?;
        file.write_all(bytes)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fsync is per inode on Linux, so a fresh descriptor flushes what earlier ones wrote.
        OpenOptions::new().write(true).open(path)?.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(path)?.set_len(len)
    }
}

/// What [`FaultyFs`] does once its countdown reaches zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The N-th operation fails with an I/O error without doing anything; later ones work.
    FailOnce,
    /// A power cut: the N-th operation is torn (a write keeps only its first half, anything else
    /// is not done) and every later operation fails, as if the process had died.
    Stop,
    /// From the N-th operation on, writes fail with "no space left" (ENOSPC) until healed; a
    /// write that fails keeps its first half, as a real full disk can.
    NoSpace,
    /// From the N-th operation on, every change fails with "read-only file system" until healed.
    ReadOnly,
}

#[derive(Debug)]
struct Plan {
    fault: Fault,
    /// Operations left before the fault fires (the fault hits operation number `after + 1`).
    remaining: u64,
    fired: bool,
    healed: bool,
    ops: u64,
}

/// A file system that behaves like [`RealFs`] until the N-th disk-changing operation, then
/// injects a [`Fault`]. Reads are never counted nor failed. Cloning shares the countdown.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    plan: Arc<Mutex<Plan>>,
}

/// What the counting wrapper decided for one operation.
enum Verdict {
    Proceed,
    Tear(io::Error),
    Refuse(io::Error),
}

impl FaultyFs {
    /// Injects `fault` at disk-changing operation number `after + 1` (so `after = 0` hits the
    /// very first one).
    pub fn new(fault: Fault, after: u64) -> Self {
        Self {
            plan: Arc::new(Mutex::new(Plan {
                fault,
                remaining: after,
                fired: false,
                healed: false,
                ops: 0,
            })),
        }
    }

    /// A file system that never fails, only counts (to learn how many operations a save takes).
    pub fn counting() -> Self {
        Self::new(Fault::FailOnce, u64::MAX)
    }

    /// Re-arms the countdown from now: `fault` hits the operation after the next `after` ones.
    pub fn arm(&self, fault: Fault, after: u64) {
        let mut plan = self.lock();
        plan.fault = fault;
        plan.remaining = after;
        plan.fired = false;
        plan.healed = false;
    }

    /// How many disk-changing operations were attempted so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the fault has fired.
    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    /// Ends a `NoSpace` or `ReadOnly` fault (space was freed, the disk remounted read-write).
    pub fn heal(&self) {
        self.lock().healed = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn verdict(&self, is_write: bool) -> Verdict {
        let mut plan = self.lock();
        plan.ops += 1;
        if plan.healed {
            return Verdict::Proceed;
        }
        if !plan.fired {
            if plan.remaining > 0 {
                plan.remaining -= 1;
                return Verdict::Proceed;
            }
            plan.fired = true;
            return match plan.fault {
                Fault::FailOnce => Verdict::Refuse(io::Error::other("injected I/O error")),
                Fault::Stop => Verdict::Tear(stopped()),
                Fault::NoSpace => {
                    if is_write {
                        Verdict::Tear(no_space())
                    } else {
                        Verdict::Refuse(no_space())
                    }
                }
                Fault::ReadOnly => Verdict::Refuse(read_only()),
            };
        }
        match plan.fault {
            Fault::FailOnce => Verdict::Proceed,
            Fault::Stop => Verdict::Refuse(stopped()),
            Fault::NoSpace if is_write => Verdict::Tear(no_space()),
            // A full disk still lets you rename, remove, truncate and sync.
            Fault::NoSpace => Verdict::Proceed,
            Fault::ReadOnly => Verdict::Refuse(read_only()),
        }
    }

    fn write_op(&self, bytes: &[u8], op: impl FnOnce(&[u8]) -> io::Result<()>) -> io::Result<()> {
        match self.verdict(true) {
            Verdict::Proceed => op(bytes),
            Verdict::Tear(error) => {
                op(&bytes[..bytes.len() / 2])?;
                Err(error)
            }
            Verdict::Refuse(error) => Err(error),
        }
    }

    fn other_op(&self, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        match self.verdict(false) {
            Verdict::Proceed => op(),
            Verdict::Tear(error) | Verdict::Refuse(error) => Err(error),
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("injected stop: the process is considered dead")
}

fn no_space() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "injected: no space left on device",
    )
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::ReadOnlyFilesystem,
        "injected: read-only file system",
    )
}

impl Fs for FaultyFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFs.read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        RealFs.list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.other_op(|| RealFs.create_dir_all(dir))
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.write_op(bytes, |b| RealFs.write_new(path, b))
    }

    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.write_op(bytes, |b| RealFs.append(path, b))
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.other_op(|| RealFs.sync_file(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.other_op(|| RealFs.sync_dir(dir))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.other_op(|| RealFs.rename(from, to))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.other_op(|| RealFs.remove(path))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.other_op(|| RealFs.truncate(path, len))
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename over `path`,
/// fsync the directory. A crash at any point leaves either the old file or the new one.
///
/// # Errors
/// The first failing step, naming the file; the temporary file is removed then (a crash may
/// still leave one, which the next open of a state directory removes).
pub fn write_atomic(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> super::Result<()> {
    write_atomic_with(fs, path, |tmp| {
        fs.write_new(tmp, bytes)
            .map_err(|e| super::StoreError::io("write", tmp, e))
    })
}

/// [`write_atomic`] with the temporary file's content written by `write(tmp)` (a file written in
/// pieces: `write_new` then `append`s), whose result it returns.
///
/// # Errors
/// As [`write_atomic`], `write`'s own failure included.
pub fn write_atomic_with<T>(
    fs: &dyn Fs,
    path: &Path,
    write: impl FnOnce(&Path) -> super::Result<T>,
) -> super::Result<T> {
    let tmp = tmp_path(path);
    let dir = parent_dir(path);
    use super::StoreError as E;
    let staged = write(&tmp).and_then(|written| {
        fs.sync_file(&tmp).map_err(|e| E::io("fsync", &tmp, e))?;
        fs.rename(&tmp, path)
            .map_err(|e| E::io("rename into place", path, e))?;
        Ok(written)
    });
    let written = match staged {
        Ok(written) => written,
        Err(e) => {
            // Best effort: on a full disk, removing is what frees the space again.
            let _ = fs.remove(&tmp);
            return Err(e);
        }
    };
    fs.sync_dir(&dir)
        .map_err(|e| E::io("fsync directory", &dir, e))?;
    Ok(written)
}

/// The temporary name used while writing `path` atomically (`<name>.tmp`).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
