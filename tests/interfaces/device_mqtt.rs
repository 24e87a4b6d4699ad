//! MQTT against a real broker (Debian's mosquitto on a free port of 127.0.0.1) with the real
//! binary, model and corn images: predictions on class change and heartbeat, events, Home
//! Assistant discovery checked against the keys HA's MQTT sensor and button schemas require,
//! commands that label (the current frame or one by `seq`) and undo, refused messages, the last
//! will on SIGKILL, and a broker killed and restarted while the device keeps predicting.

#![cfg(feature = "mqtt")]

use crate::device_support;

use std::time::{Duration, Instant};

use device_support::broker::{publish, Broker, Message, Subscriber};
use device_support::mqtt_device::{board, Device};
use fieldtune::control::Request;

/// The checks of Home Assistant's MQTT discovery: the topic is
/// `<prefix>/<component>/<node_id>/<object_id>/config` with ids of `[A-Za-z0-9_-]`; the payload is
/// a JSON object with the keys the component's schema requires (sensor: `state_topic`, a topic
/// one may subscribe to; button: `command_topic`, a topic one may publish to, and `payload_press`
/// a string), a `unique_id`, a `device` with `identifiers`, and availability that names a topic
/// and the payloads the device publishes there.
fn check_discovery(message: &Message, prefix: &str) -> serde_json::Value {
    let parts: Vec<&str> = message.topic.split('/').collect();
    assert_eq!(parts.len(), 5, "discovery topic {}", message.topic);
    assert_eq!(parts[0], "homeassistant");
    assert!(
        ["sensor", "button"].contains(&parts[1]),
        "{}",
        message.topic
    );
    let id_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    assert!(id_ok(parts[2]) && id_ok(parts[3]), "{}", message.topic);
    assert_eq!(parts[4], "config");
    let v = message.json();
    let text = |key: &str| {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: {key} is not a string: {v}", message.topic))
            .to_string()
    };
    let topic_ok = |t: &str, wildcards: bool| {
        !t.is_empty()
            && t.len() < 65_536
            && !t.contains('\0')
            && (wildcards || !t.contains(['+', '#']))
    };
    match parts[1] {
        "sensor" => {
            let state = text("state_topic");
            assert!(topic_ok(&state, true) && state.starts_with(prefix), "{v}");
            assert_eq!(text("json_attributes_topic"), state);
            assert!(text("value_template").contains("value_json.class"));
        }
        _ => {
            let command = text("command_topic");
            assert!(topic_ok(&command, false), "{v}");
            assert_eq!(command, format!("{prefix}/cmd"));
            let press: Request =
                serde_json::from_str(&text("payload_press")).expect("payload_press is a request");
            assert!(
                matches!(press, Request::Label { .. } | Request::Undo),
                "{press:?}"
            );
        }
    }
    assert!(id_ok(&text("unique_id")), "{v}");
    assert!(!text("name").is_empty());
    let ids = v["device"]["identifiers"]
        .as_array()
        .unwrap_or_else(|| panic!("device.identifiers: {v}"));
    assert!(!ids.is_empty() && ids.iter().all(|i| i.is_string()));
    assert_eq!(text("availability_topic"), format!("{prefix}/availability"));
    assert_eq!(text("payload_available"), "online");
    assert_eq!(text("payload_not_available"), "offline");
    v
}

