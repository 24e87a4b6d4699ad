//! A label's extra views (`[learning] label_views`), end to end with the real binary, the real
//! model and real corn images: a label on the device also embeds the labelled frame's mirror
//! image and a crop and stores them with its sample (counted in the byte budget); a restart keeps
//! them; undo takes them back with the sample; `label_views = 0` stores none. And at the learner:
//! once every class has enough samples, the refit trains on the stored views, as `fieldtune train`
//! trains on an image's.

use crate::device_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use fieldtune::augment::{self, View};
use fieldtune::control::Request;
use fieldtune::embedder::Embedder;
use fieldtune::learner::{Frame, Learner, LearnerConfig};
use fieldtune::model::ModelDescriptor;
use fieldtune::store::features::StoredFeature;
use fieldtune::store::FrameHash;

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corn() -> PathBuf {
    root().join("tests/data/corn4-mini/test")
}

fn model() -> PathBuf {
    root().join("models/efficientnet_lite0.toml")
}

/// A board replaying corn4-mini/test in order, with `label_views` given or (None) the default.
fn board(dir: &Path, label_views: Option<usize>) -> PathBuf {
    let board = dir.join("board.toml");
    let views = label_views.map_or(String::new(), |n| format!("label_views = {n}\n"));
    let text = format!(
        r#"
name = "label-views"
[source]
kind = "folder"
path = "{corn}"
order = "sorted"
fps = 5
[model]
descriptor = "{model}"
threads = 1
[learning]
retrain_every = 0
{views}[output]
predictions = "stdout"
"#,
        corn = corn().display(),
        model = model().display(),
    );
    std::fs::write(&board, text).expect("write board");
    board
}

/// A running `fieldtune run` with its prediction lines on a channel.
struct Device {
    child: Child,
    lines: Receiver<serde_json::Value>,
    socket: PathBuf,
}

impl Device {
    fn start(dir: &Path, board: &Path) -> Device {
        let socket = dir.join("control.sock");
        let mut child = Command::new(BIN)
            .current_dir(root())
            .arg("run")
            .arg("--board")
            .arg(board)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&socket)
            .arg("--web")
            .arg("none")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fieldtune run");
        let lines = device_support::prediction_lines(&mut child);
        Device {
            child,
            lines,
            socket,
        }
    }

    fn request(&self, request: &Request) -> serde_json::Value {
        let mut client = device_support::connect(&self.socket);
        let reply = client.request(request).expect("request");
        assert!(reply.ok, "{request:?}: {reply:?}");
        reply.data.expect("reply data")
    }

    /// Labels the current frame (after a prediction line, so there is one) as `class`.
    fn label(&self, class: &str) -> serde_json::Value {
        device_support::next_line(&self.lines);
        self.request(&Request::Label {
            class: class.into(),
            frame: None,
        })
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

fn embedder() -> Embedder {
    let descriptor = ModelDescriptor::load(&model()).expect("model");
    Embedder::load(&descriptor).expect("backbone")
}

fn open(dir: &Path, embedder: &Embedder) -> Learner {
    Learner::open(
        &dir.join("state"),
        embedder.backbone_id(),
        LearnerConfig::default(),
        None,
    )
    .expect("open the saved state")
    .0
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn a_label_stores_its_views_a_restart_keeps_them_and_undo_takes_them_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let board = board(dir.path(), None);
    let device = Device::start(dir.path(), &board);
    let first = device.label("Blight");
    let second = device.label("Healthy");
    device.terminate();

    // Each sample holds the default two views: the mirror image of its own frame and a crop.
    let mut embedder = embedder();
    let learner = open(dir.path(), &embedder);
    let samples: Vec<_> = learner.data().live_samples().cloned().collect();
    assert_eq!(samples.len(), 2);
    for (sample, reply) in samples.iter().zip([&first, &second]) {
        assert_eq!(sample.views.len(), 2, "sample {}", sample.id);
        let bytes = std::fs::read(reply["origin"].as_str().expect("origin")).expect("image");
        let rgb = fieldtune::preprocess::decode(&bytes).expect("decode");
        let key = FrameHash::of(&bytes).0;
        let expected =
            augment::embed_views(&mut embedder, &rgb, &key, &[View::Mirror, View::Crop(1)])
                .expect("embed the views");
        let own = sample.feature.to_vec();
        for (stored, expected) in sample.views.iter().zip(&expected) {
            let stored = stored.to_vec();
            assert_eq!(stored.len(), own.len());
            assert!(
                cosine(&stored, expected) > 0.999,
                "{}",
                cosine(&stored, expected)
            );
            assert!(
                cosine(&stored, &own) < 0.999,
                "a view is not the frame itself"
            );
        }
    }
    // The byte budget counts the views: the state's total is the samples' bytes with them.
    let with_views: u64 = samples.iter().map(|s| s.stored_bytes()).sum();
    let view_bytes: u64 = samples
        .iter()
        .flat_map(|s| &s.views)
        .map(|v| v.byte_len() as u64)
        .sum();
    assert_eq!(learner.data().feature_bytes, with_views);
    assert_eq!(view_bytes, 2 * samples[0].feature.byte_len() as u64 * 2);
    println!(
        "bytes per label: {} (feature {}, views {}, thumbnail {})",
        samples[0].stored_bytes(),
        samples[0].feature.byte_len(),
        samples[0]
            .views
            .iter()
            .map(StoredFeature::byte_len)
            .sum::<usize>(),
        samples[0].thumbnail.0.len()
    );
    drop(learner);

    // After a restart the views are still there; undo takes back the second label with them.
    let device = Device::start(dir.path(), &board);
    let undone = device.request(&Request::Undo);
    assert_eq!(undone["samples"].as_u64(), Some(1), "{undone}");
    device.terminate();
    let learner = open(dir.path(), &embedder);
    let left: Vec<_> = learner.data().live_samples().cloned().collect();
    assert_eq!(left, samples[..1].to_vec());
    assert_eq!(learner.data().feature_bytes, samples[0].stored_bytes());
}

#[test]
fn label_views_0_stores_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let board = board(dir.path(), Some(0));
    let device = Device::start(dir.path(), &board);
    device.label("Blight");
    device.terminate();
    let embedder = embedder();
    let learner = open(dir.path(), &embedder);
    let samples: Vec<_> = learner.data().live_samples().collect();
    assert_eq!(samples.len(), 1);
    assert!(samples[0].views.is_empty());
}

