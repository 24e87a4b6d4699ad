//! The device's web page and HTTP JSON API (`[web]` in the board file): see what the camera sees
//! and teach it from a phone.
//!
//! A small HTTP/1.1 server on std threads, like the control socket ([`crate::control`]): an accept
//! thread, one short-lived thread per connection, one request per connection. Requests are the
//! control socket's [`Request`]s, handed to the service loop with a reply channel exactly as the
//! socket does, so both take the same path; the loop never waits on a client. The live frame comes
//! from a [`LiveView`] the loop publishes into.
//!
//! ```text
//! GET  /                      the page (HTML, JS and CSS built into the binary)
//! GET  /frame                 the latest frame (JPEG or PNG), its sequence number in X-Frame-Seq
//! GET  /stream                the live view as MJPEG (multipart/x-mixed-replace), see [`stream`]
//! GET  /api/status            status (same as `{"cmd":"status"}` on the socket)
//! GET  /api/current           the latest frame's prediction and the last few
//! GET  /api/samples?class=C   class C's stored samples, newest first
//! GET  /api/thumb/ID          sample ID's thumbnail (JPEG)
//! POST /api/CMD               any control request: body = its JSON fields, e.g.
//!                             POST /api/label {"class":"Blight","frame":42}
//! GET  /metrics               Prometheus text format
//! POST /login                 form field `token`: sets the cookie the page then sends
//! ```
//!
//! # Security
//! Off localhost every request but the page itself needs the token (`Authorization: Bearer TOKEN`
//! or the login cookie), compared in constant time; a wrong token gets 401 and a log line, and
//! nothing happens. A POST from a page of another origin is refused (403). The bounds are the
//! control socket's ([`ControlLimits`]): request size (head and body), connections at once, and
//! the time a client may take to send its request.

pub mod auth;
pub mod http;
pub mod live;
pub mod metrics;
mod routes;
pub mod stream;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::{ControlLimits, Incoming};
pub use live::{LiveFrame, LiveView};

/// How a board gives the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// No token: only loopback clients are served (refused for other addresses).
    None,
    /// The token itself, in the board file.
    Inline(String),
    /// A file holding it (created with a new random token when missing).
    File(PathBuf),
}

/// `[web]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Address to listen on.
    pub address: IpAddr,
    /// Port (0: any free port, shown in the log).
    pub port: u16,
    /// Where the token comes from.
    pub token: TokenSource,
    /// Serve loopback clients without a token (default true).
    pub trust_localhost: bool,
    /// Request size, connections, idle time.
    pub limits: ControlLimits,
}

/// What can go wrong starting the web server.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address cannot be listened on.
    #[error("cannot listen for the web page on {address}: {source}; set web.port to a free port, or web.address = \"none\" to turn the page off")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The token cannot be had.
    #[error("{0}")]
    Token(String),
    /// Listening beyond localhost without a token.
    #[error("web.address {0} is reachable from other machines but there is no token: set web.token_file (or web.token), or web.address = \"127.0.0.1\"")]
    NoToken(IpAddr),
}

/// What every connection thread shares.
struct Shared<T> {
    token: Option<String>,
    trust_localhost: bool,
    limits: ControlLimits,
    to_service: Sender<T>,
    wrap: fn(Incoming) -> T,
    live: Arc<LiveView>,
}

/// The listening server and its accept thread; dropping it stops accepting.
pub struct WebServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

/// How long a connection waits for the service loop (as the control socket).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response may wait for a client that does not read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

