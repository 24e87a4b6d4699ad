//! Options and steps shared by the subcommands that read image folders: which model, which cache,
//! how many threads, and "folder → features" with the skipped files reported.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cache::{self, FeatureCache};
use crate::dataset::ImageFolder;
use crate::featurize::{featurize, Featurized, Skipped};
use crate::head::Head;
use crate::model::ModelDescriptor;
use crate::store::head_file::load_head;

/// Model, cache and thread options.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model descriptor (models/*.toml); the shipped EfficientNet-Lite0 when absent.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Feature cache directory [default: $XDG_CACHE_HOME/fieldtune or ~/.cache/fieldtune].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Do not read or write the feature cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Worker threads for embedding [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl ModelArgs {
    /// Loads the chosen descriptor.
    ///
    /// # Errors
    /// The descriptor's error, naming the file.
    pub fn descriptor(&self) -> anyhow::Result<ModelDescriptor> {
        Ok(match &self.model {
            Some(path) => ModelDescriptor::load(path)?,
            None => ModelDescriptor::load_default()?,
        })
    }

    /// Worker threads to use.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(crate::board::all_cores)
    }

    /// Opens the feature cache for this model, unless `--no-cache`.
    ///
    /// # Errors
    /// The cache's error, naming the file.
    pub fn open_cache(&self, descriptor: &ModelDescriptor) -> anyhow::Result<Option<FeatureCache>> {
        if self.no_cache {
            return Ok(None);
        }
        let dir = self.cache.clone().unwrap_or_else(cache::default_dir);
        Ok(Some(FeatureCache::open(&dir, descriptor)?))
    }
}

/// Scans `dir` (with the given class order, if any) and computes its features, logging skipped files.
///
/// # Errors
/// A bad folder, model or cache, with the path in the message.
pub fn folder_features(
    dir: &Path,
    classes: Option<&[String]>,
    descriptor: &ModelDescriptor,
    cache: Option<&mut FeatureCache>,
    threads: usize,
) -> anyhow::Result<Featurized> {
    let folder = match classes {
        Some(classes) => ImageFolder::scan_with_classes(dir, classes)?,
        None => ImageFolder::scan(dir)?,
    };
    for (path, why) in &folder.skipped {
        eprintln!(
            "skipped {}: {why}",
            crate::learner::names::escaped(&path.display().to_string())
        );
    }
    let mut featurized = featurize(&folder, descriptor, cache, threads)
        .with_context(|| format!("computing features of {}", dir.display()))?;
    for skipped in &featurized.skipped {
        eprintln!(
            "skipped {}: {}",
            crate::learner::names::escaped(&skipped.path.display().to_string()),
            skipped.reason
        );
    }
    // Counted with the rest, so that a summary's "N skipped" matches the lines above.
    featurized.skipped.extend(
        folder
            .skipped
            .into_iter()
            .map(|(path, reason)| Skipped { path, reason }),
    );
    featurized.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(featurized)
}

/// Loads a head file written by `fieldtune train`, refusing one made with another backbone.
///
/// # Errors
/// A missing, damaged or foreign head file, named.
pub fn load_head_file(path: &Path, descriptor: &ModelDescriptor) -> anyhow::Result<Head> {
    let head: Head = load_head(path, &descriptor.backbone_id())
        .with_context(|| format!("loading head file {}", path.display()))?;
    check_head_names(head.classes()).with_context(|| {
        format!(
            "head file {} has a class name that cannot be shown safely; retrain it from folders with plain names",
            path.display()
        )
    })?;
    Ok(head)
}

/// Holds a head file's class names to the rules of every class name (bounded, printable, unique
/// after NFC), so nothing read from a file reaches the terminal unchecked.
///
/// # Errors
/// The first bad name.
pub fn check_head_names(classes: &[String]) -> Result<(), crate::learner::names::NameError> {
    use crate::learner::names::{check_unique, NameRules};
    let rules = NameRules::BROADEST;
    for (i, name) in classes.iter().enumerate() {
        let normal = rules.normalize(name)?;
        check_unique(&normal, classes[..i].iter().map(String::as_str))?;
    }
    Ok(())
}
