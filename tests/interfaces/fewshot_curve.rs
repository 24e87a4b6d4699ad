//! Learning from few labels, as a user and a device meet it: `fieldtune curve`, `eval --plot` and
//! `train --augment` through the real binary on the bundled corn4-mini images (real model, real
//! files in a temporary directory), and the few-shot head against the nearest class mean on the
//! real features of those images.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fieldtune::curve::learning_curve;
use fieldtune::head::baseline::NearestClassMean;
use fieldtune::head::{Dataset, Head, HeadKind, HyperParams};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mini(split: &str) -> PathBuf {
    root().join("tests/data/corn4-mini").join(split)
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn fieldtune(args: &[&str], cache: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_fieldtune"))
        .args(args)
        .arg("--cache")
        .arg(cache)
        .args(["--threads", "1"])
        .current_dir(root())
        .output()
        .expect("the binary runs");
    eprintln!(
        "$ fieldtune {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "fieldtune {} failed",
        args.join(" ")
    );
    output
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Pixels of `png` equal to `colour`.
fn count_colour(png: &Path, colour: [u8; 3]) -> usize {
    let img = image::open(png)
        .expect("a PNG the image crate reads")
        .to_rgb8();
    img.pixels().filter(|p| p.0 == colour).count()
}

#[test]
fn curve_and_confusion_pictures_through_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (json, png) = (dir.path().join("curve.json"), dir.path().join("curve.png"));
    let cache = dir.path().join("cache");
    let out = fieldtune(
        &[
            "curve",
            "--data",
            s(&mini("train")),
            "--val",
            s(&mini("val")),
            "--test",
            s(&mini("test")),
            "--shots",
            "1,4",
            "--draws",
            "2",
            "--json",
            s(&json),
            "--plot",
            s(&png),
        ],
        &cache,
    );
    let table = stdout(&out);
    assert!(
        table.contains("| 1 (+1) |") && table.contains("| 4 (+2) |"),
        "{table}"
    );

    let curve: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON written")).expect("JSON");
    let points = curve["points"].as_array().expect("points");
    assert_eq!(points.len(), 2);
    for p in points {
        for series in ["head", "baseline"] {
            let v = p[series].as_array().expect("per-draw accuracies");
            assert_eq!(v.len(), 2);
            assert!(v.iter().all(|a| (0.0..=1.0).contains(&a.as_f64().unwrap())));
        }
    }
    // With one validation image a class the head is the class means: same accuracy, each draw.
    assert_eq!(points[0]["head"], points[0]["baseline"]);

    let img = image::open(&png).expect("curve PNG").to_rgb8();
    assert_eq!((img.width(), img.height()), (760, 500));
    assert!(count_colour(&png, fieldtune::plot::curve::HEAD) > 100);
    assert!(count_colour(&png, fieldtune::plot::curve::BASELINE) > 100);

    let head = dir.path().join("head.fth");
    fieldtune(
        &[
            "train",
            "--data",
            s(&mini("train")),
            "--val",
            s(&mini("val")),
            "--out",
            s(&head),
        ],
        &cache,
    );
    let confusion = dir.path().join("confusion.png");
    let out = fieldtune(
        &[
            "eval",
            "--data",
            s(&mini("test")),
            "--head",
            s(&head),
            "--plot",
            s(&confusion),
        ],
        &cache,
    );
    assert!(stdout(&out).contains("accuracy"));
    let img = image::open(&confusion).expect("confusion PNG").to_rgb8();
    assert!(img.width() > 400 && img.height() > 300);
    // Four diagonal cells are shaded: some dark-blue pixels exist.
    assert!(
        img.pixels()
            .filter(|p| p.0[2] > 150 && p.0[0] < 100)
            .count()
            > 1000
    );
}

#[test]
fn augmented_views_are_embedded_once_then_read_from_the_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    // Views train from 50 images a class: two classes of 60 files (corn4-mini's 12 images five
    // times each, under other names).
    let data = dir.path().join("data");
    for class in ["Blight", "Healthy"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for entry in std::fs::read_dir(mini("train").join(class)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            for copy in 0..5 {
                std::fs::copy(&path, data.join(class).join(format!("{copy}-{name}"))).unwrap();
            }
        }
    }
    let (a, b) = (dir.path().join("a.fth"), dir.path().join("b.fth"));
    let train = |out: &Path| {
        stdout(&fieldtune(
            &["train", "--data", s(&data), "--out", s(out)],
            &cache,
        ))
    };
    let first = train(&a);
    assert!(
        first.contains("augmented: 2 views (mirror, crop1) of ") && first.contains("embedded now"),
        "{first}"
    );
    let second = train(&b);
    assert!(
        second.contains("0 embedded now") && second.contains("240 from the cache"),
        "{second}"
    );
    // Same images, same views, same seed: the same head, bit for bit.
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // With fewer than 50 images in a class the views are not made, and train says why.
    let small = stdout(&fieldtune(
        &[
            "train",
            "--data",
            s(&mini("train")),
            "--out",
            s(&dir.path().join("c.fth")),
        ],
        &cache,
    ));
    assert!(
        small.contains("views: not used (Blight has 12 training images; views train from 50"),
        "{small}"
    );
    assert!(!small.contains("augmented:"), "{small}");
}

