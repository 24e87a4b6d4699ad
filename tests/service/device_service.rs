//! The device end to end, with the real binary, the real model and real corn images: labels over
//! the control socket teach it, predictions follow, SIGTERM saves, a restart brings the same
//! predictions back; systemd notifications arrive in order; bad configurations fail clearly.

use crate::device_support;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use fieldtune::control::{ControlClient, Request};

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

fn corn() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corn4-mini/test")
}

/// A running `fieldtune run` with its prediction lines on a channel.
struct Device {
    child: Child,
    lines: Receiver<serde_json::Value>,
    socket: PathBuf,
}

impl Device {
    /// The corn-mini replay, unpaced.
    fn start(dir: &Path, extra_env: &[(&str, String)]) -> Device {
        let corn = corn();
        Device::start_with(
            dir,
            &[
                "--fps".as_ref(),
                "0".as_ref(),
                "--folder".as_ref(),
                corn.as_os_str(),
            ],
            extra_env,
        )
    }

    /// `fieldtune run SOURCE_ARGS` with its state and socket in `dir`.
    fn start_with(dir: &Path, source_args: &[&OsStr], extra_env: &[(&str, String)]) -> Device {
        let socket = dir.join("control.sock");
        let mut command = Command::new(BIN);
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("run")
            .args(source_args)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&socket)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start fieldtune run");
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

    fn client(&self) -> ControlClient {
        device_support::connect(&self.socket)
    }

