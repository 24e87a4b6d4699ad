//! `fieldtune train --data DIR [--val DIR] [--head linear|mlp] [--augment[=VIEWS]] [--out FILE]`:
//! embeds the folders (through the cache; and, unless `--augment 0`, extra views of every training
//! image as well, see [`crate::augment`]), trains a head with our SGD, prints one line per epoch and the
//! result, and saves the head file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use super::common::{folder_features, ModelArgs};
use crate::featurize::Featurized;
use crate::head::{Dataset, EpochReport, Head, HeadKind, HyperParams};
use crate::store::head_file::save_head;

/// Extra views of every training image `train` embeds unless `--augment` says otherwise.
pub const DEFAULT_VIEWS: usize = 2;

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
    /// Also train on VIEWS extra views of every training image (mirror, then random resized
    /// crops with mild colour changes), embedded once and cached per (image, view); 0 = none.
    /// Default 2 (the mirror and one crop, as a device's label), chosen on corn4's validation
    /// split (README, "Augmentation").
    #[arg(long, value_name = "VIEWS", num_args = 0..=1, default_missing_value = "2", default_value_t = DEFAULT_VIEWS)]
    pub augment: usize,
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

/// The training set with `args.augment` extra views of every training image, and the validation
/// set (the hold-out rule of [`crate::augment::with_views`]: views never of a validating image).
///
/// # Errors
/// Embedding or cache errors, named.
fn augmented(
    originals: &crate::featurize::Featurized,
    val: Option<Dataset>,
    args: &Args,
    hyper: &HyperParams,
    descriptor: &crate::model::ModelDescriptor,
    cache: Option<&mut crate::cache::FeatureCache>,
    threads: usize,
) -> anyhow::Result<(Dataset, Option<Dataset>)> {
    let all = to_dataset(originals.clone())?;
    let views = crate::augment::views(args.augment);
    let start = Instant::now();
    let (matrices, embedded) =
        crate::augment::featurize_views(originals, &views, descriptor, cache, threads)
            .with_context(|| format!("computing the extra views of {}", args.data.display()))?;
    let stacked = ndarray::concatenate(
        ndarray::Axis(0),
        &matrices.iter().map(|m| m.view()).collect::<Vec<_>>(),
    )
    .context("stacking the views' features")?;
    let view_of: Vec<usize> = (0..matrices.len()).flat_map(|_| 0..all.len()).collect();
    let (train, val) = crate::augment::with_views(&all, stacked.view(), &view_of, val, hyper);
    outln!(
        "augmented: {} views ({}) of {} training images, {} embedded now ({:.1} s), {} from the cache",
        views.len(),
        views.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
        train.len() / (views.len() + 1),
        embedded,
        start.elapsed().as_secs_f64(),
        views.len() * originals.paths.len() - embedded
    );
    Ok((train, val))
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
    if args.augment > crate::augment::MAX_VIEWS {
        anyhow::bail!(
            "--augment {} asks for too many views; use at most {} (each view costs one backbone run per training image)",
            args.augment,
            crate::augment::MAX_VIEWS
        );
    }
    let all = to_dataset(train_features.clone())?;
    let use_views = args.augment > 0 && crate::augment::views_pay(&all);
    if args.augment > 0 && !use_views {
        let counts = all.class_counts();
        let (fewest, n) = counts
            .iter()
            .enumerate()
            .min_by_key(|(_, &c)| c)
            .map_or((String::new(), 0), |(i, &c)| (all.classes[i].clone(), c));
        outln!(
            "views: not used ({fewest} has {n} training images; views train from {} images a class, below that they cost accuracy)",
            crate::augment::MIN_PER_CLASS_FOR_VIEWS
        );
    }
    drop(all);
    let (train, val) = if use_views {
        augmented(
            &train_features,
            val,
            &args,
            &hyper,
            &descriptor,
            cache.as_mut(),
            threads,
        )?
    } else {
        (to_dataset(train_features)?, val)
    };
    // Canonical row order: the same images give the same head here and on a device.
    let train = train.canonical();
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
            report.refit_epochs.unwrap_or(report.best_epoch)
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
