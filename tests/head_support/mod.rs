//! Shared helpers of the head tests: seeded synthetic Gaussian-blob data sets and readers for the
//! raw little-endian f32 feature files the backbone writes.

#![allow(dead_code)]

use std::path::Path;

use fieldtune::head::Dataset;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// `per_class` samples of each of `k` classes in `d` dimensions: class means drawn at distance
/// about `separation`, unit Gaussian noise, a constant positive offset (backbone features are
/// non-negative-ish) and a few near-constant dimensions.
pub fn blobs(k: usize, d: usize, per_class: &[usize], separation: f32, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<Array1<f32>> = (0..k)
        .map(|_| {
            Array1::from_shape_simple_fn(d, || {
                separation * normal(&mut rng) / (d as f32).sqrt() * 2.0
            })
        })
        .collect();
    let n: usize = per_class.iter().sum();
    let mut x = Array2::zeros((n, d));
    let mut labels = Vec::with_capacity(n);
    let mut r = 0;
    for (c, &m) in per_class.iter().enumerate() {
        for _ in 0..m {
            for j in 0..d {
                let noise = if j % 7 == 6 { 1e-4 } else { 1.0 };
                x[[r, j]] = 3.0 + means[c][j] + noise * normal(&mut rng);
            }
            labels.push(c);
            r += 1;
        }
    }
    Dataset::new(x, labels, (0..k).map(|c| format!("class{c}")).collect()).expect("valid blobs")
}

/// Splits a blob data set drawn with the same means into train/val/test by drawing three sets
/// from one larger draw.
pub fn blob_splits(
    k: usize,
    d: usize,
    per_class: usize,
    separation: f32,
    seed: u64,
) -> (Dataset, Dataset, Dataset) {
    let all = blobs(k, d, &vec![3 * per_class; k], separation, seed);
    let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..k {
        for i in 0..3 * per_class {
            let row = c * 3 * per_class + i;
            match i % 3 {
                0 => tr.push(row),
                1 => va.push(row),
                _ => te.push(row),
            }
        }
    }
    (all.select(&tr), all.select(&va), all.select(&te))
}

/// Reads a raw little-endian f32 file into `rows × dim`.
pub fn read_f32(path: &Path, dim: usize) -> Array2<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let rows = v.len() / dim;
    Array2::from_shape_vec((rows, dim), v).expect("whole rows")
}

/// Loads one split of a feature directory written by the lead's cache export
/// (`{split}.features.f32`, `{split}.labels.txt`, `classes.txt`).
pub fn load_split(dir: &Path, split: &str, dim: usize) -> Dataset {
    let features = read_f32(&dir.join(format!("{split}.features.f32")), dim);
    let labels: Vec<usize> = std::fs::read_to_string(dir.join(format!("{split}.labels.txt")))
        .expect("labels file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse().expect("label index"))
        .collect();
    let classes: Vec<String> = std::fs::read_to_string(dir.join("classes.txt"))
        .expect("classes file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    Dataset::new(features, labels, classes).expect("valid split")
}

/// Share of rows whose argmax equals the label.
pub fn accuracy(proba: &Array2<f32>, labels: &[usize]) -> f32 {
    let right = proba
        .outer_iter()
        .zip(labels)
        .filter(|(row, &y)| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best == y
        })
        .count();
    right as f32 / labels.len() as f32
}

/// Test accuracy of the nearest-class-mean baseline fitted on `train`.
pub fn nearest_class_mean_accuracy(train: &Dataset, test: &Dataset) -> f32 {
    let ncm = fieldtune::head::baseline::NearestClassMean::fit(train).expect("fits");
    let right = ncm
        .predict_batch(test.features.view())
        .iter()
        .zip(&test.labels)
        .filter(|(p, &y)| **p == Some(y))
        .count();
    right as f32 / test.len() as f32
}