    fn status(&self) -> serde_json::Value {
        let reply = self.client().request(&Request::Status).expect("status");
        assert!(reply.ok, "{reply:?}");
        reply.data.expect("status data")
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        device_support::terminate(&mut self.child)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // A failed assertion must not leave the service running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects `n` predictions: origin → predicted class (null = unknown), plus each line's truth.
fn collect(
    device: &Device,
    n: usize,
) -> (BTreeMap<String, Option<String>>, HashMap<String, String>) {
    let mut predicted = BTreeMap::new();
    let mut truth = HashMap::new();
    for _ in 0..n {
        let line = device.next_line();
        let origin = line["origin"].as_str().expect("origin").to_string();
        predicted.insert(origin.clone(), line["class"].as_str().map(str::to_string));
        truth.insert(origin, line["truth"].as_str().expect("truth").to_string());
    }
    (predicted, truth)
}

/// Waits until the head is settled: exactly the fit of the stored samples (no retrain due or
/// running), which is what a restart brings back.
fn wait_idle(device: &Device) {
    let start = Instant::now();
    loop {
        let status = device.status();
        if status["settled"].as_bool() == Some(true) {
            return;
        }
        assert!(
            start.elapsed() < device_support::patience(Duration::from_secs(120)),
            "the head never settles: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn labels_teach_the_running_device_and_survive_a_restart() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::start(dir.path(), &[]);

    // Label the first three frames of each class as they go by, by sequence number, as a person
    // watching the prediction lines would.
    let per_class = 3;
    let mut given: HashMap<String, usize> = HashMap::new();
    let mut labelled_origins = Vec::new();
    let mut client = device.client();
    while given.len() < 4 || given.values().any(|&n| n < per_class) {
        let line = device.next_line();
        let truth = line["truth"].as_str().expect("truth").to_string();
        let origin = line["origin"].as_str().expect("origin").to_string();
        if labelled_origins.contains(&origin)
            || given.get(&truth).copied().unwrap_or(0) >= per_class
        {
            continue;
        }
        let reply = client
            .request(&Request::Label {
                class: truth.clone(),
                frame: line["seq"].as_u64(),
            })
            .expect("label request");
        assert!(reply.ok, "label refused: {reply:?}");
        *given.entry(truth).or_default() += 1;
        labelled_origins.push(origin);
    }
    // One label through the real client command too.
    let cli = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(&device.socket)
        .output()
        .expect("fieldtune status");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let text = String::from_utf8_lossy(&cli.stdout);
    for class in ["Blight", "Common_Rust", "Gray_Leaf_Spot", "Healthy"] {
        assert!(text.contains(class), "status lists {class}: {text}");
    }

    wait_idle(&device);
    // Drop the lines predicted while labels and retrains were still landing (they queue up while
    // waiting), skip the frames already in flight, then one whole pass over the 24 images.
    let _ = device.lines.try_iter().count();
    collect(&device, 2);
    let (before, truth) = collect(&device, 24);
    let unseen: Vec<_> = before
        .keys()
        .filter(|o| !labelled_origins.contains(o))
        .collect();
    let right = unseen
        .iter()
        .filter(|o| before[**o].as_deref() == Some(truth[**o].as_str()))
        .count();
    let accuracy = right as f64 / unseen.len() as f64;
    eprintln!(
        "accuracy on {} frames never labelled: {accuracy:.2} (chance 0.25)",
        unseen.len()
    );
    assert!(
        accuracy >= 0.6,
        "accuracy {accuracy} is not far above chance"
    );

    let status = device.terminate();
    assert!(status.success(), "SIGTERM must exit 0, got {status:?}");
    assert!(
        !dir.path().join("control.sock").exists(),
        "the socket is removed on a clean stop"
    );

    let device = Device::start(dir.path(), &[]);
    let restored = device.status();
    assert_eq!(
        restored["classes"].as_array().map(Vec::len),
        Some(4),
        "{restored}"
    );
    let (after, _) = collect(&device, 24);
    // A pass is reshuffled, so 24 frames need not show every image: compare the images both saw.
    let common: Vec<_> = before.keys().filter(|o| after.contains_key(*o)).collect();
    assert!(
        common.len() >= 12,
        "enough images seen twice: {}",
        common.len()
    );
    for origin in common {
        assert_eq!(
            before[origin], after[origin],
            "{origin}: the same prediction after a restart"
        );
    }
    assert!(device.terminate().success());
}

#[test]
fn systemd_sees_ready_watchdog_and_stopping_in_order() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let (notify_path, notify) = notify_socket(dir.path());
    let device = Device::start(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", notify_path.display().to_string()),
            ("WATCHDOG_USEC", "400000".to_string()),
        ],
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut receive = |seen: &mut Vec<String>| {
        let n = notify.recv(&mut buf).expect("a notification");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        seen.push(text.clone());
        text
    };
    while !receive(&mut seen).contains("READY=1") {}
    while !receive(&mut seen).contains("WATCHDOG=1") {}
    // A prediction line proves the loop runs, then stop it.
    device.next_line();
    let status = device.terminate();
    assert!(status.success(), "{status:?}");
    while !receive(&mut seen).contains("STOPPING=1") {}
    let ready = seen.iter().position(|m| m.contains("READY=1"));
    let watchdog = seen.iter().position(|m| m.contains("WATCHDOG=1"));
    let stopping = seen.iter().position(|m| m.contains("STOPPING=1"));
    assert!(ready < watchdog && watchdog < stopping, "{seen:?}");
}

/// A socket in `dir` standing in for systemd's NOTIFY_SOCKET: its path and its receiving end.
fn notify_socket(dir: &Path) -> (PathBuf, UnixDatagram) {
    let path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(device_support::patience(Duration::from_secs(120))))
        .expect("timeout");
    (path, notify)
}

/// Reads sd_notify datagrams until one contains `wanted`; returns it.
fn notification_with(notify: &UnixDatagram, wanted: &str) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = notify.recv(&mut buf).expect("a notification");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains(wanted) {
            return text;
        }
    }
}

/// The status of a service, over its socket.
fn status_at(socket: &Path) -> serde_json::Value {
    let reply = device_support::connect(socket)
        .request(&Request::Status)
        .expect("status");
    assert!(reply.ok, "{reply:?}");
    reply.data.expect("status data")
}

