//! The command line against bad inputs, with the real binary, the real model and real images:
//! images that are too large, too thin or cut short, folders holding FIFOs, dangling links and
//! link loops, a closed stdout, a socket the user may not open, one-class training and model
//! descriptors that do not match their graph. Each gives a clear message or a bounded result.
//!
//! A test binary of its own, not a module of `tests/interfaces`: the peaks are measured by `wait4`,
//! and on Linux a child's `ru_maxrss` is at least the resident size of the process that spawned it
//! at the fork (exec records the old address space's high water). In a binary whose other tests
//! run the backbone in the same process that was 123 MB for a `/dev/zero` board refused at once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mini(split: &str) -> PathBuf {
    root().join("tests/data/corn4-mini").join(split)
}

/// Output and peak resident memory (KiB) of one run of the binary, measured by `wait4` for
/// exactly that child.
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
    peak_kib: i64,
}

fn run(args: &[&str], cache: &Path) -> Run {
    let mut all = args.to_vec();
    all.extend(["--cache", s(cache)]);
    run_exactly(&all)
}

/// One run of the binary with exactly these arguments.
// Waited for with `wait4` (for its resource usage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_exactly(args: &[&str]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let stderr = reading.join().expect("stderr reader");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid we hold and have not waited for.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(waited > 0, "wait4");
    eprintln!(
        "$ fieldtune {}\n{stdout}{stderr}(peak {} KiB)",
        args.join(" "),
        usage.ru_maxrss
    );
    Run {
        status: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        },
        stdout,
        stderr,
        peak_kib: usage.ru_maxrss,
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn copy_images(from: &Path, to: &Path, n: usize) {
    std::fs::create_dir_all(to).expect("mkdir");
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries.into_iter().take(n) {
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

/// A PNG whose header says `width`×`height` and which holds (almost) no pixel data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &[0x78, 0x9c][..]),
        (b"IEND", &[][..]),
    ] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    out
}

fn skipped_line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with("skipped ") && l.contains(name))
        .unwrap_or_else(|| panic!("no skipped line for {name}:\n{text}"))
}

