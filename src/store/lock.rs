//! One process per state directory: an exclusive `flock` on `<dir>/lock`, taken without waiting.
//!
//! Two processes writing the same journal and snapshots would interleave their records and lose
//! labels, so a second `fieldtune run` (or `state soak`) on a directory already in use is refused
//! at once, with a message naming the process that holds it. The lock is the kernel's: it goes
//! away when its holder closes the file, exits or is killed (even by SIGKILL), so a lock file left
//! on disk by a dead process is free to take; there is nothing to clean up after a crash.
//!
//! `flock` locks belong to an open file description, not to a process: a second
//! [`StateLock::acquire`] in the process that already holds the directory is refused too.
//!
//! The holder writes who it is ([`Holder`], as JSON) into the file, for the message a second
//! process shows; the content is informational only: garbage or an empty file never matters.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// How many times a refused `flock` is tried again, 10 ms apart, before the directory is reported
/// as held: [`StateLock::holder`] takes a shared lock for a moment to probe, and a start that
/// coincides with that probe must not be refused. A real holder is reported within 40 ms.
const ATTEMPTS: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The most of the lock file read for its holder (a holder is a few hundred bytes).
const MAX_HOLDER_BYTES: u64 = 64 << 10;

/// Who holds a state directory: written into the lock file so a second process can name it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// The control socket it serves, if any.
    pub socket: Option<PathBuf>,
    /// Its command line.
    pub command: String,
}

impl Holder {
    /// This process: its PID, its command line and the control socket it serves (if any).
    pub fn this_process(socket: Option<&Path>) -> Holder {
        let command = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        Holder {
            pid: std::process::id(),
            socket: socket.map(Path::to_path_buf),
            command,
        }
    }
}

/// An exclusive hold on a state directory, released on drop (and by the kernel when the process
/// dies, even by SIGKILL).
#[derive(Debug)]
pub struct StateLock {
    /// The open lock file holding `flock(LOCK_EX)`; closing it releases the lock.
    file: File,
    path: PathBuf,
}

/// Why a state directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process (or another hold in this process) has the directory.
    #[error("{}", held_message(.dir, .holder.as_ref()))]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// Who holds it, if the lock file says (it may be empty for a moment while its holder
        /// starts, or written by an older fieldtune).
        holder: Option<Holder>,
    },
    /// The lock file could not be created, opened or locked.
    #[error("cannot open the lock file {path}: {source}; the state directory must exist or be creatable, and be writable by the user the service runs as (check its owner and permissions, or StateDirectory= in the unit), or use another --state directory")]
    Io {
        /// The lock file (`<dir>/lock`).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn held_message(dir: &Path, holder: Option<&Holder>) -> String {
    let who = match holder {
        Some(h) => {
            let serving = match &h.socket {
                Some(socket) => format!(", serving the control socket {}", socket.display()),
                None => String::new(),
            };
            format!("process {} (`{}`{serving})", h.pid, h.command)
        }
        None => "another process (the lock file does not say which)".to_string(),
    };
    format!(
        "the state directory {} is in use by {who}: only one fieldtune may use a state directory at a time; stop that service first (e.g. `systemctl stop fieldtune`), or use another --state directory",
        dir.display()
    )
}

impl StateLock {
    /// Takes `dir` (created if missing) for this process, or refuses at once if another holds it;
    /// then records `holder` in the lock file.
    ///
    /// Failing to record the holder (a full or read-only directory) does not lose the lock: it
    /// is logged, and a second process then just cannot say who holds the directory.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder, or [`LockError::Io`] naming the file.
    pub fn acquire(dir: &Path, holder: &Holder) -> Result<StateLock, LockError> {
        let path = dir.join(LOCK_FILE);
        std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
            path: path.clone(),
            source,
        })?;
        let (file, writable) = open_lock_file(&path).map_err(|source| LockError::Io {
            path: path.clone(),
            source,
        })?;
        let mut attempt = 1;
        loop {
            match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if attempt >= ATTEMPTS {
                        return Err(LockError::Held {
                            dir: dir.to_path_buf(),
                            holder: read_holder(&file),
                        });
                    }
                    attempt += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(source) => return Err(LockError::Io { path, source }),
            }
        }
        let lock = StateLock { file, path };
        if writable {
            if let Err(error) = lock.write_holder(holder) {
                tracing::warn!(
                    "holding {} but cannot record this process in it ({error}); a second fieldtune will not be able to say which process holds the state directory",
                    lock.path.display()
                );
            }
        } else {
            tracing::warn!(
                "holding {} read-only (the state directory is not writable): a second fieldtune will not be able to say which process holds it",
                lock.path.display()
            );
        }
        Ok(lock)
    }

    /// Reads who holds `dir` without taking it: `None` when it is free (even if a lock file from
    /// a dead process is there), or held by a process that did not say who it is.
    pub fn holder(dir: &Path) -> Option<Holder> {
        let file = File::open(dir.join(LOCK_FILE)).ok()?;
        match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
            // Free: the content is whatever a dead holder left. Closing `file` drops the probe.
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => read_holder(&file),
            Err(_) => None,
        }
    }

    /// The lock file this hold is on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_holder(&self, holder: &Holder) -> io::Result<()> {
        let mut json = serde_json::to_vec(holder).map_err(io::Error::other)?;
        json.push(b'\n');
        self.file.set_len(0)?;
        self.file.write_all_at(&json, 0)
    }
}

