//! A folder of images → a feature matrix, through the feature cache: images already embedded (same
//! bytes, same backbone) come from the cache, the rest are embedded on worker threads (one backbone
//! each) with a progress bar. A file that is not a readable image is reported with its path and
//! skipped; the run goes on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use ndarray::Array2;
use sha2::{Digest, Sha256};

use crate::cache::{CacheError, FeatureCache, ImageKey};
use crate::dataset::{DatasetError, ImageFolder};
use crate::embedder::{EmbedError, Embedder};
use crate::model::ModelDescriptor;
use crate::preprocess::DecodeLimits;

/// Why a folder could not be turned into features.
#[derive(Debug, thiserror::Error)]
pub enum FeaturizeError {
    /// The backbone could not be loaded.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// After skipping unreadable files a class has no image left.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// An image embedded a moment ago could not be read again for its extra views.
    #[error("{path}: {reason} (it was readable when the folder was scanned; was it changed or removed during the run?)")]
    Vanished {
        /// The image.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

/// The features of a folder, one row per readable image.
#[derive(Debug, Clone)]
pub struct Featurized {
    /// n × dim feature matrix.
    pub features: Array2<f32>,
    /// Label of each row (index into `classes`).
    pub labels: Vec<usize>,
    /// Class names.
    pub classes: Vec<String>,
    /// Source file of each row.
    pub paths: Vec<PathBuf>,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<Skipped>,
    /// How many rows were embedded in this run (the rest came from the cache).
    pub embedded: usize,
}

/// Computes (or fetches from `cache`) the features of every image in `folder`, on `threads` workers.
///
/// # Errors
/// [`FeaturizeError`] if the backbone cannot be loaded or the cache cannot be written. Unreadable
/// images are not errors: they are listed in [`Featurized::skipped`] and logged.
pub fn featurize(
    folder: &ImageFolder,
    descriptor: &ModelDescriptor,
    mut cache: Option<&mut FeatureCache>,
    threads: usize,
) -> Result<Featurized, FeaturizeError> {
    let dim = descriptor.output_dim as usize;
    let n = folder.items.len();
    let mut keys: Vec<Option<ImageKey>> = vec![None; n];
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; n];
    let mut skipped = Vec::new();
    let mut missing = Vec::new();
    for (i, item) in folder.items.iter().enumerate() {
        match crate::preprocess::read_image_file(&item.path, &DecodeLimits::DEFAULT) {
            Ok(bytes) => {
                let key: ImageKey = Sha256::digest(&bytes).into();
                keys[i] = Some(key);
                match cache.as_deref().and_then(|c| c.get(&key)) {
                    Some(features) => rows[i] = Some(features.to_vec()),
                    None => missing.push(i),
                }
            }
            Err(e) => skipped.push(Skipped {
                path: item.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    let progress = indicatif::ProgressBar::new(missing.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "embedding {pos}/{len} [{bar:30}] {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut embedded = 0;
    if !missing.is_empty() {
        let items = &folder.items;
        let mut failure: Option<FeaturizeError> = None;
        embed_parallel(
            missing.len(),
            descriptor,
            threads,
            &|embedder, slot| {
                let i = missing[slot];
                crate::preprocess::read_image_file(&items[i].path, &DecodeLimits::DEFAULT)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| embedder.embed_bytes(&bytes).map_err(|e| e.to_string()))
            },
            &mut |slot, result| {
                let i = missing[slot];
                progress.inc(1);
                match result {
                    Ok(features) => {
                        embedded += 1;
                        if let (Some(cache), Some(key)) = (cache.as_deref_mut(), keys[i]) {
                            if let Err(e) = cache.insert(key, features.clone()) {
                                failure.get_or_insert(e.into());
                            }
                        }
                        rows[i] = Some(features);
                    }
                    Err(reason) => {
                        tracing::warn!(path = %items[i].path.display(), "skipped: {reason}");
                        skipped.push(Skipped {
                            path: items[i].path.clone(),
                            reason,
                        });
                    }
                }
            },
        )?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(cache) = cache {
            cache.flush()?;
        }
    }
    progress.finish_and_clear();

    let mut counts = vec![0usize; folder.classes.len()];
    let mut labels = Vec::with_capacity(n);
    let mut paths = Vec::with_capacity(n);
    let mut flat = Vec::with_capacity(n * dim);
    for (item, row) in folder.items.iter().zip(rows) {
        if let Some(row) = row {
            counts[item.label] += 1;
            labels.push(item.label);
            paths.push(item.path.clone());
            flat.extend_from_slice(&row);
        }
    }
    // A folder scanned by ImageFolder::scan has images for every class; if all of one class were
    // unreadable, say so rather than train a head that can never predict it.
    let scanned: Vec<usize> = folder.counts();
    if let Some(class) = (0..counts.len()).find(|&c| counts[c] == 0 && scanned[c] > 0) {
        return Err(DatasetError::EmptyClass {
            path: folder.root.join(&folder.classes[class]),
        }
        .into());
    }
    let features = Array2::from_shape_vec((labels.len(), dim), flat)
        .unwrap_or_else(|_| Array2::zeros((0, dim)));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Featurized {
        features,
        labels,
        classes: folder.classes.clone(),
        paths,
        skipped,
        embedded,
    })
}

/// One embedding job of [`embed_parallel`]: job index → features, or why not.
pub type EmbedJob<'a> = dyn Fn(&mut Embedder, usize) -> Result<Vec<f32>, String> + Sync + 'a;

/// Runs `job(embedder, j)` for every `j < jobs` on `threads` workers (one backbone each), handing
/// each result to `done(j, result)` on the calling thread as it arrives.
///
/// # Errors
/// [`FeaturizeError::Embed`] if a backbone cannot be loaded.
pub fn embed_parallel(
    jobs: usize,
    descriptor: &ModelDescriptor,
    threads: usize,
    job: &EmbedJob<'_>,
    done: &mut dyn FnMut(usize, Result<Vec<f32>, String>),
) -> Result<(), FeaturizeError> {
    if jobs == 0 {
        return Ok(());
    }
    let threads = threads.clamp(1, jobs);
    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel::<(usize, Result<Vec<f32>, String>)>();
    let mut embedders = Vec::with_capacity(threads);
    for _ in 0..threads {
        embedders.push(Embedder::load(descriptor)?);
    }
    std::thread::scope(|scope| {
        for mut embedder in embedders {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                if slot >= jobs {
                    break;
                }
                if sender.send((slot, job(&mut embedder, slot))).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        for (slot, result) in receiver {
            done(slot, result);
        }
    });
    Ok(())
}