#[test]
fn a_source_missing_at_start_is_waited_for_and_frames_flow_when_it_appears() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let (notify_path, notify) = notify_socket(dir.path());
    // The folder stands in for a USB camera that enumerates late: it is not there at start.
    let later = dir.path().join("later");
    let board = dir.path().join("late.toml");
    std::fs::write(
        &board,
        format!(
            "[source]\nkind = \"folder\"\npath = {:?}\nwait = true\nfps = 0\n",
            later.display()
        ),
    )
    .expect("write board");
    let device = Device::start_with(
        dir.path(),
        &["--board".as_ref(), board.as_os_str()],
        &[("NOTIFY_SOCKET", notify_path.display().to_string())],
    );
    let (socket, lines) = (&device.socket, &device.lines);

    // READY is sent although there is no source, and says what the service waits for.
    let ready = notification_with(&notify, "READY=1");
    assert!(
        ready.contains("STATUS=waiting for folder") && ready.contains("later"),
        "{ready}"
    );
    let status = status_at(socket);
    assert!(
        status["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("waiting for folder")),
        "{status}"
    );
    assert_eq!(status["frames"], 0, "{status}");
    assert!(
        lines.try_recv().is_err(),
        "no prediction before the source is there"
    );

    // The source appears whole (a rename, as a mount would): frames flow.
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).expect("mkdir");
    for class in ["Blight", "Healthy"] {
        std::fs::create_dir(staging.join(class)).expect("mkdir");
        for entry in std::fs::read_dir(corn().join(class)).expect("class folder") {
            let path = entry.expect("entry").path();
            std::fs::copy(
                &path,
                staging.join(class).join(path.file_name().expect("name")),
            )
            .expect("copy");
        }
    }
    std::fs::rename(&staging, &later).expect("rename into place");
    let line = device_support::next_line(lines);
    assert!(
        line["origin"].as_str().is_some_and(|o| o.contains("later")),
        "{line}"
    );
    let classifying = notification_with(&notify, "STATUS=classifying");
    assert!(classifying.contains("later"), "{classifying}");
    let status = status_at(socket);
    assert!(
        status["source"]
            .as_str()
            .is_some_and(|s| !s.contains("waiting")),
        "{status}"
    );
    assert!(device.terminate().success());
}

#[test]
fn a_camera_missing_at_start_keeps_the_service_up_and_says_so() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let (notify_path, notify) = notify_socket(dir.path());
    // A camera board waits by default (`source.wait`); without a camera the service still starts.
    let board = dir.path().join("camera.toml");
    std::fs::write(
        &board,
        "[source]\nkind = \"camera\"\ndevice = \"/dev/v4l/by-id/usb-none-video-index0\"\n",
    )
    .expect("write board");
    let device = Device::start_with(
        dir.path(),
        &["--board".as_ref(), board.as_os_str()],
        &[("NOTIFY_SOCKET", notify_path.display().to_string())],
    );
    let socket = &device.socket;
    let ready = notification_with(&notify, "READY=1");
    assert!(
        ready.contains("STATUS=waiting for camera /dev/v4l/by-id/usb-none-video-index0"),
        "{ready}"
    );
    let status = status_at(socket);
    assert!(
        status["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("waiting for camera")),
        "{status}"
    );
    let label = device_support::connect(socket)
        .request(&Request::Label {
            class: "Blight".into(),
            frame: None,
        })
        .expect("label request");
    assert!(!label.ok, "no frame to label yet: {label:?}");
    let stopped = device.terminate();
    assert!(stopped.success(), "a clean stop while waiting: {stopped:?}");
}

#[test]
fn client_commands_find_the_installed_service_by_themselves() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    // The service listens where systemd's RuntimeDirectory= puts it (here, in the test's folder).
    let device = Device::start(dir.path(), &[]);
    device.client();
    let elsewhere = tempfile::tempdir().expect("a folder with no fieldtune.sock");
    let client = |runtime: &Path, args: &[&str]| {
        Command::new(BIN)
            .current_dir(elsewhere.path())
            .args(args)
            .env("FIELDTUNE_RUNTIME_DIR", runtime)
            .output()
            .expect("client")
    };
    let found = client(dir.path(), &["status", "--json"]);
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&found.stdout).expect("status JSON");
    assert_eq!(status["board"], "desktop", "{status}");

    // --socket and --board still win over the runtime directory.
    let bogus = elsewhere.path().join("nothing.sock");
    let overridden = client(
        dir.path(),
        &["status", "--socket", bogus.to_str().expect("utf-8")],
    );
    assert!(!overridden.status.success());
    assert!(
        String::from_utf8_lossy(&overridden.stderr).contains("nothing.sock"),
        "{}",
        String::from_utf8_lossy(&overridden.stderr)
    );
    let board = elsewhere.path().join("board.toml");
    std::fs::write(&board, "[control]\nsocket = \"board.sock\"\n").expect("write");
    let by_board = client(
        dir.path(),
        &["undo", "--board", board.to_str().expect("utf-8")],
    );
    assert!(!by_board.status.success());
    assert!(
        String::from_utf8_lossy(&by_board.stderr).contains("board.sock"),
        "{}",
        String::from_utf8_lossy(&by_board.stderr)
    );

    // No service socket in the runtime directory: the desktop board's socket, as before, and the
    // error names both places.
    let empty = tempfile::tempdir().expect("empty runtime dir");
    let missing = client(empty.path(), &["status"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("control.sock") && err.contains("fieldtune.sock") && err.contains("--socket"),
        "{err}"
    );
    assert!(device.terminate().success());
}

