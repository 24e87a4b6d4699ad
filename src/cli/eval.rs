//! `fieldtune eval --data DIR --head FILE [--json] [--plot FILE.png]`: the head's accuracy, balanced accuracy,
//! per-class precision/recall, confusion matrix and unknown rate on a labelled folder, next to the
//! same figures for the nearest-class-mean baseline (the class whose mean training feature is
//! nearest, which the head stores as its prototypes: the zero-training "before" of the table).
//! With `--tta`, the head's top class is that of its probabilities averaged over each image and
//! its mirror image (off by default: it lost on corn4's validation split, README "Augmentation").

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::common::{folder_features, load_head_file, ModelArgs};
use crate::eval::{metrics, Metrics, Predicted};

/// Arguments of `fieldtune eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Labelled images, DIR/<class>/*.{jpg,jpeg,png}, classes named as in the head.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Head file written by `fieldtune train`.
    #[arg(long = "head", value_name = "FILE")]
    pub head: PathBuf,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also draw the head's confusion matrix and per-class recall as a PNG picture to FILE.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<std::path::PathBuf>,
    /// Test-time views: average the head's probabilities over each image and its mirror image
    /// (one more backbone run per image, cached like the image's own features).
    #[arg(long)]
    pub tta: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `eval`.
///
/// # Errors
/// A bad folder, head file or model, each named.
pub fn run(args: Args) -> anyhow::Result<()> {
    let descriptor = args.model.descriptor()?;
    let head = load_head_file(&args.head, &descriptor)?;
    let mut cache = args.model.open_cache(&descriptor)?;
    let data = folder_features(
        &args.data,
        Some(head.classes()),
        &descriptor,
        cache.as_mut(),
        args.model.threads(),
    )?;
    let predictions = head.predict_batch(data.features.view());
    let mut predicted: Vec<Predicted> = predictions
        .iter()
        .map(|p| Predicted {
            top: p.top.first().map_or(usize::MAX, |t| t.0),
            unknown: p.class.is_none(),
        })
        .collect();
    if args.tta {
        let (mirrored, _) = crate::augment::featurize_views(
            &data,
            &[crate::augment::View::Mirror],
            &descriptor,
            cache.as_mut(),
            args.model.threads(),
        )
        .with_context(|| format!("embedding the mirror images of {}", args.data.display()))?;
        let tops = crate::augment::averaged_top(&head, data.features.view(), mirrored[0].view());
        for (p, top) in predicted.iter_mut().zip(tops) {
            p.top = top;
        }
    }
    let baseline: Vec<Predicted> = predictions
        .iter()
        .map(|p| Predicted {
            top: p.nearest_prototype.unwrap_or(usize::MAX),
            unknown: false,
        })
        .collect();
    let head_metrics = metrics(head.classes(), &data.labels, &predicted);
    let baseline_metrics = metrics(head.classes(), &data.labels, &baseline);
    if let Some(path) = &args.plot {
        let title = format!(
            "{} head on {}",
            crate::plot::kind_label(head.kind()),
            args.data.file_name().map_or_else(
                || args.data.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            )
        );
        crate::plot::confusion::save_confusion_png(&head_metrics, &title, path)
            .with_context(|| format!("drawing the confusion matrix to {}", path.display()))?;
    }
    if args.json {
        outln!(
            "{}",
            to_json(&head_metrics, &baseline_metrics, data.skipped.len())
        );
    } else {
        outln!(
            "head ({:?}, {} classes) on {}",
            head.kind(),
            head.classes().len(),
            args.data.display()
        );
        outln!("{}", head_metrics.table().trim_end_matches('\n'));
        outln!("baseline: nearest class mean");
        outln!("{}", baseline_metrics.table().trim_end_matches('\n'));
        outln!(
            "accuracy {:.2} % vs baseline {:.2} % ({:+.2} points); {} files skipped",
            100.0 * head_metrics.accuracy,
            100.0 * baseline_metrics.accuracy,
            100.0 * (head_metrics.accuracy - baseline_metrics.accuracy),
            data.skipped.len()
        );
    }
    Ok(())
}

fn to_json(head: &Metrics, baseline: &Metrics, skipped: usize) -> serde_json::Value {
    json!({
        "n": head.n,
        "accuracy": head.accuracy,
        "balanced_accuracy": head.balanced_accuracy,
        "unknown_rate": head.unknown_rate,
        "accepted_accuracy": head.accepted_accuracy,
        "baseline_accuracy": baseline.accuracy,
        "baseline_balanced_accuracy": baseline.balanced_accuracy,
        "per_class": head.per_class,
        "confusion": head.confusion,
        "baseline_per_class": baseline.per_class,
        "baseline_confusion": baseline.confusion,
        "skipped": skipped,
    })
}
