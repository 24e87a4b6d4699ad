//! `fieldtune bench [--data DIR] [--json]`: per-image decode, preprocess and backbone times, and the
//! head's predict, online learn and full retrain times on a folder's cached features, as a table
//! with ratios to the backbone (or one JSON object). `--ops` prints instead where the backbone's
//! time goes: the time per kind of operation of tract's optimised plan, for tract's own depthwise
//! convolutions and ours in the same run (or the runners `--depthwise` names).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::common::{folder_features, ModelArgs};
use super::train::to_dataset;
use crate::backbone::{Backbone, Depthwise, DepthwiseKernel, LoadOptions, TractBackbone};
use crate::bench::{
    frame_bench, head_bench, threaded_backbone_bench, time, FrameBench, HeadBench,
    ThreadedBackbone, Timing,
};
use crate::dataset::ImageFolder;
use crate::embedder::Embedder;
use crate::head::HeadKind;
use crate::model::ModelDescriptor;
use crate::preprocess::{decode, Preprocessor};

/// Arguments of `fieldtune bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image folder whose features train the head (through the cache) and whose first images are
    /// decoded and embedded [default: the bundled tests/data/corn4-mini/train].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Runs per per-image figure.
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Retrain runs per head.
    #[arg(long, default_value_t = 5)]
    pub retrain_runs: usize,
    /// Also time the backbone on this many threads against one thread (as `model.threads` in a
    /// board file does) [default: the number of cores; 1 skips it].
    #[arg(long, value_name = "N")]
    pub backbone_threads: Option<usize>,
    /// Only profile the backbone: the time per kind of operation of the optimised plan (each node
    /// timed over `--runs` frames), next to the untimed backbone measured in the same run.
    #[arg(long)]
    pub ops: bool,
    /// Who runs the depthwise convolutions: `tract`, `best` (the default), or one of our kernels
    /// this machine runs (`portable`, `avx2+fma`, `neon`). Comma-separated with `--ops`, which
    /// profiles each in turn [default with --ops: tract and our op with the best kernel this
    /// machine runs: `portable` on armv7, where `best` is tract's].
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub depthwise: Vec<Depthwise>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `bench`.
///
/// # Errors
/// A bad folder or model.
pub fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args.data.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/corn4-mini/train")
    });
    let descriptor = args.model.descriptor()?;
    let folder = ImageFolder::scan(&data_dir)?;
    let images: Vec<Vec<u8>> = folder
        .items
        .iter()
        .step_by((folder.items.len() / 16).max(1))
        .map(|item| {
            std::fs::read(&item.path).with_context(|| format!("reading {}", item.path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut preprocessor = Preprocessor::new(descriptor.preprocessing.clone());
    if args.ops {
        let runners = if args.depthwise.is_empty() {
            // Ours even where `best` is tract's (armv7: only the portable kernel), so the two
            // are always compared.
            vec![Depthwise::Tract, Depthwise::Ours(DepthwiseKernel::best())]
        } else {
            args.depthwise.clone()
        };
        return ops(
            &descriptor,
            &mut preprocessor,
            &images[0],
            &runners,
            args.runs,
            args.json,
        );
    }
    let depthwise = args.depthwise.first().copied().unwrap_or_default();
    let load = |threads| -> anyhow::Result<Embedder> {
        let options = LoadOptions { threads, depthwise };
        let backbone = TractBackbone::load_with_options(&descriptor, options)?;
        Ok(Embedder::with_backbone(&descriptor, Box::new(backbone)))
    };
    let mut embedder = load(1)?;
    let frame = frame_bench(&mut embedder, &mut preprocessor, &images, args.runs)?;
    let threads = args
        .backbone_threads
        .unwrap_or_else(crate::board::all_cores);
    let threaded = if threads > 1 {
        let mut threaded = load(threads)?;
        Some(threaded_backbone_bench(
            &mut embedder,
            &mut threaded,
            threads,
            &mut preprocessor,
            &images[0],
            args.runs,
        )?)
    } else {
        None
    };

    let mut cache = args.model.open_cache(&descriptor)?;
    let features = folder_features(
        &data_dir,
        None,
        &descriptor,
        cache.as_mut(),
        args.model.threads(),
    )?;
    let dataset = to_dataset(features)?;
    let heads = [HeadKind::Linear, HeadKind::default_mlp()]
        .into_iter()
        .map(|kind| head_bench(&dataset, kind, args.retrain_runs, args.runs * 10))
        .collect::<Result<Vec<_>, _>>()?;

    if args.json {
        outln!(
            "{}",
            json!({"data": data_dir.display().to_string(), "depthwise": depthwise.name(), "frame": frame, "backbone_threads": threaded, "heads": heads, "around_backbone_ratio": around_ratio(&frame, &heads[0]), "arena": crate::heap::ARENA.stats()})
        );
    } else {
        print_table(&data_dir, &frame, threaded.as_ref(), &heads);
    }
    Ok(())
}

/// `bench --ops`: for each depthwise runner in turn, the per-operation profile of the backbone on
/// one image, then the untimed backbone on the same image (node timing's own cost shows as the
/// difference); then each runner's untimed backbone against the first's.
fn ops(
    descriptor: &ModelDescriptor,
    preprocessor: &mut Preprocessor,
    image: &[u8],
    runners: &[Depthwise],
    runs: usize,
    json: bool,
) -> anyhow::Result<()> {
    let mut tensor = Vec::new();
    preprocessor.rgb_to_tensor(&decode(image)?, &mut tensor)?;
    let mut profiles = Vec::new();
    for &depthwise in runners {
        let options = LoadOptions {
            threads: 1,
            depthwise,
        };
        let mut backbone = TractBackbone::load_with_options(descriptor, options)?;
        let profile = backbone.profile_ops(&tensor, runs)?;
        let untimed = time(runs, || backbone.embed(&tensor).map(drop))?;
        let profiled: f64 = profile.iter().map(|op| op.median_ms).sum();
        profiles.push(json!({"depthwise": depthwise.name(), "summary": backbone.depthwise_summary(), "backbone": untimed, "ops": profile, "sum_of_op_medians_ms": profiled}));
        if json {
            continue;
        }
        println!(
            "backbone {} on one image, 1 thread, {} runs, depthwise convolutions by {}: median {:.3} ms untimed; per kind of operation (each node timed):",
            descriptor.name,
            runs,
            backbone.depthwise_summary(),
            untimed.median_ms
        );
        println!(
            "{:<28} {:>6} {:>10} {:>8}",
            "operation", "nodes", "median ms", "share"
        );
        for op in &profile {
            println!(
                "{:<28} {:>6} {:>10.3} {:>7.1} %",
                op.kind,
                op.nodes,
                op.median_ms,
                100.0 * op.share
            );
        }
        println!("{:<28} {:>6} {:>10.3}\n", "sum", "", profiled);
    }
    if json {
        println!(
            "{}",
            json!({"model": descriptor.name, "profiles": profiles})
        );
        return Ok(());
    }
    let untimed = |p: &serde_json::Value| p["backbone"]["median_ms"].as_f64().unwrap_or(f64::NAN);
    if let Some(first) = profiles.first() {
        for p in &profiles[1..] {
            println!(
                "untimed backbone, depthwise by {}: {:.3} ms = {:.2}x the {} run's {:.3} ms",
                p["depthwise"].as_str().unwrap_or_default(),
                untimed(p),
                untimed(p) / untimed(first),
                first["depthwise"].as_str().unwrap_or_default(),
                untimed(first)
            );
        }
    }
    Ok(())
}

/// (decode + preprocess + linear predict) / backbone.
fn around_ratio(frame: &FrameBench, linear: &HeadBench) -> f64 {
    (frame.decode.median_ms + frame.preprocess.median_ms + linear.predict.median_ms)
        / frame.backbone.median_ms
}

fn print_table(
    data: &std::path::Path,
    frame: &FrameBench,
    threaded: Option<&ThreadedBackbone>,
    heads: &[HeadBench],
) {
    let backbone = frame.backbone.median_ms;
    let row = |name: &str, t: &Timing| {
        outln!(
            "{name:<44} {:>10.3} {:>10.3} {:>10.3} {:>9.1} %",
            t.median_ms,
            t.p10_ms,
            t.p90_ms,
            100.0 * t.median_ms / backbone
        );
    };
    outln!(
        "per image ({} runs; images from {})",
        frame.backbone.runs,
        data.display()
    );
    outln!(
        "{:<44} {:>10} {:>10} {:>10} {:>11}",
        "step",
        "median ms",
        "p10 ms",
        "p90 ms",
        "of backbone"
    );
    row("decode (JPEG/PNG, EXIF)", &frame.decode);
    row("preprocess (resize, crop, normalise)", &frame.preprocess);
    row(
        "  baseline: image crate resize + crop",
        &frame.preprocess_baseline_image_crate,
    );
    row("backbone (tract, 1 image)", &frame.backbone);
    if let Some(t) = threaded {
        row("  same image, 1 thread (alternating)", &t.single);
        row(&format!("  same image, {} threads", t.threads), &t.threaded);
        outln!("  {} threads are {:.2}× as fast as 1", t.threads, t.speedup);
    }
    for head in heads {
        outln!(
            "head {} on {} × {} features, {} classes",
            head.kind,
            head.samples,
            head.dim,
            head.classes
        );
        row("  predict (one frame)", &head.predict);
        row("  learn (one online SGD step)", &head.learn);
        let epochs = match head.retrain_refit_epochs {
            Some(refit) => format!("{} + {refit} epochs", head.retrain_epochs),
            None => format!("{} epochs", head.retrain_epochs),
        };
        outln!(
            "  {:<42} {:>10.3} {:>10.3} {:>10.3}   ({epochs})",
            "retrain (full, from stored features)",
            head.retrain.median_ms,
            head.retrain.p10_ms,
            head.retrain.p90_ms,
        );
        // No share of the backbone's time here: a retrain is not a per-image cost.
        let cpu_row = |name: &str, t: &Timing| {
            outln!(
                "{name:<44} {:>10.3} {:>10.3} {:>10.3}",
                t.median_ms,
                t.p10_ms,
                t.p90_ms
            );
        };
        cpu_row("  retrain, CPU time of its thread", &head.retrain_cpu);
        cpu_row(
            "  retrain, CPU time of the refit's thread too",
            &head.retrain_process_cpu,
        );
        cpu_row(
            "  retrain, CPU time of the longer thread",
            &head.retrain_critical_cpu,
        );
        if let Some(split) = &head.retrain_split {
            cpu_row(
                &format!("  retrain, hidden layer on {} threads", split.threads),
                &split.wall,
            );
            cpu_row("    its CPU time, every thread", &split.process_cpu);
        }
    }
    outln!(
        "around the backbone (decode + preprocess + linear predict): {:.1} % of the backbone time; preprocess is {:.1}× faster than the image-crate baseline",
        100.0 * around_ratio(frame, &heads[0]),
        frame.preprocess_baseline_image_crate.median_ms / frame.preprocess.median_ms
    );
}