/// Runs `fieldtune run` with a board file holding `board`; returns its exit status and stderr.
fn run_with_board(dir: &Path, name: &str, board: &str) -> (Option<i32>, String) {
    let path = dir.join(name);
    std::fs::write(&path, board).expect("write board");
    let output = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg("--board")
        .arg(&path)
        .arg("--state")
        .arg(dir.join("state"))
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run fieldtune");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn errors_a_restart_cannot_fix_exit_with_the_statuses_the_unit_does_not_restart() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("boards/fieldtune.service")).expect("unit");
    let prevented: Vec<i32> = unit
        .lines()
        .find_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .expect("RestartPreventExitStatus= in the unit")
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    let folder = format!(
        "[source]\nkind = \"folder\"\npath = {:?}\n[control]\nsocket = \"none\"\n",
        corn().display()
    );

    // A board file that is not valid: 78 (EX_CONFIG).
    let (code, err) = run_with_board(dir.path(), "bad.toml", "[source]\norder = \"backwards\"\n");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("source.order"), "{err}");

    // A model descriptor that is not there: 66 (wrong model).
    let missing = format!("{folder}[model]\ndescriptor = \"/nonexistent/model.toml\"\n");
    let (code, err) = run_with_board(dir.path(), "nomodel.toml", &missing);
    assert_eq!(code, Some(66), "{err}");
    assert!(err.contains("/nonexistent/model.toml"), "{err}");

    // A model file that is not the one its descriptor describes: 66.
    let descriptor = std::fs::read_to_string(root.join("models/efficientnet_lite0.toml"))
        .expect("descriptor")
        .replace(
            "file = \"efficientnet_lite0_features.onnx\"",
            &format!(
                "file = {:?}",
                root.join("models/efficientnet_lite0_features.onnx")
                    .display()
            ),
        )
        .replace("sha256 = \"e3", "sha256 = \"00");
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, descriptor).expect("write descriptor");
    let board = format!("{folder}[model]\ndescriptor = {:?}\n", wrong.display());
    let (code, err) = run_with_board(dir.path(), "wrongmodel.toml", &board);
    assert_eq!(code, Some(66), "{err}");
    assert!(err.contains("sha256"), "{err}");

    // A second service on a busy state directory may succeed after a restart: 1.
    let device = Device::start(dir.path(), &[]);
    device.client();
    let (code, err) = run_with_board(dir.path(), "second.toml", &folder);
    assert_eq!(code, Some(1), "{err}");
    assert!(device.terminate().success());

    for status in [65, 66, 78] {
        assert!(
            prevented.contains(&status),
            "the unit must not restart on {status}: {prevented:?}"
        );
    }
    assert!(!prevented.contains(&1), "{prevented:?}");
}

/// `JOURNAL_STREAM`'s value for a file: its device and inode, as systemd gives them for the stream.
fn journal_stream_of(file: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).expect("stat");
    format!("{}:{}", meta.dev(), meta.ino())
}

