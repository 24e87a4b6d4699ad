//! `[mqtt]` in the board file: which broker, who we are on it, where our topics live, how we log
//! in, and the bounds of the link. [`RawMqtt`] mirrors the file; [`validate`] checks it into an
//! [`MqttConfig`] with an error that names the key and the fix (the board's two-layer pattern,
//! kept in this file so `src/board.rs` only holds the hook).
//!
//! ```toml
//! [mqtt]
//! broker = "mqtt://192.168.1.10:1883"   # mqtts://HOST:PORT for TLS (build with --features mqtt-tls)
//! client_id = "camera-north"            # default: "fieldtune-" + the host name
//! topic_prefix = "fieldtune/camera-north"  # default: "fieldtune/" + client_id
//! username = "camera"                   # with password_file (or password)
//! password_file = "/etc/fieldtune/mqtt.password"
//! heartbeat_s = 60                      # a prediction at least this often, besides each change
//! discovery = true                      # Home Assistant MQTT discovery (prefix "homeassistant")
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::board::BoardError;

/// `[mqtt]` as written; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// `mqtt://HOST[:PORT]` (default port 1883) or `mqtts://HOST[:PORT]` (8883); `none` = off.
    pub broker: Option<String>,
    /// The MQTT client id (default `fieldtune-<hostname>`).
    pub client_id: Option<String>,
    /// Every topic of this device starts with it (default `fieldtune/<client_id>`).
    pub topic_prefix: Option<String>,
    /// Broker login.
    pub username: Option<String>,
    /// Its password, written here (prefer `password_file`).
    pub password: Option<String>,
    /// A file holding the password (first line).
    pub password_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) that sign the broker's certificate (TLS).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that log clients in by certificate (TLS).
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// Seconds between heartbeat predictions when the class does not change (default 60).
    pub heartbeat_s: Option<u64>,
    /// MQTT keep-alive in seconds (default 30).
    pub keep_alive_s: Option<u64>,
    /// Messages waiting for the network at most (default 256); more are dropped and counted.
    pub queue: Option<usize>,
    /// Longest command message in bytes (default 4096); a longer one is refused.
    pub max_message_bytes: Option<usize>,
    /// Publish Home Assistant discovery configs (default true).
    pub discovery: Option<bool>,
    /// Home Assistant's discovery prefix (default `homeassistant`).
    pub discovery_prefix: Option<String>,
    /// Name of the device in Home Assistant (default: the client id).
    pub device_name: Option<String>,
}

/// How the broker is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP.
    Plain,
    /// TLS, with the CA that signs the broker's certificate and an optional client certificate.
    Tls {
        ca_file: Option<PathBuf>,
        client_cert: Option<(PathBuf, PathBuf)>,
    },
}

/// `[mqtt]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub client_id: String,
    /// Without a trailing `/`.
    pub topic_prefix: String,
    /// User name and where the password comes from.
    pub login: Option<(String, Password)>,
    pub heartbeat: Duration,
    pub keep_alive: Duration,
    pub queue: usize,
    pub max_message_bytes: usize,
    /// `None`: no Home Assistant discovery; else its prefix.
    pub discovery_prefix: Option<String>,
    pub device_name: String,
}

/// Where the broker password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    None,
    Inline(String),
    File(PathBuf),
}