/// The real features of a corn4-mini split, through the binary's export.
fn features(split: &str, cache: &Path, dir: &Path) -> Dataset {
    let out = dir.join(split);
    fieldtune(&["embed", s(&mini(split)), "--export", s(&out)], cache);
    let classes: Vec<String> = std::fs::read_to_string(out.join("classes.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let labels: Vec<usize> = std::fs::read_to_string(out.join("labels.txt"))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let raw = std::fs::read(out.join("features.f32")).unwrap();
    let values: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = labels.len();
    let features = ndarray::Array2::from_shape_vec((n, values.len() / n), values).unwrap();
    Dataset::new(features, labels, classes).unwrap()
}

#[test]
fn few_shot_heads_do_not_lose_to_the_class_means_on_real_features() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let (train, val, test) = (
        features("train", &cache, dir.path()),
        features("val", &cache, dir.path()),
        features("test", &cache, dir.path()),
    );
    for kind in [HeadKind::Linear, HeadKind::default_mlp()] {
        let hyper = HyperParams::defaults_for(kind);
        let curve = learning_curve(
            &train,
            &val,
            &test,
            &[1, 2, 6, 12],
            3,
            kind,
            &hyper,
            false,
            &mut |_, _, _, _| {},
        )
        .expect("curve");
        for p in &curve.points {
            assert!(
                p.head_mean() >= p.baseline_mean(),
                "{kind:?} at {} labels a class: head {:.3} < class means {:.3}",
                p.shots,
                p.head_mean(),
                p.baseline_mean()
            );
        }
    }
    // One validation image a class: the head predicts exactly the nearest class mean.
    let pick = |d: &Dataset, per: usize| {
        let mut seen = vec![0; d.classes.len()];
        let rows: Vec<usize> = (0..d.len())
            .filter(|&i| {
                seen[d.labels[i]] += 1;
                seen[d.labels[i]] <= per
            })
            .collect();
        d.select(&rows)
    };
    let (t, v) = (pick(&train, 3), pick(&val, 1));
    let (head, report) = Head::train(
        &t,
        Some(&v),
        HeadKind::Linear,
        &HyperParams::default(),
        &mut |_| {},
    )
    .expect("trains");
    assert_eq!(report.best_epoch, 0);
    let ncm = NearestClassMean::fit(&t.concat(&v)).unwrap();
    let top = fieldtune::curve::head_top(&head, test.features.view());
    assert_eq!(top, ncm.predict_batch(test.features.view()));
}