#[test]
fn bad_images_and_odd_entries_are_reported_with_why_and_cost_little() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let blight = data.join("Blight");
    copy_images(&mini("train").join("Blight"), &blight, 2);
    copy_images(&mini("train").join("Healthy"), &data.join("Healthy"), 2);

    // 1×100000: a 19.66 GB resize before; now refused from the header.
    image::RgbImage::from_pixel(1, 100_000, image::Rgb([10, 200, 30]))
        .save(blight.join("tall.png"))
        .expect("tall png");
    // 1×4000: allowed, and resized through its centre only.
    image::RgbImage::from_pixel(1, 4000, image::Rgb([10, 200, 30]))
        .save(blight.join("thin.png"))
        .expect("thin png");
    // 20000×20000 claimed by a tiny file.
    std::fs::write(blight.join("huge.png"), png_header(20_000, 20_000)).expect("huge");
    // Cut short with an end marker appended.
    let whole = std::fs::read(root().join("tests/data/reference/china.jpg")).expect("jpeg");
    let mut cut = whole[..whole.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    std::fs::write(blight.join("cut.jpg"), cut).expect("cut");
    // Entries that are not image files.
    let fifo = std::ffi::CString::new(s(&blight.join("fifo.jpg"))).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    std::os::unix::fs::symlink(dir.path().join("absent.jpg"), blight.join("dangling.jpg"))
        .expect("symlink");
    std::os::unix::fs::symlink(blight.join("loop-b.jpg"), blight.join("loop-a.jpg"))
        .expect("symlink");
    std::os::unix::fs::symlink(blight.join("loop-a.jpg"), blight.join("loop-b.jpg"))
        .expect("symlink");
    std::fs::write(blight.join("notes.txt"), "field notes").expect("notes");

    let out = run(&["embed", s(&data)], &dir.path().join("cache"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        skipped_line(&text, "tall.png").contains("1×100000 px exceeds the limit of 8192 px high"),
        "{text}"
    );
    assert!(
        skipped_line(&text, "huge.png").contains("20000×20000 px exceeds the limit"),
        "{text}"
    );
    assert!(
        skipped_line(&text, "cut.jpg").contains("truncated"),
        "{text}"
    );
    assert!(skipped_line(&text, "fifo.jpg").contains("FIFO"), "{text}");
    assert!(
        skipped_line(&text, "dangling.jpg").contains("dangling"),
        "{text}"
    );
    assert!(skipped_line(&text, "loop-a.jpg").contains("loop"), "{text}");
    assert!(
        skipped_line(&text, "notes.txt").contains("not a .jpg"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("skipped") && l.contains("thin.png")),
        "the thin image is embedded: {text}"
    );
    // The summary counts every entry reported as skipped, odd entries too.
    let lines = text.lines().filter(|l| l.starts_with("skipped ")).count();
    assert_eq!(lines, 8, "{text}");
    assert!(text.contains(&format!(", {lines} skipped")), "{text}");
    // The model, two threads of activations and bounded images: far below what a 19.66 GB
    // resize or a 1.2 GB decode needed.
    assert!(out.peak_kib < 400 * 1024, "peak {} KiB", out.peak_kib);
}

/// Issue 11: a progressive JPEG cut short with an end marker appended was embedded as a whole
/// image (the decoder stops refining where the data ends); the walk of every scan now sees it.
#[test]
fn a_progressive_jpeg_cut_short_with_an_end_marker_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut cut_names = Vec::new();
    for (class, file) in [
        ("Blight", "leaf-420.jpg"),
        ("Healthy", "china-444-restarts.jpg"),
    ] {
        let folder = data.join(class);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let whole = std::fs::read(root().join("tests/data/progressive").join(file)).expect("jpeg");
        std::fs::write(folder.join(file), &whole).expect("whole");
        let last_scan = whole
            .windows(2)
            .rposition(|w| w == [0xFF, 0xDA])
            .expect("scans");
        // Inside the first scans, half way, and just before the last scan header.
        for (tag, keep) in [
            ("third", whole.len() / 3),
            ("half", whole.len() / 2),
            ("before-last-scan", last_scan),
        ] {
            let name = format!("cut-{tag}-{file}");
            let mut cut = whole[..keep].to_vec();
            cut.extend_from_slice(&[0xFF, 0xD9]);
            std::fs::write(folder.join(&name), cut).expect("cut");
            cut_names.push(name);
        }
    }
    let out = run(&["embed", s(&data)], &dir.path().join("cache"));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let text = format!("{}{}", out.stdout, out.stderr);
    for name in &cut_names {
        assert!(
            skipped_line(&text, name).contains("JPEG is truncated"),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("2 embedded") && text.contains("6 skipped"),
        "the two whole progressive files are embedded: {text}"
    );
}

#[test]
fn predict_into_a_closed_pipe_ends_quietly_and_one_class_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");

    let one = dir.path().join("one");
    copy_images(&mini("train").join("Blight"), &one.join("Blight"), 3);
    let refused = run(&["train", "--data", s(&one)], &cache);
    assert_ne!(refused.status, 0);
    assert!(
        refused.stderr.contains("one class folder") && refused.stderr.contains("at least two"),
        "{}",
        refused.stderr
    );

    let head = dir.path().join("head.fth");
    let trained = run(
        &["train", "--data", s(&mini("train")), "--out", s(&head)],
        &cache,
    );
    assert_eq!(trained.status, 0, "{}", trained.stderr);

    let images: Vec<String> = std::fs::read_dir(mini("test").join("Blight"))
        .expect("list")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    let script = format!(
        "{BIN} predict --cache {} --head {} {} | head -1; echo \"rc=${{PIPESTATUS[0]}}\" >&2",
        s(&cache),
        s(&head),
        images.join(" ")
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .current_dir(root())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("rc=0"), "quiet end, status 0: {stderr}");
}

