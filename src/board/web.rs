//! `[web]`: the web page and HTTP API — address, port, token, and the bounds on its clients.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{At, Result};
use crate::web::{TokenSource, WebConfig};

/// `[web]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Address to listen on (default `127.0.0.1`); `none` turns the page off.
    pub address: Option<String>,
    /// Port (default 8080; 0 = any free port, shown in the log).
    pub port: Option<u16>,
    /// The token, written here (prefer `token_file`).
    pub token: Option<String>,
    /// A file holding the token, made with a new random one when missing.
    pub token_file: Option<PathBuf>,
    /// Serve clients on this machine (loopback) without a token (default true).
    pub trust_localhost: Option<bool>,
    /// Longest request, head and body, in bytes (default 8192).
    pub max_request_bytes: Option<usize>,
    /// Connections served at once (default 16).
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send its request (default 20).
    pub idle_timeout_s: Option<u64>,
}

/// Checks `[web]`; `None` when the page is turned off (`address = "none"`).
///
/// # Errors
/// [`super::BoardError::Invalid`] naming the first bad key.
pub fn validate(raw: RawWeb, at: &At) -> Result<Option<WebConfig>> {
    let address = match raw.address.as_deref().unwrap_or("127.0.0.1") {
        "none" => return Ok(None),
        text => text.parse::<std::net::IpAddr>().map_err(|_| {
            at.bad(
                "web.address",
                format!(
                    "is {text:?}; use an IP address like \"127.0.0.1\" or \"0.0.0.0\", or \"none\""
                ),
            )
        })?,
    };
    let token = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            return Err(at.bad(
                "web.token",
                "and web.token_file are both set; keep one".into(),
            ))
        }
        (Some(token), None) => {
            if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(at.bad(
                    "web.token",
                    "must be 16 or more printable ASCII characters without spaces".into(),
                ));
            }
            TokenSource::Inline(token)
        }
        (None, Some(file)) => TokenSource::File(file),
        (None, None) => TokenSource::None,
    };
    if token == TokenSource::None && !address.is_loopback() {
        return Err(at.bad(
            "web.address",
            format!("is {address}, reachable from other machines, but there is no token: set web.token_file"),
        ));
    }
    let max_request_bytes = raw.max_request_bytes.unwrap_or(8192);
    if !(1024..=65_536).contains(&max_request_bytes) {
        return Err(at.bad(
            "web.max_request_bytes",
            format!("is {max_request_bytes}; use 1024 to 65536"),
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(16);
    if !(1..=256).contains(&max_connections) {
        return Err(at.bad(
            "web.max_connections",
            format!("is {max_connections}; use 1 to 256"),
        ));
    }
    let idle_s = raw.idle_timeout_s.unwrap_or(20);
    if !(1..=3600).contains(&idle_s) {
        return Err(at.bad(
            "web.idle_timeout_s",
            format!("is {idle_s}; use 1 to 3600 seconds"),
        ));
    }
    Ok(Some(WebConfig {
        address,
        port: raw.port.unwrap_or(8080),
        token,
        trust_localhost: raw.trust_localhost.unwrap_or(true),
        limits: crate::control::ControlLimits {
            max_request_bytes,
            max_connections,
            idle_timeout: Duration::from_secs(idle_s),
        },
    }))
}
