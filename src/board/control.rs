//! `[control]`: the local control socket and the bounds on its clients.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{At, Result};
use crate::control::ControlLimits;

/// `[control]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// Socket path (default `fieldtune.sock`); `none` turns the socket off.
    pub socket: Option<String>,
    /// Longest request line in bytes (default 4096).
    pub max_request_bytes: Option<usize>,
    /// Connections served at once (default 16); more are refused at once.
    pub max_connections: Option<usize>,
    /// Seconds a connection may stay without a complete request (default 20).
    pub idle_timeout_s: Option<u64>,
}

/// Checks `[control]`: the socket (`None` when turned off) and its limits.
///
/// # Errors
/// [`super::BoardError::Invalid`] naming the first bad key.
pub fn validate(raw: RawControl, at: &At) -> Result<(Option<PathBuf>, ControlLimits)> {
    let socket = match raw.socket.as_deref().unwrap_or("fieldtune.sock") {
        "none" => None,
        "" => {
            return Err(at.bad(
                "control.socket",
                "is empty; use a path like \"/run/fieldtune/control.sock\" or \"none\"".into(),
            ))
        }
        p => Some(PathBuf::from(p)),
    };
    let defaults = ControlLimits::DEFAULT;
    let max_request_bytes = raw.max_request_bytes.unwrap_or(defaults.max_request_bytes);
    if !(256..=65_536).contains(&max_request_bytes) {
        return Err(at.bad(
            "control.max_request_bytes",
            format!("is {max_request_bytes}; use 256 to 65536"),
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(defaults.max_connections);
    if !(1..=256).contains(&max_connections) {
        return Err(at.bad(
            "control.max_connections",
            format!("is {max_connections}; use 1 to 256"),
        ));
    }
    let idle_s = raw
        .idle_timeout_s
        .unwrap_or(defaults.idle_timeout.as_secs());
    if !(1..=3600).contains(&idle_s) {
        return Err(at.bad(
            "control.idle_timeout_s",
            format!("is {idle_s}; use 1 to 3600 seconds"),
        ));
    }
    Ok((
        socket,
        ControlLimits {
            max_request_bytes,
            max_connections,
            idle_timeout: Duration::from_secs(idle_s),
        },
    ))
}
