//! The local control socket: how `fieldtune label|undo|status` (and tests, and scripts) talk to a
//! running service.
//!
//! A Unix-domain stream socket with permissions 0660 (owner and group: put operators in the
//! service's group). The protocol is line-delimited JSON: one [`Request`] object per line, one
//! [`Reply`] object per line back, in order, on as many connections as clients like.
//!
//! ```text
//! → {"cmd":"label","class":"Blight"}            ← {"ok":true,"data":{"seq":42,"class":"Blight",…}}
//! → {"cmd":"label","class":"Blight","frame":40} (label an earlier frame still in memory)
//! → {"cmd":"undo"}                               ← {"ok":true,"data":{…}}
//! → {"cmd":"status"}                             ← {"ok":true,"data":{"classes":[…],"fps":…}}
//! → {"cmd":"current"}                            ← {"ok":true,"data":{"seq":…,"origin":…,"class":…}}
//! ```
//!
//! The server never touches service state: each request is handed to the service loop with a
//! channel for the reply, so requests are served between frames, in order, by the one thread that
//! owns the head and the store.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What can go wrong with the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process is serving on this path.
    #[error("control socket {path} is in use by another running fieldtune; stop it, or set control.socket (or --socket) to another path")]
    Busy { path: PathBuf },
    /// Something other than a socket is in the way.
    #[error("control socket path {path} exists and is not a socket; remove it or set control.socket to another path")]
    NotASocket { path: PathBuf },
    /// Binding or setting permissions failed.
    #[error("cannot create control socket {path}: {source}; check that its directory exists and is writable")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No service is listening.
    #[error("no fieldtune service answers at {path}: {source}; start `fieldtune run` (or pass --socket with its control.socket)")]
    NotRunning {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The conversation broke off.
    #[error("control socket {path}: {problem}")]
    Io { path: PathBuf, problem: String },
}

/// A request, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Label the current frame (or the frame with sequence number `frame`, if still held) as
    /// `class`, creating the class when it is new.
    Label {
        class: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame: Option<u64>,
    },
    /// Undo the last action (a label with all its frames, a new class, a rename, a deletion).
    Undo,
    /// Rename class `from` to `to`.
    Rename { from: String, to: String },
    /// Delete class `class` and its samples (undoable).
    Delete { class: String },
    /// Classes, counts, accuracy, fps, uptime.
    Status,
    /// The latest frame and its prediction.
    Current,
}

/// A reply, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Reply {
    /// A success carrying `data`.
    pub fn ok(data: impl Serialize) -> Self {
        match serde_json::to_value(data) {
            Ok(v) => Reply {
                ok: true,
                error: None,
                data: Some(v),
            },
            Err(e) => Reply::error(format!("cannot encode the reply: {e}")),
        }
    }

    /// A failure with a message for the person.
    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(message.into()),
            data: None,
        }
    }
}

/// A request handed to the service loop, with where to send the reply.
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    pub reply: Sender<Reply>,
}

/// How long a connection waits for the service loop to answer (one frame plus a label commit).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The listening socket and its accept thread. Dropping it stops accepting and removes the socket
/// file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` (replacing a stale socket left by a crash, refusing a live one), sets mode 0660
    /// and serves requests by sending them to `to_service`, wrapped by `wrap`.
    ///
    /// # Errors
    /// [`ControlError::Busy`], [`ControlError::NotASocket`] or [`ControlError::Bind`].
    pub fn bind<T: Send + 'static>(
        path: &Path,
        to_service: Sender<T>,
        wrap: fn(Incoming) -> T,
    ) -> Result<Self, ControlError> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(ControlError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::Busy {
                    path: path.to_path_buf(),
                });
            }
            // Nobody answers: a socket left by a process that died. Safe to replace.
            tracing::info!("removing stale control socket {}", path.display());
            let _ = std::fs::remove_file(path);
        }
        let bind_error = |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let accept = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let to_service = to_service.clone();
                        std::thread::spawn(move || serve(stream, to_service, wrap));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // Polling keeps shutdown simple: no self-connect trick to wake accept().
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        tracing::warn!("control socket accept: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve<T>(stream: UnixStream, to_service: Sender<T>, wrap: fn(Incoming) -> T) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = std::io::BufWriter::new(write_half);
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else {
            return;
        };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::error(format!(
                "not a request ({e}); send one JSON object per line, e.g. {{\"cmd\":\"status\"}}"
            )),
            Ok(request) => {
                let (tx, rx) = mpsc::channel();
                if to_service
                    .send(wrap(Incoming { request, reply: tx }))
                    .is_err()
                {
                    Reply::error("the service is shutting down")
                } else {
                    rx.recv_timeout(REPLY_TIMEOUT)
                        .unwrap_or_else(|_| Reply::error("the service did not answer in time"))
                }
            }
        };
        let Ok(text) = serde_json::to_string(&reply) else {
            return;
        };
        if writeln!(writer, "{text}")
            .and_then(|_| writer.flush())
            .is_err()
        {
            return;
        }
    }
}

/// A client connection to a running service.
pub struct ControlClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl ControlClient {
    /// Connects to the service at `path`.
    ///
    /// # Errors
    /// [`ControlError::NotRunning`] when nothing listens there.
    pub fn connect(path: &Path) -> Result<Self, ControlError> {
        let stream = UnixStream::connect(path).map_err(|source| ControlError::NotRunning {
            path: path.to_path_buf(),
            source,
        })?;
        let io = |e: std::io::Error| ControlError::Io {
            path: path.to_path_buf(),
            problem: e.to_string(),
        };
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT + Duration::from_secs(5)))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(ControlClient {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends one request and waits for its reply.
    ///
    /// # Errors
    /// [`ControlError::Io`] when the connection breaks or the reply is not JSON.
    pub fn request(&mut self, request: &Request) -> Result<Reply, ControlError> {
        let io = |problem: String| ControlError::Io {
            path: self.path.clone(),
            problem,
        };
        let line = serde_json::to_string(request).map_err(|e| io(e.to_string()))?;
        writeln!(self.writer, "{line}").map_err(|e| io(e.to_string()))?;
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .map_err(|e| io(e.to_string()))?;
        if n == 0 {
            return Err(io("the service closed the connection".into()));
        }
        serde_json::from_str(&answer).map_err(|e| io(format!("reply is not JSON ({e}): {answer}")))
    }
}
