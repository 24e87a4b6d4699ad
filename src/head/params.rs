//! The learnable weights of a head and their maths, written by hand: forward pass, loss and gradient
//! (backward pass), the in-place one-sample SGD step of `learn`, and the bounded mini-batch step of
//! `learn_rehearsed` (a gradient step shrunk until it moves no logit difference of its batch by more
//! than a given amount).
//!
//! A head is a stack of dense layers: the linear head has one (`classes × dim`), the MLP two
//! (`hidden × dim` with ReLU, then `classes × hidden`). Weights are stored `out × in`, so a batch
//! `X (B × in)` maps to `X · Wᵀ + b`. The loss is the class-weighted mean cross-entropy plus
//! `weight_decay / 2 · Σ ‖W‖²` (biases are not decayed).

use ndarray::{
    linalg::general_mat_mul, s, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batch::{Workspace, GRAD_BLOCK_COLUMNS};
use super::kernels;
use super::loss::{cross_entropy_grad_rows, softmax_in_place};
use super::pool::Pool;
use super::wide;

/// One dense layer: `y = W x + b`, `W` is `out × in`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Weights, `out × in`.
    pub w: Array2<f32>,
    /// Biases, `out`.
    pub b: Array1<f32>,
}

impl Layer {
    /// A zero layer.
    pub fn zeros(out: usize, inp: usize) -> Layer {
        Layer {
            w: Array2::zeros((out, inp)),
            b: Array1::zeros(out),
        }
    }

    /// He-initialised weights (uniform with variance `2 / in`), zero biases.
    pub fn he(out: usize, inp: usize, rng: &mut ChaCha8Rng) -> Layer {
        let limit = (6.0 / inp.max(1) as f32).sqrt();
        Layer {
            w: Array2::from_shape_simple_fn((out, inp), || rng.gen_range(-limit..limit)),
            b: Array1::zeros(out),
        }
    }

    fn forward(&self, x: ArrayView2<f32>, out: &mut ArrayViewMut2<f32>) {
        kernels::forward(x, self.w.view(), self.b.view(), out);
    }

    /// `∂loss/∂W = weight_decay · W + Δᵀ · X` and `∂loss/∂b = Σ_rows Δ` into `grad`, with `Δ`
    /// (`B × out`) the batch's delta at this layer's output and `X` (`B × in`) its input. The
    /// product is [`kernels::weight_grad`] (column blocks of [`GRAD_BLOCK_COLUMNS`] for wide layers).
    fn gradient_into(
        &self,
        delta: ArrayView2<f32>,
        input: ArrayView2<f32>,
        weight_decay: f32,
        grad: &mut Layer,
    ) {
        kernels::weight_grad(
            delta,
            input,
            self.w.view(),
            weight_decay,
            &mut grad.w,
            GRAD_BLOCK_COLUMNS,
        );
        grad.b.fill(0.0);
        for row in delta.rows() {
            grad.b += &row;
        }
    }
}

/// `out = X · Wᵀ + b` for a wide layer by [`wide::forward`], its rows read where they are; `false`
/// (nothing written) when the processor lacks AVX-512 or a matrix is not contiguous.
fn wide_forward(
    layer: &Layer,
    x: kernels::Rows,
    out: &mut ArrayViewMut2<f32>,
    pool: Option<&Pool>,
) -> bool {
    match (layer.w.as_slice(), layer.b.as_slice(), out.as_slice_mut()) {
        (Some(w), Some(b), Some(o)) => wide::forward_parts(pool, x, w, b, o),
        _ => false,
    }
}

/// `Σ v²`, summed in eight interleaved partial sums so that the loop vectorises.
pub(super) fn sum_of_squares(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] += c[l] * c[l];
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    acc.iter().sum::<f32>() + tail
}

/// Rescalings [`Params::bounded_step`] tries before it drops a step that still moves too much.
pub const BOUND_REFINEMENTS: usize = 8;

/// What one [`Params::bounded_step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundedStep {
    /// Batch loss before the step (weighted cross-entropy + L2 penalty).
    pub loss: f32,
    /// Fraction of the full step `lr · ∇L` taken: 1 when the bound did not bite, 0 when the step
    /// was dropped.
    pub scale: f32,
    /// [`logit_move`] of the batch caused by the step taken.
    pub logit_move: f32,
}

