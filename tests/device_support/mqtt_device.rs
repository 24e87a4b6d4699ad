//! A `fieldtune run` child for the MQTT and fleet tests: the desktop board with sections added,
//! replaying the corn test images, its prediction lines and log lines on channels.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldtune::control::Request;

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

pub fn corn() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corn4-mini/test")
}

/// The desktop board with `[mqtt]` added.
pub fn board(dir: &Path, mqtt: &str) -> PathBuf {
    let desktop =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/desktop.toml"))
            .expect("desktop board");
    let path = dir.join("board.toml");
    std::fs::write(&path, format!("{desktop}\n[mqtt]\n{mqtt}\n")).expect("write board");
    path
}

/// A running `fieldtune run`: prediction lines and log lines on channels.
pub struct Device {
    pub child: Child,
    pub lines: Receiver<serde_json::Value>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub socket: PathBuf,
}

impl Device {
    pub fn start(dir: &Path, board: &Path, fps: &str) -> Device {
        let socket = dir.join("control.sock");
        let mut child = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "run",
                "--web",
                "none",
                "--predictions",
                "stdout",
                "--fps",
                fps,
            ])
            .arg("--board")
            .arg(board)
            .arg("--folder")
            .arg(corn())
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&socket)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fieldtune run");
        let lines = super::prediction_lines(&mut child);
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                eprintln!("device: {line}");
                keep.lock().unwrap().push(line);
            }
        });
        Device {
            child,
            lines,
            log,
            socket,
        }
    }

    pub fn status(&self) -> serde_json::Value {
        let reply = super::connect(&self.socket)
            .request(&Request::Status)
            .expect("status");
        assert!(reply.ok, "{reply:?}");
        reply.data.expect("status data")
    }

    /// Waits (up to two minutes) for a log line containing `text`.
    pub fn wait_log(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no log line with {text:?} within two minutes"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Drops the prediction lines waiting so far; returns the newest.
    pub fn latest_line(&self) -> serde_json::Value {
        let mut last = super::next_line(&self.lines);
        while let Ok(line) = self.lines.try_recv() {
            last = line;
        }
        last
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
