//! `fieldtune train --data DIR [--val DIR] [--head linear|mlp] [--out FILE]`: embeds the folders
//! (through the cache), trains a head with our SGD, prints one line per epoch and the result, and
//! saves the head file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use super::common::{folder_features, ModelArgs};
use crate::featurize::Featurized;
use crate::head::{Dataset, EpochReport, Head, HeadKind, HyperParams};
use crate::store::head_file::save_head;

/// Which head to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadChoice {
    /// Linear softmax.
    Linear,
    /// One hidden ReLU layer (width: --hidden).
    Mlp,
}

/// Hyper-parameter overrides; anything not given keeps the tuned default.
#[derive(Debug, Clone, clap::Args)]
pub struct HyperArgs {
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Maximum epochs (early stopping usually ends sooner).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// L2 weight decay.
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Mini-batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Random seed (runs with the same seed and data are identical).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl HyperArgs {
    /// The validated hyper-parameters.
    ///
    /// # Errors
    /// A typed error naming the bad value.
    pub fn check(&self, kind: HeadKind) -> anyhow::Result<HyperParams> {
        let mut builder = HyperParams::builder_for(kind);
        if let Some(v) = self.lr {
            builder = builder.learning_rate(v);
        }
        if let Some(v) = self.epochs {
            builder = builder.epochs(v);
        }
        if let Some(v) = self.weight_decay {
            builder = builder.weight_decay(v);
        }
        if let Some(v) = self.batch_size {
            builder = builder.batch_size(v);
        }
        if let Some(v) = self.seed {
            builder = builder.seed(v);
        }
        Ok(builder.check()?)
    }
}

/// Arguments of `fieldtune train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training images, DIR/<class>/*.{jpg,jpeg,png}.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Validation images (same classes); without it a stratified part of --data is held out.
    #[arg(long, value_name = "DIR")]
    pub val: Option<PathBuf>,
    /// Head type.
    #[arg(long = "head", value_enum, default_value_t = HeadChoice::Linear)]
    pub head: HeadChoice,
    /// Hidden units of the MLP head.
    #[arg(long, default_value_t = HeadKind::DEFAULT_MLP_HIDDEN)]
    pub hidden: usize,
    /// Where to save the head.
    #[arg(long, value_name = "FILE", default_value = "head.fth")]
    pub out: PathBuf,
    #[command(flatten)]
    pub hyper: HyperArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Turns folder features into a head data set.
///
/// # Errors
/// If the features do not form a valid data set.
pub fn to_dataset(featurized: Featurized) -> anyhow::Result<Dataset> {
    Ok(Dataset::new(
        featurized.features,
        featurized.labels,
        featurized.classes,
    )?)
}

/// Runs `train`.
///
/// # Errors
/// Bad folders, hyper-parameters, model or output path, each named.
pub fn run(args: Args) -> anyhow::Result<()> {
    let kind = match args.head {
        HeadChoice::Linear => HeadKind::Linear,
        HeadChoice::Mlp => HeadKind::Mlp {
            hidden: args.hidden,
        },
    };
    let hyper = args.hyper.check(kind)?;
    // Checked before any image is embedded: a head needs two classes to tell apart.
    let scanned = crate::dataset::ImageFolder::scan(&args.data)?;
    if scanned.classes.len() < 2 {
        anyhow::bail!(
            "{} holds one class folder ({}); a head learns to tell classes apart, so it needs at least two: add a folder of images of another class (e.g. what the camera sees when the thing is absent)",
            args.data.display(),
            crate::learner::names::shown(&scanned.classes[0])
        );
    }
    let descriptor = args.model.descriptor()?;
    let mut cache = args.model.open_cache(&descriptor)?;
    let threads = args.model.threads();
    let train_features = folder_features(&args.data, None, &descriptor, cache.as_mut(), threads)?;
    let classes = train_features.classes.clone();
    let val = match &args.val {
        Some(dir) => Some(to_dataset(folder_features(
            dir,
            Some(&classes),
            &descriptor,
            cache.as_mut(),
            threads,
        )?)?),
        None => None,
    };
    // Canonical row order: the same images give the same head here and on a device.
    let train = to_dataset(train_features)?.canonical();
    let val = val.map(|v| v.canonical());
    outln!(
        "training a {kind:?} head on {} images ({}), {}",
        train.len(),
        classes.join(", "),
        match &val {
            Some(v) => format!("validating on {} images", v.len()),
            None => "holding out part of the training images for validation".to_string(),
        }
    );
    let start = Instant::now();
    let mut print_epoch = |e: &EpochReport| {
        outln!(
            "epoch {:>3}  lr {:.4}  train loss {:.4}  val loss {}  val acc {}",
            e.epoch,
            e.learning_rate,
            e.train_loss,
            e.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            e.val_accuracy
                .map_or("-".into(), |v| format!("{:.2} %", 100.0 * v)),
        );
    };
    let (head, report) = Head::train(&train, val.as_ref(), kind, &hyper, &mut print_epoch)
        .context("training the head")?;
    let seconds = start.elapsed().as_secs_f64();
    save_head(&args.out, &head, &descriptor.backbone_id())
        .with_context(|| format!("saving the head to {}", args.out.display()))?;
    if let Some(n) = report.refit_samples {
        outln!(
            "refitted on all {n} training and validation samples for {} epochs",
            report.best_epoch
        );
    }
    outln!(
        "best epoch {} of {} ({seconds:.2} s); validation accuracy {}, loss {}; unknown threshold {:.4} (temperature {:.3}); saved {}",
        report.best_epoch,
        report.epochs_run,
        report
            .best_val_accuracy
            .map_or("-".into(), |v| format!("{:.2} %", 100.0 * v)),
        report
            .best_val_loss
            .map_or("-".into(), |v| format!("{v:.4}")),
        report.calibration.unknown_threshold,
        report.calibration.temperature,
        args.out.display()
    );
    Ok(())
}
