//! `[fleet]`: live fleet learning over MQTT (off unless the section is here; needs `[mqtt]`).
//! Devices with the same `group` share their labels through the broker: each publishes what it
//! labels and takes back, and merges what the others do into its own replay set
//! ([`crate::mqtt::fleet`]).
//!
//! ```toml
//! [fleet]
//! group = "north-field"        # devices with the same group learn from each other's labels
//! # topic_root = "fieldtune"   # topics: <topic_root>/fleet/<group>/<client id>
//! # thumbnails = true          # send each sample's thumbnail with it (about 3 KB)
//! # max_message_bytes = 65536  # a longer fleet message is refused
//! ```

use serde::Deserialize;

use super::{At, Result};

/// `[fleet]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// The group: 1 to 64 ASCII letters, digits, '-' or '_'; `none` = off.
    pub group: Option<String>,
    /// First part of the fleet topics (default `fieldtune`).
    pub topic_root: Option<String>,
    /// Send each sample's thumbnail with it (default true).
    pub thumbnails: Option<bool>,
    /// Longest fleet message taken, in bytes (default 65536).
    pub max_message_bytes: Option<usize>,
}

/// `[fleet]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    pub group: String,
    /// Without a trailing `/`.
    pub topic_root: String,
    pub thumbnails: bool,
    pub max_message_bytes: usize,
}

impl FleetConfig {
    /// `<topic_root>/fleet/<group>`: each device publishes under it on `/<client id>`.
    pub fn group_topic(&self) -> String {
        format!("{}/fleet/{}", self.topic_root, self.group)
    }
}

/// Checks `[fleet]`; `Ok(None)` when it is absent or `group = "none"`. `mqtt` says whether the
/// board has `[mqtt]`.
///
/// # Errors
/// [`super::BoardError::Invalid`] naming the first bad key.
pub fn validate(raw: Option<RawFleet>, mqtt: bool, at: &At) -> Result<Option<FleetConfig>> {
    let Some(raw) = raw else { return Ok(None) };
    let group = raw.group.ok_or_else(|| {
        at.bad(
            "fleet.group",
            "is missing: name the group (e.g. \"north-field\"), or remove [fleet]".into(),
        )
    })?;
    if group == "none" {
        return Ok(None);
    }
    if group.is_empty()
        || group.len() > 64
        || !group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(at.bad(
            "fleet.group",
            format!("is {group:?}; use 1 to 64 ASCII letters, digits, '-' or '_'"),
        ));
    }
    if !mqtt {
        return Err(at.bad(
            "fleet.group",
            "needs [mqtt]: the fleet shares labels through the MQTT broker; add [mqtt] with its broker, or remove [fleet]".into(),
        ));
    }
    let topic_root = raw
        .topic_root
        .unwrap_or_else(|| "fieldtune".into())
        .trim_end_matches('/')
        .to_string();
    if topic_root.is_empty()
        || topic_root.len() > 120
        || topic_root.contains(['+', '#', '\0'])
        || topic_root.starts_with('$')
    {
        return Err(at.bad(
            "fleet.topic_root",
            format!("is {topic_root:?}; use 1 to 120 bytes without '+', '#' or NUL, not starting with '$'"),
        ));
    }
    let max_message_bytes = raw.max_message_bytes.unwrap_or(65_536);
    if !(4096..=262_144).contains(&max_message_bytes) {
        return Err(at.bad(
            "fleet.max_message_bytes",
            format!("is {max_message_bytes}; use 4096 to 262144"),
        ));
    }
    Ok(Some(FleetConfig {
        group,
        topic_root,
        thumbnails: raw.thumbnails.unwrap_or(true),
        max_message_bytes,
    }))
}
