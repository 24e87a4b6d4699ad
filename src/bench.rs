//! Benchmarks of the per-image path and the head: decode, preprocess, backbone, head predict, online
//! `learn` and full retrain, as medians over repeated runs. Each figure is reported next to a
//! baseline measured in the same run (the backbone for the per-frame stages; the `image` crate's own
//! resize for preprocessing), so ratios stay meaningful on a noisy shared machine.

use std::time::{Duration, Instant};

use image::imageops::FilterType;
use ndarray::ArrayView1;
use serde::Serialize;

use crate::embedder::{EmbedError, Embedder};
use crate::head::{Dataset, Head, HeadError, HeadKind, HyperParams};
use crate::preprocess::{decode, PreprocessError, Preprocessor};

/// Median and spread of one measured step, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// Median.
    pub median_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Runs measured.
    pub runs: usize,
}

impl Timing {
    /// Summarises durations.
    pub fn from(mut samples: Vec<Duration>) -> Timing {
        samples.sort();
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 - 1.0) * q).round() as usize)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        Timing {
            median_ms: at(0.5),
            p10_ms: at(0.1),
            p90_ms: at(0.9),
            runs: samples.len(),
        }
    }
}

/// CPU time the calling thread has used (Linux and other Unix; zero where it cannot be read).
pub fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
    }
    #[cfg(not(unix))]
    Duration::ZERO
}

/// CPU time all threads of the process have used (zero where it cannot be read).
pub fn process_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
    }
    #[cfg(not(unix))]
    Duration::ZERO
}

#[cfg(unix)]
fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
        return Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    }
    Duration::ZERO
}

/// Times `step` `runs` times (after one warm-up run).
pub fn time<E>(runs: usize, mut step: impl FnMut() -> Result<(), E>) -> Result<Timing, E> {
    step()?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        step()?;
        samples.push(start.elapsed());
    }
    Ok(Timing::from(samples))
}

/// Per-image costs on a set of encoded images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameBench {
    /// JPEG/PNG decode (with EXIF orientation).
    pub decode: Timing,
    /// fieldtune's resize + crop + normalise.
    pub preprocess: Timing,
    /// Baseline: the `image` crate's bilinear resize + crop + the same normalisation.
    pub preprocess_baseline_image_crate: Timing,
    /// The backbone on one tensor.
    pub backbone: Timing,
}

/// Measures decode, preprocess (and its baseline) and the backbone over `images`.
///
/// # Errors
/// Any image that cannot be decoded, or a backbone failure.
pub fn frame_bench(
    embedder: &mut Embedder,
    preprocessor: &mut Preprocessor,
    images: &[Vec<u8>],
    runs: usize,
) -> Result<FrameBench, EmbedError> {
    let decoded = images
        .iter()
        .map(|b| decode(b))
        .collect::<Result<Vec<_>, _>>()?;
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % images.len();
        i
    };
    let decode_timing = time(runs, || decode(&images[next()]).map(|_| ()))?;
    let mut tensor = Vec::new();
    let preprocess = time(runs, || {
        preprocessor.rgb_to_tensor(&decoded[next()], &mut tensor)
    })?;
    let spec = preprocessor.spec().clone();
    let baseline = time(runs, || -> Result<(), PreprocessError> {
        let rgb = &decoded[next()];
        let (w, h) =
            crate::preprocess::shorter_side_to(rgb.width(), rgb.height(), spec.resize_shorter);
        let resized = image::imageops::resize(rgb, w, h, FilterType::Triangle);
        let crop = spec.crop;
        let view = image::imageops::crop_imm(&resized, (w - crop) / 2, (h - crop) / 2, crop, crop)
            .to_image();
        tensor.clear();
        for c in 0..3 {
            tensor.extend(
                view.pixels()
                    .map(|p| (f32::from(p.0[c]) - spec.mean[c]) / spec.std[c]),
            );
        }
        Ok(())
    })?;
    preprocessor.rgb_to_tensor(&decoded[0], &mut tensor)?;
    let backbone = time(runs, || embedder.embed_tensor(&tensor).map(|_| ()))?;
    Ok(FrameBench {
        decode: decode_timing,
        preprocess,
        preprocess_baseline_image_crate: baseline,
        backbone,
    })
}

/// The backbone on several threads against one thread, measured in alternation in the same run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThreadedBackbone {
    /// Threads of the multi-threaded plan.
    pub threads: usize,
    /// One thread.
    pub single: Timing,
    /// `threads` threads.
    pub threaded: Timing,
    /// Median single-thread time over median threaded time.
    pub speedup: f64,
}

/// Times the backbone of `single` (one thread) and of `threaded` alternately on one image's
/// tensor, so both see the same machine load.
///
/// # Errors
/// An image that cannot be decoded, or a backbone failure.
pub fn threaded_backbone_bench(
    single: &mut Embedder,
    threaded: &mut Embedder,
    threads: usize,
    preprocessor: &mut Preprocessor,
    image: &[u8],
    runs: usize,
) -> Result<ThreadedBackbone, EmbedError> {
    let mut tensor = Vec::new();
    preprocessor.rgb_to_tensor(&decode(image)?, &mut tensor)?;
    single.embed_tensor(&tensor)?;
    threaded.embed_tensor(&tensor)?;
    let (mut one, mut many) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        for (embedder, samples) in [(&mut *single, &mut one), (&mut *threaded, &mut many)] {
            let start = Instant::now();
            embedder.embed_tensor(&tensor)?;
            samples.push(start.elapsed());
        }
    }
    let (single, threaded) = (Timing::from(one), Timing::from(many));
    Ok(ThreadedBackbone {
        threads,
        single,
        threaded,
        speedup: single.median_ms / threaded.median_ms,
    })
}

