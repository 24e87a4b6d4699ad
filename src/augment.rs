//! Extra views of a labelled image (augmentation): its mirror image and random resized crops with
//! mild colour changes, each embedded like an image of its own and cached per (image, view), so
//! `fieldtune train --augment` pays for a view once.
//!
//! A view is a pure function of the image's bytes and the view's index: the crop box, the flip and
//! the colour factors come from a generator seeded by the view's cache key (a sha256 of a version
//! tag, the view name and the image's own key), so the same file gives the same views on every run
//! and machine, and changing the recipe (bump [`RECIPE`]) gives new keys instead of stale features.
//!
//! The same views serve `fieldtune train` (cached per view, [`featurize_views`]), `fieldtune
//! curve` and a label on the device (the service embeds `learning.label_views` of the labelled
//! frame, [`embed_views`], keyed by the frame's hash); [`with_views`] adds them to the training
//! rows for all three, once every class has [`MIN_PER_CLASS_FOR_VIEWS`] images.
//! [`averaged_top`] is `eval --tta`'s test-time averaging over an image and its mirror.
//!
//! The views, in order ([`views`] takes the first `n`):
//! - `mirror`: the image flipped left to right;
//! - `crop1`, `crop2`, …: a random box of 40–100 % of the area with an aspect ratio in
//!   [3/4, 4/3], flipped with probability ½, its brightness, contrast and saturation each scaled
//!   by a factor in [0.85, 1.15]. The backbone's own preprocessing then resizes the box.

use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::cache::{FeatureCache, ImageKey};
use crate::featurize::{embed_parallel, FeaturizeError, Featurized};
use crate::head::{Dataset, HyperParams};
use crate::model::ModelDescriptor;
use crate::preprocess::{decode, read_image_file, DecodeLimits};
use image::RgbImage;

/// Version of the view recipe, part of every view's cache key.
pub const RECIPE: &str = "fieldtune-view-v1";

/// Most extra views per image `fieldtune train --augment` accepts.
pub const MAX_VIEWS: usize = 8;

/// One extra view of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// Flipped left to right.
    Mirror,
    /// Random resized crop number `n` (1-based) with mild colour changes.
    Crop(u8),
}

impl View {
    /// The view's name (`mirror`, `crop1`, …).
    pub fn name(self) -> String {
        match self {
            View::Mirror => "mirror".to_string(),
            View::Crop(n) => format!("crop{n}"),
        }
    }

    /// The cache key of this view of the image whose key is `image`.
    pub fn key(self, image: &ImageKey) -> ImageKey {
        let mut h = Sha256::new();
        h.update(RECIPE.as_bytes());
        h.update([0]);
        h.update(self.name().as_bytes());
        h.update([0]);
        h.update(image);
        h.finalize().into()
    }

    /// This view of `rgb`, the decoded image whose key is `image`.
    pub fn apply(self, rgb: &RgbImage, image: &ImageKey) -> RgbImage {
        match self {
            View::Mirror => image::imageops::flip_horizontal(rgb),
            View::Crop(_) => {
                let key = self.key(image);
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&key);
                crop_view(rgb, &mut ChaCha8Rng::from_seed(seed))
            }
        }
    }
}

/// The first `n` views: the mirror, then crops.
pub fn views(n: usize) -> Vec<View> {
    (0..n)
        .map(|i| {
            if i == 0 {
                View::Mirror
            } else {
                View::Crop(i as u8)
            }
        })
        .collect()
}