impl WebServer {
    /// Listens as `config` says and serves requests by sending them to `to_service`, wrapped by
    /// `wrap`; frames come from `live`.
    ///
    /// # Errors
    /// [`WebError`].
    pub fn bind<T: Send + 'static>(
        config: &WebConfig,
        to_service: Sender<T>,
        wrap: fn(Incoming) -> T,
        live: Arc<LiveView>,
    ) -> Result<Self, WebError> {
        let token = match &config.token {
            TokenSource::None => None,
            TokenSource::Inline(token) => Some(token.clone()),
            TokenSource::File(path) => Some(auth::token_from_file(path).map_err(WebError::Token)?),
        };
        if token.is_none() && !config.address.is_loopback() {
            return Err(WebError::NoToken(config.address));
        }
        let wanted = SocketAddr::new(config.address, config.port);
        let bind_error = |source| WebError::Bind {
            address: wanted,
            source,
        };
        let listener = TcpListener::bind(wanted).map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let shared = Arc::new(Shared {
            token,
            trust_localhost: config.trust_localhost,
            limits: config.limits,
            to_service,
            wrap,
            live,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let accept = std::thread::Builder::new()
            .name("web-accept".into())
            .spawn(move || accept_loop(&listener, &shared, &thread_stop))
            .map_err(bind_error)?;
        Ok(WebServer {
            address,
            stop,
            accept: Some(accept),
        })
    }

    /// The address it listens on (with the port chosen when `web.port` is 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Counts a connection as open until its thread ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop<T: Send + 'static>(
    listener: &TcpListener,
    shared: &Arc<Shared<T>>,
    stop: &AtomicBool,
) {
    let open = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if open.load(Ordering::Acquire) >= shared.limits.max_connections {
                    refuse_busy(stream, shared.limits.max_connections);
                    continue;
                }
                open.fetch_add(1, Ordering::AcqRel);
                let guard = OpenGuard(Arc::clone(&open));
                let shared = Arc::clone(shared);
                let spawned = std::thread::Builder::new()
                    .name("web".into())
                    .stack_size(256 << 10)
                    .spawn(move || {
                        let _guard = guard;
                        serve(stream, peer, &shared);
                    });
                if let Err(e) = spawned {
                    tracing::warn!("web: cannot start a connection thread: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("web accept: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn refuse_busy(stream: TcpStream, max: usize) {
    let _ = stream.set_nonblocking(true);
    let response = http::Response::json(
        503,
        &crate::control::Reply::error(format!(
            "too many connections to the web server (the limit is {max}, web.max_connections); try again"
        )),
    );
    let _ = response.write_to(&mut &stream);
}

fn serve<T>(stream: TcpStream, peer: SocketAddr, shared: &Shared<T>) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let deadline = Instant::now() + shared.limits.idle_timeout;
    let mut reader = &stream;
    let mut set_timeout = |left: Duration| stream.set_read_timeout(Some(left)).is_ok();
    let request = http::read_request(
        &mut reader,
        shared.limits.max_request_bytes,
        deadline,
        &mut set_timeout,
    );
    let response = match request {
        Ok(request) => match routes::answer(&request, peer.ip(), shared) {
            routes::Answer::Full(response) => response,
            routes::Answer::Stream => {
                let _ = stream.set_read_timeout(None);
                let counters = &shared.live.streams;
                let max = stream::max_streams(shared.limits.max_connections) as u64;
                if counters.open.fetch_add(1, Ordering::AcqRel) >= max {
                    counters.open.fetch_sub(1, Ordering::AcqRel);
                    http::Response::json(
                        503,
                        &crate::control::Reply::error(format!(
                            "{max} live streams are open already (a quarter of web.max_connections); close one, or use GET /frame"
                        )),
                    )
                } else {
                    stream::serve(&stream, &shared.live);
                    counters.open.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            }
        },
        Err(http::ReadError::Closed) => return,
        Err(http::ReadError::Idle) => http::Response::text(
            408,
            format!(
                "no complete request in {} s (web.idle_timeout_s); connection closed\n",
                shared.limits.idle_timeout.as_secs()
            ),
        ),
        Err(http::ReadError::TooLarge) => http::Response::text(
            413,
            format!(
                "request larger than {} bytes (web.max_request_bytes); refused\n",
                shared.limits.max_request_bytes
            ),
        ),
        Err(http::ReadError::Malformed(why)) => http::Response::text(400, format!("{why}\n")),
    };
    let _ = response.write_to(&mut &stream);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    linger(&stream);
}

/// Reads and drops what the client still sends (the rest of a refused body) for a moment before
/// closing, so the close does not reset the connection before the client has read the answer.
fn linger(mut stream: &TcpStream) {
    use std::io::Read;
    if stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
    {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut left: usize = 256 << 10;
    while left > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
