//! What fieldtune says on MQTT, as pure functions of the configuration: the topic names, the
//! prediction and event payloads, and the Home Assistant discovery configs (a sensor for the
//! class with the probability as an attribute, one button per class that labels the current
//! frame, an undo button, availability). No network here, so every payload is unit-tested.
//!
//! Topics, under `P` = `mqtt.topic_prefix`:
//!
//! ```text
//! P/availability  "online" / "offline" (retained; "offline" is the last will)
//! P/prediction    {"class":"Blight","probability":0.93,"unknown":false,"seq":812,"time_ms":…,"reason":"change"}
//! P/event         {"event":"label","class":"Blight","seq":812,…} (label, undo, rename, delete, new_class, retrain, …)
//! P/cmd           ← a control request, e.g. {"cmd":"label","class":"Blight"} or {"cmd":"status"}
//! P/reply         → its reply, {"ok":true,"data":…} or {"ok":false,"error":…}
//! ```

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::config::MqttConfig;

/// The topics of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub availability: String,
    pub prediction: String,
    pub event: String,
    pub command: String,
    pub reply: String,
}

impl Topics {
    /// The topics under `prefix`.
    pub fn new(prefix: &str) -> Topics {
        Topics {
            availability: format!("{prefix}/availability"),
            prediction: format!("{prefix}/prediction"),
            event: format!("{prefix}/event"),
            command: format!("{prefix}/cmd"),
            reply: format!("{prefix}/reply"),
        }
    }
}

/// Why a prediction is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The predicted class differs from the last one published.
    Change,
    /// Nothing changed for `mqtt.heartbeat_s`.
    Heartbeat,
}

/// The payload of `P/prediction`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The class, or `null` when unknown.
    pub class: Option<String>,
    pub probability: f32,
    pub unknown: bool,
    pub seq: u64,
    pub time_ms: u64,
    pub reason: Reason,
}

/// One retained discovery message: its topic and JSON payload (empty = remove the entity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub topic: String,
    pub payload: String,
}

/// Home Assistant's node id of this device: the client id (already `[A-Za-z0-9_-]`).
fn node_id(config: &MqttConfig) -> String {
    config.client_id.clone()
}

/// An object id for class `name`: its ASCII letters and digits (up to 24) and 8 hex digits of
/// its hash, so two names never share a button and any name gives a valid id.
pub fn class_object_id(name: &str) -> String {
    let readable: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase();
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("label_{readable}_{hex}")
}

/// The `device` block every entity shares.
fn device(config: &MqttConfig, model: &str) -> serde_json::Value {
    json!({
        "identifiers": [format!("fieldtune_{}", node_id(config))],
        "name": config.device_name,
        "manufacturer": "fieldtune",
        "model": model,
        "sw_version": env!("CARGO_PKG_VERSION"),
    })
}

/// The availability keys every entity shares.
fn with_availability(config: &MqttConfig, mut entity: serde_json::Value) -> serde_json::Value {
    let topics = Topics::new(&config.topic_prefix);
    entity["availability_topic"] = json!(topics.availability);
    entity["payload_available"] = json!("online");
    entity["payload_not_available"] = json!("offline");
    entity
}

/// The discovery topic of an entity.
fn discovery_topic(prefix: &str, component: &str, node: &str, object: &str) -> String {
    format!("{prefix}/{component}/{node}/{object}/config")
}

/// The sensor (class, probability as an attribute) and the undo button: the entities that do not
/// depend on the classes. `model` is the board's name. Empty when discovery is off.
pub fn fixed_entities(config: &MqttConfig, model: &str) -> Vec<Discovery> {
    let Some(prefix) = &config.discovery_prefix else {
        return Vec::new();
    };
    let node = node_id(config);
    let topics = Topics::new(&config.topic_prefix);
    let sensor = with_availability(
        config,
        json!({
            "name": "Class",
            "unique_id": format!("{node}_class"),
            "state_topic": topics.prediction,
            "value_template": "{{ value_json.class if value_json.class else 'unknown' }}",
            "json_attributes_topic": topics.prediction,
            "icon": "mdi:leaf",
            "device": device(config, model),
        }),
    );
    let undo = with_availability(
        config,
        json!({
            "name": "Undo last label",
            "unique_id": format!("{node}_undo"),
            "command_topic": topics.command,
            "payload_press": r#"{"cmd":"undo"}"#,
            "icon": "mdi:undo",
            "device": device(config, model),
        }),
    );
    vec![
        Discovery {
            topic: discovery_topic(prefix, "sensor", &node, "class"),
            payload: sensor.to_string(),
        },
        Discovery {
            topic: discovery_topic(prefix, "button", &node, "undo"),
            payload: undo.to_string(),
        },
    ]
}

/// The button that labels the current frame as `class`.
pub fn class_button(config: &MqttConfig, model: &str, class: &str) -> Option<Discovery> {
    let prefix = config.discovery_prefix.as_ref()?;
    let node = node_id(config);
    let object = class_object_id(class);
    let topics = Topics::new(&config.topic_prefix);
    let press = json!({"cmd": "label", "class": class}).to_string();
    let button = with_availability(
        config,
        json!({
            "name": format!("Label {class}"),
            "unique_id": format!("{node}_{object}"),
            "command_topic": topics.command,
            "payload_press": press,
            "icon": "mdi:tag",
            "device": device(config, model),
        }),
    );
    Some(Discovery {
        topic: discovery_topic(prefix, "button", &node, &object),
        payload: button.to_string(),
    })
}

/// The message that removes class `class`'s button (an empty retained config).
pub fn remove_class_button(config: &MqttConfig, class: &str) -> Option<Discovery> {
    let prefix = config.discovery_prefix.as_ref()?;
    Some(Discovery {
        topic: discovery_topic(prefix, "button", &node_id(config), &class_object_id(class)),
        payload: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::config::{validate, RawMqtt};

    fn config() -> MqttConfig {
        let raw: RawMqtt =
            toml::from_str("broker = \"mqtt://127.0.0.1\"\nclient_id = \"cam-1\"").unwrap();
        validate(Some(raw), std::path::Path::new("b.toml"))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn object_ids_are_valid_and_distinct() {
        let ids: Vec<String> = ["Blight", "blight", "Gray leaf spot", "Rouille/brune", "été"]
            .iter()
            .map(|n| class_object_id(n))
            .collect();
        for id in &ids {
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn a_class_button_labels_through_the_command_topic() {
        let c = config();
        let b = class_button(&c, "desktop", "Gray \"leaf\" spot").unwrap();
        let v: serde_json::Value = serde_json::from_str(&b.payload).unwrap();
        assert_eq!(v["command_topic"], "fieldtune/cam-1/cmd");
        let press: crate::control::Request =
            serde_json::from_str(v["payload_press"].as_str().unwrap()).unwrap();
        assert_eq!(
            press,
            crate::control::Request::Label {
                class: "Gray \"leaf\" spot".into(),
                frame: None
            }
        );
        assert!(b
            .topic
            .starts_with("homeassistant/button/cam-1/label_grayleafspot_"));
        assert_eq!(
            remove_class_button(&c, "Gray \"leaf\" spot").unwrap().topic,
            b.topic
        );
    }
}