/// A random resized crop with flip and colour changes (see the module docs).
fn crop_view(rgb: &RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
    let (w, h) = (rgb.width().max(1) as f64, rgb.height().max(1) as f64);
    let area = rng.gen_range(0.4..=1.0) * w * h;
    let aspect = rng.gen_range((0.75f64).ln()..=(4.0f64 / 3.0).ln()).exp();
    let cw = (area * aspect).sqrt().round().clamp(1.0, w) as u32;
    let ch = (area / aspect).sqrt().round().clamp(1.0, h) as u32;
    let x = rng.gen_range(0..=rgb.width() - cw);
    let y = rng.gen_range(0..=rgb.height() - ch);
    let mut out = image::imageops::crop_imm(rgb, x, y, cw, ch).to_image();
    if rng.gen_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    let brightness = rng.gen_range(0.85f32..=1.15);
    let contrast = rng.gen_range(0.85f32..=1.15);
    let saturation = rng.gen_range(0.85f32..=1.15);
    let n = (out.width() * out.height()).max(1) as f32;
    let mean_luma = out
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .sum::<f32>()
        / n;
    for p in out.pixels_mut() {
        let luma = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        for c in 0..3 {
            let v = p[c] as f32;
            let v = luma + saturation * (v - luma);
            let v = mean_luma + contrast * (v - mean_luma);
            p[c] = (v * brightness).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The features of `views` of every row of `of` (a featurized folder), through `cache`: one
/// `rows × dim` matrix per view, row `i` being a view of `of.paths[i]`, labelled like it.
/// Returns the matrices and how many views were embedded in this run.
///
/// # Errors
/// [`FeaturizeError`] if the backbone cannot be loaded, the cache cannot be written, or an image
/// that was readable a moment ago no longer is.
pub fn featurize_views(
    of: &Featurized,
    views: &[View],
    descriptor: &ModelDescriptor,
    mut cache: Option<&mut FeatureCache>,
    threads: usize,
) -> Result<(Vec<Array2<f32>>, usize), FeaturizeError> {
    let dim = descriptor.output_dim as usize;
    let n = of.paths.len();
    let mut out: Vec<Array2<f32>> = views.iter().map(|_| Array2::zeros((n, dim))).collect();
    // Keys of the images, then of their views; the views not in the cache are embedded.
    let mut image_keys = Vec::with_capacity(n);
    for path in &of.paths {
        let bytes = read_image_file(path, &DecodeLimits::DEFAULT).map_err(|e| {
            FeaturizeError::Vanished {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        image_keys.push(ImageKey::from(Sha256::digest(&bytes)));
    }
    let mut missing: Vec<(usize, usize)> = Vec::new();
    for (v, view) in views.iter().enumerate() {
        for (i, key) in image_keys.iter().enumerate() {
            match cache.as_deref().and_then(|c| c.get(&view.key(key))) {
                Some(f) => out[v].row_mut(i).assign(&ndarray::ArrayView1::from(f)),
                None => missing.push((i, v)),
            }
        }
    }
    let progress = indicatif::ProgressBar::new(missing.len() as u64);
    let mut failure: Option<FeaturizeError> = None;
    let mut embedded = 0;
    embed_parallel(
        missing.len(),
        descriptor,
        threads,
        &|embedder, slot| {
            let (i, v) = missing[slot];
            let bytes =
                read_image_file(&of.paths[i], &DecodeLimits::DEFAULT).map_err(|e| e.to_string())?;
            let rgb = decode(&bytes).map_err(|e| e.to_string())?;
            embed_views(embedder, &rgb, &image_keys[i], &views[v..=v])
                .map(|mut f| f.remove(0))
                .map_err(|e| e.to_string())
        },
        &mut |slot, result| {
            let (i, v) = missing[slot];
            progress.inc(1);
            match result {
                Ok(features) => {
                    embedded += 1;
                    out[v]
                        .row_mut(i)
                        .assign(&ndarray::ArrayView1::from(&features[..]));
                    if let Some(cache) = cache.as_deref_mut() {
                        if let Err(e) = cache.insert(views[v].key(&image_keys[i]), features) {
                            failure.get_or_insert(e.into());
                        }
                    }
                }
                Err(reason) => {
                    failure.get_or_insert(FeaturizeError::Vanished {
                        path: of.paths[i].clone(),
                        reason,
                    });
                }
            }
        },
    )?;
    progress.finish_and_clear();
    if let Some(cache) = cache {
        cache.flush()?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok((out, embedded)),
    }
}

/// Views train a head only when every class has at least this many images (samples) of its own.
/// With fewer, the head is close to the class means (the few-shot prior), and the class means of
/// images and their views are worse than those of the images alone: measured with `fieldtune
/// curve [--device] --augment` on corn4, digits and textures (README, "Augmentation"), views cost
/// 0.1-1.1 points at 20 images a class and up to 5 at 1, and were about even at 50
/// (corn4 +0.4 to +0.9, digits −0.1 to −0.2).
pub const MIN_PER_CLASS_FOR_VIEWS: usize = 50;

/// How far a view's training row goes from its image's features toward the view's own: the row is
/// `x + VIEW_STRENGTH · (view − x)`, `x` the image's features. At ½ a view teaches the direction
/// the image's features move under a mirror or crop, at half the distance. Chosen by 5-fold
/// cross-validation over the training images of corn4 and digits (both heads, seeds 0-1; `cargo
/// run --release --example recipe_cv`; README, "Augmentation"): mean accuracy over the four
/// (data set, head) pairs 93.94 % with whole views, 94.03 % without views, 94.14 / 94.15 / 94.16 %
/// at ¼ / ½ / ¾. The data sets disagree about whole views (corn4's MLP gains 0.14 points from
/// them, digits' linear head loses 0.66); every partial strength does about as well, and ½, the
/// middle, is never more than 0.19 points below the better of whole views and none.
pub const VIEW_STRENGTH: f32 = 0.5;

/// Whether views join the training rows of `all` (every class has [`MIN_PER_CLASS_FOR_VIEWS`]).
pub fn views_pay(all: &Dataset) -> bool {
    let counts = all.class_counts();
    !counts.is_empty() && counts.iter().all(|&c| c >= MIN_PER_CLASS_FOR_VIEWS)
}

/// Embeds `views` of `rgb` (the decoded image whose key is `key`) with `embedder`: one backbone
/// run per view. The one way a view is made and embedded, for `fieldtune train --augment` and for
/// a label on the device.
///
/// # Errors
/// The backbone's failure on a view.
pub fn embed_views(
    embedder: &mut crate::embedder::Embedder,
    rgb: &RgbImage,
    key: &ImageKey,
    views: &[View],
) -> Result<Vec<Vec<f32>>, crate::embedder::EmbedError> {
    views
        .iter()
        .map(|view| embedder.embed_rgb(&view.apply(rgb, key)))
        .collect()
}

/// The training set and validation set from the samples `all` and extra view rows `views`, row
/// `j` a view of `all`'s row `view_of[j]` (labelled like it). Views of an image must not be
/// fitted on while the image itself validates, so without `val` the hold-out is drawn here, from
/// the original rows, by the rule [`crate::head::Head::train`] uses (a stratified
/// `validation_fraction` when every class has
/// [`crate::head::train::MIN_PER_CLASS_FOR_HOLDOUT`] rows, else none), and only the rows kept for
/// fitting bring their views. `fieldtune train --augment` and a device's refit both go through
/// here ([`with_views_from`]).
///
/// A view's row is its features moved toward its image's by [`VIEW_STRENGTH`].
///
/// Views join only when every class has at least [`MIN_PER_CLASS_FOR_VIEWS`] rows
/// ([`views_pay`]); otherwise `all` and `val` come back as given, without views, and the head
/// trains exactly as it would with none.
pub fn with_views(
    all: &Dataset,
    views: ArrayView2<f32>,
    view_of: &[usize],
    val: Option<Dataset>,
    hyper: &HyperParams,
) -> (Dataset, Option<Dataset>) {
    let view_of = &view_of[..view_of.len().min(views.nrows())];
    let given = val.is_some();
    let (rows, val_from) = with_views_from(
        all,
        all.dim(),
        |i, mut row| row.assign(&all.features.row(i)),
        |j, mut row| row.assign(&views.row(j)),
        view_of,
        val,
        hyper,
    );
    if val_from == rows.len() && !given {
        return (rows, None);
    }
    let part = |range: std::ops::Range<usize>| Dataset {
        features: rows
            .features
            .slice(ndarray::s![range.clone(), ..])
            .to_owned(),
        labels: rows.labels[range].to_vec(),
        classes: rows.classes.clone(),
    };
    (part(0..val_from), Some(part(val_from..rows.len())))
}

/// [`with_views`] in one matrix of `dim` columns, with sample `i` written into its row by
/// `write_sample(i, row)` and view `j` by `write_view(j, row)` (a device decodes its stored
/// samples and views straight into the training matrix, never holding them as f32 beside it):
/// `all` gives the samples' labels and classes, its features are not read (they may have no
/// columns). `view_of` has one entry per view. Returns the rows (the fitting rows, the views of
/// fitting rows, then the validation rows: `val`'s or the hold-out's) and where the validation
/// rows start (the end when there are none), as [`crate::head::Head::train_joined`] takes them.
pub fn with_views_from(
    all: &Dataset,
    dim: usize,
    write_sample: impl Fn(usize, ndarray::ArrayViewMut1<f32>),
    write_view: impl Fn(usize, ndarray::ArrayViewMut1<f32>),
    view_of: &[usize],
    val: Option<Dataset>,
    hyper: &HyperParams,
) -> (Dataset, usize) {
    let pay = views_pay(all);
    let (fit_rows, held) = match &val {
        // Without views the hold-out is left to the head's own rules.
        _ if !pay => ((0..all.len()).collect::<Vec<_>>(), Vec::new()),
        Some(_) => ((0..all.len()).collect(), Vec::new()),
        None => {
            let enough = all
                .class_counts()
                .iter()
                .all(|&c| c >= crate::head::train::MIN_PER_CLASS_FOR_HOLDOUT);
            if enough {
                let mut rng = ChaCha8Rng::seed_from_u64(hyper.seed());
                all.stratified_split(hyper.validation_fraction(), &mut rng)
            } else {
                ((0..all.len()).collect(), Vec::new())
            }
        }
    };
    let view_of = if pay { view_of } else { &[] };
    let mut fitted = vec![false; all.len()];
    for &i in &fit_rows {
        fitted[i] = true;
    }
    let kept: Vec<usize> = (0..view_of.len())
        .filter(|&j| fitted.get(view_of[j]).copied().unwrap_or(false))
        .collect();
    // The fitting rows, the views of fitting rows, then the validation rows, written once into
    // the one matrix the head trains on (on a device it is the largest it holds).
    let val_len = val.as_ref().map_or(held.len(), Dataset::len);
    let val_from = fit_rows.len() + kept.len();
    let mut features = Array2::<f32>::zeros((val_from + val_len, dim));
    let mut rows = features.axis_iter_mut(Axis(0));
    // The index lists lead each zip: a zip that runs out of its second iterator has already
    // taken (and dropped) an item of its first, so `rows` leading would skip a row.
    for (&i, row) in fit_rows.iter().zip(rows.by_ref()) {
        write_sample(i, row);
    }
    for (&j, row) in kept.iter().zip(rows.by_ref()) {
        write_view(j, row);
    }
    match &val {
        Some(v) => {
            for (given, mut row) in v.features.axis_iter(Axis(0)).zip(rows) {
                row.assign(&given);
            }
        }
        None => {
            for (&i, row) in held.iter().zip(rows) {
                write_sample(i, row);
            }
        }
    }
    // Each view's row moves toward its image's (written above it) by VIEW_STRENGTH, in place.
    let mut position = vec![0; all.len()];
    for (p, &i) in fit_rows.iter().enumerate() {
        position[i] = p;
    }
    let (images, mut view_rows) = features.view_mut().split_at(Axis(0), fit_rows.len());
    for (&j, mut row) in kept.iter().zip(view_rows.rows_mut()) {
        row.zip_mut_with(&images.row(position[view_of[j]]), |v, &x| {
            *v = x + VIEW_STRENGTH * (*v - x);
        });
    }
    let labels = fit_rows
        .iter()
        .map(|&i| all.labels[i])
        .chain(kept.iter().map(|&j| all.labels[view_of[j]]))
        .chain(match &val {
            Some(v) => v.labels.clone(),
            None => held.iter().map(|&i| all.labels[i]).collect(),
        })
        .collect();
    let rows = Dataset {
        features,
        labels,
        classes: all.classes.clone(),
    };
    (rows, val_from)
}

/// Test-time views: the class with the highest mean probability over each row of `features` and
/// the same row of `view` (the features of a view of the same image, e.g. its mirror).
pub fn averaged_top(
    head: &crate::head::Head,
    features: ndarray::ArrayView2<f32>,
    view: ndarray::ArrayView2<f32>,
) -> Vec<usize> {
    let p = head.predict_proba(features) + head.predict_proba(view);
    p.axis_iter(ndarray::Axis(0))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((usize::MAX, f32::NEG_INFINITY), |best, (c, &v)| {
                    if v > best.1 {
                        (c, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_deterministic_and_distinct() {
        let rgb = RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
        });
        let key = [7u8; 32];
        let a = View::Crop(1).apply(&rgb, &key);
        assert_eq!(a, View::Crop(1).apply(&rgb, &key));
        assert_ne!(View::Crop(1).key(&key), View::Crop(2).key(&key));
        assert_ne!(View::Mirror.key(&key), key);
        let m = View::Mirror.apply(&rgb, &key);
        assert_eq!(m.get_pixel(0, 0), rgb.get_pixel(39, 0));
        assert!(a.width() <= 40 && a.height() <= 30 && a.width() * a.height() >= 300);
        assert_eq!(views(3), vec![View::Mirror, View::Crop(1), View::Crop(2)]);
    }

    /// Every row of the joined matrix is the sample or view its label says: the fitting rows,
    /// their views, then the hold-out, none skipped or shifted.
    #[test]
    fn joined_rows_are_their_samples_and_views() {
        let (classes, per_class) = (2, MIN_PER_CLASS_FOR_VIEWS + 6);
        let n = classes * per_class;
        // Row values: [sample index, index + 0.5, 0 for a sample or the view's number].
        let all = Dataset {
            features: Array2::from_shape_fn((n, 3), |(i, c)| [i as f32, i as f32 + 0.5, 0.0][c]),
            labels: (0..n).map(|i| i % classes).collect(),
            classes: vec!["a".into(), "b".into()],
        };
        let view_of: Vec<usize> = (0..n).flat_map(|i| [i, i]).collect();
        let views = Array2::from_shape_fn((view_of.len(), 3), |(j, c)| {
            let i = view_of[j] as f32;
            [i, i + 0.5, (1 + j % 2) as f32][c]
        });
        let hyper = HyperParams::builder().check().expect("valid");
        let (rows, val) = with_views(&all, views.view(), &view_of, None, &hyper);
        let val = val.expect("a hold-out is drawn");
        assert!(!val.is_empty() && val.len() < n);
        for (r, row) in rows.features.axis_iter(Axis(0)).enumerate() {
            assert_eq!(row[1] - row[0], 0.5, "row {r} is a whole sample or view");
            assert_eq!(rows.labels[r], all.labels[row[0] as usize], "row {r}");
        }
        let views_in = rows
            .features
            .axis_iter(Axis(0))
            .filter(|r| r[2] > 0.0)
            .count();
        assert_eq!(
            views_in,
            2 * (n - val.len()),
            "every fitted sample brings both views"
        );
        assert_eq!(rows.len(), n - val.len() + views_in);
        assert!(val.features.axis_iter(Axis(0)).all(|r| r[2] == 0.0));
    }

    /// With enough samples a class and validation rows given, every sample is fitted on and each
    /// view's row is its features moved toward its image's by `VIEW_STRENGTH`; below the
    /// threshold, the rows come back without views.
    #[test]
    fn view_rows_go_part_way_from_the_image_to_the_view() {
        let (k, per, dim) = (2, MIN_PER_CLASS_FOR_VIEWS, 3);
        let labels: Vec<usize> = (0..k * per).map(|i| i % k).collect();
        let features = Array2::from_shape_fn((k * per, dim), |(i, j)| (i * dim + j) as f32);
        let classes = vec!["a".to_string(), "b".to_string()];
        let all = Dataset::new(features, labels, classes).expect("valid");
        let views = all.features.mapv(|x| x + 8.0);
        let view_of: Vec<usize> = (0..all.len()).collect();
        let val = all.select(&[0, 1]);
        let hyper = HyperParams::default();
        let (fit, kept_val) = with_views(&all, views.view(), &view_of, Some(val.clone()), &hyper);
        assert_eq!(kept_val, Some(val.clone()));
        assert_eq!(fit.len(), 2 * all.len());
        for i in 0..all.len() {
            assert_eq!(fit.features.row(i), all.features.row(i));
            assert_eq!(fit.labels[all.len() + i], all.labels[i]);
            let moved = &fit.features.row(all.len() + i) - &all.features.row(i);
            assert!(
                moved
                    .iter()
                    .all(|&d| (d - 8.0 * VIEW_STRENGTH).abs() < 1e-4),
                "{moved}"
            );
        }
        // Without validation rows (a device's refit, rows in labelling order: classes alternate),
        // the hold-out keeps its views out, and every view row carries its own image's label.
        let (fit, held) = with_views(&all, views.view(), &view_of, None, &hyper);
        let held = held.expect("a hold-out");
        let images = all.len() - held.len();
        assert_eq!(fit.len(), 2 * images);
        for r in images..fit.len() {
            let image = ((fit.features[[r, 0]] - 8.0 * VIEW_STRENGTH) / dim as f32).round();
            assert_eq!(fit.labels[r], image as usize % k, "row {r}");
            assert!(fit
                .features
                .row(r)
                .iter()
                .all(|&v| v >= 8.0 * VIEW_STRENGTH));
        }
        let few = all.select(&(0..all.len() - 1).collect::<Vec<_>>());
        let (fit, _) = with_views(&few, views.view(), &view_of, Some(val), &hyper);
        assert_eq!(fit, few);
    }
}
