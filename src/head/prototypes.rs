//! Per-class means in standardised feature space (the "prototypes"), and the "unknown" score built on
//! them: the root-mean-square standardised distance to the nearest class mean,
//! `unknown_score = min_c sqrt(‖z − m_c‖² / dim)`.
//!
//! Why this score: max-softmax cannot say "none of these" (a cat still lands on one side of every
//! decision boundary, often confidently). A distance in standardised space can: every dimension is in
//! units of the training spread, so an in-distribution sample sits about 1 from its class mean, while
//! a photo of something else moves many of the 1280 dimensions out of range at once. On corn4-mini
//! (12 images per class) it separated the four reference photos (cat, cup, palace, daisy: ≥ 1.51)
//! from the 95 %-of-validation threshold (1.18), where cosine to standardised prototypes caught only
//! two of the four. Sums and counts are kept, so `learn` and `add_class` update the means exactly and
//! a training sample's leave-one-out score is cheap.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Running sums of standardised feature vectors per class.
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

    /// Adds one standardised sample to class `y` (ignored if the class does not exist).
    pub fn add(&mut self, z: ArrayView1<f32>, y: usize) {
        if y < self.counts.len() {
            self.sums.row_mut(y).scaled_add(1.0, &z);
            self.counts[y] += 1;
        }
    }

    /// Only the classes `keep` (indices, in the order given); an index past the classes gives an
    /// empty class.
    pub fn select(&self, keep: &[usize]) -> Prototypes {
        let mut p = Prototypes {
            sums: Array2::zeros((keep.len(), self.sums.ncols())),
            counts: vec![0; keep.len()],
        };
        for (row, &c) in keep.iter().enumerate() {
            if c < self.counts.len() {
                p.sums.row_mut(row).assign(&self.sums.row(c));
                p.counts[row] = self.counts[c];
            }
        }
        p
    }

    /// Appends an empty class.
    pub fn push_class(&mut self) {
        let (k, d) = self.sums.dim();
        let mut grown = Array2::zeros((k + 1, d));
        grown.slice_mut(ndarray::s![..k, ..]).assign(&self.sums);
        self.sums = grown;
        self.counts.push(0);
    }

    /// The mean of class `y` (zeros for a class without samples).
    pub fn mean(&self, y: usize) -> Array1<f32> {
        let c = self.counts.get(y).copied().unwrap_or(0).max(1) as f32;
        self.sums.row(y).mapv(|v| v / c)
    }

    /// `(unknown score, nearest class)` of a standardised sample; `(∞, None)` without classes.
    pub fn nearest(&self, z: ArrayView1<f32>) -> (f32, Option<usize>) {
        self.nearest_excluding(z, None)
    }

    /// Like [`Prototypes::nearest`], but with `z` itself taken out of class `own`'s mean first: the
    /// leave-one-out score of a training sample, an honest stand-in for a held-out one.
    pub fn nearest_excluding(
        &self,
        z: ArrayView1<f32>,
        own: Option<usize>,
    ) -> (f32, Option<usize>) {
        let dim = z.len().max(1) as f32;
        let mut best = (f32::INFINITY, None);
        for (c, sum) in self.sums.axis_iter(Axis(0)).enumerate() {
            let mut n = self.counts[c] as f32;
            let excluded = own == Some(c);
            if excluded {
                n -= 1.0;
            }
            if n < 1.0 {
                continue;
            }
            let mut d2 = 0.0f32;
            for (&s, &x) in sum.iter().zip(z.iter()) {
                let m = if excluded { (s - x) / n } else { s / n };
                d2 += (x - m) * (x - m);
            }
            let score = (d2 / dim).sqrt();
            if score < best.0 {
                best = (score, Some(c));
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
    fn nearest_mean_wins() {
        let z = array![[1.0f32, 0.0], [3.0, 0.0], [0.0, 5.0]];
        let p = Prototypes::fit(z.view(), &[0, 0, 1], 2);
        let (score, c) = p.nearest(array![2.0f32, 1.0].view());
        assert_eq!(c, Some(0));
        assert!((score - (0.5f32).sqrt()).abs() < 1e-6, "{score}");
    }

    #[test]
    fn leave_one_out_matches_refit_without_the_sample() {
        let z = array![[1.0f32, 0.2, 0.0], [0.5, 1.0, 0.3], [0.9, -0.4, 0.2]];
        let all = Prototypes::fit(z.view(), &[0, 0, 0], 1);
        let (loo, _) = all.nearest_excluding(z.row(2), Some(0));
        let rest = Prototypes::fit(z.slice(ndarray::s![..2, ..]), &[0, 0], 1);
        let (refit, _) = rest.nearest(z.row(2));
        assert!((loo - refit).abs() < 1e-5, "{loo} vs {refit}");
    }

    #[test]
    fn a_lone_sample_has_no_leave_one_out_score() {
        let z = array![[1.0f32, 2.0]];
        let p = Prototypes::fit(z.view(), &[0], 1);
        assert_eq!(
            p.nearest_excluding(z.row(0), Some(0)),
            (f32::INFINITY, None)
        );
    }
}
