//! Skipping unchanged frames (`source.skip_unchanged`), end to end with the real binary, the real
//! model and real corn images: a replay that shows each image for several frames runs the backbone
//! once per image and says so in its prediction lines and status counters; different images are
//! never skipped; a label of a frame that reused another frame's features stores the features of
//! the labelled frame itself.

use crate::device_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use fieldtune::control::Request;
use fieldtune::embedder::Embedder;
use fieldtune::learner::{Learner, LearnerConfig};
use fieldtune::model::ModelDescriptor;

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corn() -> PathBuf {
    root().join("tests/data/corn4-mini/test")
}

/// Images of the replayed folder.
fn image_count() -> usize {
    walkdir(&corn()).len()
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for class in std::fs::read_dir(dir).expect("list folder") {
        let class = class.expect("entry").path();
        for image in std::fs::read_dir(&class).expect("list class") {
            out.push(image.expect("entry").path());
        }
    }
    out
}

/// A running `fieldtune run` with its prediction lines on a channel.
struct Device {
    child: Child,
    lines: Receiver<serde_json::Value>,
    socket: PathBuf,
}

impl Device {
    fn start(dir: &Path, args: &[&str]) -> Device {
        let socket = dir.join("control.sock");
        let mut child = Command::new(BIN)
            .current_dir(root())
            .arg("run")
            .args(args)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&socket)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fieldtune run");
        let rx = device_support::prediction_lines(&mut child);
        Device {
            child,
            lines: rx,
            socket,
        }
    }

    fn next_line(&self) -> serde_json::Value {
        device_support::next_line(&self.lines)
    }

    fn request(&self, request: &Request) -> serde_json::Value {
        let mut client = device_support::connect(&self.socket);
        let reply = client.request(request).expect("request");
        assert!(reply.ok, "{reply:?}");
        reply.data.expect("reply data")
    }

    /// SIGTERM, then wait for the exit (the state is snapshotted on the way out).
    fn terminate(mut self) {
        let status = device_support::terminate(&mut self.child);
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reused(line: &serde_json::Value) -> bool {
    line["reused"].as_bool().unwrap_or(false)
}

#[test]
fn a_replay_of_repeated_images_runs_the_backbone_once_per_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corn = corn();
    let device = Device::start(
        dir.path(),
        &[
            "--fps",
            "0",
            "--folder",
            corn.to_str().expect("utf-8 path"),
            "--repeat-each",
            "3",
            "--skip-unchanged",
            "on",
        ],
    );
    let mut previous: Option<String> = None;
    for i in 0..12 {
        let line = device.next_line();
        let origin = line["origin"].as_str().expect("origin").to_string();
        let repeat = previous.as_deref() == Some(origin.as_str());
        assert_eq!(i % 3 != 0, repeat, "line {i}: {line}");
        // A repeat reuses the features; a new image never does.
        assert_eq!(repeat, reused(&line), "line {i}: {line}");
        previous = Some(origin);
    }
    let status = device.request(&Request::Status);
    let frames = status["frames"].as_u64().expect("frames");
    let runs = status["backbone_runs"].as_u64().expect("backbone_runs");
    let skipped = status["skipped_frames"].as_u64().expect("skipped_frames");
    assert!(frames >= 12, "{status}");
    assert_eq!(runs, frames.div_ceil(3), "{status}");
    assert_eq!(skipped, frames - runs, "{status}");
    let fraction = status["skipped_fraction"].as_f64().expect("fraction");
    assert!(
        (fraction - skipped as f64 / frames as f64).abs() < 1e-9,
        "{status}"
    );
    assert!(status["backbone_runs_per_minute"].as_f64().expect("rate") > 0.0);
    device.terminate();
}

#[test]
fn different_images_are_never_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corn = corn();
    let device = Device::start(
        dir.path(),
        &[
            "--fps",
            "0",
            "--folder",
            corn.to_str().expect("utf-8 path"),
            "--skip-unchanged",
            "on",
        ],
    );
    // One whole pass: every image follows a different one.
    let n = image_count();
    for i in 0..n {
        let line = device.next_line();
        assert!(!reused(&line), "line {i} reused: {line}");
    }
    let status = device.request(&Request::Status);
    assert_eq!(status["skipped_frames"].as_u64(), Some(0), "{status}");
    device.terminate();
}

/// A board whose threshold calls every frame unchanged: each frame after the first reuses the
/// first image's features, so a label shows whether it embedded its own frame.
fn board_reusing_everything(dir: &Path) -> PathBuf {
    let board = dir.join("board.toml");
    let text = format!(
        r#"
name = "skip-everything"
[source]
kind = "folder"
path = "{corn}"
order = "sorted"
fps = 10
skip_unchanged = true
skip_threshold = 255.0
[model]
descriptor = "{model}"
threads = 1
[learning]
retrain_every = 0
[output]
predictions = "stdout"
"#,
        corn = corn().display(),
        model = root().join("models/efficientnet_lite0.toml").display(),
    );
    std::fs::write(&board, text).expect("write board");
    board
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn a_label_of_a_reused_frame_stores_that_frames_own_features() {
    let dir = tempfile::tempdir().expect("tempdir");
    let board = board_reusing_everything(dir.path());
    let device = Device::start(
        dir.path(),
        &["--board", board.to_str().expect("utf-8 path")],
    );
    let first = device.next_line();
    assert!(!reused(&first), "{first}");
    // A later frame of another image, predicted from the first image's features.
    let target = loop {
        let line = device.next_line();
        if line["seq"].as_u64() >= Some(5) {
            break line;
        }
    };
    assert!(reused(&target), "{target}");
    assert_ne!(target["origin"], first["origin"]);
    let before = device.request(&Request::Status)["backbone_runs"]
        .as_u64()
        .expect("runs");
    // The current frame: reused too (every frame after the first is), of another image.
    let reply = device.request(&Request::Label {
        class: "Blight".into(),
        frame: None,
    });
    assert!(reply["seq"].as_u64() > Some(1), "{reply}");
    assert_ne!(reply["origin"], first["origin"], "{reply}");
    let after = device.request(&Request::Status)["backbone_runs"]
        .as_u64()
        .expect("runs");
    // Its own frame, then the two views a label embeds by default (`learning.label_views`), made
    // from the same held pixels.
    assert_eq!(
        after,
        before + 3,
        "the label ran the backbone on its frame and its views"
    );
    device.terminate();

    // The stored sample holds the labelled image's features, not the first image's.
    let descriptor =
        ModelDescriptor::load(&root().join("models/efficientnet_lite0.toml")).expect("model");
    let mut embedder = Embedder::load(&descriptor).expect("backbone");
    let own = embedder
        .embed_bytes(&std::fs::read(reply["origin"].as_str().expect("origin")).expect("image"))
        .expect("embed");
    let other = embedder
        .embed_bytes(&std::fs::read(first["origin"].as_str().expect("origin")).expect("image"))
        .expect("embed");
    let (learner, _) = Learner::open(
        &dir.path().join("state"),
        embedder.backbone_id(),
        LearnerConfig::default(),
        None,
    )
    .expect("open the saved state");
    let samples: Vec<Vec<f32>> = learner
        .data()
        .live_samples()
        .map(|s| s.feature.to_vec())
        .collect();
    assert_eq!(samples.len(), 1);
    let stored = &samples[0];
    assert!(cosine(stored, &own) > 0.999, "{}", cosine(stored, &own));
    assert!(
        cosine(stored, &other) < cosine(stored, &own) - 0.01,
        "own {} other {}",
        cosine(stored, &own),
        cosine(stored, &other)
    );
}
