//! The [`Head`]: standardisation, weights, class prototypes and calibration in one serialisable value,
//! with everything the device does to it between full trainings: predict, learn one sample (a plain
//! SGD step, or a bounded step rehearsing stored samples of the other classes), add a class from a
//! few (or one) examples, rename a class, recalibrate. Training itself is `Head::train` in `train`.
//!
//! Prediction pipeline: `x → z = standardise(x) → logits → softmax(logits / T)` for the probabilities,
//! and `unknown_score = min_c RMS(z − mean_c)`, the standardised distance to the nearest class mean
//! (see `prototypes`), for "is this any known class at all". The input is reported unknown when its
//! score exceeds the calibrated threshold.
//!
//! Imprinting (`add_class`): the new class's output row points along the unit mean of the examples'
//! penultimate vectors (the standardised features for the linear head, the hidden ReLU activations for
//! the MLP, whose hidden layer is left untouched) measured from the running mean of all penultimate
//! vectors seen so far, and has the largest existing row norm. Measuring from that centre matters:
//! ReLU activations (and raw features on a head that has not been trained yet) of all classes point in
//! similar directions, so an uncentred imprint swallows the old classes. The bias is the larger of
//! (a) the largest old bias, in centred coordinates, and (b) what puts the new logit, averaged over the
//! examples, [`IMPRINT_MARGIN`] above the best old logit; (b) guarantees that a single example is
//! predicted as its new class. Later `learn` calls refine it.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::calibration::{acceptance_threshold, calibration_from, Calibration};
use super::dataset::Dataset;
use super::error::HeadError;
use super::hyper::HyperParams;
use super::loss::{class_sum_weights, softmax_in_place};
use super::params::Params;
use super::prototypes::{normalized, Prototypes};
use super::standardize::Standardizer;
use super::HeadKind;

/// Logit given to a first class imprinted into an empty head: large enough that later classes, imprinted
/// at the same scale, give confident but not saturated probabilities.
const FIRST_CLASS_LOGIT: f32 = 8.0;
/// How far (in logits) an imprinted class's logit sits above the best old class on its examples:
/// e² ≈ 7.4 to 1, so the example is clearly the new class without the class swamping the others.
const IMPRINT_MARGIN: f32 = 2.0;
/// Held-out unknown scores kept from `learn` (for a threshold on a head never calibrated on data).
const ONLINE_SCORES_KEPT: usize = 256;
/// `learn` sets an online threshold once it has seen this many held-out scores.
const ONLINE_SCORES_NEEDED: usize = 20;
/// The most one `learn_rehearsed` step may move any logit difference of the samples in its batch:
/// odds between two classes change by at most e^0.25 ≈ 1.28 per press. A plain `learn` step changes
/// its own sample's logits by `lr · (‖z‖² + 1) · (e_y − p)`, and standardised features have
/// `‖z‖² ≈ dim`: on corn4-mini a label the head disagreed with moved that sample's logit differences
/// by 20 to 60, which is how a few presses of one class swing the whole head. Chosen on
/// `tests/arithmetic/head_online_rehearsal.rs` (bounds 0.25 / 0.5 / 1.0 / 2.0): the smallest keeps the other
/// classes nearly where they were; the device's background retrain, not this step, does the learning.
pub const ONLINE_MAX_LOGIT_MOVE: f32 = 0.25;

/// One prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The predicted class, or `None` for unknown (unlike every known class, or no classes at all).
    pub class: Option<usize>,
    /// Every class with its calibrated probability, most probable first.
    pub top: Vec<(usize, f32)>,
    /// Root-mean-square standardised distance to the nearest class mean (about 1 = typical, larger =
    /// stranger; infinite without classes); unknown when above the calibrated threshold.
    pub unknown_score: f32,
    /// The class whose mean is nearest, if any.
    pub nearest_prototype: Option<usize>,
}

impl Prediction {
    fn unknown() -> Prediction {
        Prediction {
            class: None,
            top: Vec::new(),
            unknown_score: f32::INFINITY,
            nearest_prototype: None,
        }
    }
}

