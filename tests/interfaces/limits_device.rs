//! The running service against careless and hostile clients, with the real binary, the real model
//! and real images: oversized, non-UTF-8 and idle connections, more connections than allowed,
//! unsafe and too many class names, and huge or cut frames on the stdin MJPEG source. Frames keep
//! flowing, descriptors and memory stay bounded, and everything stays on this machine (Unix
//! sockets and pipes only). Each test stops by itself.

use crate::device_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use fieldtune::control::{ControlClient, Request};

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corn() -> PathBuf {
    root().join("tests/data/corn4-mini/test")
}

/// A running `fieldtune run` with its prediction lines on a channel.
struct Device {
    child: Child,
    lines: Receiver<serde_json::Value>,
    socket: PathBuf,
}

impl Device {
    /// Starts the service with a board made of `board` (TOML) and, for a stdin source, `stdin`.
    fn start(dir: &Path, board: &str, stdin: Stdio) -> Device {
        let socket = dir.join("control.sock");
        let board_path = dir.join("board.toml");
        std::fs::write(&board_path, board).expect("write board");
        let mut child = Command::new(BIN)
            .current_dir(root())
            .arg("run")
            .arg("--board")
            .arg(&board_path)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&socket)
            .env_remove("NOTIFY_SOCKET")
            .stdin(stdin)
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

    /// Drops the prediction lines received so far; returns how many there were.
    fn drain(&self) -> usize {
        self.lines.try_iter().count()
    }

    fn client(&self) -> ControlClient {
        device_support::connect(&self.socket)
    }

    fn ask(&self, request: &Request) -> fieldtune::control::Reply {
        self.client().request(request).expect("a reply")
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("the service's fds")
            .count()
    }

    fn threads(&self) -> usize {
        proc_status(self.child.id(), "Threads:")
    }

    /// Peak resident memory so far, in KiB.
    fn peak_kib(&self) -> usize {
        proc_status(self.child.id(), "VmHWM:")
    }