#[test]
fn a_socket_the_user_may_not_open_says_so_and_names_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    // SAFETY: plain libc calls on our own process ids.
    let root_user = unsafe { libc::geteuid() } == 0;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.path().join("control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let output = if root_user {
        // Root may open anything: ask as the unprivileged `nobody` instead.
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).expect("chmod");
        let setpriv = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(["status", "--socket"])
            .arg(&socket)
            .output();
        match setpriv {
            Ok(output) => output,
            Err(e) => {
                eprintln!("SKIPPED: running as root and setpriv is not available ({e})");
                return;
            }
        }
    } else {
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        Command::new(BIN)
            .args(["status", "--socket"])
            .arg(&socket)
            .output()
            .expect("status")
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(!output.status.success());
    assert!(
        stderr.contains("permission denied") && stderr.contains("join its group"),
        "{stderr}"
    );
    assert!(!stderr.contains("start `fieldtune run`"), "{stderr}");
}

#[test]
fn model_descriptors_are_checked_against_the_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original =
        std::fs::read_to_string(root().join("models/efficientnet_lite0.toml")).expect("descriptor");
    let onnx = root().join("models/efficientnet_lite0_features.onnx");
    let with_file = original.replace(
        "file = \"efficientnet_lite0_features.onnx\"",
        &format!("file = \"{}\"", onnx.display()),
    );
    let data = dir.path().join("data");
    copy_images(&mini("train").join("Blight"), &data.join("Blight"), 1);
    copy_images(&mini("train").join("Healthy"), &data.join("Healthy"), 1);
    for (name, from, to, key, expect) in [
        (
            "input",
            "name = \"input\"",
            "name = \"image\"",
            "input.name",
            "its inputs are: \"input\"",
        ),
        (
            "output",
            "name = \"features\"",
            "name = \"logits\"",
            "output.name",
            "its outputs are: \"features\"",
        ),
        (
            "shape",
            "shape = [1, 3, 224, 224]",
            "shape = [1, 3, 256, 256]",
            "input.shape",
            "[1, 3, 256, 256]",
        ),
    ] {
        let descriptor = dir.path().join(format!("{name}.toml"));
        assert!(with_file.contains(from), "{from}");
        // A bigger input needs a bigger crop for the descriptor itself to be consistent.
        let text = with_file.replace(from, to).replace(
            "crop = 224",
            if name == "shape" {
                "crop = 256"
            } else {
                "crop = 224"
            },
        );
        std::fs::write(&descriptor, text).expect("write");
        let out = run(
            &["embed", "--model", s(&descriptor), s(&data)],
            &dir.path().join("cache"),
        );
        assert_ne!(out.status, 0, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(key) && out.stderr.contains(expect),
            "{name}: {}",
            out.stderr
        );
    }
}

/// Issue 11, inputs not in its table: a board, descriptor, head file or export named on the
/// command line that is `/dev/zero` (read until memory ran out: 1 GB resident), a FIFO (waited
/// for ever) or far larger than such a file can be is refused unread, saying what it is.
#[test]
fn config_head_and_state_files_that_are_devices_fifos_or_huge_are_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.toml");
    let c = std::ffi::CString::new(s(&fifo)).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, vec![b'#'; 2 << 20]).expect("huge");
    let image = root().join("tests/data/progressive/leaf-420.jpg");
    let state = dir.path().join("st");
    // Exit statuses as src/main.rs gives them: 78 for a board file, 66 for a model, 1 otherwise.
    let cases: [(&[&str], &str, i32); 6] = [
        (
            &["run", "--board", "/dev/zero"],
            "a device, not a regular file",
            78,
        ),
        (
            &["run", "--board", s(&fifo)],
            "a FIFO (named pipe), not a regular file",
            78,
        ),
        (
            &["run", "--board", s(&huge)],
            "more than the 1048576 bytes",
            78,
        ),
        (
            &["predict", "--model", "/dev/zero", "--head", "x", s(&image)],
            "a device, not a regular file",
            66,
        ),
        (
            &["predict", "--head", s(&fifo), s(&image)],
            "a FIFO (named pipe), not a regular file",
            1,
        ),
        (
            &["state", "import", "/dev/zero", "--into", s(&state)],
            "a device, not a regular file",
            1,
        ),
    ];
    for (args, why, status) in cases {
        let out = run_exactly(args);
        assert_eq!(out.status, status, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
        assert!(
            out.peak_kib < 100 * 1024,
            "{args:?}: peak {} KiB",
            out.peak_kib
        );
    }
}
