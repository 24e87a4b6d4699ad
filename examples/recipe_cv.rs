//! Compares training recipes with views (augmentation) by cross-validation on cached features:
//! the measurement behind README "Augmentation" → "Recipe search". Not part of the product.
//!
//! ```sh
//! cargo run --release --example recipe_cv -- ROOT linear|mlp RECIPE[,RECIPE…] [SEEDS] [FIELD_DIR]
//! ```
//!
//! `ROOT` holds `train/`, `val/` and `test/` image folders whose features (and the first `NV`
//! views of `train/` and `val/`, default 2) are in the feature cache: `fieldtune train --augment`
//! puts them there; missing ones are embedded on one thread. Per recipe and summed over `SEEDS`
//! (default 0), it prints:
//! - `cv`: 5-fold cross-validation over `train/` (fixed stratified folds): each fold trained as
//!   `fieldtune train --data` trains (views through `augment::with_views`, its own hold-out),
//!   scored on the fold's images; `odd`: the same on the fold's images that are not 256 × 256;
//! - `val`: trained on `train/` alone (its own hold-out), scored on `val/`;
//! - `test` / `field`: trained as `fieldtune train --data train --val val`, scored on `test/` and
//!   on `FIELD_DIR` (for the record: a recipe is chosen on `cv` and `val`), with each seed's
//!   count of right answers.
//!
//! Recipes: `none` (no views), `v` (the `NV` whole views), `vK` (the first `K`), `mixA` (each view
//! row moved toward its image's row: `x + A·(view − x)`; `default` is `mix` at
//! `augment::VIEW_STRENGTH`, what `train` does), `dup` (the images twice and the whole views once: a
//! view weighs half an image), `bv` (every image brings its whole views, the validation images
//! too, into the final refit); each may end in `:wd=X`, `:ep=N`, `:lr=X`, `:cb=1` (class-balanced
//! loss) to override a hyper-parameter. The strengths are absolute: the rows handed to
//! `augment::with_views` are scaled so that its own `VIEW_STRENGTH` gives them.

use std::path::Path;

