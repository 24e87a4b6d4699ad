//! TEMPORARY stub, replaced by the real lock.
use std::path::{Path, PathBuf};
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Holder { pub pid: u32, pub socket: Option<PathBuf>, pub command: String }
impl Holder { pub fn this_process(socket: Option<&Path>) -> Holder { Holder { pid: std::process::id(), socket: socket.map(Path::to_path_buf), command: String::new() } } }
#[derive(Debug)]
pub struct StateLock { _f: std::fs::File }
#[derive(Debug, thiserror::Error)]
pub enum LockError { #[error("held {dir:?}")] Held { dir: PathBuf, holder: Option<Holder> }, #[error("io {path:?}")] Io { path: PathBuf, source: std::io::Error } }
impl StateLock {
    pub fn acquire(dir: &Path, _holder: &Holder) -> Result<StateLock, LockError> {
        std::fs::create_dir_all(dir).map_err(|source| LockError::Io { path: dir.into(), source })?;
        let f = std::fs::File::create(dir.join("lock")).map_err(|source| LockError::Io { path: dir.into(), source })?;
        Ok(StateLock { _f: f })
    }
}