/// Costs of the head on a data set of features.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadBench {
    /// Samples × feature length × classes of the training set.
    pub samples: usize,
    /// Feature length.
    pub dim: usize,
    /// Classes.
    pub classes: usize,
    /// The head measured.
    pub kind: String,
    /// Full training from the stored features (the device's `retrain`).
    pub retrain: Timing,
    /// The same retrains in CPU time of the thread that called them (the hold-out run's): on a
    /// machine shared with other work, the wall time also counts the time the thread waited for
    /// a core; this does not.
    pub retrain_cpu: Timing,
    /// CPU time of every thread of the process over each retrain (the refit runs on a thread of
    /// its own beside the hold-out run).
    pub retrain_process_cpu: Timing,
    /// The longer of the two threads' CPU times (the calling thread's, and the rest of the
    /// process's): what the wall time would be on idle cores.
    pub retrain_critical_cpu: Timing,
    /// Epochs of the last retrain's hold-out run.
    pub retrain_epochs: usize,
    /// Epochs of the last retrain's refit on every sample, if it had one.
    pub retrain_refit_epochs: Option<usize>,
    /// The MLP's retrain with its hidden layer split over more threads
    /// ([`Head::train_on_threads`]), timed alternately with `retrain`; `None` for the linear head
    /// or on one core.
    pub retrain_split: Option<SplitRetrain>,
    /// One prediction (probabilities + unknown score).
    pub predict: Timing,
    /// One online `learn` step.
    pub learn: Timing,
}

/// The retrain on more threads, measured alternately with the default one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitRetrain {
    /// Threads the hidden layer's products were split over.
    pub threads: usize,
    /// Wall time.
    pub wall: Timing,
    /// CPU time of every thread of the process.
    pub process_cpu: Timing,
}

/// One timed retrain: wall, calling thread's CPU, process CPU.
fn timed_retrain(
    train: impl FnOnce() -> Result<(Head, crate::head::train::TrainReport), HeadError>,
) -> Result<(Head, crate::head::train::TrainReport, [Duration; 3]), HeadError> {
    let (wall, thread, process) = (Instant::now(), thread_cpu_time(), process_cpu_time());
    let (head, report) = train()?;
    let spent = [
        wall.elapsed(),
        thread_cpu_time().saturating_sub(thread),
        process_cpu_time().saturating_sub(process),
    ];
    Ok((head, report, spent))
}

/// Measures retrain, predict and learn for `kind` on `data`.
///
/// # Errors
/// If training fails.
pub fn head_bench(
    data: &Dataset,
    kind: HeadKind,
    retrain_runs: usize,
    step_runs: usize,
) -> Result<HeadBench, HeadError> {
    // The device's hyper-parameters for this kind (`HyperParams::defaults_for`).
    let hyper = HyperParams::builder_for(kind).check()?;
    let threads = crate::head::pool::default_threads();
    let split = matches!(kind, HeadKind::Mlp { .. }) && threads > 1;
    let (mut wall, mut cpu, mut process, mut critical) = (vec![], vec![], vec![], vec![]);
    let (mut split_wall, mut split_cpu) = (vec![], vec![]);
    let mut last = None;
    // One warm-up run of each, then `retrain_runs` alternating.
    for run in 0..=retrain_runs {
        let (head, report, [w, t, p]) =
            timed_retrain(|| Head::train(data, None, kind, &hyper, &mut |_| {}))?;
        if run > 0 {
            wall.push(w);
            cpu.push(t);
            process.push(p);
            critical.push(t.max(p.saturating_sub(t)));
        }
        last = Some((head, report));
        if split {
            let (_, _, [w, _, p]) = timed_retrain(|| {
                Head::train_on_threads(data, None, kind, &hyper, threads, &mut |_| {})
            })?;
            if run > 0 {
                split_wall.push(w);
                split_cpu.push(p);
            }
        }
    }
    let (mut head, report) = last.ok_or(HeadError::EmptyDataset("bench"))?;
    let retrain = Timing::from(wall);
    let retrain_cpu = Timing::from(cpu);
    let retrain_process_cpu = Timing::from(process);
    let retrain_critical_cpu = Timing::from(critical);
    let retrain_split = split.then(|| SplitRetrain {
        threads,
        wall: Timing::from(split_wall),
        process_cpu: Timing::from(split_cpu),
    });
    let rows: Vec<ArrayView1<f32>> = data.features.outer_iter().collect();
    let mut i = 0usize;
    let predict = time(step_runs, || -> Result<(), HeadError> {
        i = (i + 1) % rows.len();
        head.try_predict(rows[i]).map(|_| ())
    })?;
    let learn = time(step_runs, || {
        i = (i + 1) % rows.len();
        head.learn(rows[i], data.labels[i])
    })?;
    Ok(HeadBench {
        samples: data.len(),
        dim: data.dim(),
        classes: data.classes.len(),
        kind: format!("{kind:?}"),
        retrain,
        retrain_cpu,
        retrain_process_cpu,
        retrain_critical_cpu,
        retrain_epochs: report.epochs_run,
        retrain_refit_epochs: report.refit_epochs,
        retrain_split,
        predict,
        learn,
    })
}
