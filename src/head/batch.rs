//! The buffers of a mini-batch step, kept between steps: every layer's output and the deltas of
//! the backward pass, sized for the largest batch once, so a training step allocates nothing.
//!
//! [`Params::loss_and_grad_in`](super::params::Params::loss_and_grad_in) fills them: the batch
//! goes through each layer as one matrix product (`X · Wᵀ`, ndarray's `general_mat_mul`), and the
//! gradient of each layer's weights is one more (`Δᵀ · X`). The products whose right-hand side is
//! as wide as the features are cut into column blocks of [`GRAD_BLOCK_COLUMNS`], so the packing
//! buffer the matrix-product routine allocates per call stays below the service's 256 KiB mmap
//! threshold (`src/heap.rs`) and comes from the heap instead of a fresh mapping (a mapping per
//! product cost a page fault per 4 KiB touched, every step).

use std::sync::Arc;

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

use super::params::Params;
use super::pool::Pool;

/// Columns per block of a weight-gradient product (`Δᵀ · X` over `X`'s columns): with a batch of
/// 64 rows the right-hand packing buffer is 64 × 512 floats, 128 KiB.
pub const GRAD_BLOCK_COLUMNS: usize = 512;

/// Per-layer buffers for batches of up to `rows` samples.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    rows: usize,
    /// `outputs[i]`: layer `i`'s output (post-ReLU for hidden layers; the logits, then their
    /// gradient, for the last), `rows × out_i`.
    outputs: Vec<Array2<f32>>,
    /// `deltas[i]` for hidden layers: `∂loss/∂(pre-activation of layer i)`, `rows × out_i`.
    deltas: Vec<Array2<f32>>,
    /// Threads the wide products of a training step are split over, if more than one.
    pub(super) pool: Option<Arc<Pool>>,
}

impl Workspace {
    /// Empty buffers: the first step sizes them.
    pub fn new() -> Workspace {
        Workspace::default()
    }

    /// Splits the wide products of [`Params::train_grad_in`] over `pool`'s threads (the same
    /// results: every element is the same sum in the same order).
    pub fn set_pool(&mut self, pool: Option<Arc<Pool>>) {
        self.pool = pool;
    }

    /// Buffers for `params` and batches of up to `rows` samples (allocates only when the shapes
    /// grow or change).
    pub fn fit(&mut self, params: &Params, rows: usize) {
        let fits = self.rows >= rows
            && self.outputs.len() == params.layers.len()
            && self
                .outputs
                .iter()
                .zip(&params.layers)
                .all(|(o, l)| o.ncols() == l.w.nrows());
        if fits {
            return;
        }
        let rows = rows.max(self.rows);
        self.rows = rows;
        self.outputs = params
            .layers
            .iter()
            .map(|l| Array2::zeros((rows, l.w.nrows())))
            .collect();
        self.deltas = params
            .layers
            .iter()
            .map(|l| Array2::zeros((rows, l.w.nrows())))
            .collect();
    }

    /// Layer `i`'s output rows `..m` (read) and layer `i + 1`'s (written), for the forward pass.
    pub(super) fn output_pair(
        &mut self,
        i: usize,
        m: usize,
    ) -> (ArrayView2<'_, f32>, ArrayViewMut2<'_, f32>) {
        let (before, after) = self.outputs.split_at_mut(i + 1);
        (
            before[i].slice(s![..m, ..]),
            after[0].slice_mut(s![..m, ..]),
        )
    }

    /// Layer `i`'s output rows `..m`.
    pub(super) fn output(&self, i: usize, m: usize) -> ArrayView2<'_, f32> {
        self.outputs[i].slice(s![..m, ..])
    }

    /// Layer `i`'s output rows `..m`, writable.
    pub(super) fn output_mut(&mut self, i: usize, m: usize) -> ArrayViewMut2<'_, f32> {
        self.outputs[i].slice_mut(s![..m, ..])
    }

    /// For the backward pass at layer `i` (rows `..m`): its delta (the logits' gradient for the
    /// last layer), its input when it is a hidden layer's output (`None` for layer 0, whose input
    /// is the batch), and the delta buffer of layer `i − 1` to write.
    #[allow(clippy::type_complexity)]
    pub(super) fn backward(
        &mut self,
        i: usize,
        m: usize,
    ) -> (
        ArrayView2<'_, f32>,
        Option<ArrayView2<'_, f32>>,
        Option<ArrayViewMut2<'_, f32>>,
    ) {
        let last = self.outputs.len() - 1;
        let (lower, upper) = self.deltas.split_at_mut(i);
        let delta = if i == last {
            self.outputs[last].slice(s![..m, ..])
        } else {
            upper[0].slice(s![..m, ..])
        };
        let input = (i > 0).then(|| self.outputs[i - 1].slice(s![..m, ..]));
        let back = lower.last_mut().map(|d| d.slice_mut(s![..m, ..]));
        (delta, input, back)
    }
}
