//! `fieldtune embed DIR`: computes the features of an image folder into the cache (and optionally
//! exports them as raw f32 for other tools).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::common::{folder_features, ModelArgs};

/// Arguments of `fieldtune embed`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image folder in the layout DIR/<class>/*.{jpg,jpeg,png}.
    pub dir: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Also write features.f32 (raw little-endian, n × dim), labels.txt, classes.txt and files.txt here.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

/// Runs `embed`.
///
/// # Errors
/// A bad folder, model, cache or export directory.
pub fn run(args: Args) -> anyhow::Result<()> {
    let descriptor = args.model.descriptor()?;
    let mut cache = args.model.open_cache(&descriptor)?;
    let start = std::time::Instant::now();
    let featurized = folder_features(
        &args.dir,
        None,
        &descriptor,
        cache.as_mut(),
        args.model.threads(),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    outln!(
        "{} images in {} classes: {} embedded, {} from the cache, {} skipped ({seconds:.1} s){}",
        featurized.labels.len() + featurized.skipped.len(),
        featurized.classes.len(),
        featurized.embedded,
        featurized.labels.len() - featurized.embedded,
        featurized.skipped.len(),
        cache
            .as_ref()
            .map(|c| format!("; cache {}", c.path().display()))
            .unwrap_or_default(),
    );
    if let Some(dir) = args.export {
        export(&dir, &featurized)
            .with_context(|| format!("exporting features to {}", dir.display()))?;
        outln!("exported to {}", dir.display());
    }
    Ok(())
}

fn export(dir: &std::path::Path, featurized: &crate::featurize::Featurized) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut raw = std::io::BufWriter::new(std::fs::File::create(dir.join("features.f32"))?);
    for value in &featurized.features {
        raw.write_all(&value.to_le_bytes())?;
    }
    raw.flush()?;
    let lines = |items: Vec<String>| items.join("\n") + "\n";
    std::fs::write(
        dir.join("labels.txt"),
        lines(featurized.labels.iter().map(ToString::to_string).collect()),
    )?;
    std::fs::write(dir.join("classes.txt"), lines(featurized.classes.clone()))?;
    std::fs::write(
        dir.join("files.txt"),
        lines(
            featurized
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        ),
    )
}
