//! Shared pieces of the tests that run the real service (`fieldtune run`) as a child process:
//! reading its prediction lines and connecting to its control socket. Each test file starts the
//! service with its own board and arguments. [`broker`]: a real MQTT broker and its clients; [`mqtt_device`]: the service with
//! `[mqtt]` (and `[fleet]`) as a child.

#![allow(dead_code)]

pub mod broker;
pub mod mqtt_device;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fieldtune::control::ControlClient;

/// `base` stretched by `FIELDTUNE_TEST_PATIENCE` (a factor, 1 when unset): the cross CI sets it
/// where the service runs under emulation and a frame takes seconds instead of milliseconds. Every
/// bounded wait on the service goes through it, so a slow board waits longer but never forever.
pub fn patience(base: Duration) -> Duration {
    let factor = std::env::var("FIELDTUNE_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 1.0)
        .unwrap_or(1.0);
    base.mul_f64(factor)
}

static ONE_SERVICE: Mutex<()> = Mutex::new(());

/// Held by every test of a binary that starts the service: one service at a time, since two
/// would share the machine's cores and slow each other's frames (under emulation, past the waits).
pub fn one_service_at_a_time() -> MutexGuard<'static, ()> {
    ONE_SERVICE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the child's piped stdout on a thread of its own: one JSON value per prediction line.
pub fn prediction_lines(child: &mut Child) -> Receiver<serde_json::Value> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let value: serde_json::Value =
                serde_json::from_str(&line).expect("each prediction line is JSON");
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next prediction line, waiting up to two minutes.
pub fn next_line(lines: &Receiver<serde_json::Value>) -> serde_json::Value {
    lines
        .recv_timeout(patience(Duration::from_secs(120)))
        .expect("a prediction line within two minutes (times FIELDTUNE_TEST_PATIENCE)")
}

/// A client of the control socket, retried while the service starts (up to a minute).
pub fn connect(socket: &Path) -> ControlClient {
    let start = Instant::now();
    loop {
        match ControlClient::connect(socket) {
            Ok(c) => return c,
            Err(e) if start.elapsed() > patience(Duration::from_secs(60)) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Sends SIGTERM (as systemd stops the service) and returns the exit status.
pub fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -TERM {pid}");
    child.wait().expect("wait")
}
