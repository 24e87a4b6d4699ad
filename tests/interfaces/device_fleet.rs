//! Live fleet learning against a real broker (Debian's mosquitto on a free port of 127.0.0.1)
//! with the real binary, model and corn images: two services with their own state directories in
//! one `[fleet]` group. Labels given on A reach B and make B name the replayed frames it could
//! not name before; B stopped while A labels catches up when it returns (its persistent session);
//! an undo and a class deletion on A take the samples out of B; a message delivered again, SIGKILL and restarts
//! merge nothing twice and lose nothing; malformed, oversized and foreign-backbone messages are refused with a log line and
//! nothing stored.

#![cfg(feature = "mqtt")]

use crate::device_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use device_support::broker::{publish, Broker};
use device_support::mqtt_device::{board, Device};
use fieldtune::control::Request;
use fieldtune::mqtt::fleet::message::{FleetAction, FleetMessage};
use fieldtune::store::remote::RemoteId;

const GROUP_TOPIC: &str = "fieldtune/fleet/north";

/// A device of group "north" as client `id`.
fn fleet_board(dir: &Path, broker: &Broker, id: &str) -> std::path::PathBuf {
    board(
        dir,
        &format!(
            "broker = \"{}\"\nclient_id = \"{id}\"\ndiscovery = false\n\n[fleet]\ngroup = \"north\"\n",
            broker.url()
        ),
    )
}