/// A trained (or growing) classification head; plain data, serialisable with serde.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawHead")]
pub struct Head {
    pub(super) dim: usize,
    pub(super) kind: HeadKind,
    pub(super) hyper: HyperParams,
    pub(super) classes: Vec<String>,
    pub(super) standardizer: Standardizer,
    pub(super) params: Params,
    pub(super) prototypes: Prototypes,
    pub(super) calibration: Calibration,
    pub(super) online_scores: Vec<f32>,
    /// Running mean of the penultimate vectors seen (training set, examples, learned samples):
    /// the origin imprinting measures directions from.
    pub(super) center: Array1<f32>,
    pub(super) center_count: u64,
}

/// The serialised form, checked for consistency before it becomes a [`Head`], so a decoded head
/// can be used without further checks.
#[derive(Deserialize)]
struct RawHead {
    dim: usize,
    kind: HeadKind,
    hyper: HyperParams,
    classes: Vec<String>,
    standardizer: Standardizer,
    params: Params,
    prototypes: Prototypes,
    calibration: Calibration,
    online_scores: Vec<f32>,
    center: Array1<f32>,
    center_count: u64,
}

impl TryFrom<RawHead> for Head {
    type Error = String;
    fn try_from(r: RawHead) -> Result<Head, String> {
        let k = r.classes.len();
        let expected_layers = match r.kind {
            HeadKind::Linear => 1,
            HeadKind::Mlp { .. } => 2,
        };
        if r.params.layers.len() != expected_layers {
            return Err("head file: layer count does not match its kind".into());
        }
        let mut inp = r.dim;
        for (i, l) in r.params.layers.iter().enumerate() {
            let out = if i + 1 == expected_layers {
                k
            } else {
                l.w.nrows()
            };
            if l.w.dim() != (out, inp) || l.b.len() != out {
                return Err(format!("head file: layer {i} has inconsistent shapes"));
            }
            inp = out;
        }
        let width = r.params.layers[0].w.nrows();
        let penultimate = if expected_layers == 1 { r.dim } else { width };
        if r.center.len() != penultimate
            || r.standardizer.dim() != r.dim
            || r.prototypes.classes() != k
            || r.hyper.clone().to_builder().check().is_err()
        {
            return Err(
                "head file: standardiser, prototypes or hyper-parameters are inconsistent".into(),
            );
        }
        Ok(Head {
            dim: r.dim,
            kind: r.kind,
            hyper: r.hyper,
            classes: r.classes,
            standardizer: r.standardizer,
            params: r.params,
            prototypes: r.prototypes,
            calibration: r.calibration,
            online_scores: r.online_scores,
            center: r.center,
            center_count: r.center_count,
        })
    }
}

impl Head {
    /// An empty head for `dim`-long features: no classes, identity standardisation, no unknown
    /// threshold yet. An MLP's hidden layer is initialised from `hyper.seed()`; a hidden width of 0
    /// is raised to 1 (use [`HeadKind::check`] to refuse it instead).
    pub fn new(dim: usize, kind: HeadKind, hyper: HyperParams) -> Head {
        let mut rng = ChaCha8Rng::seed_from_u64(hyper.seed());
        let params = match kind {
            HeadKind::Linear => Params::linear(dim),
            HeadKind::Mlp { hidden } => Params::mlp(dim, hidden.max(1), &mut rng),
        };
        let kind = match kind {
            HeadKind::Mlp { hidden } => HeadKind::Mlp {
                hidden: hidden.max(1),
            },
            k => k,
        };
        Head {
            dim,
            kind,
            hyper,
            classes: Vec::new(),
            standardizer: Standardizer::identity(dim),
            params,
            prototypes: Prototypes::empty(dim),
            calibration: Calibration::default(),
            online_scores: Vec::new(),
            center: Array1::zeros(match kind {
                HeadKind::Linear => dim,
                HeadKind::Mlp { hidden } => hidden,
            }),
            center_count: 0,
        }
    }

    /// Adds penultimate vectors to the running centre.
    pub(super) fn absorb_center(&mut self, h: ArrayView2<f32>) {
        for r in h.axis_iter(Axis(0)) {
            self.center_count += 1;
            let k = 1.0 / self.center_count as f32;
            self.center.zip_mut_with(&r, |c, &v| *c += (v - *c) * k);
        }
    }

