//! Per-class prototypes in standardised, L2-normalised feature space, and the "unknown" score built on
//! them.
//!
//! Max-softmax cannot say "none of these": a cat photo still lands on one side of every decision
//! boundary, often confidently. The direction of a standardised feature vector, compared with each
//! class's mean direction, can: `unknown_score = 1 − max_c cos(u, p_c)`, where `u` is the normalised
//! standardised input and `p_c` the normalised sum of the normalised training vectors of class `c`.
//! Sums and counts are kept (not unit vectors), so `learn` and `add_class` update them exactly.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Running sums of unit feature vectors per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prototypes {
    sums: Array2<f32>,
    counts: Vec<u64>,
}

/// `x / ‖x‖` (zero stays zero).
pub fn normalized(x: ArrayView1<f32>) -> Array1<f32> {
    let n = x.dot(&x).sqrt();
    if n > 0.0 {
        x.mapv(|v| v / n)
    } else {
        x.to_owned()
    }
}

impl Prototypes {
    /// No classes yet.
    pub fn empty(dim: usize) -> Prototypes {
        Prototypes {
            sums: Array2::zeros((0, dim)),
            counts: Vec::new(),
        }
    }

    /// Prototypes of standardised rows `z` with labels in `0..classes`.
    pub fn fit(z: ArrayView2<f32>, labels: &[usize], classes: usize) -> Prototypes {
        let mut p = Prototypes {
            sums: Array2::zeros((classes, z.ncols())),
            counts: vec![0; classes],
        };
        for (row, &y) in z.axis_iter(Axis(0)).zip(labels) {
            p.add(row, y);
        }
        p
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    /// Samples seen per class.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Adds one standardised sample to class `y` (which must exist).
    pub fn add(&mut self, z: ArrayView1<f32>, y: usize) {
        let n = z.dot(&z).sqrt();
        if n > 0.0 && y < self.counts.len() {
            self.sums.row_mut(y).scaled_add(1.0 / n, &z);
            self.counts[y] += 1;
        }
    }

    /// Appends an empty class.
    pub fn push_class(&mut self) {
        let (k, d) = self.sums.dim();
        let mut grown = Array2::zeros((k + 1, d));
        grown.slice_mut(ndarray::s![..k, ..]).assign(&self.sums);
        self.sums = grown;
        self.counts.push(0);
    }

    /// The mean unit vector of class `y` (not normalised; its length says how tight the class is).
    pub fn mean_direction(&self, y: usize) -> Array1<f32> {
        let c = self.counts.get(y).copied().unwrap_or(0).max(1) as f32;
        self.sums.row(y).mapv(|v| v / c)
    }

    /// `(max_c cos(z, p_c), argmax)` for a standardised sample; `(−1, None)` with no usable prototype.
    pub fn best_cosine(&self, z: ArrayView1<f32>) -> (f32, Option<usize>) {
        self.best_cosine_excluding(z, None)
    }

    /// Like [`Prototypes::best_cosine`], but with `z` itself taken out of class `own`'s sum first:
    /// the leave-one-out score of a training sample, an honest stand-in for a held-out one.
    pub fn best_cosine_excluding(
        &self,
        z: ArrayView1<f32>,
        own: Option<usize>,
    ) -> (f32, Option<usize>) {
        let u = normalized(z);
        let mut best = (-1.0f32, None);
        for (c, sum) in self.sums.axis_iter(Axis(0)).enumerate() {
            let (dot, norm2) = if own == Some(c) {
                // (s − u)·u = s·u − 1 and ‖s − u‖² = ‖s‖² − 2 s·u + 1.
                let su = sum.dot(&u);
                (su - 1.0, (sum.dot(&sum) - 2.0 * su + 1.0).max(0.0))
            } else {
                (sum.dot(&u), sum.dot(&sum))
            };
            if norm2 <= 1e-12 {
                continue;
            }
            let cos = dot / norm2.sqrt();
            if cos > best.0 || best.1.is_none() {
                best = (cos, Some(c));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn nearest_prototype_wins() {
        let z = array![[1.0f32, 0.0], [2.0, 0.1], [0.0, 1.0]];
        let p = Prototypes::fit(z.view(), &[0, 0, 1], 2);
        let (cos, c) = p.best_cosine(array![0.1f32, 3.0].view());
        assert_eq!(c, Some(1));
        assert!(cos > 0.99);
    }

    #[test]
    fn leave_one_out_matches_refit_without_the_sample() {
        let z = array![[1.0f32, 0.2, 0.0], [0.5, 1.0, 0.3], [0.9, -0.4, 0.2]];
        let all = Prototypes::fit(z.view(), &[0, 0, 0], 1);
        let (loo, _) = all.best_cosine_excluding(z.row(2), Some(0));
        let rest = Prototypes::fit(z.slice(ndarray::s![..2, ..]), &[0, 0], 1);
        let (refit, _) = rest.best_cosine(z.row(2));
        assert!((loo - refit).abs() < 1e-5, "{loo} vs {refit}");
    }
}
