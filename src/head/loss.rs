//! Small pure functions of the loss: numerically stable softmax, class-balanced sample weights (for
//! training, and for the rehearsed online step) and the weighted cross-entropy with its gradient with
//! respect to the logits.

use ndarray::{Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

/// In-place softmax of one row of logits (max-subtracted, so large logits do not overflow).
pub fn softmax_in_place(mut row: ArrayViewMut1<f32>) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    row.mapv_inplace(|v| {
        let e = (v - max).exp();
        sum += e;
        e
    });
    if sum > 0.0 {
        row.mapv_inplace(|v| v / sum);
    }
}

/// Row-wise softmax of `logits / temperature`.
pub fn softmax_rows(logits: ArrayView2<f32>, temperature: f32) -> Array2<f32> {
    let mut p = logits.mapv(|v| v / temperature);
    for row in p.axis_iter_mut(Axis(0)) {
        softmax_in_place(row);
    }
    p
}

/// Per-class loss weights: `n / (classes_present · n_c)` when `balanced` (so every class that has
/// samples carries the same total weight and the mean sample weight is 1), else all 1.
pub fn class_weights(counts: &[usize], balanced: bool) -> Vec<f32> {
    let n: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count().max(1);
    counts
        .iter()
        .map(|&c| {
            if !balanced || c == 0 {
                1.0
            } else {
                n as f32 / (present as f32 * c as f32)
            }
        })
        .collect()
}

/// Per-class loss weights that make every class present in a batch carry total weight 1:
/// `n / n_c` (1 for absent classes). [`cross_entropy_grad`] averages `w_y · CE` over the `n` rows,
/// so with these weights the batch loss is `Σ_c mean_{i ∈ c} CE_i`, the sum over the classes present
/// of each class's mean loss. A batch of one sample gets weight 1, the plain one-sample loss; a
/// sample alone in its class among rehearsed samples of `m` other classes carries exactly as much as
/// each of them (the mean of the others). It is [`class_weights`] (balanced) times the number of
/// classes present.
pub fn class_sum_weights(counts: &[usize]) -> Vec<f32> {
    let present = counts.iter().filter(|&&c| c > 0).count().max(1) as f32;
    class_weights(counts, true)
        .into_iter()
        .map(|w| w * present)
        .collect()
}

/// Weighted cross-entropy averaged over the batch: `1/B Σ w_{y_i} · −log softmax(logits_i)_{y_i}`.
/// Turns `logits` into `∂loss/∂logits` in place and returns the loss.
pub fn cross_entropy_grad(logits: &mut Array2<f32>, labels: &[usize], weights: &[f32]) -> f32 {
    cross_entropy_grad_rows(logits.view_mut(), labels, weights)
}

/// [`cross_entropy_grad`] on a view (rows of a reused buffer).
pub fn cross_entropy_grad_rows(
    mut logits: ArrayViewMut2<f32>,
    labels: &[usize],
    weights: &[f32],
) -> f32 {
    let b = logits.nrows().max(1) as f32;
    let mut loss = 0.0f64;
    for (mut row, &y) in logits.axis_iter_mut(Axis(0)).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
        let w = weights.get(y).copied().unwrap_or(1.0);
        loss += (w * (log_sum - row[y])) as f64;
        row.mapv_inplace(|v| (v - log_sum).exp() * w / b);
        row[y] -= w / b;
    }
    (loss / b as f64) as f32
}

/// Weighted cross-entropy of a batch of logits, without gradient.
pub fn cross_entropy(logits: ArrayView2<f32>, labels: &[usize], weights: &[f32]) -> f32 {
    let mut l = logits.to_owned();
    cross_entropy_grad(&mut l, labels, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax_rows(array![[1000.0f32, 1001.0, 999.0]].view(), 1.0);
        assert!((p.sum() - 1.0).abs() < 1e-6);
        assert!(p[[0, 1]] > p[[0, 0]] && p[[0, 0]] > p[[0, 2]]);
    }

    #[test]
    fn balanced_weights_have_mean_one_per_sample() {
        let counts = [30, 10, 0, 60];
        let w = class_weights(&counts, true);
        let total: f32 = counts.iter().zip(&w).map(|(&c, &w)| c as f32 * w).sum();
        assert!((total / 100.0 - 1.0).abs() < 1e-6);
        assert!((w[0] * 30.0 - w[1] * 10.0).abs() < 1e-4);
    }

    #[test]
    fn class_sum_weights_give_each_present_class_total_one() {
        let counts = [1, 3, 0, 4];
        let n = 8.0;
        let w = class_sum_weights(&counts);
        for (c, &m) in counts.iter().enumerate() {
            if m > 0 {
                // The batch mean 1/n Σ w_y over class c's rows.
                assert!(
                    (w[c] * m as f32 / n - 1.0).abs() < 1e-6,
                    "class {c}: {}",
                    w[c]
                );
            }
        }
        assert_eq!(class_sum_weights(&[0, 1, 0]), vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn uniform_logits_lose_ln_k() {
        let l = Array2::<f32>::zeros((2, 4));
        let loss = cross_entropy(l.view(), &[0, 3], &[1.0; 4]);
        assert!((loss - 4f32.ln()).abs() < 1e-6);
    }
}
