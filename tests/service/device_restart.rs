//! The device across crashes and restarts, end to end with the real binary, the real model, real
//! corn images, real signals and real files: a SIGKILL mid-session loses nothing and the restarted
//! device predicts as well as before; a second service on the same state is refused; a damaged
//! snapshot is rebuilt from the journal or, when it cannot be, the service refuses to start (65)
//! without touching the directory; a full disk refuses labels truthfully; undo takes back a whole
//! label after a restart.
//!
//! Every wait is on something the service says (a prediction line, a status, an exit) and is
//! bounded, with a message saying what did not happen. The tests run one at a time (the
//! machine has two cores and each service runs the backbone as fast as it can).

use crate::device_support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

/// Model load, state recovery (and a refit) up to the first prediction line.
fn startup() -> Duration {
    device_support::patience(Duration::from_secs(120))
}

/// Everything else the service is waited on for.
fn wait() -> Duration {
    device_support::patience(Duration::from_secs(60))
}

/// One service at a time (shared with the other modules of this test binary).
fn serial() -> MutexGuard<'static, ()> {
    device_support::one_service_at_a_time()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corn_test() -> PathBuf {
    root().join("tests/data/corn4-mini/test")
}

/// The class folders of corn4-mini/test.
fn corn_classes() -> Vec<String> {
    let mut classes: Vec<String> = fs::read_dir(corn_test())
        .expect("read corn4-mini/test")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    assert_eq!(classes.len(), 4, "corn4-mini/test has four classes");
    classes
}

/// One prediction line.
#[derive(Debug, Clone)]
struct Line {
    seq: u64,
    origin: String,
    class: Option<String>,
    truth: String,
}

fn parse_line(text: &str) -> Result<Line, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("prediction line {text:?}: {e}"))?;
    let field = |name: &str| {
        v.get(name)
            .ok_or_else(|| format!("prediction line without {name}: {text}"))
    };
    Ok(Line {
        seq: field("seq")?
            .as_u64()
            .ok_or_else(|| format!("seq is not a number: {text}"))?,
        origin: field("origin")?
            .as_str()
            .ok_or_else(|| format!("origin is not a string: {text}"))?
            .to_string(),
        class: field("class")?.as_str().map(str::to_string),
        truth: field("truth")?
            .as_str()
            .ok_or_else(|| format!("truth is not a string: {text}"))?
            .to_string(),
    })
}

/// Follows a predictions file as the service appends to it (like `tail -f`), one parsed line at
/// a time on a channel.
fn follow(path: PathBuf, stop: Arc<AtomicBool>) -> Receiver<Result<Line, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let file = loop {
            match fs::File::open(&path) {
                Ok(f) => break f,
                Err(_) if !stop.load(Ordering::Relaxed) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return,
            }
        };
        let mut reader = BufReader::new(file);
        let mut pending = String::new();
        loop {
            match reader.read_line(&mut pending) {
                Ok(0) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                // A line still being written stays in `pending` until its newline arrives.
                Ok(_) if pending.ends_with('\n') => {
                    let line = parse_line(pending.trim_end());
                    pending.clear();
                    if tx.send(line).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(format!("reading {}: {e}", path.display())));
                    return;
                }
            }
        }
    });
    rx
}

