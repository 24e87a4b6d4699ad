//! `GET /stream`: the live view as an MJPEG stream (`multipart/x-mixed-replace`), one part per
//! processed frame, each part with the frame's `X-Frame-Seq`, `X-Frame-Class` and
//! `X-Frame-Probability` headers (the page reads them to label the frame on screen).
//!
//! A slow client never holds anything up but its own connection thread:
//! - the service loop only publishes into the [`LiveView`] (a pointer swap and a notify) and never
//!   writes to a socket;
//! - the stream thread writes one frame at a time and then takes the *latest* frame, so every
//!   frame published while a client was still reading the last one is dropped for that client
//!   (counted in `/metrics` as skipped), never queued;
//! - what can wait for a client is bounded: the frame being written and the socket's send buffer,
//!   pinned to [`SEND_BUFFER_BYTES`] (not grown by the kernel's autotuning);
//! - a client that takes more than [`WRITE_TIMEOUT`] to accept one frame is disconnected;
//! - at most [`max_streams`] streams are open at once (a quarter of `web.max_connections`, at
//!   least one), so streams never take the connections the API needs; more get 503.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::live::LiveView;

/// The multipart boundary.
pub const BOUNDARY: &str = "fieldtune-frame";

/// The socket send buffer of a stream: with the frame being written, all a slow client can have
/// waiting for it.
pub const SEND_BUFFER_BYTES: usize = 64 << 10;

/// How long a stream client may take to accept one frame before it is disconnected.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stream thread waits for a frame before it looks again (nothing is sent meanwhile).
const WAIT: Duration = Duration::from_secs(5);

/// The most streams open at once for `max_connections` connections.
pub fn max_streams(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

/// Serves the stream on `stream` until the client goes away or stops reading. The caller has
/// checked the client's access and reserved its place among the open streams.
pub(super) fn serve(mut stream: &TcpStream, live: &LiveView) {
    pin_send_buffer(stream);
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\nCache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut last: Option<u64> = None;
    loop {
        let Some(frame) = live.wait_newer(last.unwrap_or(0), WAIT) else {
            continue;
        };
        if let Some(last) = last {
            let dropped = frame.seq.saturating_sub(last + 1);
            live.streams.skipped.fetch_add(dropped, Ordering::Relaxed);
        }
        last = Some(frame.seq);
        let Some((kind, bytes)) = frame.image() else {
            continue;
        };
        // A label naming this frame finds it even after the service's ring has moved on.
        live.mark_served(&frame);
        let part = format!(
            "--{BOUNDARY}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nX-Frame-Seq: {}\r\nX-Frame-Class: {}\r\nX-Frame-Probability: {}\r\n\r\n",
            bytes.len(),
            frame.seq,
            super::http::percent_encode(frame.class.as_deref().unwrap_or("unknown")),
            frame.probability
        );
        let written = stream
            .write_all(part.as_bytes())
            .and_then(|()| stream.write_all(&bytes))
            .and_then(|()| stream.write_all(b"\r\n"))
            .and_then(|()| stream.flush());
        if written.is_err() {
            return;
        }
        live.streams.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// Fixes the socket's send buffer at [`SEND_BUFFER_BYTES`] (Linux then neither grows it nor
/// lets more than about twice that wait in the kernel).
fn pin_send_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(SEND_BUFFER_BYTES).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor, a pointer to a c_int that lives across the call and its
    // length, as setsockopt(2) requires.
    let status = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::from_ref(&size).cast::<libc::c_void>(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
    if status != 0 {
        tracing::debug!(
            "web stream: cannot set the send buffer: {}",
            std::io::Error::last_os_error()
        );
    }
}
