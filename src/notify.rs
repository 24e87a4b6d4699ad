//! sd_notify: tells systemd the service is ready, alive, or stopping, over the datagram socket named
//! by `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Written on std's
//! `UnixDatagram` to keep libsystemd out of the build.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing. A failed send is logged once and
//! never fatal: the device must keep classifying even if systemd cannot hear it.
//!
//! `WATCHDOG=1` is only sent when systemd asked for it (`WATCHDOG_USEC`, and `WATCHDOG_PID` absent
//! or ours), at most every half interval, from the main loop, so a stuck camera or backbone stops
//! the pings and systemd restarts the service.

use std::cell::Cell;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// What can go wrong setting up notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` does not name a usable address.
    #[error("NOTIFY_SOCKET={value:?} is not a socket address: {source}; systemd sets it for Type=notify units, unset it otherwise")]
    BadAddress {
        value: String,
        #[source]
        source: std::io::Error,
    },
    /// The unbound sending socket could not be created.
    #[error("cannot create a datagram socket for sd_notify: {0}")]
    Socket(#[source] std::io::Error),
}

/// A handle on systemd's notification socket (or nothing, outside systemd).
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog_every: Option<Duration>,
    last_watchdog: Cell<Option<Instant>>,
    warned: Cell<bool>,
}

fn address(value: &str) -> std::io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(name.as_bytes());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "abstract sockets exist only on Linux",
            ));
        }
    }
    SocketAddr::from_pathname(value)
}

impl Notifier {
    /// A notifier that does nothing.
    pub fn disabled() -> Self {
        Notifier {
            target: None,
            watchdog_every: None,
            last_watchdog: Cell::new(None),
            warned: Cell::new(false),
        }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    ///
    /// # Errors
    /// [`NotifyError`] when `NOTIFY_SOCKET` is set but unusable (the caller logs it and goes on with
    /// [`Notifier::disabled`]).
    pub fn from_env() -> Result<Self, NotifyError> {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Self::disabled());
        };
        let value = value.to_string_lossy().into_owned();
        let addr = address(&value).map_err(|source| NotifyError::BadAddress {
            value: value.clone(),
            source,
        })?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(|u| Duration::from_micros(u / 2));
        Ok(Notifier {
            target: Some((socket, addr)),
            watchdog_every,
            last_watchdog: Cell::new(None),
            warned: Cell::new(false),
        })
    }

    /// Whether systemd is listening.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends raw `KEY=value` lines; logs a failure once.
    pub fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
            if !self.warned.replace(true) {
                tracing::warn!(
                    "sd_notify {message:?} failed: {e} (going on without systemd notifications)"
                );
            }
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    /// `WATCHDOG=1`, if systemd asked for a watchdog and half its interval has passed.
    pub fn watchdog(&self) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        let now = Instant::now();
        if self
            .last_watchdog
            .get()
            .is_some_and(|last| now.duration_since(last) < every)
        {
            return;
        }
        self.last_watchdog.set(Some(now));
        self.send("WATCHDOG=1");
    }

    /// `STATUS=…` (shown by `systemctl status`).
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}