/// How far a change of logits moved the predictions: `max_i (max_c Δ_ic − min_c Δ_ic)` with
/// `Δ = after − before`, the largest change of any logit difference `l_a − l_b` on any row. Softmax
/// sees only logit differences, so no row's odds between two classes changed by more than a factor
/// `e^move`; a shift of all of a row's logits together does not count. 0 for empty batches or a
/// single class; NaN when a logit is not finite.
pub fn logit_move(before: ArrayView2<f32>, after: ArrayView2<f32>) -> f32 {
    let mut worst = 0.0f32;
    for (b, a) in before.axis_iter(Axis(0)).zip(after.axis_iter(Axis(0))) {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for (&b, &a) in b.iter().zip(a) {
            let d = a - b;
            if !d.is_finite() {
                return f32::NAN;
            }
            lo = lo.min(d);
            hi = hi.max(d);
        }
        if hi >= lo {
            worst = worst.max(hi - lo);
        }
    }
    worst
}

/// The weights of a head: hidden layers (ReLU) followed by the output layer (logits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Layers in order; the last one produces the logits.
    pub layers: Vec<Layer>,
}

impl Params {
    /// A linear head with no classes yet.
    pub fn linear(dim: usize) -> Params {
        Params {
            layers: vec![Layer::zeros(0, dim)],
        }
    }

    /// An MLP head with no classes yet: He-initialised hidden layer, empty output layer.
    pub fn mlp(dim: usize, hidden: usize, rng: &mut ChaCha8Rng) -> Params {
        Params {
            layers: vec![Layer::he(hidden, dim, rng), Layer::zeros(0, hidden)],
        }
    }

    /// Number of classes (rows of the output layer).
    pub fn classes(&self) -> usize {
        self.output().w.nrows()
    }

    /// The output layer.
    pub fn output(&self) -> &Layer {
        // A Params always has at least one layer: both constructors and deserialised heads are checked.
        &self.layers[self.layers.len() - 1]
    }

    /// The output layer, mutably.
    pub fn output_mut(&mut self) -> &mut Layer {
        let last = self.layers.len() - 1;
        &mut self.layers[last]
    }

    /// The input of the output layer for a batch: `x` itself for a linear head, the last hidden
    /// activations for an MLP.
    pub fn penultimate(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut a = x.to_owned();
        for layer in &self.layers[..self.layers.len() - 1] {
            let mut next = Array2::zeros((a.nrows(), layer.w.nrows()));
            layer.forward(a.view(), &mut next.view_mut());
            next.mapv_inplace(|v| v.max(0.0));
            a = next;
        }
        a
    }

    /// The mean of [`Params::penultimate`] over the rows of `x` (`None` without rows), computed
    /// a block of rows at a time instead of on a copy of `x`.
    pub fn penultimate_mean(&self, x: ArrayView2<f32>) -> Option<Array1<f32>> {
        if x.nrows() == 0 {
            return None;
        }
        let hidden = self.layers.len() - 1;
        if hidden == 0 {
            return x.mean_axis(Axis(0));
        }
        let mut sum = Array1::<f32>::zeros(self.layers[hidden - 1].w.nrows());
        let mut ws = Workspace::new();
        for block in x.axis_chunks_iter(Axis(0), 256) {
            self.forward_in(block, &mut ws);
            for row in ws.output(hidden - 1, block.nrows()).rows() {
                sum += &row;
            }
        }
        Some(sum / x.nrows() as f32)
    }

    /// Logits of a batch, `B × classes`.
    pub fn logits(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut ws = Workspace::new();
        self.logits_in(x, &mut ws).to_owned()
    }