/// Opens (creating if missing) the lock file read-write; an existing lock file in a read-only
/// directory is opened read-only, which `flock` accepts. Returns whether it is writable.
fn open_lock_file(path: &Path) -> io::Result<(File, bool)> {
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    match rw {
        Ok(file) => Ok((file, true)),
        Err(e) if is_read_only(&e) => match File::open(path) {
            Ok(file) => Ok((file, false)),
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}

fn is_read_only(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES))
        || e.kind() == io::ErrorKind::PermissionDenied
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: `file` is an open descriptor for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The holder recorded in an open lock file, or `None` for an empty, partial or foreign content,
/// or a holder that is no longer alive (a read-only lock file keeps its last writer's content).
fn read_holder(file: &File) -> Option<Holder> {
    let mut text = Vec::new();
    let mut offset = 0u64;
    let mut buf = [0u8; 4096];
    while offset < MAX_HOLDER_BYTES {
        let n = file.read_at(&mut buf, offset).ok()?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
        offset += n as u64;
    }
    let holder: Holder = serde_json::from_slice(&text).ok()?;
    is_alive(holder.pid).then_some(holder)
}

fn is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Holder {
        Holder::this_process(Some(Path::new("/run/fieldtune/control.sock")))
    }

    #[test]
    fn a_second_hold_in_the_same_process_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateLock::acquire(&state, &me()).expect("a fresh directory is free");
        assert!(state.join(LOCK_FILE).is_file());
        let error = StateLock::acquire(&state, &me()).expect_err("flock is per open file");
        match &error {
            LockError::Held { dir, holder } => {
                assert_eq!(dir, &state);
                assert_eq!(holder.as_ref(), Some(&me()));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        let message = error.to_string();
        let pid = std::process::id().to_string();
        for part in [
            pid.as_str(),
            "/run/fieldtune/control.sock",
            "systemctl stop fieldtune",
            "--state",
            state.to_str().unwrap(),
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        assert_eq!(StateLock::holder(&state), Some(me()));
        drop(first);
    }

    #[test]
    fn dropping_the_hold_releases_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StateLock::acquire(dir.path(), &me()).unwrap();
        assert_eq!(
            StateLock::holder(dir.path()).map(|h| h.pid),
            Some(std::process::id())
        );
        drop(lock);
        assert_eq!(StateLock::holder(dir.path()), None, "free after drop");
        let again = StateLock::acquire(dir.path(), &me()).expect("free after drop");
        drop(again);
        // The lock file stays; it is harmless.
        assert!(dir.path().join(LOCK_FILE).is_file());
    }

    #[test]
    fn a_stale_lock_file_with_garbage_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::write(
            &path,
            b"\x00\xffnot json at all, and longer than a holder would be",
        )
        .unwrap();
        assert_eq!(StateLock::holder(dir.path()), None);
        let other = Holder {
            pid: std::process::id(),
            socket: None,
            command: "fieldtune run --state /elsewhere".into(),
        };
        let lock = StateLock::acquire(dir.path(), &other).expect("garbage holds nothing");
        assert_eq!(StateLock::holder(dir.path()), Some(other.clone()));
        // The old, longer content was truncated away: the file is exactly the new holder.
        let written: Holder = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written, other);
        drop(lock);
    }

    #[test]
    fn a_held_directory_with_unreadable_holder_is_still_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StateLock::acquire(dir.path(), &me()).unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), b"garbage").unwrap();
        let error = StateLock::acquire(dir.path(), &me()).expect_err("still held");
        assert!(
            matches!(error, LockError::Held { holder: None, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("does not say which"), "{error}");

        // A holder that names a dead process (what a read-only lock file keeps) is not believed.
        let dead = Holder {
            pid: i32::MAX as u32,
            socket: None,
            command: "fieldtune run".into(),
        };
        std::fs::write(
            dir.path().join(LOCK_FILE),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let error = StateLock::acquire(dir.path(), &me()).expect_err("still held");
        assert!(
            matches!(error, LockError::Held { holder: None, .. }),
            "{error:?}"
        );
        assert_eq!(StateLock::holder(dir.path()), None);
        drop(lock);
    }

    #[test]
    fn a_missing_directory_is_created_and_an_impossible_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        drop(StateLock::acquire(&deep, &me()).expect("created"));
        assert!(deep.join(LOCK_FILE).is_file());

        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"").unwrap();
        let error = StateLock::acquire(&file.join("state"), &me()).expect_err("under a file");
        assert!(matches!(error, LockError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains("not-a-dir"), "{error}");
    }

    #[test]
    fn holder_of_a_directory_without_a_lock_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(StateLock::holder(dir.path()), None);
        assert_eq!(StateLock::holder(&dir.path().join("absent")), None);
    }
}