    /// Class names in index order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
    /// Feature length this head expects.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Linear or MLP (with its width).
    pub fn kind(&self) -> HeadKind {
        self.kind
    }
    /// The hyper-parameters it was made with (also used by `learn`).
    pub fn hyper(&self) -> &HyperParams {
        &self.hyper
    }
    /// The learned weights (read-only; for inspection and tests).
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// The standardisation fitted at training time.
    pub fn standardizer(&self) -> &Standardizer {
        &self.standardizer
    }
    /// The current calibration.
    pub fn calibration(&self) -> Calibration {
        self.calibration
    }
    /// Samples per class that shaped the prototypes (training set, `add_class` and `learn`).
    pub fn class_sample_counts(&self) -> &[u64] {
        self.prototypes.counts()
    }

    fn check_feature(&self, x: ArrayView1<f32>) -> Result<(), HeadError> {
        if x.len() != self.dim {
            return Err(HeadError::DimensionMismatch {
                expected: self.dim,
                got: x.len(),
            });
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(HeadError::NonFiniteFeature {
                name: "input",
                row: 0,
            });
        }
        Ok(())
    }

    fn standardize_one(&self, x: ArrayView1<f32>) -> Array1<f32> {
        let mut z = Array1::zeros(self.dim);
        self.standardizer.transform_into(x, z.view_mut());
        z
    }

    /// Predicts one feature vector. A vector of the wrong length or with NaN, or a head without
    /// classes, gives an unknown prediction with no probabilities; use [`Head::try_predict`] to get
    /// the reason as an error.
    pub fn predict(&self, feature: ArrayView1<f32>) -> Prediction {
        self.try_predict(feature)
            .unwrap_or_else(|_| Prediction::unknown())
    }

    /// Predicts one feature vector.
    ///
    /// # Errors
    /// [`HeadError::DimensionMismatch`], [`HeadError::NonFiniteFeature`], [`HeadError::NoClasses`].
    pub fn try_predict(&self, feature: ArrayView1<f32>) -> Result<Prediction, HeadError> {
        self.check_feature(feature)?;
        if self.classes.is_empty() {
            return Err(HeadError::NoClasses);
        }
        let z = self.standardize_one(feature);
        let mut p = self
            .params
            .logits(z.view().insert_axis(Axis(0)))
            .remove_axis(Axis(0));
        p.mapv_inplace(|v| v / self.calibration.temperature);
        softmax_in_place(p.view_mut());
        let mut top: Vec<(usize, f32)> = p.iter().copied().enumerate().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let (unknown_score, nearest) = self.prototypes.nearest(z.view());
        let class = if unknown_score > self.calibration.unknown_threshold {
            None
        } else {
            top.first().map(|t| t.0)
        };
        Ok(Prediction {
            class,
            top,
            unknown_score,
            nearest_prototype: nearest,
        })
    }

    /// Calibrated class probabilities of a batch, `n × classes`. Rows of the wrong length make the
    /// whole result NaN (use [`Head::try_predict_proba`] for the error).
    pub fn predict_proba(&self, features: ArrayView2<f32>) -> Array2<f32> {
        self.try_predict_proba(features)
            .unwrap_or_else(|_| Array2::from_elem((features.nrows(), self.classes.len()), f32::NAN))
    }

    /// Calibrated class probabilities of a batch.
    ///
    /// # Errors
    /// [`HeadError::DimensionMismatch`].
    pub fn try_predict_proba(&self, features: ArrayView2<f32>) -> Result<Array2<f32>, HeadError> {
        let logits = self.logits(features)?;
        Ok(super::loss::softmax_rows(
            logits.view(),
            self.calibration.temperature,
        ))
    }

    /// Raw (uncalibrated) logits of a batch.
    ///
    /// # Errors
    /// [`HeadError::DimensionMismatch`].
    pub fn logits(&self, features: ArrayView2<f32>) -> Result<Array2<f32>, HeadError> {
        let z = self.standardized(features)?;
        Ok(self.params.logits(z.view()))
    }

    /// A batch checked for its feature length and standardised as in training.
    fn standardized(&self, features: ArrayView2<f32>) -> Result<Array2<f32>, HeadError> {
        if features.ncols() != self.dim {
            return Err(HeadError::DimensionMismatch {
                expected: self.dim,
                got: features.ncols(),
            });
        }
        Ok(self.standardizer.transform(features))
    }