    /// Logits of a batch, `B × classes`, computed in `ws` (no allocation once `ws` has held a
    /// batch as large).
    pub fn logits_in<'w>(&self, x: ArrayView2<f32>, ws: &'w mut Workspace) -> ArrayView2<'w, f32> {
        let m = x.nrows();
        self.forward_in(x, ws);
        ws.output(self.layers.len() - 1, m)
    }

    /// The forward pass of a batch into `ws`: each layer's output (ReLU on hidden layers).
    fn forward_in(&self, x: ArrayView2<f32>, ws: &mut Workspace) {
        let m = x.nrows();
        ws.fit(self, m);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if i == 0 {
                layer.forward(x, &mut ws.output_mut(0, m));
            } else {
                let (input, mut out) = ws.output_pair(i - 1, m);
                layer.forward(input, &mut out);
            }
            if i < last {
                ws.output_mut(i, m).mapv_inplace(|v| v.max(0.0));
            }
        }
    }

    /// `weight_decay / 2 · Σ ‖W‖²`.
    pub fn l2_penalty(&self, weight_decay: f32) -> f32 {
        let sq: f32 = self
            .layers
            .iter()
            .map(|l| match l.w.as_slice_memory_order() {
                Some(w) => sum_of_squares(w),
                None => l.w.iter().map(|v| v * v).sum::<f32>(),
            })
            .sum();
        0.5 * weight_decay * sq
    }

    /// Loss of a batch (weighted mean cross-entropy + L2 penalty) and its gradient, written into
    /// `grad` (same shapes as `self`; overwritten).
    pub fn loss_and_grad(
        &self,
        x: ArrayView2<f32>,
        labels: &[usize],
        class_weights: &[f32],
        weight_decay: f32,
        grad: &mut Params,
    ) -> f32 {
        let mut ws = Workspace::new();
        self.loss_and_grad_in(x, labels, class_weights, weight_decay, grad, &mut ws)
    }

    /// [`Params::loss_and_grad`] with its intermediate matrices in `ws`, which a training loop
    /// keeps between steps: once `ws` has held a batch as large, a step allocates nothing.
    pub fn loss_and_grad_in(
        &self,
        x: ArrayView2<f32>,
        labels: &[usize],
        class_weights: &[f32],
        weight_decay: f32,
        grad: &mut Params,
        ws: &mut Workspace,
    ) -> f32 {
        let m = x.nrows();
        let last = self.layers.len() - 1;
        // Forward, keeping every layer's output (post-ReLU) for the backward pass.
        self.forward_in(x, ws);
        let loss = cross_entropy_grad_rows(ws.output_mut(last, m), labels, class_weights)
            + self.l2_penalty(weight_decay);
        // Backward: the delta of layer i is ∂loss/∂(pre-activation output of layer i).
        for i in (0..self.layers.len()).rev() {
            let layer = &self.layers[i];
            let (delta, input, back) = ws.backward(i, m);
            let input = input.unwrap_or(x);
            layer.gradient_into(delta, input, weight_decay, &mut grad.layers[i]);
            if let Some(mut back) = back {
                general_mat_mul(1.0, &delta, &layer.w, 0.0, &mut back);
                // ReLU gate: the input of layer i is the post-ReLU output of layer i−1.
                back.zip_mut_with(&input, |d, &h| {
                    if h <= 0.0 {
                        *d = 0.0
                    }
                });
            }
        }
        loss
    }

    /// The cross-entropy part of a training step: the weighted mean cross-entropy of the batch
    /// `x` (returned) and its gradient, written into `grad`, **without** the weight decay (the
    /// training loop folds it into the update, [`super::sgd::Sgd::step_decayed`]). The rows are
    /// read where they are (`x` may pick rows of the whole training matrix) when the first layer
    /// is narrow (the linear head), or wide (the MLP's hidden layer) on a processor with AVX-512
    /// ([`wide::available`]); otherwise a wide first layer needs `x` to be a plain matrix
    /// ([`kernels::Rows::all`]), which ndarray's matrix product packs anyway.
    /// Allocates nothing once `ws` has held a batch as large.
    ///
    /// # Panics
    /// When the first layer is wide, `x` picks rows and the processor lacks AVX-512.
    pub fn train_grad_in(
        &self,
        x: kernels::Rows,
        labels: &[usize],
        class_weights: &[f32],
        grad: &mut Params,
        ws: &mut Workspace,
    ) -> f32 {
        let m = x.len();
        let last = self.layers.len() - 1;
        ws.fit(self, m);
        let pool = ws.pool.clone();
        let pool = pool.as_deref();
        let first = &self.layers[0];
        let narrow = first.w.nrows() <= kernels::MAX_NARROW_OUTPUTS;
        let matrix = x.as_matrix();
        let wide_input = || matrix.expect("a wide first layer takes a plain matrix of rows");
        if narrow {
            let w = first.w.as_standard_layout();
            let w = w.as_slice().expect("standard layout");
            kernels::forward_rows(x, w, first.b.view(), &mut ws.output_mut(0, m));
        } else if !wide_forward(first, x, &mut ws.output_mut(0, m), pool) {
            first.forward(wide_input(), &mut ws.output_mut(0, m));
        }
        for (i, layer) in self.layers.iter().enumerate().skip(1) {
            // ReLU on the hidden layer below.
            ws.output_mut(i - 1, m).mapv_inplace(|v| v.max(0.0));
            let (input, mut out) = ws.output_pair(i - 1, m);
            layer.forward(input, &mut out);
        }
        let loss = cross_entropy_grad_rows(ws.output_mut(last, m), labels, class_weights);
        for i in (0..self.layers.len()).rev() {
            let layer = &self.layers[i];
            let (delta, input, back) = ws.backward(i, m);
            let g = &mut grad.layers[i];
            let narrow = layer.w.nrows() <= kernels::MAX_NARROW_OUTPUTS;
            match (input, narrow) {
                (Some(input), true) => match (kernels::Rows::all(input), g.w.as_slice_mut()) {
                    (Some(rows), Some(gs)) => kernels::weight_grad_rows(delta, rows, gs),
                    _ => kernels::wide_grad(delta, input, 0.0, &mut g.w, GRAD_BLOCK_COLUMNS),
                },
                (Some(input), false) => {
                    kernels::wide_grad(delta, input, 0.0, &mut g.w, GRAD_BLOCK_COLUMNS)
                }
                (None, true) => match g.w.as_slice_mut() {
                    Some(gs) => kernels::weight_grad_rows(delta, x, gs),
                    None => unreachable!("a gradient buffer made by zeros_like is contiguous"),
                },
                (None, false) => {
                    let done = match (delta.as_slice(), g.w.as_slice_mut()) {
                        (Some(ds), Some(gs)) => wide::weight_grad_parts(pool, ds, x, 0.0, gs),
                        _ => false,
                    };
                    if !done {
                        kernels::wide_grad(delta, wide_input(), 0.0, &mut g.w, GRAD_BLOCK_COLUMNS)
                    }
                }
            }
            g.b.fill(0.0);
            for row in delta.rows() {
                g.b += &row;
            }
            if let (Some(mut back), Some(input)) = (back, input) {
                general_mat_mul(1.0, &delta, &layer.w, 0.0, &mut back);
                back.zip_mut_with(&input, |d, &h| {
                    if h <= 0.0 {
                        *d = 0.0
                    }
                });
            }
        }
        loss
    }

    /// A zero-filled copy (gradient or velocity buffer).
    pub fn zeros_like(&self) -> Params {
        Params {
            layers: self
                .layers
                .iter()
                .map(|l| Layer::zeros(l.w.nrows(), l.w.ncols()))
                .collect(),
        }
    }

    /// Class probabilities of one standardised sample (temperature 1).
    pub fn proba_one(&self, x: ArrayView1<f32>) -> Array1<f32> {
        let mut l = self.logits(x.insert_axis(Axis(0))).remove_axis(Axis(0));
        softmax_in_place(l.view_mut());
        l
    }

    /// One plain SGD step on a single standardised sample with loss weight 1:
    /// `θ ← θ − lr · (∂CE/∂θ + weight_decay · W)`, updating the weights in place. For the linear head
    /// this is O(dim · classes) and allocates only the `classes`-long logit vector.
    pub fn sgd_step_one(&mut self, x: ArrayView1<f32>, label: usize, lr: f32, weight_decay: f32) {
        let n = self.layers.len();
        // Forward with the per-layer inputs (small vectors: dim, hidden, classes).
        let mut inputs: Vec<Array1<f32>> = Vec::with_capacity(n);
        let mut a = x.to_owned();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut z = layer.w.dot(&a);
            z += &layer.b;
            if i + 1 < n {
                z.mapv_inplace(|v| v.max(0.0));
            }
            inputs.push(a);
            a = z;
        }
        softmax_in_place(a.view_mut());
        a[label] -= 1.0;
        let mut delta = a;
        let shrink = 1.0 - lr * weight_decay;
        for i in (0..n).rev() {
            // Propagate through the old weights before they change.
            let back = (i > 0).then(|| {
                let mut back = self.layers[i].w.t().dot(&delta);
                back.zip_mut_with(&inputs[i], |d, &h| {
                    if h <= 0.0 {
                        *d = 0.0
                    }
                });
                back
            });
            let layer = &mut self.layers[i];
            for (mut row, &d) in layer.w.axis_iter_mut(Axis(0)).zip(delta.iter()) {
                if d == 0.0 && shrink == 1.0 {
                    continue;
                }
                row.zip_mut_with(&inputs[i], |w, &h| *w = *w * shrink - lr * d * h);
            }
            layer.b.scaled_add(-lr, &delta);
            if let Some(back) = back {
                delta = back;
            }
        }
    }

    /// `θ ← θ + alpha · g` on every weight and bias (`g` shaped like `self`).
    pub fn add_scaled(&mut self, g: &Params, alpha: f32) {
        for (p, g) in self.layers.iter_mut().zip(&g.layers) {
            p.w.scaled_add(alpha, &g.w);
            p.b.scaled_add(alpha, &g.b);
        }
    }

    /// One gradient step on a batch whose effect on the batch's own predictions is bounded:
    /// `θ ← θ − s · lr · ∇L`, with `L` the loss of [`Params::loss_and_grad`] (weighted mean
    /// cross-entropy + L2) and `s ∈ [0, 1]` the largest step fraction for which no logit difference
    /// of any batch row moves by more than `max_move` (see [`logit_move`]). `s = 1` (the plain
    /// mini-batch SGD step) whenever that step already stays within the bound; `max_move = ∞`
    /// never clips; a NaN or negative `max_move` counts as 0 (no step).
    ///
    /// The step is measured, not estimated: the batch's logits are recomputed after it. For the
    /// linear head logits are affine in the weights, so one rescaling by `max_move / move` lands
    /// on the bound; for the MLP the move is only close to linear in `s`, so the rescaling is
    /// repeated (at most [`BOUND_REFINEMENTS`] times, after which the step is dropped rather than
    /// let through unbounded).
    pub fn bounded_step(
        &mut self,
        x: ArrayView2<f32>,
        labels: &[usize],
        class_weights: &[f32],
        lr: f32,
        weight_decay: f32,
        max_move: f32,
    ) -> BoundedStep {
        let max_move = if max_move.is_nan() {
            0.0
        } else {
            max_move.max(0.0)
        };
        let before = self.logits(x);
        let mut grad = self.zeros_like();
        let loss = self.loss_and_grad(x, labels, class_weights, weight_decay, &mut grad);
        let mut taken = lr;
        self.add_scaled(&grad, -taken);
        let mut moved = logit_move(before.view(), self.logits(x).view());
        // A hair of slack so the float rounding of an exact rescaling does not trigger another.
        let limit = max_move * (1.0 + 1e-4);
        let too_far = |m: f32| m.is_nan() || m > limit;
        let mut refinements = 0;
        while too_far(moved) && taken > 0.0 {
            let want = if moved.is_finite() && refinements < BOUND_REFINEMENTS {
                taken * max_move / moved
            } else {
                0.0
            };
            // From θ − taken·g to θ − want·g.
            self.add_scaled(&grad, taken - want);
            taken = want;
            moved = if taken > 0.0 {
                logit_move(before.view(), self.logits(x).view())
            } else {
                0.0
            };
            refinements += 1;
        }
        BoundedStep {
            loss,
            scale: if lr > 0.0 { taken / lr } else { 0.0 },
            logit_move: moved,
        }
    }

    /// Appends an output row (a new class) with weights `w` and bias `b`.
    pub fn push_class(&mut self, w: ArrayView1<f32>, b: f32) {
        let out = self.output_mut();
        let (k, d) = out.w.dim();
        let mut grown = Array2::zeros((k + 1, d));
        grown.slice_mut(s![..k, ..]).assign(&out.w);
        grown.row_mut(k).assign(&w);
        out.w = grown;
        let mut bias = Array1::zeros(k + 1);
        bias.slice_mut(s![..k]).assign(&out.b);
        bias[k] = b;
        out.b = bias;
    }
}