#[test]
fn under_journald_every_line_carries_its_priority() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    // A source that is not there: the service logs a warning and keeps running.
    let board = dir.path().join("late.toml");
    std::fs::write(
        &board,
        format!(
            "[source]\nkind = \"folder\"\npath = {:?}\nwait = true\n[control]\nsocket = \"none\"\n",
            dir.path().join("later").display()
        ),
    )
    .expect("write board");
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg("--board")
        .arg(&board)
        .arg("--state")
        .arg(dir.path().join("state"))
        .env_remove("NOTIFY_SOCKET")
        .env("JOURNAL_STREAM", journal_stream_of(&log))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start fieldtune run");
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .expect("read log")
        .contains("still waiting")
    {
        assert!(
            start.elapsed() < device_support::patience(Duration::from_secs(120)),
            "no waiting warning: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(device_support::terminate(&mut child).success());
    let text = std::fs::read_to_string(&log).expect("read log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        assert!(
            line.starts_with("<4>") || line.starts_with("<6>"),
            "every line has its priority: {line:?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("<4>")
            && l.contains("WARN")
            && l.contains("waiting for folder")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("model efficientnet_lite0 loaded")),
        "{text}"
    );
    // What `journalctl -p warning` (priorities 0-4) would show: the warnings, and no info line.
    let shown: Vec<&&str> = lines
        .iter()
        .filter(|l| l[1..2].parse::<u8>().is_ok_and(|p| p <= 4))
        .collect();
    assert!(!shown.is_empty(), "{text}");
    assert!(shown.iter().all(|l| l.contains("WARN")), "{shown:?}");

    // The fatal error: every line at priority err (3).
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[source]\norder = \"backwards\"\n").expect("write");
    let log = dir.path().join("error.log");
    let file = std::fs::File::create(&log).expect("log file");
    let status = Command::new(BIN)
        .arg("run")
        .arg("--board")
        .arg(&bad)
        .env("JOURNAL_STREAM", journal_stream_of(&log))
        .stderr(file)
        .status()
        .expect("run");
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).expect("read log");
    assert!(text.starts_with("<3>error: board file"), "{text}");
    assert!(text.lines().all(|l| l.starts_with("<3>")), "{text}");

    // JOURNAL_STREAM inherited, but stderr is somewhere else: plain lines.
    let plain = Command::new(BIN)
        .arg("run")
        .arg("--board")
        .arg(&bad)
        .env("JOURNAL_STREAM", journal_stream_of(&log))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.starts_with("error: board file"), "{err}");
}

fn run_fails(args: &[&str], dir: &Path) -> String {
    let output = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .args(args)
        .arg("--state")
        .arg(dir.join("state"))
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run fieldtune");
    assert!(!output.status.success(), "expected a failure for {args:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn bad_board_missing_camera_or_gpio_chip_and_busy_socket_are_clear_errors() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[source]\nkind = \"folder\"\norder = \"backwards\"\n").expect("write");
    let err = run_fails(&["--board", bad.to_str().expect("utf-8")], dir.path());
    assert!(
        err.contains("source.order") && err.contains("shuffled"),
        "{err}"
    );

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "[source]\nkidn = \"folder\"\n").expect("write");
    let err = run_fails(&["--board", unknown.to_str().expect("utf-8")], dir.path());
    assert!(
        err.contains("kidn") && err.contains("unknown.toml"),
        "{err}"
    );

    let camera = dir.path().join("camera.toml");
    std::fs::write(
        &camera,
        "[source]\nkind = \"camera\"\ndevice = \"/dev/video97\"\nwait = false\n\
         [control]\nsocket = \"none\"\n",
    )
    .expect("write");
    let err = run_fails(&["--board", camera.to_str().expect("utf-8")], dir.path());
    assert!(
        err.contains("/dev/video97") && err.contains("not found"),
        "{err}"
    );

    let gpio = dir.path().join("gpio.toml");
    std::fs::write(
        &gpio,
        "[source]\nkind = \"folder\"\npath = \"tests/data/corn4-mini/train\"\n\
         [buttons]\nbackend = \"gpio-cdev\"\nchip = \"/dev/gpiochip97\"\nclass_pins = [1, 2]\n\
         mode_pin = 3\n[control]\nsocket = \"none\"\n",
    )
    .expect("write");
    let err = run_fails(&["--board", gpio.to_str().expect("utf-8")], dir.path());
    assert!(
        err.contains("/dev/gpiochip97")
            && err.contains("not found")
            && err.contains("buttons.chip"),
        "{err}"
    );

    // A live service owns the socket: a second one must refuse it, not steal it.
    let device = Device::start(dir.path(), &[]);
    device.client();
    let socket = device.socket.to_str().expect("utf-8").to_string();
    let err = run_fails(&["--socket", &socket], dir.path());
    assert!(err.contains("in use"), "{err}");
    assert!(device.terminate().success());

    // A stale socket left by a crash is replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let client = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(&stale)
        .output()
        .expect("status");
    assert!(!client.status.success());
    assert!(
        String::from_utf8_lossy(&client.stderr).contains("fieldtune run"),
        "the client says how to start the service"
    );
}
