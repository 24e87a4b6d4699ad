//! The core commands as a user runs them: the real binary, the real model, real images from
//! tests/data, real files in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mini(split: &str) -> PathBuf {
    root().join("tests/data/corn4-mini").join(split)
}

fn fieldtune(args: &[&str], cache: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_fieldtune"))
        .args(args)
        .arg("--cache")
        .arg(cache)
        .current_dir(root())
        .output()
        .expect("the binary runs");
    eprintln!(
        "$ fieldtune {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `fieldtune train` on the bundled subset with its validation split, saving to `head`.
fn train_on_mini(head: &Path, cache: &Path) -> Output {
    fieldtune(
        &[
            "train",
            "--data",
            s(&mini("train")),
            "--val",
            s(&mini("val")),
            "--out",
            s(head),
        ],
        cache,
    )
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn train_eval_predict_on_the_bundled_subset() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let head = dir.path().join("head.fth");

    let embed = fieldtune(&["embed", s(&mini("train"))], &cache);
    assert!(embed.status.success());
    assert!(text(&embed).contains("48 embedded"), "{}", text(&embed));
    let again = fieldtune(&["embed", s(&mini("train"))], &cache);
    assert!(
        text(&again).contains("0 embedded, 48 from the cache"),
        "{}",
        text(&again)
    );

    let train = train_on_mini(&head, &cache);
    assert!(train.status.success(), "{}", text(&train));
    assert!(
        text(&train).contains("epoch   1"),
        "per-epoch lines: {}",
        text(&train)
    );
    assert!(head.is_file());

    let eval = fieldtune(
        &[
            "eval",
            "--data",
            s(&mini("test")),
            "--head",
            s(&head),
            "--json",
        ],
        &cache,
    );
    assert!(eval.status.success(), "{}", text(&eval));
    let json: serde_json::Value = serde_json::from_slice(&eval.stdout).expect("one JSON object");
    let accuracy = json["accuracy"].as_f64().unwrap();
    let baseline = json["baseline_accuracy"].as_f64().unwrap();
    assert_eq!(json["n"], 24);
    for key in ["balanced_accuracy", "unknown_rate"] {
        assert!(json[key].is_number(), "{key} missing");
    }
    // 4 classes: chance is 25 %. The trained head must be far above it and not below the baseline.
    assert!(accuracy >= 0.75, "accuracy {accuracy}");
    assert!(
        accuracy >= baseline,
        "head {accuracy} vs nearest class mean {baseline}"
    );

    let leaf = mini("test").join("Common_Rust");
    let leaf = std::fs::read_dir(leaf)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let predict = fieldtune(&["predict", "--head", s(&head), s(&leaf), "--json"], &cache);
    assert!(predict.status.success(), "{}", text(&predict));
    let line: serde_json::Value = serde_json::from_slice(&predict.stdout).unwrap();
    assert_eq!(line["top"].as_array().unwrap().len(), 3);
    let p: f64 = line["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["probability"].as_f64().unwrap())
        .sum();
    assert!(p <= 1.0 + 1e-4);
}

#[test]
fn photos_unlike_corn_leaves_are_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let head = dir.path().join("head.fth");
    let train = train_on_mini(&head, &cache);
    assert!(train.status.success(), "{}", text(&train));
    let photos: Vec<PathBuf> = ["chelsea.png", "coffee.png", "china.jpg", "flower.jpg"]
        .iter()
        .map(|p| root().join("tests/data/reference").join(p))
        .collect();
    let mut args = vec!["predict", "--json", "--head", s(&head)];
    args.extend(photos.iter().map(|p| s(p)));
    let predict = fieldtune(&args, &cache);
    assert!(predict.status.success(), "{}", text(&predict));
    let stdout = String::from_utf8_lossy(&predict.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for line in lines {
        assert_eq!(line["class"], "unknown", "{line}");
    }
}

#[test]
fn unreadable_images_are_skipped_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for class in ["Blight", "Healthy"] {
        let from = mini("train").join(class);
        std::fs::create_dir_all(data.join(class)).unwrap();
        for entry in std::fs::read_dir(&from).unwrap().take(3) {
            let path = entry.unwrap().path();
            std::fs::copy(&path, data.join(class).join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(data.join("Blight/notes.jpg"), "not an image").unwrap();
    let whole = std::fs::read(root().join("tests/data/reference/china.jpg")).unwrap();
    std::fs::write(data.join("Healthy/cut.jpg"), &whole[..whole.len() / 2]).unwrap();

    let embed = fieldtune(&["embed", s(&data)], &dir.path().join("cache"));
    assert!(embed.status.success(), "{}", text(&embed));
    let out = text(&embed);
    assert!(
        out.contains("notes.jpg") && out.contains("cut.jpg"),
        "{out}"
    );
    assert!(
        out.contains("6 embedded") || out.contains("2 skipped"),
        "{out}"
    );
}

#[test]
fn bad_folders_and_head_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("Blight")).unwrap();
    std::fs::create_dir_all(data.join("Empty")).unwrap();
    std::fs::copy(
        root().join("tests/data/reference/china.jpg"),
        data.join("Blight/a.jpg"),
    )
    .unwrap();
    let train = fieldtune(&["train", "--data", s(&data)], &cache);
    assert!(!train.status.success());
    assert!(text(&train).contains("Empty"), "{}", text(&train));

    let missing = fieldtune(&["train", "--data", s(&dir.path().join("absent"))], &cache);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("absent"), "{}", text(&missing));

    let bad_head = dir.path().join("bad.fth");
    std::fs::write(&bad_head, b"definitely not a head").unwrap();
    let eval = fieldtune(
        &["eval", "--data", s(&mini("test")), "--head", s(&bad_head)],
        &cache,
    );
    assert!(!eval.status.success());
    assert!(text(&eval).contains("bad.fth"), "{}", text(&eval));

    let bad_lr = fieldtune(&["train", "--data", s(&mini("train")), "--lr=-1"], &cache);
    assert!(!bad_lr.status.success());
    assert!(
        text(&bad_lr).to_lowercase().contains("learning"),
        "{}",
        text(&bad_lr)
    );
}