    /// Unknown scores of a batch (see [`Prediction::unknown_score`]).
    ///
    /// # Errors
    /// [`HeadError::DimensionMismatch`].
    pub fn unknown_scores(&self, features: ArrayView2<f32>) -> Result<Vec<f32>, HeadError> {
        let z = self.standardized(features)?;
        Ok(z.axis_iter(Axis(0))
            .map(|r| self.prototypes.nearest(r).0)
            .collect())
    }

    /// Predictions for every row of a batch.
    pub fn predict_batch(&self, features: ArrayView2<f32>) -> Vec<Prediction> {
        features
            .axis_iter(Axis(0))
            .map(|r| self.predict(r))
            .collect()
    }

    /// One online SGD step on a single labelled sample (the device's button press): plain SGD at
    /// `online_learning_rate`, loss weight 1, plus weight decay; the class prototype absorbs the
    /// sample. O(dim · classes) for the linear head. Before the update, the sample's unknown score
    /// is recorded as a held-out score; a head never calibrated on data sets its unknown threshold
    /// from these once it has 20.
    ///
    /// The step is not bounded: on standardised 1280-d features it can move the sample's own
    /// logits by tens, and a run of presses of one class swings the head towards that class.
    /// [`Head::learn_rehearsed`] is the bounded, class-balanced alternative.
    ///
    /// # Errors
    /// [`HeadError::DimensionMismatch`], [`HeadError::NonFiniteFeature`], [`HeadError::LabelOutOfRange`].
    pub fn learn(&mut self, feature: ArrayView1<f32>, label: usize) -> Result<(), HeadError> {
        self.check_feature(feature)?;
        self.check_label(label)?;
        let z = self.standardize_one(feature);
        self.absorb_labelled(z.view(), label);
        self.params.sgd_step_one(
            z.view(),
            label,
            self.hyper.online_learning_rate(),
            self.hyper.weight_decay(),
        );
        Ok(())
    }

