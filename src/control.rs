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
//! → {"cmd":"new_class","name":"Rust"}
//! → {"cmd":"samples","class":"Rust"}             ← {"ok":true,"data":{"samples":[{"id":7,…}]}}
//! → {"cmd":"move_sample","sample":7,"to":"Blight"}
//! → {"cmd":"delete_sample","sample":7}
//! → {"cmd":"thumbnail","sample":7}               ← {"ok":true,"data":{"jpeg_hex":"ffd8…"}}
//! ```
//!
//! The web API ([`crate::web`]) takes the same requests over HTTP.
//!
//! The server never touches service state: each request is handed to the service loop with a
//! channel for the reply, so requests are served between frames, in order, by the one thread that
//! owns the head and the store. The loop never waits on a client: it only ever sends on a channel.
//!
//! # Limits
//! Anyone in the socket's group can connect, so every connection is bounded ([`ControlLimits`]):
//! a request line longer than `max_request_bytes` is answered with an error and the connection is
//! closed without the line being kept; a connection over `max_connections` gets an error reply and
//! is closed at once; a connection that sends no complete request for `idle_timeout` is closed;
//! a request that is not UTF-8 or not JSON gets an error reply. One thread and one descriptor per
//! connection, so threads and descriptors stay under `max_connections` + a few.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The socket exists but this user may not open it.
    #[error("permission denied on control socket {path}: it is mode 0660, owner and group only; join its group ({group}: `sudo usermod -aG {group} $USER`, then log in again) or run as its owner")]
    PermissionDenied { path: PathBuf, group: String },
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
    /// The latest frame and its prediction, and the last few predictions.
    Current,
    /// Create class `name` without samples yet (undoable).
    NewClass { name: String },
    /// Move stored sample `sample` to class `to` (a label corrected afterwards; undoable).
    MoveSample { sample: u64, to: String },
    /// Delete stored sample `sample` (undoable).
    DeleteSample { sample: u64 },
    /// Class `class`'s stored samples, newest first (ids, times, whether a thumbnail is kept).
    Samples { class: String },
    /// Stored sample `sample`'s thumbnail, as `{"jpeg_hex": "…"}`.
    Thumbnail { sample: u64 },
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

/// How long a reply may wait for a client that does not read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounds on what clients of the socket may cost (board keys `control.max_request_bytes`,
/// `control.max_connections`, `control.idle_timeout_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLimits {
    /// Longest request line, in bytes, newline excluded.
    pub max_request_bytes: usize,
    /// Connections served at once; more are refused with an error reply.
    pub max_connections: usize,
    /// A connection that completes no request for this long is closed.
    pub idle_timeout: Duration,
}

impl ControlLimits {
    /// The defaults: 4 KiB a request, 16 connections, 20 s idle.
    pub const DEFAULT: ControlLimits = ControlLimits {
        max_request_bytes: 4096,
        max_connections: 16,
        idle_timeout: Duration::from_secs(20),
    };
}

impl Default for ControlLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One request line read with bounds.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (newline removed).
    Text(String),
    /// A complete line that is not UTF-8.
    NotUtf8,
    /// More than the limit arrived without a newline; the excess was not kept.
    TooLong,
    /// The client closed the connection (a partial last line is dropped).
    Closed,
    /// No complete line before the deadline.
    Idle,
}

/// Reads one line of at most `max` bytes from `reader`, appending to `buf` (a line cut by
/// [`Line::Idle`] goes on in the next call; clear `buf` after any other outcome). Never keeps
/// more than `max` bytes: the excess of a longer line is dropped as it arrives.
///
/// # Errors
/// An I/O error other than a timeout.
pub fn read_bounded_line<R: BufRead>(
    reader: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Line::Idle)
            }
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(Line::Closed);
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        if buf.len() + chunk.len() > max {
            let n = chunk.len();
            reader.consume(n);
            buf.clear();
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(chunk);
        let n = chunk.len() + usize::from(found);
        reader.consume(n);
        if found {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(match std::str::from_utf8(buf) {
                Ok(text) => Line::Text(text.to_string()),
                Err(_) => Line::NotUtf8,
            });
        }
    }
}

/// Parses one request line into a [`Request`], or the error reply that says what is wrong.
///
/// # Errors
/// The [`Reply`] to send back.
pub fn parse_request(line: &str) -> Result<Request, Reply> {
    serde_json::from_str::<Request>(line).map_err(|e| {
        Reply::error(format!(
            "not a request ({e}); send one JSON object per line, e.g. {{\"cmd\":\"status\"}}"
        ))
    })
}

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
        limits: ControlLimits,
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
        let open = Arc::new(AtomicUsize::new(0));
        let accept = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if open.load(Ordering::Acquire) >= limits.max_connections {
                            refuse_busy(&stream, limits.max_connections);
                            continue;
                        }
                        open.fetch_add(1, Ordering::AcqRel);
                        let guard = OpenGuard(Arc::clone(&open));
                        let to_service = to_service.clone();
                        let spawned = std::thread::Builder::new()
                            .name("control".into())
                            .stack_size(64 << 10)
                            .spawn(move || {
                                let _guard = guard;
                                serve(&stream, limits, &to_service, wrap);
                            });
                        if let Err(e) = spawned {
                            tracing::warn!("control socket: cannot start a connection thread: {e}");
                        }
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