/// Checks `[mqtt]`; `Ok(None)` when it is absent or `broker = "none"`.
///
/// # Errors
/// [`BoardError::Invalid`] naming the key.
pub fn validate(raw: Option<RawMqtt>, path: &Path) -> Result<Option<MqttConfig>, BoardError> {
    let bad = |key: &'static str, problem: String| BoardError::Invalid {
        path: path.to_path_buf(),
        key,
        problem,
    };
    let Some(raw) = raw else { return Ok(None) };
    let broker = raw.broker.as_deref().ok_or_else(|| {
        bad(
            "mqtt.broker",
            "is missing: set it to the broker's URL, e.g. \"mqtt://192.168.1.10:1883\", or remove [mqtt]".into(),
        )
    })?;
    if broker == "none" {
        return Ok(None);
    }
    let (host, port, tls) = parse_broker(broker).map_err(|why| bad("mqtt.broker", why))?;
    let client_id = match raw.client_id {
        Some(id) => id,
        None => format!("fieldtune-{}", hostname()),
    };
    if client_id.is_empty()
        || client_id.len() > 64
        || !client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(
            "mqtt.client_id",
            format!("is {client_id:?}; use 1 to 64 ASCII letters, digits, '-' or '_'"),
        ));
    }
    let topic_prefix = raw
        .topic_prefix
        .unwrap_or_else(|| format!("fieldtune/{client_id}"));
    let topic_prefix = topic_prefix.trim_end_matches('/').to_string();
    check_topic(&topic_prefix).map_err(|why| bad("mqtt.topic_prefix", why))?;
    let password = match (raw.password, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "mqtt.password",
                "and mqtt.password_file are both set; keep one".into(),
            ))
        }
        (Some(p), None) => Password::Inline(p),
        (None, Some(f)) => Password::File(f),
        (None, None) => Password::None,
    };
    let login = match (raw.username, password) {
        (Some(user), password) => Some((user, password)),
        (None, Password::None) => None,
        (None, _) => {
            return Err(bad(
                "mqtt.username",
                "is missing but a password is set: set the user name too".into(),
            ))
        }
    };
    let client_cert = match (raw.client_cert_file, raw.client_key_file) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(bad(
                "mqtt.client_cert_file",
                "and mqtt.client_key_file go together: set both or neither".into(),
            ))
        }
    };
    let security = if tls {
        Security::Tls {
            ca_file: raw.ca_file,
            client_cert,
        }
    } else {
        if raw.ca_file.is_some() || client_cert.is_some() {
            return Err(bad(
                "mqtt.ca_file",
                "(or a client certificate) is set but the broker URL is mqtt://: use mqtts:// for TLS".into(),
            ));
        }
        Security::Plain
    };
    let heartbeat_s = raw.heartbeat_s.unwrap_or(60);
    if !(1..=86_400).contains(&heartbeat_s) {
        return Err(bad(
            "mqtt.heartbeat_s",
            format!("is {heartbeat_s}; use 1 to 86400 seconds"),
        ));
    }
    let keep_alive_s = raw.keep_alive_s.unwrap_or(30);
    if !(5..=3600).contains(&keep_alive_s) {
        return Err(bad(
            "mqtt.keep_alive_s",
            format!("is {keep_alive_s}; use 5 to 3600 seconds"),
        ));
    }
    let queue = raw.queue.unwrap_or(256);
    if !(8..=65_536).contains(&queue) {
        return Err(bad("mqtt.queue", format!("is {queue}; use 8 to 65536")));
    }
    let max_message_bytes = raw.max_message_bytes.unwrap_or(4096);
    if !(256..=65_536).contains(&max_message_bytes) {
        return Err(bad(
            "mqtt.max_message_bytes",
            format!("is {max_message_bytes}; use 256 to 65536"),
        ));
    }
    let discovery_prefix = if raw.discovery.unwrap_or(true) {
        let prefix = raw
            .discovery_prefix
            .unwrap_or_else(|| "homeassistant".into());
        check_topic(&prefix).map_err(|why| bad("mqtt.discovery_prefix", why))?;
        Some(prefix)
    } else {
        None
    };
    let device_name = raw.device_name.unwrap_or_else(|| client_id.clone());
    if device_name.is_empty() || device_name.len() > 64 || device_name.chars().any(char::is_control)
    {
        return Err(bad(
            "mqtt.device_name",
            "must be 1 to 64 printable characters".into(),
        ));
    }
    Ok(Some(MqttConfig {
        host,
        port,
        security,
        client_id,
        topic_prefix,
        login,
        heartbeat: Duration::from_secs(heartbeat_s),
        keep_alive: Duration::from_secs(keep_alive_s),
        queue,
        max_message_bytes,
        discovery_prefix,
        device_name,
    }))
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` → host, port, TLS.
fn parse_broker(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls) = if let Some(rest) = url.strip_prefix("mqtt://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("mqtts://") {
        (rest, true)
    } else {
        return Err(format!(
            "is {url:?}; use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal is written [addr]:port.
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("is {url:?}: the port {port:?} is not 1 to 65535"))?;
            (host, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(format!(
            "is {url:?}: no host name; use mqtt://HOST[:PORT] (no user, path or query)"
        ));
    }
    Ok((host.to_string(), port, tls))
}

/// A topic (prefix) we publish under: non-empty, no wildcards, no NUL, not too long.
fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > 200 {
        return Err(format!("is {topic:?}; use 1 to 200 bytes"));
    }
    if topic.contains(['+', '#', '\0']) || topic.starts_with('$') {
        return Err(format!(
            "is {topic:?}: no '+', '#' or NUL, and not starting with '$'"
        ));
    }
    Ok(())
}

/// This machine's host name, for the default client id (only its ASCII letters, digits, '-').
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let clean: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if clean.is_empty() {
        "device".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<MqttConfig>, BoardError> {
        let raw: RawMqtt = toml::from_str(text).expect("toml");
        validate(Some(raw), Path::new("b.toml"))
    }

    #[test]
    fn defaults_from_the_broker_alone() {
        let c = parse("broker = \"mqtt://10.0.0.2\"\nclient_id = \"cam-1\"")
            .unwrap()
            .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("10.0.0.2", 1883));
        assert_eq!(c.topic_prefix, "fieldtune/cam-1");
        assert_eq!(c.security, Security::Plain);
        assert_eq!(c.discovery_prefix.as_deref(), Some("homeassistant"));
        assert_eq!(c.heartbeat, Duration::from_secs(60));
        let tls = parse("broker = \"mqtts://[::1]:9000/\"").unwrap().unwrap();
        assert_eq!((tls.host.as_str(), tls.port), ("::1", 9000));
        assert!(matches!(tls.security, Security::Tls { .. }));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("broker = \"http://x\"", "mqtt.broker"),
            ("broker = \"mqtt://x:0\"", "mqtt.broker"),
            ("client_id = \"a\"", "mqtt.broker"),
            (
                "broker = \"mqtt://x\"\nclient_id = \"a b\"",
                "mqtt.client_id",
            ),
            (
                "broker = \"mqtt://x\"\ntopic_prefix = \"a/#\"",
                "mqtt.topic_prefix",
            ),
            ("broker = \"mqtt://x\"\npassword = \"p\"", "mqtt.username"),
            (
                "broker = \"mqtt://x\"\nca_file = \"ca.pem\"",
                "mqtt.ca_file",
            ),
            (
                "broker = \"mqtts://x\"\nclient_key_file = \"k\"",
                "mqtt.client_cert_file",
            ),
            ("broker = \"mqtt://x\"\nheartbeat_s = 0", "mqtt.heartbeat_s"),
            ("broker = \"mqtt://x\"\nqueue = 1", "mqtt.queue"),
        ] {
            match parse(text) {
                Err(BoardError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(parse("broker = \"none\"").unwrap().is_none());
    }
}