    /// One online step for a newly labelled sample, rehearsing stored samples of the other classes
    /// so that a run of presses of one class does not swing the head towards it.
    ///
    /// The step is one mini-batch gradient step at `online_learning_rate` (with weight decay) on
    /// `{feature} ∪ rehearsal` and the loss `Σ_c mean_{i ∈ c} CE_i + weight_decay / 2 · ‖W‖²`: every
    /// class present in the batch carries the same total weight, so the new sample (alone in its
    /// class) weighs as much as each rehearsed class (see [`super::loss::class_sum_weights`]).
    /// With an empty `rehearsal` this is exactly `learn`'s loss and gradient. The step is then
    /// bounded ([`super::params::Params::bounded_step`]): shrunk, when needed, until no logit
    /// difference of any batch row moves by more than [`ONLINE_MAX_LOGIT_MOVE`], so one press
    /// changes no odds between two classes on those samples by more than `e^1`.
    ///
    /// `rehearsal` holds stored raw (unstandardised) features, one per row, with their class
    /// indices in `rehearsal_labels`; it may be empty (0 rows, any width). Rows of `label`'s own
    /// class are allowed and share that class's weight with the new sample. Only the new sample is
    /// recorded, exactly as by `learn`: its held-out unknown score, the running centre and its class
    /// prototype; rehearsed rows were counted when they were first learned. The cost is that of
    /// `1 + rows` predictions and one mini-batch gradient, plus one more forward pass per rescaling
    /// when the bound bites (one for the linear head).
    ///
    /// Measured on real corn4-mini features (`tests/arithmetic/head_online_rehearsal.rs`: 4 images per class
    /// trained, then 10 presses of one class): the other classes' held-out accuracy went from 65.0 %
    /// to 62.8 % (linear; MLP 66.4 % → 64.1 %), against 54.2 % (51.0 %) with `learn`. Rehearsed
    /// samples that the head already fits confidently carry almost no gradient, so there the bound
    /// does the protecting; the rehearsal pulls a stored sample back once presses make it doubtful.
    ///
    /// # Errors
    /// [`HeadError::DimensionMismatch`], [`HeadError::NonFiniteFeature`] (`input` or `rehearsal`
    /// row), [`HeadError::LabelOutOfRange`], [`HeadError::LabelCountMismatch`] when
    /// `rehearsal_labels` does not pair up with the rows. Nothing changes on error.
    pub fn learn_rehearsed(
        &mut self,
        feature: ArrayView1<f32>,
        label: usize,
        rehearsal: ArrayView2<f32>,
        rehearsal_labels: &[usize],
    ) -> Result<(), HeadError> {
        self.check_feature(feature)?;
        self.check_label(label)?;
        let rows = rehearsal.nrows();
        if rehearsal_labels.len() != rows {
            return Err(HeadError::LabelCountMismatch {
                name: "rehearsal",
                rows,
                labels: rehearsal_labels.len(),
            });
        }
        if rows > 0 && rehearsal.ncols() != self.dim {
            return Err(HeadError::DimensionMismatch {
                expected: self.dim,
                got: rehearsal.ncols(),
            });
        }
        for (row, r) in rehearsal.axis_iter(Axis(0)).enumerate() {
            if r.iter().any(|v| !v.is_finite()) {
                return Err(HeadError::NonFiniteFeature {
                    name: "rehearsal",
                    row,
                });
            }
        }
        for &l in rehearsal_labels {
            self.check_label(l)?;
        }
        let z = self.standardize_one(feature);
        self.absorb_labelled(z.view(), label);
        let mut batch = Array2::zeros((1 + rows, self.dim));
        batch.row_mut(0).assign(&z);
        for (i, r) in rehearsal.axis_iter(Axis(0)).enumerate() {
            self.standardizer.transform_into(r, batch.row_mut(1 + i));
        }
        let mut labels = Vec::with_capacity(1 + rows);
        labels.push(label);
        labels.extend_from_slice(rehearsal_labels);
        let mut counts = vec![0usize; self.classes.len()];
        for &l in &labels {
            counts[l] += 1;
        }
        self.params.bounded_step(
            batch.view(),
            &labels,
            &class_sum_weights(&counts),
            self.hyper.online_learning_rate(),
            self.hyper.weight_decay(),
            ONLINE_MAX_LOGIT_MOVE,
        );
        Ok(())
    }

    fn check_label(&self, label: usize) -> Result<(), HeadError> {
        if label >= self.classes.len() {
            return Err(HeadError::LabelOutOfRange {
                label,
                classes: self.classes.len(),
            });
        }
        Ok(())
    }

    /// What an online label records besides the weight step, before it: the sample's unknown
    /// score as a held-out score (when its class already had samples; setting the online threshold
    /// of a never-calibrated head once there are enough), its penultimate vector (under the
    /// weights before the step) into the running centre, and the sample into its class prototype.
    fn absorb_labelled(&mut self, z: ArrayView1<f32>, label: usize) {
        if self.prototypes.counts()[label] > 0 {
            let score = self.prototypes.nearest(z).0;
            if self.online_scores.len() >= ONLINE_SCORES_KEPT {
                self.online_scores.remove(0);
            }
            self.online_scores.push(score);
            if self.calibration.samples == 0 && self.online_scores.len() >= ONLINE_SCORES_NEEDED {
                let (t, acc) =
                    acceptance_threshold(&self.online_scores, self.hyper.target_acceptance());
                self.calibration.unknown_threshold = t;
                self.calibration.accepted_fraction = acc;
            }
        }
        let h = self.params.penultimate(z.insert_axis(Axis(0)));
        self.absorb_center(h.view());
        self.prototypes.add(z, label);
    }