/// Counts a connection as open until its thread ends (or the thread could not start).
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a connection over the cap with an error and closes it, never blocking the accept loop.
fn refuse_busy(stream: &UnixStream, max: usize) {
    let _ = stream.set_nonblocking(true);
    let reply = Reply::error(format!(
        "too many connections to the control socket (the limit is {max}, control.max_connections); close idle clients and try again"
    ));
    if let Ok(text) = serde_json::to_string(&reply) {
        let mut writer = stream;
        let _ = writer.write_all(format!("{text}\n").as_bytes());
    }
}

fn send_reply(mut stream: &UnixStream, reply: &Reply) -> bool {
    let Ok(mut text) = serde_json::to_string(reply) else {
        return false;
    };
    text.push('\n');
    stream.write_all(text.as_bytes()).is_ok()
}

fn serve<T>(
    stream: &UnixStream,
    limits: ControlLimits,
    to_service: &Sender<T>,
    wrap: fn(Incoming) -> T,
) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    // One descriptor for both directions (`&UnixStream` reads and writes): no `try_clone`.
    let mut reader = BufReader::with_capacity(limits.max_request_bytes.clamp(256, 1 << 16), stream);
    let mut line = Vec::new();
    let mut deadline = Instant::now() + limits.idle_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            idle(stream, limits);
            return;
        }
        let read = match read_bounded_line(&mut reader, limits.max_request_bytes, &mut line) {
            Ok(read) => read,
            Err(_) => return,
        };
        if read != Line::Idle {
            line.clear();
        }
        let reply = match read {
            Line::Closed => return,
            Line::Idle => {
                if Instant::now() >= deadline {
                    idle(stream, limits);
                    return;
                }
                continue;
            }
            Line::TooLong => {
                let reply = Reply::error(format!(
                    "request longer than {} bytes (control.max_request_bytes); refused and the connection closed",
                    limits.max_request_bytes
                ));
                send_reply(stream, &reply);
                return;
            }
            Line::NotUtf8 => Reply::error(
                "request is not UTF-8 text; send one JSON object per line, e.g. {\"cmd\":\"status\"}",
            ),
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => match parse_request(&text) {
                Err(reply) => reply,
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
            },
        };
        if !send_reply(stream, &reply) {
            return;
        }
        deadline = Instant::now() + limits.idle_timeout;
    }
}

fn idle(stream: &UnixStream, limits: ControlLimits) {
    let _ = stream.set_nonblocking(true);
    send_reply(
        stream,
        &Reply::error(format!(
            "no complete request for {} s (control.idle_timeout_s); connection closed",
            limits.idle_timeout.as_secs()
        )),
    );
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
        let stream = UnixStream::connect(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                ControlError::PermissionDenied {
                    path: path.to_path_buf(),
                    group: socket_group(path),
                }
            } else {
                ControlError::NotRunning {
                    path: path.to_path_buf(),
                    source,
                }
            }
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
        // A service that refuses the connection (too many clients) answers and closes before
        // reading: the write may fail, and the reply that says why is still there to read.
        let written = writeln!(self.writer, "{line}");
        let mut answer = String::new();
        let n = match self.reader.read_line(&mut answer) {
            Ok(n) => n,
            Err(e) => return Err(io(e.to_string())),
        };
        if n == 0 {
            return Err(io(match written {
                Err(e) => e.to_string(),
                Ok(()) => "the service closed the connection".into(),
            }));
        }
        serde_json::from_str(&answer).map_err(|e| io(format!("reply is not JSON ({e}): {answer}")))
    }
}

/// The name of the group that owns the socket (or of its directory), for the "join the group"
/// advice; its number when the name cannot be found.
fn socket_group(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(path.parent().unwrap_or(Path::new("."))))
        .map(|m| m.gid());
    let Ok(gid) = gid else {
        return "the service's group".into();
    };
    group_name(gid).unwrap_or_else(|| format!("gid {gid}"))
}

/// Looks a group id up in /etc/group (no NSS call: a device's groups are local).
fn group_name(gid: u32) -> Option<String> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let id: u32 = fields.next()?.parse().ok()?;
        (id == gid).then(|| name.to_string())
    })
}