/// Stored samples over all classes, from `status`.
fn samples(device: &Device) -> u64 {
    device.status()["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c["samples"].as_u64().expect("samples"))
        .sum()
}

/// A fleet counter from `status`.
fn fleet(device: &Device, key: &str) -> u64 {
    device.status()["fleet"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("status.fleet.{key}"))
}

/// Waits (up to two minutes) until `check` holds, saying what was awaited otherwise.
fn wait_until(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not within two minutes: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Log lines of `device` containing `text`.
fn log_count(device: &Device, text: &str) -> usize {
    device
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(text))
        .count()
}

/// Labels, on `device`, `count` replayed frames whose images were not labelled yet (their folder's
/// class); returns the instant of the first label.
fn label_new_frames(device: &Device, count: usize, done: &mut BTreeSet<String>) -> Instant {
    let mut client = device_support::connect(&device.socket);
    // Only the frames the device still holds can be labelled by their seq.
    let _ = device.latest_line();
    let mut first = None;
    let mut labelled = 0;
    while labelled < count {
        let line = device_support::next_line(&device.lines);
        let origin = line["origin"].as_str().expect("origin").to_string();
        let truth = line["truth"].as_str().expect("truth").to_string();
        if done.contains(&origin) {
            continue;
        }
        let reply = client
            .request(&Request::Label {
                class: truth,
                frame: line["seq"].as_u64(),
            })
            .expect("label");
        assert!(reply.ok, "{reply:?}");
        first.get_or_insert_with(Instant::now);
        done.insert(origin);
        labelled += 1;
    }
    first.expect("one label at least")
}

/// Every fleet message published on the group's topics, raw (a rumqttc client of the test's own).
fn capture(port: u16) -> Receiver<(String, Vec<u8>)> {
    let mut options = rumqttc::MqttOptions::new("test-capture", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = rumqttc::Client::new(options, 16);
    client
        .subscribe(format!("{GROUP_TOPIC}/+"), rumqttc::QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    rx
}

/// Fraction of the next `n` prediction lines of `device` that name the frame's folder class.
fn accuracy(device: &Device, n: usize) -> f64 {
    let right = (0..n)
        .filter(|_| {
            let line = device_support::next_line(&device.lines);
            line["class"].is_string() && line["class"] == line["truth"]
        })
        .count();
    right as f64 / n as f64
}

#[test]
fn labels_on_one_device_teach_the_other_across_restarts_undo_and_bad_messages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let board_a = fleet_board(&dir_a, &broker, "cam-a");
    let board_b = fleet_board(&dir_b, &broker, "cam-b");
    let wire = capture(broker.port);

    let a = Device::start(&dir_a, &board_a, "10");
    let mut b = Device::start(&dir_b, &board_b, "10");
    a.wait_log("fleet: connected");
    b.wait_log("fleet: connected");
    // B knows no class: it names nothing.
    assert_eq!(accuracy(&b, 24), 0.0);

    // 20 labels on A reach B as 20 merged samples, and B now names the frames it replays.
    let mut done = BTreeSet::new();
    let first_label = label_new_frames(&a, 20, &mut done);
    let _ = b.latest_line();
    let mut first_named = None;
    while first_named.is_none() {
        let line = device_support::next_line(&b.lines);
        if line["class"].is_string() {
            first_named = Some(Instant::now());
        }
    }
    eprintln!(
        "figure: label on A to B's first changed prediction: {} ms",
        first_named.unwrap().duration_since(first_label).as_millis()
    );
    wait_until("B holds A's 20 samples", || samples(&b) == 20);
    assert_eq!(fleet(&b, "merged"), 20);
    assert_eq!(fleet(&a, "published"), 20);
    eprintln!(
        "figure: bytes per shared label on the wire: {}",
        fleet(&a, "published_bytes") / fleet(&a, "published")
    );
    wait_until("B's head settled", || b.status()["settled"] == true);
    let _ = b.latest_line();
    let learned = accuracy(&b, 48);
    assert!(
        learned >= 0.6,
        "B names {learned:.2} of the replayed frames right after A's labels"
    );

    // B away while A labels 3 more: B catches up from its persistent session when it returns.
    let status = device_support::terminate(&mut b.child);
    assert!(status.success(), "{status:?}");
    drop(b);
    label_new_frames(&a, 3, &mut done);
    wait_until("A published 23", || fleet(&a, "published") == 23);
    let b = Device::start(&dir_b, &board_b, "10");
    b.wait_log("session resumed");
    wait_until("B caught up to 23 samples", || samples(&b) == 23);
    assert_eq!(fleet(&b, "merged"), 3, "only the 3 new ones are merged");

    // An undo on A takes its last label's sample out of B.
    let reply = device_support::connect(&a.socket)
        .request(&Request::Undo)
        .expect("undo");
    assert!(reply.ok, "{reply:?}");
    wait_until("B dropped the undone sample", || samples(&b) == 22);
    b.wait_log("samples taken back");

    // A message delivered again (here: published again by the test) merges nothing twice.
    let label = std::iter::from_fn(|| wire.recv_timeout(Duration::from_secs(5)).ok())
        .find(|(topic, payload)| {
            topic.ends_with("/cam-a")
                && matches!(
                    postcard::from_bytes::<FleetMessage>(payload).map(|m| m.action),
                    Ok(FleetAction::Label(_))
                )
        })
        .expect("A's labels on the wire");
    if let Ok(FleetAction::Label(sample)) =
        postcard::from_bytes::<FleetMessage>(&label.1).map(|m| m.action)
    {
        eprintln!(
            "figure: one label message: {} bytes = features {} + thumbnail {} + the rest {}",
            label.1.len(),
            sample.feature.byte_len(),
            sample.thumbnail.len(),
            label.1.len() - sample.feature.byte_len() - sample.thumbnail.len()
        );
    }
    publish(broker.port, &label.0, &label.1);
    wait_until("B saw the duplicate", || fleet(&b, "duplicates") == 1);
    assert_eq!(samples(&b), 22);

    // Malformed, oversized and foreign-backbone messages: refused, logged, nothing stored.
    let intruder = format!("{GROUP_TOPIC}/intruder");
    publish(
        broker.port,
        &intruder,
        b"{\"cmd\":\"label\",\"class\":\"Blight\"}",
    );
    publish(broker.port, &intruder, &vec![0x42; 70_000]);
    let mut foreign: FleetMessage = postcard::from_bytes(&label.1).expect("A's message");
    foreign.backbone[0] ^= 0xFF;
    if let FleetAction::Label(sample) = &mut foreign.action {
        sample.id = RemoteId::of_own("intruder", 1, 1);
    }
    publish(
        broker.port,
        &intruder,
        &postcard::to_allocvec(&foreign).unwrap(),
    );
    wait_until("three refusals", || fleet(&b, "refused") == 3);
    assert_eq!(log_count(&b, "fleet: refused a message"), 3);
    assert_eq!(log_count(&b, "another backbone"), 1);
    assert_eq!(log_count(&b, "longer than fleet.max_message_bytes"), 1);
    assert_eq!(log_count(&b, "not a fleet message"), 1);
    assert_eq!(samples(&b), 22);

    // B killed (SIGKILL) while A labels 5 more: what B merged before it died is kept, what it
    // had not acknowledged comes again, and nothing is merged twice.
    label_new_frames(&a, 5, &mut BTreeSet::new());
    let mut b = b;
    b.child.kill().expect("SIGKILL");
    b.child.wait().expect("wait");
    drop(b);
    wait_until("A published 29", || fleet(&a, "published") == 29);
    let b = Device::start(&dir_b, &board_b, "10");
    wait_until("B holds A's 27 samples", || samples(&b) == 27);
    let _ = b.latest_line();
    let _ = b.latest_line();
    assert_eq!(samples(&b), 27);
    assert_eq!(samples(&a), 27);

    // A class deleted on A: its samples leave B too (B keeps the empty class: it did not
    // delete it).
    let blight = a.status()["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .find(|c| c["name"] == "Blight")
        .map(|c| c["samples"].as_u64().expect("samples"))
        .expect("A has Blight");
    assert!(blight > 0);
    let reply = device_support::connect(&a.socket)
        .request(&Request::Delete {
            class: "Blight".into(),
        })
        .expect("delete");
    assert!(reply.ok, "{reply:?}");
    let left = 27 - blight;
    wait_until("B dropped A's Blight samples", || samples(&b) == left);
    b.wait_log("the deletion of class \"Blight\"");
    assert_eq!(samples(&a), left);

    // Restarting both merges nothing again.
    for (device, dir, board) in [(a, &dir_a, &board_a), (b, &dir_b, &board_b)] {
        let mut device = device;
        let status = device_support::terminate(&mut device.child);
        assert!(status.success(), "{status:?}");
        drop(device);
        let again = Device::start(dir, board, "10");
        again.wait_log("fleet: connected");
        let _ = again.latest_line();
        let _ = again.latest_line();
        assert_eq!(fleet(&again, "merged"), 0);
        assert_eq!(samples(&again), left);
    }
}