    /// Adds a class named `name` from one or more example feature vectors (rows of `examples`) by
    /// imprinting (see the module docs) and returns its index.
    ///
    /// # Errors
    /// [`HeadError::EmptyClassName`], [`HeadError::DuplicateClass`], [`HeadError::NoExamples`],
    /// [`HeadError::DimensionMismatch`], [`HeadError::NonFiniteFeature`].
    pub fn add_class(&mut self, name: &str, examples: ArrayView2<f32>) -> Result<usize, HeadError> {
        self.check_new_name(name)?;
        if examples.nrows() == 0 {
            return Err(HeadError::NoExamples(name.to_string()));
        }
        for (row, r) in examples.axis_iter(Axis(0)).enumerate() {
            self.check_feature(r).map_err(|e| match e {
                HeadError::NonFiniteFeature { .. } => HeadError::NonFiniteFeature {
                    name: "add_class examples",
                    row,
                },
                e => e,
            })?;
        }
        let z = self.standardizer.transform(examples);
        let h = self.params.penultimate(z.view());
        let mut mean_dir = Array1::<f32>::zeros(h.ncols());
        let mut mean_norm = 0.0f32;
        for r in h.axis_iter(Axis(0)) {
            let centred = &r - &self.center;
            mean_norm += centred.dot(&centred).sqrt();
            mean_dir += &normalized(centred.view());
        }
        mean_norm /= h.nrows() as f32;
        let dir = normalized(mean_dir.view());
        let out = self.params.output();
        let scale = out
            .w
            .axis_iter(Axis(0))
            .map(|r| r.dot(&r).sqrt())
            .fold(0.0f32, f32::max);
        let scale = if scale > 0.0 {
            scale
        } else {
            FIRST_CLASS_LOGIT / mean_norm.max(1e-6)
        };
        let bias = if out.w.nrows() == 0 {
            -scale * dir.dot(&self.center)
        } else {
            // Centred rule: logit = scale·dir·(h − centre) + the largest old bias, as if the space were
            // centred (the linear head's standardised space is).
            let max_bias = out.b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let centred = max_bias - scale * dir.dot(&self.center);
            // Margin rule: on average over the examples the new logit beats the best old one by
            // IMPRINT_MARGIN, so a single example is always predicted as its new class.
            let old = self.params.logits(z.view());
            let gap: f32 = h
                .axis_iter(Axis(0))
                .zip(old.axis_iter(Axis(0)))
                .map(|(r, o)| {
                    scale * dir.dot(&r) - o.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                })
                .sum::<f32>()
                / h.nrows() as f32;
            centred.max(IMPRINT_MARGIN - gap)
        };
        self.absorb_center(h.view());
        self.params.push_class((&dir * scale).view(), bias);
        self.prototypes.push_class();
        let index = self.classes.len();
        for r in z.axis_iter(Axis(0)) {
            self.prototypes.add(r, index);
        }
        self.classes.push(name.to_string());
        Ok(index)
    }

    fn check_new_name(&self, name: &str) -> Result<(), HeadError> {
        if name.trim().is_empty() {
            return Err(HeadError::EmptyClassName);
        }
        if self.classes.iter().any(|c| c == name) {
            return Err(HeadError::DuplicateClass(name.to_string()));
        }
        Ok(())
    }

    /// Renames class `index`.
    ///
    /// # Errors
    /// [`HeadError::LabelOutOfRange`], [`HeadError::EmptyClassName`], [`HeadError::DuplicateClass`].
    pub fn rename_class(&mut self, index: usize, name: &str) -> Result<(), HeadError> {
        if index >= self.classes.len() {
            return Err(HeadError::LabelOutOfRange {
                label: index,
                classes: self.classes.len(),
            });
        }
        if self.classes[index] == name {
            return Ok(());
        }
        self.check_new_name(name)?;
        self.classes[index] = name.to_string();
        Ok(())
    }

    /// Fits the softmax temperature (validation NLL) and the unknown threshold (so that
    /// `target_acceptance` of `val` is accepted) on held-out data, stores and returns them.
    ///
    /// # Errors
    /// [`HeadError::NoClasses`], an invalid `val`, [`HeadError::DimensionMismatch`] or
    /// [`HeadError::ClassListMismatch`].
    pub fn calibrate(&mut self, val: &Dataset) -> Result<Calibration, HeadError> {
        if self.classes.is_empty() {
            return Err(HeadError::NoClasses);
        }
        val.check("val")?;
        if val.classes != self.classes {
            return Err(HeadError::ClassListMismatch {
                train: self.classes.clone(),
                val: val.classes.clone(),
            });
        }
        let logits = self.logits(val.features.view())?;
        let scores = self.unknown_scores(val.features.view())?;
        self.calibration = calibration_from(
            logits.view(),
            &val.labels,
            &scores,
            self.hyper.target_acceptance(),
        );
        Ok(self.calibration)
    }
}
