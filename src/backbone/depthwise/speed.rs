//! A benchmark, not a check (ignored by default; it asserts only that the answers agree): our
//! depthwise op against tract's own on each of EfficientNet-Lite0's 16 depthwise convolutions
//! (with its ReLU6), channels first (CHW, the layout on x86-64) and channels last (HWC, the
//! layout tract moves them to on aarch64), every kernel this machine runs. Each plan is timed in
//! alternation with the others, so every ratio comes from the same moments of a shared machine:
//!
//! `cargo test --release --lib depthwise::speed -- --ignored --nocapture`
//!
//! On x86-64, tract has no channels-inner depthwise kernel, so its HWC figure is its generic loop:
//! the ratio that says something about aarch64 is ours HWC against ours CHW (the channels-last
//! kernel against the channels-first one, same instruction set).

use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::PaddingSpec;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::tests::{model, Problem};
use super::{replace_depthwise, Isa};

/// EfficientNet-Lite0's depthwise convolutions in order: (channels, size, kernel, stride, pads
/// before, pads after).
const SHAPES: [(usize, usize, usize, usize, usize, usize); 16] = [
    (32, 112, 3, 1, 1, 1),
    (96, 112, 3, 2, 0, 1),
    (144, 56, 3, 1, 1, 1),
    (144, 56, 5, 2, 1, 2),
    (240, 28, 5, 1, 2, 2),
    (240, 28, 3, 2, 0, 1),
    (480, 14, 3, 1, 1, 1),
    (480, 14, 3, 1, 1, 1),
    (480, 14, 5, 1, 2, 2),
    (672, 14, 5, 1, 2, 2),
    (672, 14, 5, 1, 2, 2),
    (672, 14, 5, 2, 1, 2),
    (1152, 7, 5, 1, 2, 2),
    (1152, 7, 5, 1, 2, 2),
    (1152, 7, 5, 1, 2, 2),
    (1152, 7, 3, 1, 1, 1),
];

/// Timed runs of each plan per shape (after two untimed ones).
const RUNS: usize = 25;

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

#[test]
#[ignore = "a benchmark: prints timings; run with --ignored --nocapture in release"]
fn depthwise_speed_per_shape_and_layout() {
    let formats = [DataFormat::CHW, DataFormat::HWC];
    let isas = Isa::available();
    // Per runner (tract, then each kernel) and format: the sum over the shapes of the medians.
    let mut sums = vec![[0.0f64; 2]; 1 + isas.len()];
    let mut header = "shape                      | tract CHW".to_string();
    for isa in &isas {
        header += &format!(" | {} CHW", isa.name());
    }
    header += " | tract HWC";
    for isa in &isas {
        header += &format!(" | {} HWC", isa.name());
    }
    println!("{header}   (ms, median of {RUNS})");
    for (channels, size, kernel, stride, before, after) in SHAPES {
        let mut line = format!("{channels:4} x {size:3}^2 k{kernel} s{stride}");
        for (f, format) in formats.into_iter().enumerate() {
            let (decluttered, input) = model(&Problem {
                channels,
                hw: (size, size),
                kernel: (kernel, kernel),
                stride: (stride, stride),
                padding: PaddingSpec::Explicit(tvec!(before, before), tvec!(after, after)),
                format,
                relu6: true,
                seed: 5,
            })
            .expect("model builds");
            let mut states = Vec::new();
            for runner in 0..=isas.len() {
                let mut m = decluttered.clone();
                if runner > 0 {
                    let replaced = replace_depthwise(&mut m, isas[runner - 1]).expect("patches");
                    assert_eq!(replaced.convolutions, 1);
                }
                let plan = m
                    .into_optimized()
                    .expect("optimises")
                    .into_runnable()
                    .expect("plans");
                states.push(plan.spawn().expect("spawns"));
            }
            let mut times = vec![Vec::new(); states.len()];
            let mut answers = vec![Vec::new(); states.len()];
            for run in 0..RUNS + 2 {
                for (r, state) in states.iter_mut().enumerate() {
                    let start = Instant::now();
                    let out = state.run(tvec!(input.clone().into_tvalue())).expect("runs");
                    if run >= 2 {
                        times[r].push(start.elapsed());
                    }
                    answers[r] = out[0]
                        .to_plain_array_view::<f32>()
                        .expect("f32")
                        .iter()
                        .copied()
                        .collect::<Vec<f32>>();
                }
            }
            for (r, answer) in answers.iter().enumerate().skip(1) {
                let diff = answer
                    .iter()
                    .zip(&answers[0])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(diff <= 1e-4, "{format:?} runner {r}: {diff}");
            }
            for (r, times) in times.into_iter().enumerate() {
                let ms = median(times);
                sums[r][f] += ms;
                line += &format!(" | {ms:8.3}");
            }
        }
        println!("{line}");
    }
    let mut total = "sum                        |".to_string();
    for f in 0..2 {
        for sum in &sums {
            total += &format!(" {:8.3} |", sum[f]);
        }
    }
    println!("{total}");
    for (i, isa) in isas.iter().enumerate() {
        let (chw, hwc) = (sums[i + 1][0], sums[i + 1][1]);
        println!(
            "{}: HWC {hwc:.3} ms against CHW {chw:.3} ms: {:.2}x; against tract's op: CHW {:.2}x faster, HWC {:.2}x faster",
            isa.name(),
            hwc / chw,
            sums[0][0] / chw,
            sums[0][1] / hwc
        );
    }
}