#[test]
fn the_refit_trains_on_the_views_once_every_class_has_enough_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut embedder = embedder();
    let mut learner = Learner::open(
        dir.path(),
        embedder.backbone_id(),
        LearnerConfig::default(),
        None,
    )
    .expect("open")
    .0;
    // Sixty real feature vectors a class: each corn4-mini training image and four views of it.
    let train = root().join("tests/data/corn4-mini/train");
    let mut frames: Vec<(&str, Vec<f32>)> = Vec::new();
    for class in ["Blight", "Healthy"] {
        for entry in std::fs::read_dir(train.join(class)).expect("class folder") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("image");
            let rgb = fieldtune::preprocess::decode(&bytes).expect("decode");
            frames.push((class, embedder.embed_rgb(&rgb).expect("embed")));
            let views = augment::views(4);
            let key = FrameHash::of(&bytes).0;
            for f in augment::embed_views(&mut embedder, &rgb, &key, &views).expect("views") {
                frames.push((class, f));
            }
        }
    }
    let per_class = frames.len() / 2;
    assert!(per_class >= augment::MIN_PER_CLASS_FOR_VIEWS + 5);
    // Each labelled frame brings two other vectors of its class as its views.
    let label = |learner: &mut Learner, i: usize| {
        let (class, features) = &frames[i];
        let base = i - i % per_class;
        let views = vec![
            frames[base + (i + 7) % per_class].1.clone(),
            frames[base + (i + 13) % per_class].1.clone(),
        ];
        let frame = Frame {
            features,
            hash: FrameHash::of(&(i as u64).to_le_bytes()),
            thumbnail: &[],
        };
        learner
            .label_with_views(class, &[frame], &[views])
            .expect("label");
    };
    // Below the threshold the views are stored but the fit is the one without them: its
    // prototypes counted the labelled frames only.
    let few = augment::MIN_PER_CLASS_FOR_VIEWS - 10;
    for c in 0..2 {
        for i in 0..few {
            label(&mut learner, c * per_class + i);
        }
    }
    learner.settle();
    assert!(learner.is_settled());
    assert!(learner.data().live_samples().all(|s| s.views.len() == 2));
    let counts: u64 = learner.head().class_sample_counts().iter().sum();
    assert_eq!(counts, 2 * few as u64);
    // With enough samples in every class, the refit trains on the views of the frames it fits
    // (not of those it holds out to validate).
    for c in 0..2 {
        for i in few..per_class {
            label(&mut learner, c * per_class + i);
        }
    }
    learner.settle();
    let counts: u64 = learner.head().class_sample_counts().iter().sum();
    let labelled = 2 * per_class as u64;
    assert!(
        counts > labelled + labelled && counts < 3 * labelled,
        "{counts} rows for {labelled} samples"
    );
    // Views of the wrong length are refused, and nothing is stored.
    let features = vec![0.5; embedder.dim()];
    let frame = Frame {
        features: &features,
        hash: FrameHash::of(b"bad"),
        thumbnail: &[],
    };
    let before = learner.data().samples.len();
    let refused = learner.label_with_views("Blight", &[frame], &[vec![vec![0.5; 3]]]);
    assert!(refused.is_err());
    assert_eq!(learner.data().samples.len(), before);
}
