//! A real MQTT broker for the tests: Debian's `mosquitto` started on 127.0.0.1 at a free port with
//! a configuration file of the test's own (never the system service), and its command-line
//! clients (`mosquitto_sub`, `mosquitto_pub`) to watch and to send. `bash .ci/setup` installs them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A running mosquitto; killed when dropped.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    conf: PathBuf,
}

fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return name.to_string();
    }
    // mosquitto itself is in /usr/sbin, which a user's PATH may leave out.
    let sbin = format!("/usr/sbin/{name}");
    assert!(
        Path::new(&sbin).exists(),
        "{name} not found: the MQTT tests need Debian's mosquitto and mosquitto-clients (bash .ci/setup installs them)"
    );
    sbin
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("address").port()
}

impl Broker {
    /// Starts mosquitto on a free port, with its files in `dir` (persistent sessions kept in
    /// memory, as a broker with persistence off does until it stops).
    pub fn start(dir: &Path) -> Broker {
        std::fs::create_dir_all(dir).expect("broker dir");
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        )
        .expect("write mosquitto.conf");
        let mut broker = Broker {
            child: None,
            port,
            conf,
        };
        broker.restart();
        broker
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash or a power cut would stop it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(tool("mosquitto"))
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mosquitto did not listen on port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message seen by a [`Subscriber`].
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: String,
}

impl Message {
    /// The payload as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} carries no JSON ({e}): {}", self.topic, self.payload))
    }
}

/// `mosquitto_sub -v` on a topic filter, its messages on a channel; killed when dropped.
pub struct Subscriber {
    child: Child,
    messages: Receiver<Message>,
    /// Messages that arrived and were not taken yet, oldest first.
    pending: VecDeque<Message>,
}

impl Subscriber {
    /// Subscribes to `filter` (e.g. `#`) on the broker at `port`.
    pub fn start(port: u16, filter: &str) -> Subscriber {
        let mut child = Command::new(tool("mosquitto_sub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-v",
                "-q",
                "1",
                "-t",
                filter,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mosquitto_sub");
        let stdout = child.stdout.take().expect("piped");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            // Payloads need not be UTF-8 (the tests send some that are not on purpose).
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { return };
                let line = String::from_utf8_lossy(&line);
                let (topic, payload) = line.split_once(' ').unwrap_or((&*line, ""));
                let message = Message {
                    topic: topic.to_string(),
                    payload: payload.to_string(),
                };
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        Subscriber {
            child,
            messages,
            pending: VecDeque::new(),
        }
    }

    /// The oldest message not yet taken that `matches` (taking it), waiting up to two minutes
    /// for it to arrive; messages that do not match stay for later calls.
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&Message) -> bool) -> Message {
        if let Some(i) = self.pending.iter().position(&matches) {
            return self.pending.remove(i).expect("found");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no MQTT message {what} within two minutes"));
            if matches(&message) {
                return message;
            }
            self.pending.push_back(message);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `payload` on `topic` with `mosquitto_pub` (QoS 1), waiting until it is sent.
pub fn publish(port: u16, topic: &str, payload: &[u8]) {
    let mut child = Command::new(tool("mosquitto_pub"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-s",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start mosquitto_pub");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(payload)
        .expect("write the payload");
    let status = child.wait().expect("mosquitto_pub");
    assert!(status.success(), "mosquitto_pub to {topic} failed");
}
