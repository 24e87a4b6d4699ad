//! `fieldtune predict --head FILE IMAGE...`: the top classes of each image with their calibrated
//! probabilities, or "unknown" for an image unlike every class the head knows.

use std::path::PathBuf;

use super::common::{load_head_file, ModelArgs};
use crate::embedder::Embedder;
use crate::preprocess::DecodeLimits;

/// Arguments of `fieldtune predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Head file written by `fieldtune train`.
    #[arg(long = "head", value_name = "FILE")]
    pub head: PathBuf,
    /// Images (JPEG or PNG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// One JSON line per image instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `predict`. An unreadable image is reported and the others are still predicted; the exit
/// status is non-zero if any image failed.
///
/// # Errors
/// A bad head file or model, or any image that could not be read.
pub fn run(args: Args) -> anyhow::Result<()> {
    let descriptor = args.model.descriptor()?;
    let head = load_head_file(&args.head, &descriptor)?;
    let mut embedder = Embedder::load(&descriptor)?;
    let mut failed = 0usize;
    for path in &args.images {
        let features = crate::preprocess::read_image_file(path, &DecodeLimits::DEFAULT)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| Ok(embedder.embed_bytes(&bytes)?));
        let features = match features {
            Ok(f) => f,
            Err(error) => {
                eprintln!("{}: {error:#}", path.display());
                failed += 1;
                continue;
            }
        };
        let prediction = head.predict(ndarray::ArrayView1::from(&features));
        let top: Vec<(String, f32)> = prediction
            .top
            .iter()
            .take(args.top)
            .map(|&(c, p)| (head.classes()[c].clone(), p))
            .collect();
        let label = prediction
            .class
            .map_or("unknown".to_string(), |c| head.classes()[c].clone());
        if args.json {
            let json = serde_json::json!({
                "image": path.display().to_string(),
                "class": label,
                "unknown": prediction.class.is_none(),
                "unknown_score": prediction.unknown_score,
                "top": top.iter().map(|(c, p)| serde_json::json!({"class": c, "probability": p})).collect::<Vec<_>>(),
            });
            outln!("{json}");
        } else {
            let shown: Vec<String> = top
                .iter()
                .map(|(c, p)| format!("{c} {:.1} %", 100.0 * p))
                .collect();
            outln!(
                "{}: {label}  ({}; unknown score {:.3})",
                path.display(),
                shown.join(", "),
                prediction.unknown_score
            );
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} images could not be read", args.images.len());
    }
    Ok(())
}
