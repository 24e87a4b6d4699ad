//! `fieldtune state import --head` through the real binary, the real model and real corn images:
//! a head trained by `fieldtune train` starts a device that predicts every test image exactly as
//! `fieldtune predict` with that head file does; labels then fine-tune it (the frames it got wrong
//! and was taught are right afterwards, without losing the rest); the fine-tuned head survives a
//! restart. Imports into a state with samples (without `--force`), of another backbone's head, or
//! while the service runs are refused and change nothing.

use crate::device_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use fieldtune::control::{ControlClient, Request};

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corn(split: &str) -> PathBuf {
    root().join("tests/data/corn4-mini").join(split)
}

fn fieldtune(args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(root())
        .args(args)
        .output()
        .expect("run fieldtune")
}

fn ok(args: &[&str]) -> String {
    let out = fieldtune(args);
    assert!(
        out.status.success(),
        "fieldtune {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn file_name(origin: &str) -> String {
    Path::new(origin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One prediction: the class (None = unknown) and its probability.
type Seen = (Option<String>, f64);

/// `fieldtune predict --json` of every test image with `head`: file name → what it predicts.
fn predict_all(head: &Path) -> BTreeMap<String, Seen> {
    let mut images: Vec<String> = Vec::new();
    for class in std::fs::read_dir(corn("test")).expect("test dir") {
        for image in std::fs::read_dir(class.expect("entry").path()).expect("class dir") {
            images.push(image.expect("entry").path().display().to_string());
        }
    }
    let mut args = vec!["predict", "--json", "--head", head.to_str().expect("utf-8")];
    args.extend(images.iter().map(String::as_str));
    ok(&args)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let class = (!v["unknown"].as_bool().expect("unknown"))
                .then(|| v["class"].as_str().expect("class").to_string());
            let p = if class.is_some() {
                v["top"][0]["probability"].as_f64().expect("probability")
            } else {
                0.0
            };
            (file_name(v["image"].as_str().expect("image")), (class, p))
        })
        .collect()
}

/// A running `fieldtune run` replaying corn4-mini/test.
struct Device {
    child: Child,
    lines: Receiver<serde_json::Value>,
    socket: PathBuf,
}

impl Device {
    fn start(dir: &Path) -> Device {
        let socket = dir.join("control.sock");
        let mut child = Command::new(BIN)
            .current_dir(root())
            .args(["run", "--fps", "8", "--folder"])
            .arg(corn("test"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&socket)
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

    fn client(&self) -> ControlClient {
        device_support::connect(&self.socket)
    }

    fn status(&self) -> serde_json::Value {
        let reply = self.client().request(&Request::Status).expect("status");
        assert!(reply.ok, "{reply:?}");
        reply.data.expect("status data")
    }

    /// Waits until the head is exactly the fit of the stored samples.
    fn wait_settled(&self) {
        let start = Instant::now();
        loop {
            let status = self.status();
            if status["settled"].as_bool() == Some(true) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "the head never settles: {status}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One whole pass over the 24 test images after the lines queued so far: file name → what
    /// was predicted, and each line's truth and seq.
    #[allow(clippy::type_complexity)]
    fn pass(&self) -> (BTreeMap<String, Seen>, HashMap<String, (String, u64)>) {
        let _ = self.lines.try_iter().count();
        let mut seen = BTreeMap::new();
        let mut truth = HashMap::new();
        while seen.len() < 24 {
            let line = device_support::next_line(&self.lines);
            let name = file_name(line["origin"].as_str().expect("origin"));
            let class = line["class"].as_str().map(str::to_string);
            let p = line["probability"].as_f64().expect("probability");
            seen.insert(name.clone(), (class, p));
            truth.insert(
                name,
                (
                    line["truth"].as_str().expect("truth").to_string(),
                    line["seq"].as_u64().expect("seq"),
                ),
            );
        }
        (seen, truth)
    }

    fn terminate(mut self) {
        let status = device_support::terminate(&mut self.child);
        assert!(status.success(), "SIGTERM must exit 0, got {status:?}");
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_same(device: &BTreeMap<String, Seen>, reference: &BTreeMap<String, Seen>, what: &str) {
    assert_eq!(
        device.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    for (name, (class, p)) in device {
        let (want, want_p) = &reference[name];
        assert_eq!(class, want, "{name}: {what}");
        assert!(
            (p - want_p).abs() < 1e-4,
            "{name}: probability {p} against {want_p} ({what})"
        );
    }
}

fn accuracy(seen: &BTreeMap<String, Seen>, truth: &HashMap<String, (String, u64)>) -> usize {
    seen.iter()
        .filter(|(name, (class, _))| class.as_deref() == Some(truth[*name].0.as_str()))
        .count()
}

#[test]
fn a_device_started_from_a_trained_head_predicts_as_it_then_learns_and_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = dir.path().join("head.fth");
    let state = dir.path().join("state");
    ok(&[
        "train",
        "--data",
        corn("train").to_str().expect("utf-8"),
        "--val",
        corn("val").to_str().expect("utf-8"),
        "--out",
        head.to_str().expect("utf-8"),
    ]);
    let reference = predict_all(&head);
    let text = ok(&[
        "state",
        "import",
        "--head",
        head.to_str().expect("utf-8"),
        "--into",
        state.to_str().expect("utf-8"),
    ]);
    assert!(text.contains("4 classes"), "{text}");

    // 1. Without a label, the device is the imported head.
    let device = Device::start(dir.path());
    let status = device.status();
    let classes: Vec<&str> = status["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        classes,
        ["Blight", "Common_Rust", "Gray_Leaf_Spot", "Healthy"]
    );
    let (before, truth) = device.pass();
    assert_same(
        &before,
        &reference,
        "the imported head as the service serves it",
    );
    let right_before = accuracy(&before, &truth);

    // A second import while the service runs is refused.
    let busy = fieldtune(&[
        "state",
        "import",
        "--head",
        head.to_str().expect("utf-8"),
        "--into",
        state.to_str().expect("utf-8"),
        "--force",
    ]);
    assert!(!busy.status.success());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(err.contains("stop the service"), "{err}");

    // 2. Teach it: label the frames it gets wrong (or, when it gets none wrong, two frames of
    // each class) with their true class, by seq, as they come round again.
    let wrong: Vec<String> = before
        .iter()
        .filter(|(name, (class, _))| class.as_deref() != Some(truth[*name].0.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    let mut to_label: Vec<String> = wrong.clone();
    if to_label.is_empty() {
        let mut per_class: HashMap<&str, usize> = HashMap::new();
        for (name, (class, _)) in &truth {
            let n = per_class.entry(class).or_default();
            if *n < 2 {
                *n += 1;
                to_label.push(name.clone());
            }
        }
    }
    eprintln!(
        "imported head: {right_before}/24 right; labelling {} frames: {to_label:?}",
        to_label.len()
    );
    let mut client = device.client();
    let mut labelled = Vec::new();
    while labelled.len() < to_label.len() {
        let line = device_support::next_line(&device.lines);
        let name = file_name(line["origin"].as_str().expect("origin"));
        if !to_label.contains(&name) || labelled.contains(&name) {
            continue;
        }
        let reply = client
            .request(&Request::Label {
                class: line["truth"].as_str().expect("truth").to_string(),
                frame: line["seq"].as_u64(),
            })
            .expect("label request");
        assert!(reply.ok, "label refused: {reply:?}");
        labelled.push(name);
    }
    device.wait_settled();
    let (after, _) = device.pass();
    let right_after = accuracy(&after, &truth);
    let taught_right = to_label
        .iter()
        .filter(|n| after[*n].0.as_deref() == Some(truth[*n].0.as_str()))
        .count();
    eprintln!(
        "after {} labels: {right_after}/24 right; {taught_right} of the {} taught frames",
        labelled.len(),
        to_label.len()
    );
    assert!(
        after != before,
        "the labels changed nothing: the head was not fine-tuned"
    );
    assert!(
        taught_right * 2 > to_label.len(),
        "only {taught_right} of {} taught frames are right afterwards",
        to_label.len()
    );
    assert!(
        right_after >= right_before,
        "the labels made it worse: {right_after}/24 against {right_before}/24"
    );
    // Frames it had right and was not taught: the imported head is not forgotten.
    let kept = before
        .iter()
        .filter(|(n, (c, _))| !to_label.contains(n) && c.as_deref() == Some(truth[*n].0.as_str()))
        .filter(|(n, _)| after[*n].0.as_deref() == Some(truth[*n].0.as_str()))
        .count();
    let had = before
        .iter()
        .filter(|(n, (c, _))| !to_label.contains(n) && c.as_deref() == Some(truth[*n].0.as_str()))
        .count();
    assert!(
        kept * 10 >= had * 9,
        "the fine-tune forgot the imported head: {kept} of {had} untaught frames still right"
    );
    device.terminate();

    // 3. The fine-tuned head survives a restart.
    let inspect = ok(&["state", "inspect", state.to_str().expect("utf-8")]);
    assert!(inspect.contains("imported head     4 classes"), "{inspect}");
    assert!(
        inspect.contains("fitted to exactly these samples"),
        "{inspect}"
    );
    let device = Device::start(dir.path());
    let (restarted, _) = device.pass();
    assert_same(&restarted, &after, "after a restart");
    device.terminate();

    // 4. Without --force, a state with samples is refused and left as it was.
    let refused = fieldtune(&[
        "state",
        "import",
        "--head",
        head.to_str().expect("utf-8"),
        "--into",
        state.to_str().expect("utf-8"),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("labelled samples") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        ok(&["state", "inspect", state.to_str().expect("utf-8")])
            .lines()
            .filter(|l| !l.starts_with("in use") && !l.starts_with("  lock"))
            .collect::<Vec<_>>(),
        inspect
            .lines()
            .filter(|l| !l.starts_with("in use") && !l.starts_with("  lock"))
            .collect::<Vec<_>>()
    );
    // With --force the samples stay and fine-tune the head again: the same head as before.
    let forced = ok(&[
        "state",
        "import",
        "--head",
        head.to_str().expect("utf-8"),
        "--into",
        state.to_str().expect("utf-8"),
        "--force",
    ]);
    assert!(
        forced.contains(&format!(
            "fine-tuned on the {} stored samples",
            labelled.len()
        )),
        "{forced}"
    );
    let exported = dir.path().join("device.fth");
    ok(&[
        "state",
        "export",
        state.to_str().expect("utf-8"),
        "--head",
        exported.to_str().expect("utf-8"),
    ]);
    assert_same(
        &predict_all(&exported),
        &after,
        "the re-imported head fine-tuned on the same samples, exported",
    );
}

#[test]
fn a_head_of_another_backbone_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = dir.path().join("head.fth");
    ok(&[
        "train",
        "--data",
        corn("train").to_str().expect("utf-8"),
        "--out",
        head.to_str().expect("utf-8"),
    ]);
    // The same backbone under another checksum: a descriptor naming another file.
    let model_dir = dir.path().join("models");
    std::fs::create_dir_all(&model_dir).expect("mkdir");
    let onnx =
        std::fs::read(root().join("models/efficientnet_lite0_features.onnx")).expect("model");
    let mut other = onnx.clone();
    other.extend_from_slice(b"\0other");
    std::fs::write(model_dir.join("other.onnx"), &other).expect("write");
    let descriptor =
        std::fs::read_to_string(root().join("models/efficientnet_lite0.toml")).expect("descriptor");
    let sha = {
        use sha2::Digest;
        fieldtune::model::to_hex(&sha2::Sha256::digest(&other))
    };
    let original_sha = {
        use sha2::Digest;
        fieldtune::model::to_hex(&sha2::Sha256::digest(&onnx))
    };
    let descriptor = descriptor
        .replace("efficientnet_lite0_features.onnx", "other.onnx")
        .replace(&original_sha, &sha);
    std::fs::write(model_dir.join("other.toml"), descriptor).expect("write");
    let state = dir.path().join("state");
    let out = fieldtune(&[
        "state",
        "import",
        "--head",
        head.to_str().expect("utf-8"),
        "--into",
        state.to_str().expect("utf-8"),
        "--model",
        model_dir.join("other.toml").to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backbone"), "{err}");
    assert!(
        !state.join("imported-head.ft").exists(),
        "nothing is written for a refused head"
    );
}
