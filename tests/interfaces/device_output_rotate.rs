//! Bounded prediction files end to end: the real service writes its prediction lines to a file
//! that `[output.rotate]` keeps to `max_kb` with `keep` old files, rotating between whole lines.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fieldtune");

#[test]
fn prediction_files_rotate_by_size_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let desktop = std::fs::read_to_string(root.join("boards/desktop.toml")).unwrap();
    let board = dir.path().join("board.toml");
    std::fs::write(
        &board,
        format!("{desktop}\n[output.rotate]\nmax_kb = 4\nkeep = 2\n"),
    )
    .unwrap();
    let file = dir.path().join("predictions.jsonl");
    let status = Command::new(BIN)
        .current_dir(root)
        .args(["run", "--web", "none", "--bench-frames", "120"])
        .arg("--board")
        .arg(&board)
        .arg("--folder")
        .arg(root.join("tests/data/corn4-mini/test"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(dir.path().join("control.sock"))
        .arg("--predictions")
        .arg(&file)
        .env_remove("NOTIFY_SOCKET")
        .status()
        .expect("run fieldtune");
    assert!(status.success());
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", file.display()));
    let seqs = |path: &Path| -> Vec<u64> {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.len() <= 4096,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        assert!(text.ends_with('\n'), "whole lines only");
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
                v["seq"].as_u64().expect("seq")
            })
            .collect()
    };
    assert!(!numbered(3).exists(), "only keep = 2 old files");
    let all: Vec<u64> = [numbered(2), numbered(1), file.clone()]
        .iter()
        .flat_map(|p| seqs(p))
        .collect();
    // The newest lines, in order, none missing, ending with the last frame.
    assert_eq!(all.last(), Some(&120));
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "{all:?}");
    assert!(
        all.len() > 20 && all.len() < 120,
        "{} lines kept",
        all.len()
    );
    println!(
        "{} of 120 lines kept in 3 files of at most 4 KiB",
        all.len()
    );
}