/// The output of a client command.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs a command to its end, at most `limit`; panics (after killing it) past that.
fn run_bounded(mut command: Command, limit: Duration, what: &str) -> Ran {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let Some(status) = wait_bounded(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        // The pipes close with the process: show what it said meanwhile.
        panic!(
            "{what} did not finish within {} s (killed); its stderr:\n{}",
            limit.as_secs(),
            err.join().unwrap_or_default()
        )
    };
    Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The child's exit status, or None if it still runs after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `fieldtune <args> --socket <socket>`, bounded.
fn client(socket: &Path, args: &[&str]) -> Ran {
    let mut command = Command::new(BIN);
    command
        .current_dir(root())
        .args(args)
        .arg("--socket")
        .arg(socket);
    run_bounded(command, wait(), &format!("fieldtune {}", args.join(" ")))
}

/// `fieldtune run` on corn4-mini/test as fast as it goes, with the test's state, socket and
/// predictions file (more arguments may follow).
fn run_command(state: &Path, socket: &Path, predictions: &Path) -> Command {
    run_at(state, socket, predictions, "0")
}

/// As [`run_command`], at `fps` frames a second.
fn run_at(state: &Path, socket: &Path, predictions: &Path, fps: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(root())
        .args(["run", "--fps", fps, "--folder"])
        .arg(corn_test())
        .arg("--state")
        .arg(state)
        .arg("--socket")
        .arg(socket)
        .arg("--predictions")
        .arg(predictions);
    command
}

/// A running `fieldtune run`, followed through its predictions file and its control socket.
struct Device {
    child: Child,
    pid: u32,
    socket: PathBuf,
    lines: Receiver<Result<Line, String>>,
    /// Lines read but not yet taken.
    buffered: VecDeque<Line>,
    stop_following: Arc<AtomicBool>,
}

impl Device {
    /// Starts `command` (a `fieldtune run` writing predictions to `predictions`, serving
    /// `socket`) and waits for its first prediction line.
    fn start(mut command: Command, socket: &Path, predictions: &Path) -> Device {
        // Each run gets its own predictions file (the service appends).
        let _ = fs::remove_file(predictions);
        command
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command.spawn().expect("start fieldtune run");
        let stop_following = Arc::new(AtomicBool::new(false));
        let mut device = Device {
            pid: child.id(),
            child,
            socket: socket.to_path_buf(),
            lines: follow(predictions.to_path_buf(), Arc::clone(&stop_following)),
            buffered: VecDeque::new(),
            stop_following,
        };
        let first = device.receive(startup(), "the first prediction line");
        device.buffered.push_back(first);
        device
    }

    /// The next line from the file, waiting up to `limit`; panics if the service died.
    fn receive(&mut self, limit: Duration, what: &str) -> Line {
        let start = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(line)) => return line,
                Ok(Err(e)) => panic!("{e}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the predictions file stopped"),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("fieldtune run (pid {}) exited ({status}) while waiting for {what}; its log is above", self.pid);
            }
            assert!(
                start.elapsed() < limit,
                "no {what} within {} s (pid {})",
                limit.as_secs(),
                self.pid
            );
        }
    }

    /// The next prediction line in order.
    fn next_line(&mut self) -> Line {
        match self.buffered.pop_front() {
            Some(line) => line,
            None => self.receive(wait(), "prediction line"),
        }
    }

    /// Everything written so far (at least one line): the newest is the frame on screen now.
    fn latest(&mut self) -> Vec<Line> {
        let mut lines: Vec<Line> = self.buffered.drain(..).collect();
        while let Ok(line) = self.lines.try_recv() {
            lines.push(line.unwrap_or_else(|e| panic!("{e}")));
        }
        if lines.is_empty() {
            lines.push(self.receive(wait(), "prediction line"));
        }
        lines
    }

    /// Forgets the lines written so far (frames predicted before now).
    fn skip_written(&mut self) {
        self.buffered.clear();
        while let Ok(line) = self.lines.try_recv() {
            line.unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn status(&self) -> serde_json::Value {
        let ran = client(&self.socket, &["status", "--json"]);
        assert!(
            ran.status.success(),
            "fieldtune status failed: {}",
            ran.stderr
        );
        serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", ran.stdout))
    }

    /// `fieldtune label CLASS --frame SEQ`: Ok(stdout) or Err(stderr).
    fn label(&self, class: &str, frame: u64) -> Result<String, String> {
        let seq = frame.to_string();
        let ran = client(&self.socket, &["label", class, "--frame", &seq]);
        if ran.status.success() {
            Ok(ran.stdout)
        } else {
            Err(ran.stderr)
        }
    }

    /// Labels the newest frame whose image passes `wanted` with `class_of(line)`, retrying on
    /// frames that scrolled out of the held window. Returns the line labelled and the reply.
    fn label_newest(
        &mut self,
        wanted: &dyn Fn(&Line) -> bool,
        class_of: &dyn Fn(&Line) -> String,
    ) -> (Line, Result<String, String>) {
        let start = Instant::now();
        loop {
            assert!(
                start.elapsed() < wait(),
                "no frame could be labelled within {} s",
                wait().as_secs()
            );
            let lines = self.latest();
            // Only the newest few: older ones may already have left the 16 held frames.
            let Some(line) = lines.iter().rev().take(4).find(|l| wanted(l)).cloned() else {
                continue;
            };
            match self.label(&class_of(&line), line.seq) {
                Err(e) if e.contains("no longer held") => continue,
                reply => return (line, reply),
            }
        }
    }

    /// SIGKILL: no snapshot, no clean-up, as a power cut would leave it.
    fn kill9(mut self) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 {}", self.pid);
        let status = wait_bounded(&mut self.child, wait()).expect("a SIGKILLed process ends");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> ExitStatus {
        // SAFETY: as in kill9.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {}", self.pid);
        wait_bounded(&mut self.child, wait()).unwrap_or_else(|| {
            panic!(
                "fieldtune run did not stop within {} s of SIGTERM",
                wait().as_secs()
            )
        })
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // A failed assertion must not leave the service running.
        self.stop_following.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status's classes as (name, stored samples).
fn classes(status: &serde_json::Value) -> Vec<(String, u64)> {
    status["classes"]
        .as_array()
        .unwrap_or_else(|| panic!("status without classes: {status}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("class name").to_string(),
                c["samples"].as_u64().expect("class samples"),
            )
        })
        .collect()
}

fn total_samples(status: &serde_json::Value) -> u64 {
    classes(status).iter().map(|(_, n)| n).sum()
}

/// Labels `per_class` different images of every class with their folder's class, by sequence
/// number, as a person reading the prediction lines would. Returns the images labelled.
fn label_every_class(device: &mut Device, per_class: usize) -> BTreeMap<String, String> {
    let all = corn_classes();
    let mut given: BTreeMap<String, usize> = BTreeMap::new();
    let mut labelled: BTreeMap<String, String> = BTreeMap::new();
    while all
        .iter()
        .any(|c| given.get(c).copied().unwrap_or(0) < per_class)
    {
        let chosen = |l: &Line| {
            !labelled.contains_key(&l.origin)
                && given.get(&l.truth).copied().unwrap_or(0) < per_class
        };
        let (line, reply) = device.label_newest(&chosen, &|l| l.truth.clone());
        if let Err(e) = reply {
            panic!("label of frame {} as {} refused: {e}", line.seq, line.truth);
        }
        *given.entry(line.truth.clone()).or_default() += 1;
        labelled.insert(line.origin, line.truth);
    }
    labelled
}

/// Waits until no retrain runs, at least `min_retrains` were swapped in, and the status (classes,
/// retrains) has not changed for two seconds.
fn wait_settled(device: &Device, min_retrains: u64) -> serde_json::Value {
    let start = Instant::now();
    let mut last: Option<(Vec<(String, u64)>, u64)> = None;
    let mut since = Instant::now();
    loop {
        let status = device.status();
        let retrains = status["retrains"].as_u64().expect("retrains");
        let busy = status["retraining"].as_bool().expect("retraining");
        let key = (classes(&status), retrains);
        if busy || retrains < min_retrains || last.as_ref() != Some(&key) {
            last = Some(key);
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(2) {
            return status;
        }
        assert!(
            start.elapsed() < wait(),
            "the service did not settle (retraining false, retrains >= {min_retrains}, \
             nothing changing) within {} s; last status: {status}",
            wait().as_secs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Accuracy (predicted class == folder class) over the next `n` prediction lines.
fn accuracy(device: &mut Device, n: usize) -> f64 {
    let right = (0..n)
        .map(|_| device.next_line())
        .filter(|l| l.class.as_deref() == Some(l.truth.as_str()))
        .count();
    right as f64 / n as f64
}

#[test]
fn sigkill_mid_session_then_restart_predicts_as_well_as_before() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let socket = dir.path().join("control.sock");
    let (first, second) = (
        dir.path().join("before.jsonl"),
        dir.path().join("after.jsonl"),
    );
    let mut device = Device::start(run_command(&state, &socket, &first), &socket, &first);

    let labelled = label_every_class(&mut device, 3);
    assert_eq!(labelled.len(), 12);
    let settled = wait_settled(&device, 1);
    let counts = classes(&settled);
    assert_eq!(counts.len(), 4, "{settled}");
    assert_eq!(total_samples(&settled), 12, "{settled}");

    // Three passes' worth over the 24 images, from frames predicted after settling.
    let n = 72;
    device.skip_written();
    let before = accuracy(&mut device, n);
    device.kill9();

    let mut device = Device::start(run_command(&state, &socket, &second), &socket, &second);
    let restored = device.status();
    // From the very first frame after the restart.
    let after = accuracy(&mut device, n);
    eprintln!(
        "accuracy over {n} prediction lines (12 of the 24 images labelled): before SIGKILL \
         {before:.3}, after restart {after:.3} (chance 0.25)"
    );
    assert_eq!(
        classes(&restored),
        counts,
        "the restarted service has exactly the classes and counts it had"
    );
    assert!(
        after >= before - 0.05,
        "accuracy fell from {before:.3} to {after:.3} after SIGKILL and restart"
    );
    assert!(
        before >= 0.6,
        "accuracy {before:.3} is not far above chance"
    );
    assert!(device.terminate().success());
}

#[test]
fn a_second_service_on_the_same_state_is_refused() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let socket = dir.path().join("first.sock");
    let predictions = dir.path().join("first.jsonl");
    let mut device = Device::start(
        run_command(&state, &socket, &predictions),
        &socket,
        &predictions,
    );
    let frames_before = device.status()["frames"].as_u64().expect("frames");

    let other_socket = dir.path().join("second.sock");
    let started = Instant::now();
    let second = run_bounded(
        run_command(&state, &other_socket, &dir.path().join("second.jsonl")),
        device_support::patience(Duration::from_secs(30)),
        "a second fieldtune run on a state directory in use (it must refuse at once)",
    );
    let took = started.elapsed();
    eprintln!(
        "the second service exited with {} after {:.2} s: {}",
        second.status,
        took.as_secs_f64(),
        second.stderr.trim()
    );
    assert!(!second.status.success(), "{}", second.stderr);
    assert!(
        second.stderr.contains(&device.pid.to_string()),
        "the refusal names the holder's PID {}: {}",
        device.pid,
        second.stderr
    );
    assert!(
        second.stderr.contains(&socket.display().to_string()),
        "the refusal names the socket the holder serves ({}): {}",
        socket.display(),
        second.stderr
    );
    assert!(
        !other_socket.exists(),
        "the refused service must not have bound its socket"
    );

    // The first one keeps serving: it answers and goes on predicting.
    device.skip_written();
    device.next_line();
    let status = device.status();
    assert!(
        status["frames"].as_u64().expect("frames") > frames_before,
        "{status}"
    );
    let (line, reply) = device.label_newest(&|_| true, &|l| l.truth.clone());
    reply.unwrap_or_else(|e| panic!("the first service refuses a label of {line:?}: {e}"));
    assert!(device.terminate().success());
}

/// Every file of `dir` but the lock, with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .expect("read the state directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The lock names the process holding it: every run rewrites it.
        .filter(|name| !name.contains("lock"))
        .map(|name| {
            let bytes = fs::read(dir.join(&name)).unwrap_or_default();
            (name, bytes)
        })
        .collect()
}

fn names_like(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read the state directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    found.sort();
    found
}

/// Flips every bit of the byte in the middle of `file`.
fn flip_middle_byte(file: &Path) {
    let mut bytes = fs::read(file).expect("read the snapshot");
    assert!(
        bytes.len() > 2,
        "{} is {} bytes",
        file.display(),
        bytes.len()
    );
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    fs::write(file, &bytes).expect("write the snapshot back");
}

/// The default board (`boards/desktop.toml`) with a day between periodic snapshots, written into
/// `dir`; the command line still gives the source, state, socket and predictions.
fn board_without_periodic_snapshots(dir: &Path) -> PathBuf {
    let default =
        fs::read_to_string(root().join("boards/desktop.toml")).expect("read desktop.toml");
    let interval = "snapshot_interval_s = 60";
    assert!(
        default.contains(interval),
        "boards/desktop.toml sets {interval}"
    );
    let board = dir.join("board.toml");
    fs::write(
        &board,
        default.replace(interval, "snapshot_interval_s = 86400"),
    )
    .expect("write the board");
    board
}

#[test]
fn a_flipped_byte_in_the_only_snapshot_never_starts_empty() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let socket = dir.path().join("control.sock");
    let predictions = dir.path().join("predictions.jsonl");
    // "The only snapshot" must not depend on speed: the default board snapshots every 60 s, which a
    // session of eight labels outlasts under emulation (two snapshots, and the journal they cover
    // pruned), so this test's board snapshots only when the service stops.
    let board = board_without_periodic_snapshots(dir.path());
    let start = |state: &Path| {
        let mut command = run_command(state, &socket, &predictions);
        command.arg("--board").arg(&board);
        Device::start(command, &socket, &predictions)
    };

    let mut device = start(&state);
    label_every_class(&mut device, 2);
    let labelled = classes(&device.status());
    assert_eq!(labelled.len(), 4);
    assert!(device.terminate().success(), "SIGTERM stops cleanly");
    let snapshots = names_like(&state, "snapshot-", ".ft");
    assert_eq!(
        snapshots.len(),
        1,
        "a short session then SIGTERM leaves one snapshot: {snapshots:?}"
    );
    let journals = names_like(&state, "journal-", ".ft");
    assert!(
        !journals.is_empty(),
        "the journal is kept while only one snapshot exists"
    );

    // The same state, copied before the damage, for the unrecoverable case below.
    let bare = dir.path().join("bare");
    fs::create_dir(&bare).expect("mkdir");
    for (name, bytes) in contents(&state) {
        fs::write(bare.join(name), bytes).expect("copy the state");
    }

    // 1. The only snapshot is damaged, the journal holds every event: nothing is lost.
    flip_middle_byte(&snapshots[0]);
    let device = start(&state);
    let rebuilt = device.status();
    let kept = names_like(&state, "snapshot-", ".corrupt");
    assert_eq!(
        kept.len(),
        1,
        "the damaged snapshot is kept aside: {kept:?}"
    );
    assert_eq!(
        classes(&rebuilt),
        labelled,
        "rebuilt from the journal with every label: {rebuilt}"
    );
    assert!(device.terminate().success());

    // 2. The only snapshot is damaged and the journal segments it covers are gone: refuse.
    for journal in names_like(&bare, "journal-", ".ft") {
        fs::remove_file(journal).expect("remove a journal segment");
    }
    let snapshots = names_like(&bare, "snapshot-", ".ft");
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    flip_middle_byte(&snapshots[0]);
    let untouched = contents(&bare);
    let refused = run_bounded(
        run_command(&bare, &socket, &predictions),
        startup(),
        "fieldtune run on an unrecoverable state",
    );
    eprintln!(
        "unrecoverable state: {} — {}",
        refused.status,
        refused.stderr.trim()
    );
    assert_eq!(
        refused.status.code(),
        Some(65),
        "an unrecoverable state exits with 65: {}",
        refused.stderr
    );
    for needed in ["--start-fresh", "fieldtune state inspect"] {
        assert!(
            refused.stderr.contains(needed),
            "the refusal mentions {needed}: {}",
            refused.stderr
        );
    }
    let after = contents(&bare);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        untouched.keys().collect::<Vec<_>>(),
        "a refused start changes no file name"
    );
    assert!(after == untouched, "a refused start changes no byte");

    // With --start-fresh it starts from what is left.
    let mut command = run_command(&bare, &socket, &predictions);
    command.arg("--start-fresh");
    let device = Device::start(command, &socket, &predictions);
    let fresh = device.status();
    eprintln!("--start-fresh started with classes {:?}", classes(&fresh));
    assert!(device.terminate().success());
}

/// A tmpfs mounted for the test; unmounted when dropped, also after a panic.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` at `dir`; None (with the reason printed) when not permitted.
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        fs::create_dir_all(dir).expect("mkdir the mount point");
        let ran = run_bounded(
            {
                let mut c = Command::new("mount");
                c.args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                    .arg(dir);
                c
            },
            wait(),
            "mount",
        );
        if ran.status.success() {
            return Some(Mount(dir.to_path_buf()));
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let text = ran.stderr.to_lowercase();
        if !root
            || text.contains("permission denied")
            || text.contains("not permitted")
            || text.contains("superuser")
        {
            eprintln!(
                "\n!!!!!!!!!!\n!!! a_full_disk_refuses_labels_truthfully NOT RUN: mounting a \
                 tmpfs is not permitted here (euid {}, `mount`: {}). It needs root with \
                 CAP_SYS_ADMIN, as in CI.\n!!!!!!!!!!\n",
                // SAFETY: as above.
                unsafe { libc::geteuid() },
                ran.stderr.trim()
            );
            return None;
        }
        panic!("mount -t tmpfs failed as root: {}", ran.stderr);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let plain = Command::new("umount").arg(&self.0).status();
        if !plain.is_ok_and(|s| s.success()) {
            // Something still holds it (a service not reaped yet): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Bytes free to an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL in the path");
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    assert_eq!(rc, 0, "statvfs {}", dir.display());
    stats.f_bavail as u64 * stats.f_frsize as u64
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    names_like(dir, "", ".tmp")
}

#[test]
fn a_full_disk_refuses_labels_truthfully() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    // Declared before the device, so dropped after it: the service is gone before the unmount.
    let Some(_mount) = Mount::tmpfs(&state, "2m") else {
        return;
    };
    let socket = dir.path().join("control.sock");
    let predictions = dir.path().join("predictions.jsonl");
    // Five frames a second: the 16 held frames span three seconds, so the refused frame can be
    // labelled again once space is freed.
    let start = || {
        Device::start(
            run_at(&state, &socket, &predictions, "5"),
            &socket,
            &predictions,
        )
    };
    let mut device = start();

    let filler = state.join("filler");
    let leave = 100 * 1024;
    let fill = free_bytes(&state).saturating_sub(leave);
    fs::write(&filler, vec![0xA5u8; fill as usize]).expect("write the filler");
    eprintln!(
        "tmpfs of 2 MiB: filler of {fill} bytes, {} bytes left",
        free_bytes(&state)
    );

    let mut acknowledged: BTreeMap<String, u64> = BTreeMap::new();
    let mut refused = None;
    for attempt in 0..2000 {
        let before = device.status();
        let (line, reply) = device.label_newest(&|_| true, &|l| l.truth.clone());
        match reply {
            Ok(_) => *acknowledged.entry(line.truth).or_default() += 1,
            Err(error) => {
                eprintln!("label {attempt} refused: {}", error.trim());
                refused = Some((line, error, before));
                break;
            }
        }
    }
    let (line, error, before) = refused.expect("a label is refused once the disk is full");
    let labels: u64 = acknowledged.values().sum();
    eprintln!("{labels} labels acknowledged before the disk was full");
    assert!(labels > 0, "the first labels fit in the space left");
    assert!(
        error.contains("not saved") && error.contains("no space left"),
        "the refusal says the label is not saved and why: {error}"
    );
    let after = device.status();
    assert_eq!(
        classes(&after),
        classes(&before),
        "the refused label changed no count"
    );
    assert_eq!(
        after["labels"], before["labels"],
        "the refused label is not counted"
    );
    let expected: Vec<(String, u64)> = acknowledged.iter().map(|(c, n)| (c.clone(), *n)).collect();
    let mut now: Vec<(String, u64)> = classes(&after);
    now.sort();
    assert_eq!(now, expected, "exactly the acknowledged labels are applied");
    assert_eq!(tmp_files(&state), Vec::<PathBuf>::new(), "no *.tmp left");

    // Space again: the same label (the same frame if still held) is taken.
    fs::remove_file(&filler).expect("remove the filler");
    match device.label(&line.truth, line.seq) {
        Ok(_) => {}
        Err(e) if e.contains("no longer held") => {
            eprintln!(
                "frame {} left the held window; labelling a newer one as {}",
                line.seq, line.truth
            );
            let truth = line.truth.clone();
            let (_, reply) = device.label_newest(&|_| true, &|_| truth.clone());
            reply.unwrap_or_else(|e| panic!("a label after freeing space is refused: {e}"));
        }
        Err(e) => panic!("the same label after freeing space is refused: {e}"),
    }
    *acknowledged.entry(line.truth.clone()).or_default() += 1;
    assert_eq!(tmp_files(&state), Vec::<PathBuf>::new(), "no *.tmp left");

    // A power cut, then a restart on the same directory: exactly what was acknowledged.
    device.kill9();
    let device = start();
    let mut restored = classes(&device.status());
    restored.sort();
    let expected: Vec<(String, u64)> = acknowledged.iter().map(|(c, n)| (c.clone(), *n)).collect();
    assert_eq!(
        restored, expected,
        "after SIGKILL and restart, exactly the acknowledged labels"
    );
    assert!(device.terminate().success());
}

/// The desktop board with absolute paths, `learning.context_frames = 2`, and this test's state
/// directory, socket and predictions file.
fn board_with_context(dir: &Path, state: &Path, socket: &Path, predictions: &Path) -> PathBuf {
    let desktop = fs::read_to_string(root().join("boards/desktop.toml")).expect("desktop board");
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let replacements: [(&str, &str, String); 6] = [
        ("source", "path", quoted(&corn_test())),
        (
            "model",
            "descriptor",
            quoted(&root().join("models/efficientnet_lite0.toml")),
        ),
        ("store", "dir", quoted(state)),
        ("learning", "context_frames", "2".to_string()),
        ("output", "predictions", quoted(predictions)),
        ("control", "socket", quoted(socket)),
    ];
    let mut done = BTreeSet::new();
    let mut section = String::new();
    let mut text = String::new();
    for line in desktop.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.trim_matches(['[', ']']).to_string();
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        match replacements
            .iter()
            .find(|(s, k, _)| *s == section && *k == key && trimmed.contains('='))
        {
            Some((s, k, value)) => {
                text.push_str(&format!("{k} = {value}\n"));
                done.insert(format!("{s}.{k}"));
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert_eq!(
        done.len(),
        replacements.len(),
        "boards/desktop.toml lost a key this test sets: set {done:?}"
    );
    let path = dir.join("context.toml");
    fs::write(&path, text).expect("write the board");
    path
}

#[test]
fn undo_after_restart_takes_back_the_whole_label() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let socket = dir.path().join("control.sock");
    let predictions = dir.path().join("predictions.jsonl");
    let board = board_with_context(dir.path(), &state, &socket, &predictions);
    let start = || {
        let mut command = Command::new(BIN);
        command
            .current_dir(root())
            .args(["run", "--fps", "0", "--board"])
            .arg(&board);
        Device::start(command, &socket, &predictions)
    };
    let mut device = start();

    // Two classes first, three stored frames each.
    for class in ["Blight", "Healthy"] {
        let (line, reply) =
            device.label_newest(&|l| l.seq > 3 && l.truth == class, &|_| class.to_string());
        reply.unwrap_or_else(|e| panic!("label of frame {} as {class}: {e}", line.seq));
    }
    let known = device.status();
    let known_classes = classes(&known);
    assert_eq!(
        known_classes,
        vec![("Blight".to_string(), 3), ("Healthy".to_string(), 3)],
        "each label stores its frame and two context frames: {known}"
    );

    // One label of a new class: three frames stored.
    let (line, reply) = device.label_newest(&|l| l.seq > 3, &|_| "Intruder".to_string());
    let reply = reply.unwrap_or_else(|e| panic!("label of frame {} as Intruder: {e}", line.seq));
    assert!(reply.contains("new class"), "{reply}");
    let with_new = device.status();
    assert!(
        classes(&with_new).contains(&("Intruder".to_string(), 3)),
        "{with_new}"
    );
    assert_eq!(total_samples(&with_new), total_samples(&known) + 3);

    device.kill9();
    let mut device = start();
    let restored = device.status();
    assert_eq!(
        classes(&restored),
        classes(&with_new),
        "the label survives SIGKILL"
    );

    let undone = client(&socket, &["undo"]);
    assert!(undone.status.success(), "undo failed: {}", undone.stderr);
    eprintln!("fieldtune undo: {}", undone.stdout.trim());
    assert!(
        undone.stdout.contains("3 stored frame"),
        "undo takes back all three frames: {}",
        undone.stdout
    );
    let after = device.status();
    assert_eq!(
        classes(&after),
        known_classes,
        "the class the label created is gone and the samples are back to before: {after}"
    );
    assert_eq!(total_samples(&after), total_samples(&known));
    // Predictions from now on never name the class taken back.
    device.skip_written();
    for _ in 0..24 {
        let line = device.next_line();
        assert_ne!(line.class.as_deref(), Some("Intruder"), "{line:?}");
    }

    // The undo is durable too.
    device.kill9();
    let device = start();
    assert_eq!(
        classes(&device.status()),
        known_classes,
        "the undo survives SIGKILL"
    );
    assert!(device.terminate().success());
}
