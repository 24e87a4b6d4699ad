//! The state directory's lock across real processes: a child process (this test binary, re-run
//! with an environment variable) holds the directory; this process is refused with the child's PID
//! in the message, and takes the directory as soon as the child is killed with SIGKILL, with no
//! clean-up in between (the kernel drops a dead process's `flock`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fieldtune::store::lock::{Holder, LockError, StateLock};

/// Set in the child: the state directory it must hold.
const CHILD_DIR: &str = "FIELDTUNE_TEST_LOCK_CHILD_DIR";
/// What the child prints once it holds the directory.
const READY: &str = "fieldtune-test-lock-held";

/// Not a test of its own: the body the child runs. Without the variable it does nothing.
#[test]
fn child_holds_the_state_directory() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let socket = dir.join("control.sock");
    let _lock = StateLock::acquire(&dir, &Holder::this_process(Some(&socket)))
        .expect("the child takes the free directory");
    println!("{READY} {}", std::process::id());
    // Until killed; bounded so a failed parent never leaves it behind for long.
    std::thread::sleep(Duration::from_secs(120));
}

/// Kills the child if the test fails before it does.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The name libtest gives [`child_holds_the_state_directory`] in this test binary: its module
/// path without the crate (`store_lock::child_holds_the_state_directory` in `tests/store`).
fn child_test_name() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    if module.is_empty() {
        "child_holds_the_state_directory".to_string()
    } else {
        format!("{module}::child_holds_the_state_directory")
    }
}

fn spawn_holder(dir: &Path) -> Reaper {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            child_test_name().as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("re-run the test binary");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may have printed "test <name> ... " on the same line before it.
            if let Some((_, pid)) = line.split_once(READY) {
                let _ = tx.send(pid.trim().parse::<u32>().expect("a pid"));
            }
        }
    });
    let child = Reaper(child);
    let pid = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child reports that it holds the directory");
    assert_eq!(pid, child.0.id(), "the child holds it itself");
    child
}

#[test]
fn a_directory_held_by_another_process_is_refused_until_that_process_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let mut child = spawn_holder(&state);
    let child_pid = child.0.id();
    let me = Holder::this_process(None);

    // The child's holder is readable without taking the directory.
    let holder = StateLock::holder(&state).expect("held by the child");
    assert_eq!(holder.pid, child_pid);
    assert_eq!(holder.socket, Some(state.join("control.sock")));
    assert!(
        holder.command.contains("child_holds_the_state_directory"),
        "{holder:?}"
    );

    // Refused at once (never waiting for the child), naming it.
    let start = std::time::Instant::now();
    let error = StateLock::acquire(&state, &me).expect_err("the child holds it");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "acquire waited {:?}",
        start.elapsed()
    );
    match &error {
        LockError::Held { dir, holder } => {
            assert_eq!(dir, &state);
            assert_eq!(holder.as_ref().map(|h| h.pid), Some(child_pid));
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&child_pid.to_string()) && message.contains("control.sock"),
        "{message}"
    );

    // Still refused a moment later: the child keeps it as long as it lives.
    std::thread::sleep(Duration::from_millis(200));
    assert!(matches!(
        StateLock::acquire(&state, &me),
        Err(LockError::Held { .. })
    ));

    // SIGKILL: no destructor runs in the child, yet the kernel releases its lock.
    child.0.kill().expect("SIGKILL");
    let status = child.0.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the child died by SIGKILL: {status:?}"
    );
    assert!(state.join("lock").is_file(), "the lock file is left behind");
    assert_eq!(StateLock::holder(&state), None, "free after the kill");
    let lock = StateLock::acquire(&state, &me).expect("free once its holder is dead");
    assert_eq!(
        StateLock::holder(&state).map(|h| h.pid),
        Some(std::process::id())
    );
    drop(lock);
}
