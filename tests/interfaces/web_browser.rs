//! The web page in a real browser: Debian's headless Chromium driven through chromedriver's
//! WebDriver HTTP protocol (a minimal client below, no async crates) against `fieldtune run`.
//! The page shows frames that change (the MJPEG stream); clicking a class button labels the frame on screen; a rename
//! through the page's prompt and a move in the gallery reach the service's state; a screenshot is
//! saved for the README (`$CARGO_TARGET_TMPDIR/web-page.png`).
//!
//! Needs `chromium` and `chromium-driver` (installed by `.ci/setup`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use fieldtune::control::{ControlClient, Request};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One JSON request over HTTP/1.1; returns the status and the parsed body.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    if std::env::var_os("WEBDRIVER_TRACE").is_some() {
        eprintln!("webdriver: {method} {path}");
    }
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body.as_bytes()).expect("write");
    // chromedriver may keep the connection open: read the head, then Content-Length bytes (or
    // chunks up to the last one).
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed before a response head");
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    loop {
        let body = &raw[end + 4..];
        let complete = match length {
            Some(length) => body.len() >= length,
            None => body.windows(5).any(|w| w == b"0\r\n\r\n"),
        };
        if complete {
            break;
        }
        let n = stream.read(&mut chunk).expect("read");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    (status, value)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A chromedriver process and one browser session.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install Debian's chromium and chromium-driver (bash .ci/setup)"
            );
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let start = Instant::now();
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                drop(stream);
                let (status, body) = request(port, "GET", "/status", None);
                if status == 200 && body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "chromedriver did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=480,1500",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let (status, body) = request(port, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "new session: {body}");
        let session = body["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            driver,
            port,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, value) = request(self.port, method, &path, body.as_ref());
        assert_eq!(status, 200, "{method} {path}: {value}");
        value["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let value = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        value[ELEMENT].as_str().expect("an element").to_string()
    }

    /// Waits until `css` matches an element.
    fn wait_for(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let path = format!("/session/{}/element", self.session);
            let (status, value) = request(
                self.port,
                "POST",
                &path,
                Some(&json!({"using": "css selector", "value": css})),
            );
            if status == 200 {
                return value["value"][ELEMENT]
                    .as_str()
                    .expect("element")
                    .to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{css} never appeared"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.call("GET", &format!("/element/{element}/attribute/{name}"), None)
            .as_str()
            .map(String::from)
    }

    fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Finds `css` and clicks it. The page redraws its class lists as the status changes, so an
    /// element found just before a redraw is stale by the click: it is found again.
    fn click_css(&self, css: &str) {
        let start = Instant::now();
        loop {
            let element = self.wait_for(css);
            let path = format!("/session/{}/element/{element}/click", self.session);
            let (status, value) = request(self.port, "POST", &path, Some(&json!({})));
            if status == 200 {
                return;
            }
            let stale = value["value"]["error"].as_str() == Some("stale element reference");
            assert!(
                stale && start.elapsed() < Duration::from_secs(60),
                "click {css}: {value}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn type_text(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The sequence number of the frame on screen (None before the first).
    fn shown(&self) -> Option<u64> {
        let frame = self.find("#frame");
        self.attribute(&frame, "data-seq")?.parse().ok()
    }

    /// Waits for the page's message to start with `starts` and differ from `old`.
    fn wait_message(&self, old: &str, starts: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.text(&self.find("#msg"));
            if text != old && text.starts_with(starts) {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "message {text:?}, waiting for {starts:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn message(&self) -> String {
        self.text(&self.find("#msg"))
    }

    fn screenshot(&self) -> Vec<u8> {
        let value = self.call("GET", "/screenshot", None);
        base64_decode(value.as_str().expect("base64 PNG"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| request(self.port, "DELETE", &path, None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// `fieldtune run` on the desktop board's shape with the page on a free loopback port.
struct Device {
    child: Child,
    lines: Receiver<Value>,
    port: u16,
    socket: PathBuf,
}

impl Device {
    fn start(dir: &Path) -> Device {
        let socket = dir.join("control.sock");
        let port = free_port();
        let mut child = Command::new(BIN)
            .current_dir(root())
            .args(["run", "--fps", "2", "--folder"])
            .arg(root().join("tests/data/corn4-mini/test"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&socket)
            .arg("--web")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fieldtune run");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    return;
                };
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let device = Device {
            child,
            lines: rx,
            port,
            socket,
        };
        device
            .lines
            .recv_timeout(Duration::from_secs(120))
            .expect("a first prediction");
        device
    }

    fn ask(&self, request: Request) -> Value {
        let mut client = ControlClient::connect(&self.socket).expect("control socket");
        let reply = client.request(&request).expect("reply");
        assert!(reply.ok, "{reply:?}");
        reply.data.expect("data")
    }

    fn samples(&self, class: &str) -> Vec<u64> {
        self.ask(Request::Samples {
            class: class.into(),
        })["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|s| s["id"].as_u64().expect("id"))
            .collect()
    }

    /// `GET /metrics` over loopback (no token needed there).
    fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("request");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("response");
        raw
    }

    /// The origin of frame `seq` from the prediction lines.
    fn origin_of(&self, seq: u64) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .expect("a prediction line");
            if line["seq"].as_u64() == Some(seq) {
                return line["origin"].as_str().expect("origin").to_string();
            }
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_person_in_a_browser_labels_what_they_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::start(dir.path());
    let browser = Browser::start(&dir.path().join("chromium-profile"));
    browser.open(&format!("http://127.0.0.1:{}/", device.port));

    // The live frame is there and changes.
    browser.wait_for("#frame[data-seq]");
    let first = browser.shown().expect("a frame on screen");
    let start = Instant::now();
    while browser.shown() == Some(first) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the frame never changed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The page shows the MJPEG stream (GET /stream), not polled frames.
    let metrics = device.metrics();
    assert!(
        metrics.contains("fieldtune_web_streams_open 1"),
        "the page keeps one stream open: {metrics}"
    );

    // A new class from the name box labels the frame on screen.
    let name = browser.find("#newname");
    browser.type_text(&name, "Blight");
    let before = browser.shown().expect("shown");
    browser.click_css("#newlabel");
    let message = browser.wait_message("", "frame ");
    let after = browser.shown().expect("shown");
    let labelled: u64 = message
        .split(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("frame N labelled Blight");
    assert!(
        (before..=after).contains(&labelled),
        "labelled {labelled}, on screen {before}..{after}"
    );
    assert_eq!(device.samples("Blight").len(), 1);

    // Clicking the class button labels the frame on screen again, and that frame's image is what
    // the sample keeps.
    browser.wait_for("button.class[data-class='Blight']");
    let start = Instant::now();
    while browser.shown() == Some(labelled) {
        assert!(start.elapsed() < Duration::from_secs(120), "no next frame");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = browser.shown().expect("shown");
    browser.click_css("button.class[data-class='Blight']");
    let message = browser.wait_message(&message, "frame ");
    let after = browser.shown().expect("shown");
    let labelled: u64 = message
        .split(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("frame N labelled Blight");
    assert!(
        (before..=after).contains(&labelled),
        "{labelled} not in {before}..{after}"
    );
    let origin = device.origin_of(labelled);
    let ids = device.samples("Blight");
    assert_eq!(ids.len(), 2);
    let thumb = device.ask(Request::Thumbnail { sample: ids[0] });
    let expected = fieldtune::thumbnail::make(
        &fieldtune::source::FrameData::Encoded(std::fs::read(root().join(&origin)).expect("image")),
        fieldtune::thumbnail::DEFAULT_SIZE,
    )
    .expect("thumbnail");
    let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        thumb["jpeg_hex"].as_str(),
        Some(hex.as_str()),
        "the frame shown: {origin}"
    );

    // A second class, then a rename through the page's prompt.
    let name = browser.find("#newname");
    browser.call("POST", &format!("/element/{name}/clear"), Some(json!({})));
    browser.type_text(&name, "Rust");
    let old = browser.message();
    browser.click_css("#newclass");
    browser.wait_message(&old, "class Rust created");
    browser.wait_for("#which option[value='Rust']");
    browser.click_css("#which option[value='Rust']");
    browser.click_css("#rename");
    browser.call("POST", "/alert/text", Some(json!({"text": "Common rust"})));
    browser.call("POST", "/alert/accept", Some(json!({})));
    browser.wait_message("", "Rust is now Common rust");
    let status = device.ask(Request::Status);
    let names: Vec<&str> = status["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Blight", "Common rust"]);

    // The gallery of Blight: move its newest sample to Common rust.
    browser.wait_for("#which option[value='Blight']");
    browser.click_css("#which option[value='Blight']");
    browser.click_css("#show");
    let option = format!(
        ".thumb[data-sample='{}'] option[value='Common rust']",
        ids[0]
    );
    browser.wait_for(&option);
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-page.png");
    std::fs::write(&shot, &png).expect("write the screenshot");
    eprintln!("screenshot: {}", shot.display());
    browser.click_css(&option);
    browser.wait_message("", &format!("sample {} moved to Common rust", ids[0]));
    assert_eq!(device.samples("Blight"), [ids[1]]);
    assert_eq!(device.samples("Common rust"), [ids[0]]);
    let status = device.ask(Request::Status);
    assert_eq!(status["labels"], 2, "{status}");
}