use anyhow::{bail, Context};
use fieldtune::cache::{default_dir, FeatureCache};
use fieldtune::dataset::ImageFolder;
use fieldtune::featurize::{featurize, Featurized};
use fieldtune::head::{Dataset, Head, HeadKind, HyperParams};
use fieldtune::model::ModelDescriptor;
use ndarray::{concatenate, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Cross-validation folds.
const FOLDS: usize = 5;

fn load(
    dir: &Path,
    classes: Option<&[String]>,
    descriptor: &ModelDescriptor,
    cache: &mut FeatureCache,
) -> anyhow::Result<Featurized> {
    let folder = match classes {
        Some(k) => ImageFolder::scan_with_classes(dir, k),
        None => ImageFolder::scan(dir),
    }
    .with_context(|| format!("scanning {}", dir.display()))?;
    featurize(&folder, descriptor, Some(cache), 1)
        .with_context(|| format!("features of {}", dir.display()))
}

fn dataset(f: &Featurized) -> anyhow::Result<Dataset> {
    Ok(Dataset::new(
        f.features.clone(),
        f.labels.clone(),
        f.classes.clone(),
    )?)
}

/// Rows of `features` labelled like `like`.
fn labelled(features: Array2<f32>, like: &Dataset) -> Dataset {
    Dataset {
        features,
        labels: like.labels.clone(),
        classes: like.classes.clone(),
    }
}

/// Right answers of `head` on `d`.
fn right(head: &Head, d: &Dataset) -> usize {
    let p = head.predict_proba(d.features.view());
    p.axis_iter(Axis(0))
        .zip(&d.labels)
        .filter(|(row, &y)| {
            let best = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            best == y
        })
        .count()
}

/// The training and validation rows of `recipe` from the images `all`, their views `views`
/// (one matrix per view, row `i` a view of `all`'s row `i`) and the validation set `val`.
fn build(
    recipe: &str,
    all: &Dataset,
    views: &[Array2<f32>],
    val: Option<Dataset>,
    hyper: &HyperParams,
) -> anyhow::Result<(Dataset, Option<Dataset>)> {
    let base = recipe.split(':').next().unwrap_or_default();
    // `with_views` moves each view row toward its image by VIEW_STRENGTH; rows handed to it are
    // scaled by 1 / VIEW_STRENGTH so that the recipe's own strength is what trains.
    let through_with_views = base != "bv";
    let stack = |which: &[usize], alpha: f32| -> anyhow::Result<(Array2<f32>, Vec<usize>)> {
        let alpha = if through_with_views {
            alpha / fieldtune::augment::VIEW_STRENGTH
        } else {
            alpha
        };
        let mut m = concatenate(
            Axis(0),
            &which.iter().map(|&v| views[v].view()).collect::<Vec<_>>(),
        )?;
        if alpha != 1.0 {
            for (j, mut row) in m.axis_iter_mut(Axis(0)).enumerate() {
                let x = all.features.row(j % all.len());
                row.zip_mut_with(&x, |v, &x| *v = x + alpha * (*v - x));
            }
        }
        Ok((m, which.iter().flat_map(|_| 0..all.len()).collect()))
    };
    let every: Vec<usize> = (0..views.len()).collect();
    let (which, alpha) = match base {
        "none" => return Ok((all.clone(), val)),
        "bv" => {
            let (m, _) = stack(&every, 1.0)?;
            let rows = concatenate(Axis(0), &[all.features.view(), m.view()])?;
            let labels = every.iter().fold(all.labels.clone(), |mut l, _| {
                l.extend(&all.labels);
                l
            });
            return Ok((Dataset::new(rows, labels, all.classes.clone())?, val));
        }
        "v" | "dup" => (every.clone(), 1.0),
        "default" => (every.clone(), fieldtune::augment::VIEW_STRENGTH),
        _ => match (base.strip_prefix("mix"), base.strip_prefix('v')) {
            (Some(a), _) => (every.clone(), a.parse().context("mixA: A a number")?),
            (None, Some(k)) => ((0..k.parse().context("vK: K a number")?).collect(), 1.0),
            _ => bail!("unknown recipe {recipe}"),
        },
    };
    if which.iter().any(|&v| v >= views.len()) {
        bail!("{recipe} needs more views than NV = {}", views.len());
    }
    let (m, view_of) = stack(&which, alpha)?;
    let (fit, val) = fieldtune::augment::with_views(all, m.view(), &view_of, val, hyper);
    if base == "dup" {
        // with_views puts the images first, then their views.
        let images: Vec<usize> = (0..fit.len() / (which.len() + 1)).collect();
        return Ok((fit.concat(&fit.select(&images)), val));
    }
    Ok((fit, val))
}

fn hyper_for(recipe: &str, kind: HeadKind, seed: u64) -> anyhow::Result<HyperParams> {
    let mut b = HyperParams::builder_for(kind).seed(seed);
    for part in recipe.split(':').skip(1) {
        let Some((k, v)) = part.split_once('=') else {
            bail!("{part}: expected NAME=VALUE")
        };
        b = match k {
            "wd" => b.weight_decay(v.parse()?),
            "ep" => b.epochs(v.parse()?),
            "lr" => b.learning_rate(v.parse()?),
            "cb" => b.class_balanced(v == "1"),
            _ => bail!("unknown override {k}"),
        };
    }
    Ok(b.check()?)
}

fn train(
    (fit, val): (Dataset, Option<Dataset>),
    kind: HeadKind,
    hyper: &HyperParams,
) -> anyhow::Result<Head> {
    let val = val.map(|v| v.canonical());
    Ok(Head::train(&fit.canonical(), val.as_ref(), kind, hyper, &mut |_| {})?.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: recipe_cv ROOT linear|mlp RECIPE[,RECIPE…] [SEEDS] [FIELD_DIR]");
    }
    let root = Path::new(&args[1]);
    let kind = match args[2].as_str() {
        "mlp" => HeadKind::Mlp {
            hidden: HeadKind::DEFAULT_MLP_HIDDEN,
        },
        "linear" => HeadKind::Linear,
        other => bail!("head {other}: linear or mlp"),
    };
    let seeds: Vec<u64> = match args.get(4) {
        Some(s) => s
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("SEEDS: numbers")?,
        None => vec![0],
    };
    let nv: usize = std::env::var("NV").map_or(Ok(2), |v| v.parse())?;
    let descriptor = ModelDescriptor::load_default()?;
    let mut cache = FeatureCache::open(&default_dir(), &descriptor)?;
    let tr = load(&root.join("train"), None, &descriptor, &mut cache)?;
    let classes = tr.classes.clone();
    let va = load(&root.join("val"), Some(&classes), &descriptor, &mut cache)?;
    let te = dataset(&load(
        &root.join("test"),
        Some(&classes),
        &descriptor,
        &mut cache,
    )?)?;
    let field = match args.get(5) {
        Some(f) => Some(dataset(&load(
            Path::new(f),
            Some(&classes),
            &descriptor,
            &mut cache,
        )?)?),
        None => None,
    };
    let views = fieldtune::augment::views(nv);
    let (train_views, _) =
        fieldtune::augment::featurize_views(&tr, &views, &descriptor, Some(&mut cache), 1)?;
    let (val_views, _) =
        fieldtune::augment::featurize_views(&va, &views, &descriptor, Some(&mut cache), 1)?;
    let all = dataset(&tr)?;
    let val = dataset(&va)?;
    let odd: Vec<bool> = tr
        .paths
        .iter()
        .map(|p| image::image_dimensions(p).is_ok_and(|d| d != (256, 256)))
        .collect();
    let mut fold_of = vec![0usize; all.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for c in 0..classes.len() {
        let mut members: Vec<usize> = (0..all.len()).filter(|&i| all.labels[i] == c).collect();
        members.shuffle(&mut rng);
        for (j, &i) in members.iter().enumerate() {
            fold_of[i] = j % FOLDS;
        }
    }
    let pct = |r: usize, n: usize| format!("{:.2}", 100.0 * r as f64 / n.max(1) as f64);
    for recipe in args[3].split(',') {
        let (mut cv, mut odd_right, mut va_right, mut te_right, mut fi_right) = (0, 0, 0, 0, 0);
        let (mut cv_n, mut odd_n, mut va_n, mut te_n, mut fi_n) = (0, 0, 0, 0, 0);
        let mut per_seed = Vec::new();
        for &seed in &seeds {
            let hyper = hyper_for(recipe, kind, seed)?;
            for f in 0..FOLDS {
                let fit: Vec<usize> = (0..all.len()).filter(|&i| fold_of[i] != f).collect();
                let held: Vec<usize> = (0..all.len()).filter(|&i| fold_of[i] == f).collect();
                let fit_views: Vec<Array2<f32>> = train_views
                    .iter()
                    .map(|m| m.select(Axis(0), &fit))
                    .collect();
                let head = train(
                    build(recipe, &all.select(&fit), &fit_views, None, &hyper)?,
                    kind,
                    &hyper,
                )?;
                cv += right(&head, &all.select(&held));
                cv_n += held.len();
                let held_odd: Vec<usize> = held.iter().copied().filter(|&i| odd[i]).collect();
                odd_right += right(&head, &all.select(&held_odd));
                odd_n += held_odd.len();
            }
            let head = train(
                build(recipe, &all, &train_views, None, &hyper)?,
                kind,
                &hyper,
            )?;
            va_right += right(&head, &val);
            va_n += val.len();
            let (mut fit, v) = build(recipe, &all, &train_views, Some(val.clone()), &hyper)?;
            if recipe.starts_with("bv") {
                for m in &val_views {
                    fit = fit.concat(&labelled(m.clone(), &val));
                }
            }
            let head = train((fit, v), kind, &hyper)?;
            let t = right(&head, &te);
            te_right += t;
            te_n += te.len();
            let mut seen = t.to_string();
            if let Some(fd) = &field {
                let r = right(&head, fd);
                fi_right += r;
                fi_n += fd.len();
                seen += &format!("/{r}");
            }
            per_seed.push(seen);
        }
        println!(
            "{recipe:<20} cv {} ({cv}/{cv_n}) odd {} ({odd_right}/{odd_n})  val {} ({va_right}/{va_n})  test {} field {}  [{}]",
            pct(cv, cv_n),
            pct(odd_right, odd_n),
            pct(va_right, va_n),
            pct(te_right, te_n),
            if fi_n == 0 { "-".into() } else { pct(fi_right, fi_n) },
            per_seed.join(" ")
        );
    }
    Ok(())
}