#[test]
fn predictions_events_commands_discovery_and_the_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let prefix = "farm/cam-1";
    let board = board(
        dir.path(),
        &format!(
            "broker = \"{}\"\nclient_id = \"cam-1\"\ntopic_prefix = \"{prefix}\"\nheartbeat_s = 1\nmax_message_bytes = 1024",
            broker.url()
        ),
    );
    let mut sub = Subscriber::start(broker.port, "#");
    let device = Device::start(dir.path(), &board, "10");

    // Availability (retained), the sensor and the undo button, all valid for Home Assistant.
    sub.wait_for("online", |m| {
        m.topic == format!("{prefix}/availability") && m.payload == "online"
    });
    let sensor = sub.wait_for("the sensor's config", |m| {
        m.topic == "homeassistant/sensor/cam-1/class/config"
    });
    check_discovery(&sensor, prefix);
    let undo = sub.wait_for("the undo button's config", |m| {
        m.topic == "homeassistant/button/cam-1/undo/config"
    });
    let undo_press = check_discovery(&undo, prefix)["payload_press"]
        .as_str()
        .unwrap()
        .to_string();

    // No class yet: "unknown" goes out once as a change, then as heartbeats.
    let first = sub.wait_for("a first prediction", |m| {
        m.topic == format!("{prefix}/prediction")
    });
    let first = first.json();
    assert_eq!(first["unknown"], true, "{first}");
    assert!(first["seq"].as_u64().is_some() && first["time_ms"].as_u64().is_some());
    sub.wait_for("a heartbeat", |m| {
        m.topic == format!("{prefix}/prediction") && m.json()["reason"] == "heartbeat"
    });

    // A command labels the current frame: the reply, the event and the class's button.
    let cmd = format!("{prefix}/cmd");
    publish(broker.port, &cmd, br#"{"cmd":"label","class":"Blight"}"#);
    let reply = sub.wait_for("the label's reply", |m| {
        m.topic == format!("{prefix}/reply")
    });
    assert_eq!(reply.json()["ok"], true, "{}", reply.payload);
    let event = sub.wait_for("the label event", |m| {
        m.topic == format!("{prefix}/event") && m.json()["event"] == "label"
    });
    assert_eq!(event.json()["class"], "Blight");
    let button = sub.wait_for("the Blight button", |m| {
        m.topic
            .starts_with("homeassistant/button/cam-1/label_blight_")
    });
    let press = check_discovery(&button, prefix)["payload_press"]
        .as_str()
        .unwrap()
        .to_string();

    // A frame named by its seq (from the prediction lines) is the frame labelled.
    let seq = device.latest_line()["seq"].as_u64().expect("seq");
    let by_seq = format!(r#"{{"cmd":"label","class":"Common_Rust","frame":{seq}}}"#);
    publish(broker.port, &cmd, by_seq.as_bytes());
    let reply = sub.wait_for("the second reply", |m| m.topic == format!("{prefix}/reply"));
    assert_eq!(reply.json()["data"]["seq"], seq, "{}", reply.payload);
    // The button's own payload labels too (as pressing it in Home Assistant would).
    publish(broker.port, &cmd, press.as_bytes());
    let reply = sub.wait_for("the button's reply", |m| {
        m.topic == format!("{prefix}/reply")
    });
    assert_eq!(reply.json()["data"]["class"], "Blight", "{}", reply.payload);
    // Two classes: a prediction naming one of them goes out as a change.
    let change = sub.wait_for("a class change", |m| {
        m.topic == format!("{prefix}/prediction")
            && m.json()["reason"] == "change"
            && m.json()["class"].is_string()
    });
    println!("class change: {}", change.payload);
    let samples_before: u64 = device.status()["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["samples"].as_u64().unwrap())
        .sum();
    assert_eq!(samples_before, 3);

    // Refused with a log line, nothing stored: too long, not UTF-8, not a request, and a request
    // the control socket refuses too (an empty class name).
    publish(broker.port, &cmd, &vec![b'x'; 5000]);
    device.wait_log("5000 bytes, longer than mqtt.max_message_bytes (1024)");
    publish(broker.port, &cmd, &[0xff, 0xfe, b'{']);
    device.wait_log("not UTF-8");
    publish(broker.port, &cmd, br#"{"cmd":"label","klass":"Blight"}"#);
    device.wait_log("not a request");
    publish(broker.port, &cmd, br#"{"cmd":"label","class":""}"#);
    let reply = sub.wait_for("the empty name's reply", |m| {
        m.topic == format!("{prefix}/reply")
            && m.json()["ok"] == false
            && m.payload.contains("empty")
    });
    println!("refused: {}", reply.payload);
    let status = device.status();
    let samples_after: u64 = status["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["samples"].as_u64().unwrap())
        .sum();
    assert_eq!(
        samples_after, samples_before,
        "a refused message stored nothing"
    );
    assert_eq!(status["mqtt"]["refused"], 3, "{}", status["mqtt"]);
    assert_eq!(status["mqtt"]["connected"], true);

    // Status on request.
    publish(broker.port, &cmd, br#"{"cmd":"status"}"#);
    let reply = sub.wait_for("the status reply", |m| {
        m.topic == format!("{prefix}/reply") && m.payload.contains("\"classes\"")
    });
    assert!(reply.json()["data"]["mqtt"]["published"].as_u64().unwrap() > 0);

    // Undo (the undo button's payload) takes the last label back, and says so.
    publish(broker.port, &cmd, undo_press.as_bytes());
    let event = sub.wait_for("the undo event", |m| {
        m.topic == format!("{prefix}/event") && m.json()["event"] == "undo"
    });
    println!("undo: {}", event.payload);

    // SIGKILL: the broker publishes the last will, retained.
    let mut device = device;
    device.child.kill().expect("SIGKILL");
    device.child.wait().expect("wait");
    sub.wait_for("offline (the last will)", |m| {
        m.topic == format!("{prefix}/availability") && m.payload == "offline"
    });
    let mut late = Subscriber::start(broker.port, &format!("{prefix}/availability"));
    late.wait_for("offline, retained", |m| m.payload == "offline");
}

#[test]
fn a_broker_killed_and_restarted_never_stalls_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("broker"));
    let prefix = "farm/cam-2";
    let board = board(
        dir.path(),
        &format!(
            "broker = \"{}\"\nclient_id = \"cam-2\"\ntopic_prefix = \"{prefix}\"\nheartbeat_s = 1",
            broker.url()
        ),
    );
    let mut sub = Subscriber::start(broker.port, &format!("{prefix}/#"));
    let device = Device::start(dir.path(), &board, "0");
    sub.wait_for("online", |m| m.payload == "online");

    // Frames per second over `n` prediction lines, and the longest gap between two.
    let rate = |n: usize| {
        let start = Instant::now();
        let mut last = Instant::now();
        let mut gap = Duration::ZERO;
        for _ in 0..n {
            device_support::next_line(&device.lines);
            gap = gap.max(last.elapsed());
            last = Instant::now();
        }
        (n as f64 / start.elapsed().as_secs_f64(), gap)
    };
    device.latest_line();
    let (up, up_gap) = rate(60);
    broker.kill();
    let (down, down_gap) = rate(60);
    let (down_more, _) = rate(60);
    let status = device.status();
    assert_eq!(status["mqtt"]["connected"], false, "{}", status["mqtt"]);
    println!(
        "broker up: {up:.1} fps (longest gap {} ms); killed: {down:.1} then {down_more:.1} fps (longest gap {} ms); ratio {:.2}",
        up_gap.as_millis(),
        down_gap.as_millis(),
        down / up
    );
    broker.restart();
    let mut sub2 = Subscriber::start(broker.port, &format!("{prefix}/#"));
    sub2.wait_for("online again", |m| m.payload == "online");
    sub2.wait_for("predictions again", |m| {
        m.topic == format!("{prefix}/prediction")
    });
    let status = device.status();
    println!("after the restart: {}", status["mqtt"]);
    assert!(status["mqtt"]["connects"].as_u64().unwrap() >= 2);
    assert!(status["mqtt"]["dropped"].as_u64().unwrap() > 0);
    assert!(status["frames"].as_u64().unwrap() >= 180);
    device.wait_log("mqtt: connected to 127.0.0.1");
    drop(sub);
}