    fn rss_kib(&self) -> usize {
        proc_status(self.child.id(), "VmRSS:")
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        device_support::terminate(&mut self.child)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status(pid: u32, key: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

fn folder_board(extra: &str) -> String {
    format!(
        "name = \"limits-test\"\n[source]\nkind = \"folder\"\npath = \"{}\"\nloop = true\nfps = 0\n\
         [output]\npredictions = \"stdout\"\n{extra}",
        corn().display()
    )
}

/// Reads one reply line from a raw connection (None: closed without one).
fn read_reply(stream: &UnixStream) -> Option<serde_json::Value> {
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut line = String::new();
    let n = BufReader::new(stream).read_line(&mut line).ok()?;
    (n > 0).then(|| serde_json::from_str(&line).expect("a JSON reply"))
}

fn connect(device: &Device) -> UnixStream {
    drop(device.client());
    UnixStream::connect(&device.socket).expect("connect")
}

fn error_of(reply: &serde_json::Value) -> String {
    assert_eq!(reply["ok"], false, "{reply}");
    reply["error"]
        .as_str()
        .expect("an error message")
        .to_string()
}

/// Waits (without asserting on time) until the service's fd count is back to `baseline`.
fn fds_settle(device: &Device, baseline: usize) -> usize {
    let start = Instant::now();
    loop {
        let now = device.fds();
        if now <= baseline || start.elapsed() > Duration::from_secs(60) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_control_socket_stays_bounded_whatever_clients_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::start(
        dir.path(),
        &folder_board("[control]\nmax_connections = 8\nidle_timeout_s = 2\n"),
        Stdio::null(),
    );
    device.next_line();
    assert!(device.ask(&Request::Status).ok);
    let baseline_fds = device.fds();
    let baseline_rss = device.rss_kib();
    eprintln!(
        "baseline: {baseline_fds} fds, {} threads, {baseline_rss} KiB resident",
        device.threads()
    );

    // Oversized lines, three at once, 20 MB each without a newline: refused with a reply, never
    // buffered.
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let stream = connect(&device);
            let writer = stream.try_clone().expect("clone");
            let sending = std::thread::spawn(move || {
                let chunk = vec![b'x'; 1 << 20];
                let mut writer = writer;
                for _ in 0..20 {
                    if writer.write_all(&chunk).is_err() {
                        return; // the service closed the connection: expected
                    }
                }
            });
            (stream, sending)
        })
        .collect();
    for (stream, sending) in senders {
        let reply = read_reply(&stream).expect("an error reply before the close");
        let error = error_of(&reply);
        assert!(error.contains("longer than 4096 bytes"), "{error}");
        sending.join().expect("sender");
    }

    // Not UTF-8: an error reply, and the connection still serves the next request.
    let mut stream = connect(&device);
    stream.write_all(b"\xff\xfe\x80{}\n").expect("write");
    let error = error_of(&read_reply(&stream).expect("a reply"));
    assert!(error.contains("not UTF-8"), "{error}");
    stream.write_all(b"{\"cmd\":\"status\"}\n").expect("write");
    assert_eq!(read_reply(&stream).expect("a reply")["ok"], true);
    drop(stream);

    // Fill every connection slot with idle clients: one more is refused at once, frames go on.
    let idle: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(&device.socket).expect("connect"))
        .collect();
    let refused = UnixStream::connect(&device.socket).expect("connect");
    let error = error_of(&read_reply(&refused).expect("a refusal"));
    assert!(error.contains("too many connections"), "{error}");
    device.drain();
    let before = device.next_line()["seq"].as_u64().expect("seq");
    let after = device.next_line()["seq"].as_u64().expect("seq");
    assert!(after > before, "frames flow while every slot is taken");
    // The idle ones are closed after the idle timeout, each told why.
    for stream in &idle {
        let error = error_of(&read_reply(stream).expect("an idle notice"));
        assert!(error.contains("no complete request"), "{error}");
    }
    drop(idle);
    drop(refused);

    // A storm of short-lived clients from several threads: each gets a status or a refusal.
    let socket = device.socket.clone();
    let storm: Vec<_> = (0..6)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut answered = 0;
                for _ in 0..40 {
                    let mut s = UnixStream::connect(&socket).expect("connect");
                    let _ = s.write_all(b"{\"cmd\":\"status\"}\n");
                    if let Some(reply) = read_reply(&s) {
                        assert!(
                            reply["ok"] == true
                                || error_of(&reply).contains("too many connections"),
                            "{reply}"
                        );
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    let answered: usize = storm.into_iter().map(|t| t.join().expect("storm")).sum();
    assert_eq!(answered, 240, "every client of the storm got an answer");

    let fds = fds_settle(&device, baseline_fds);
    let peak = device.peak_kib();
    eprintln!(
        "after: {fds} fds (baseline {baseline_fds}), {} threads, peak {peak} KiB (baseline resident {baseline_rss} KiB)",
        device.threads()
    );
    assert!(fds <= baseline_fds, "fds back to {baseline_fds}, not {fds}");
    // 60 MB of oversized requests and 250 connections cost at most a few MiB of buffers.
    assert!(
        peak < baseline_rss + 48 * 1024,
        "peak {peak} KiB against {baseline_rss} KiB at the start"
    );
    assert!(device.ask(&Request::Status).ok);
    assert!(device.terminate().success());
}

#[test]
fn class_names_are_bounded_normalised_unique_and_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::start(
        dir.path(),
        &folder_board("[store]\nmax_classes = 3\nmax_class_name_chars = 12\n"),
        Stdio::null(),
    );
    device.next_line();
    let label = |class: &str| {
        device.ask(&Request::Label {
            class: class.to_string(),
            frame: None,
        })
    };
    // Unsafe names are refused, and the refusal shows them escaped.
    for bad in [
        "\u{1b}]0;pwned\u{7}",
        "nul\u{0}byte",
        "evil\u{202e}gpj.exe",
        "zero\u{200b}width",
        " padded ",
        "",
        "thirteen-char",
    ] {
        let reply = label(bad);
        let error = reply.error.clone().unwrap_or_default();
        assert!(!reply.ok, "{bad:?} accepted");
        assert!(
            !error.contains('\u{1b}') && !error.contains('\u{202e}') && !error.contains('\u{0}'),
            "{error:?}"
        );
        eprintln!("{bad:?}: {error}");
    }
    // NFC: the decomposed spelling is the same class.
    let first = label("Caf\u{e9}");
    assert!(first.ok, "{first:?}");
    let second = label("Cafe\u{301}");
    assert!(second.ok, "{second:?}");
    let data = second.data.expect("data");
    assert_eq!(data["created"], false, "{data}");
    assert_eq!(data["class"], "Caf\u{e9}");
    assert!(label("Rust").ok);
    assert!(label("Blight").ok);
    // A fourth class is one too many.
    let reply = label("Healthy");
    let error = reply.error.unwrap_or_default();
    assert!(
        error.contains("already has 3 classes") && error.contains("store.max_classes"),
        "{error}"
    );
    // A rename onto a taken name (after NFC) is refused.
    let reply = device.ask(&Request::Rename {
        from: "Rust".into(),
        to: "Cafe\u{301}".into(),
    });
    assert!(
        reply.error.unwrap_or_default().contains("taken"),
        "rename onto a taken name"
    );
    // A 1 MiB name never reaches the learner: the request is over the size limit.
    let mut stream = connect(&device);
    let huge = serde_json::json!({"cmd": "label", "class": "x".repeat(1 << 20)}).to_string();
    let writer = stream.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        let mut writer = writer;
        let _ = writer.write_all(huge.as_bytes());
        let _ = writer.write_all(b"\n");
    });
    let error = error_of(&read_reply(&stream).expect("a reply"));
    assert!(error.contains("longer than"), "{error}");
    sending.join().expect("sender");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);

    let status = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(&device.socket)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("Caf\u{e9}"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(device.terminate().success());

    let inspect = Command::new(BIN)
        .args(["state", "inspect"])
        .arg(dir.path().join("state"))
        .output()
        .expect("inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("Blight") && !text.contains("Healthy"),
        "{text}"
    );
}

