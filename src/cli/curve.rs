//! `fieldtune curve --data DIR --val DIR --test DIR [--shots 1,5,20,50] [--draws 5]`: the learning
//! curve of a head against the nearest-class-mean baseline (see [`crate::curve`]), printed as a
//! table, and optionally written as JSON (`--json FILE`) and as a PNG plot (`--plot FILE`).

use std::path::PathBuf;

use anyhow::Context;

use super::common::{folder_features, ModelArgs};
use super::train::{to_dataset, HeadChoice, HyperArgs};
use crate::curve::learning_curve_with_views;
use crate::head::HeadKind;

/// Arguments of `fieldtune curve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pool of training images to draw from, DIR/<class>/*.{jpg,jpeg,png}.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Pool of validation images to draw from (same classes).
    #[arg(long, value_name = "DIR")]
    pub val: PathBuf,
    /// Test images (same classes), all of them scored.
    #[arg(long, value_name = "DIR")]
    pub test: PathBuf,
    /// Labelled training images per class, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5,20,50", value_parser = clap::value_parser!(usize))]
    pub shots: Vec<usize>,
    /// Random draws per point.
    #[arg(long, default_value_t = 5)]
    pub draws: usize,
    /// Head type.
    #[arg(long = "head", value_enum, default_value_t = HeadChoice::Linear)]
    pub head: HeadChoice,
    /// Hidden units of the MLP head.
    #[arg(long, default_value_t = HeadKind::DEFAULT_MLP_HIDDEN)]
    pub hidden: usize,
    /// Train as a device does: the drawn validation images join the training images and no
    /// validation set is given (the head holds out its own part when it can).
    #[arg(long)]
    pub device: bool,
    /// Each drawn image also brings VIEWS extra views (mirror, then crops), embedded once and
    /// cached per (image, view), as in `train` (default 2) and a device's labels (`[learning]
    /// label_views`); they train once every class has `augment::MIN_PER_CLASS_FOR_VIEWS` images.
    /// 0 = none.
    #[arg(long, value_name = "VIEWS", num_args = 0..=1, default_missing_value = "2", default_value_t = super::train::DEFAULT_VIEWS)]
    pub augment: usize,
    /// Also write the curve as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also draw the curve as a PNG picture to FILE.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub hyper: HyperArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `curve`.
///
/// # Errors
/// Bad folders, options, model or output paths, each named.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.shots.is_empty() || args.shots.contains(&0) {
        anyhow::bail!("--shots needs one or more labelled images per class, each at least 1 (e.g. --shots 1,5,20,50)");
    }
    if args.draws == 0 {
        anyhow::bail!("--draws must be at least 1");
    }
    let kind = match args.head {
        HeadChoice::Linear => HeadKind::Linear,
        HeadChoice::Mlp => HeadKind::Mlp {
            hidden: args.hidden,
        },
    };
    let hyper = args.hyper.check(kind)?;
    let descriptor = args.model.descriptor()?;
    let mut cache = args.model.open_cache(&descriptor)?;
    let threads = args.model.threads();
    let pool = folder_features(&args.data, None, &descriptor, cache.as_mut(), threads)?;
    let classes = pool.classes.clone();
    if classes.len() < 2 {
        anyhow::bail!(
            "{} holds one class folder; a learning curve needs at least two classes",
            args.data.display()
        );
    }
    let mut load =
        |dir: &PathBuf| folder_features(dir, Some(&classes), &descriptor, cache.as_mut(), threads);
    let val_folder = load(&args.val)?;
    let test = to_dataset(load(&args.test)?)?;
    if args.augment > crate::augment::MAX_VIEWS {
        anyhow::bail!(
            "--augment {} asks for too many views; use at most {}",
            args.augment,
            crate::augment::MAX_VIEWS
        );
    }
    // Views train only from MIN_PER_CLASS_FOR_VIEWS images a class: not embedded when no point
    // of the curve (with its validation images, as `--device` counts them) gets there.
    let reaches = args
        .shots
        .iter()
        .any(|&k| k + k.div_ceil(2) >= crate::augment::MIN_PER_CLASS_FOR_VIEWS);
    let views = crate::augment::views(if reaches { args.augment } else { 0 });
    let mut view_features = |of: &crate::featurize::Featurized, dir: &PathBuf| {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        crate::augment::featurize_views(of, &views, &descriptor, cache.as_mut(), threads)
            .map(|(m, _)| m)
            .with_context(|| format!("computing the extra views of {}", dir.display()))
    };
    let pool_views = view_features(&pool, &args.data)?;
    let val_views = view_features(&val_folder, &args.val)?;
    let val = to_dataset(val_folder)?;
    let pool = to_dataset(pool)?;
    outln!(
        "learning curve of a {kind:?} head on {} ({} classes): {} draws per point, tested on {} images",
        args.data.display(),
        classes.len(),
        args.draws,
        test.len()
    );
    let curve = learning_curve_with_views(
        &pool,
        &val,
        &test,
        (&pool_views, &val_views),
        &args.shots,
        args.draws,
        kind,
        &hyper,
        args.device,
        &mut |k, d, h, b| {
            outln!(
                "k {k:>3} draw {}: head {:.2} %, class means {:.2} %",
                d + 1,
                100.0 * h,
                100.0 * b
            )
        },
    )
    .context("computing the learning curve")?;
    outln!("{}", curve.table().trim_end_matches('\n'));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&curve).context("encoding the curve as JSON")?;
        std::fs::write(path, text + "\n").with_context(|| {
            format!(
                "writing {} (check the directory exists and is writable)",
                path.display()
            )
        })?;
        outln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        crate::plot::curve::save_curve_png(&curve, path)
            .with_context(|| format!("drawing the curve to {}", path.display()))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