#[test]
fn the_stdin_mjpeg_source_bounds_frames_and_refuses_cut_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut device = Device::start(
        dir.path(),
        "name = \"stdin-test\"\n[source]\nkind = \"stdin\"\n[output]\npredictions = \"stdout\"\n",
        Stdio::piped(),
    );
    let mut stdin = device.child.stdin.take().expect("stdin");
    let jpeg = std::fs::read(root().join("tests/data/reference/china.jpg")).expect("jpeg");
    stdin.write_all(&jpeg).expect("first frame");
    stdin.flush().expect("flush");
    let first = device.next_line();
    assert_eq!(first["origin"], "stdin#1", "{first}");
    let peak_before = device.peak_kib();

    // A cut JPEG with its end marker appended: the decoder sees the data end early.
    let mut cut = jpeg[..jpeg.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    // A 64 MiB "frame" that is all entropy-coded data: SOI, a minimal SOS header, then bytes
    // that are never a marker; then a whole frame again.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&cut);
        let _ = stdin.write_all(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0]);
        let filler = vec![0x22u8; 1 << 20];
        for _ in 0..64 {
            let _ = stdin.write_all(&filler);
        }
        let _ = stdin.write_all(&[0xFF, 0xD9]);
        let _ = stdin.write_all(&jpeg);
        let _ = stdin.flush();
        stdin
    });
    let last = device.next_line();
    assert_eq!(
        last["origin"], "stdin#3",
        "the cut frame (#2) is skipped, the huge one refused, the last one predicted: {last}"
    );
    let stdin = writer.join().expect("writer");
    let peak_after = device.peak_kib();
    // Closing stdin ends the stream, and the service with it.
    drop(stdin);
    eprintln!(
        "stdin source: peak {peak_before} KiB before the 64 MiB frame, {peak_after} KiB after"
    );
    let status = device.child.wait().expect("wait");
    assert!(
        status.success(),
        "the stream's end is a clean stop: {status:?}"
    );
    assert!(
        peak_after < peak_before + 40 * 1024,
        "a 64 MiB frame raised the peak from {peak_before} to {peak_after} KiB"
    );
}
