//! Labelled feature vectors in memory: the input of training, calibration and the baseline, with the
//! checks every consumer relies on (shapes agree, labels in range, values finite) and a seeded,
//! stratified hold-out split.

use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::error::HeadError;

/// Feature vectors (one row each), their class indices and the class names (index order).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `n × dim` feature matrix, one sample per row.
    pub features: Array2<f32>,
    /// Class index of each row, `< classes.len()`.
    pub labels: Vec<usize>,
    /// Class names in index order.
    pub classes: Vec<String>,
}

impl Dataset {
    /// Builds a data set and checks it (see [`Dataset::check`]).
    ///
    /// # Errors
    /// Whatever [`Dataset::check`] refuses.
    pub fn new(
        features: Array2<f32>,
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Result<Dataset, HeadError> {
        let d = Dataset {
            features,
            labels,
            classes,
        };
        d.check("dataset")?;
        Ok(d)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of one feature vector.
    pub fn dim(&self) -> usize {
        self.features.ncols()
    }

    /// Samples per class, indexed like `classes`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l) {
                *c += 1;
            }
        }
        counts
    }

    /// Checks that the data set is usable; `name` appears in the error ("train", "val", …).
    ///
    /// # Errors
    /// [`HeadError::EmptyDataset`], [`HeadError::LabelCountMismatch`], [`HeadError::LabelOutOfRange`],
    /// [`HeadError::NonFiniteFeature`].
    pub fn check(&self, name: &'static str) -> Result<(), HeadError> {
        if self.is_empty() {
            return Err(HeadError::EmptyDataset(name));
        }
        if self.labels.len() != self.len() {
            return Err(HeadError::LabelCountMismatch {
                name,
                rows: self.len(),
                labels: self.labels.len(),
            });
        }
        if let Some(&label) = self.labels.iter().find(|&&l| l >= self.classes.len()) {
            return Err(HeadError::LabelOutOfRange {
                label,
                classes: self.classes.len(),
            });
        }
        for (row, r) in self.features.axis_iter(Axis(0)).enumerate() {
            if r.iter().any(|v| !v.is_finite()) {
                return Err(HeadError::NonFiniteFeature { name, row });
            }
        }
        Ok(())
    }

    /// The rows at `indices`, in that order, with the same class list.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// This data set's rows followed by `other`'s (same class list assumed, as `train` checks).
    pub fn concat(&self, other: &Dataset) -> Dataset {
        let features =
            ndarray::concatenate(Axis(0), &[self.features.view(), other.features.view()])
                .expect("both data sets have the same feature length");
        Dataset {
            features,
            labels: self.labels.iter().chain(&other.labels).copied().collect(),
            classes: self.classes.clone(),
        }
    }

    /// The same samples in a canonical order: classes sorted by name, rows by class, then by a
    /// hash of their values rounded to f16. Training is seeded, so the order of the rows decides
    /// the hold-out, the shuffles and therefore the head: in canonical order the same labelled
    /// images give the same head whether they came from a folder (`fieldtune train`, f32) or from
    /// a device's replay set in the order they were labelled (f16).
    pub fn canonical(&self) -> Dataset {
        let (indices, labels, classes) = self.canonical_order();
        Dataset {
            features: self.features.select(Axis(0), &indices),
            labels,
            classes,
        }
    }

    /// [`Dataset::canonical`] without a second copy of the features: the rows are moved into
    /// canonical order where they are (one row of scratch), for the device's retrain, whose
    /// training set is the largest matrix it holds.
    pub fn into_canonical(mut self) -> Dataset {
        let (indices, labels, classes) = self.canonical_order();
        permute_rows(&mut self.features, &indices);
        Dataset {
            features: self.features,
            labels,
            classes,
        }
    }

    /// [`Dataset::into_canonical`] of the rows before `split` and of the rows from `split` on,
    /// each part ordered on its own, in the one matrix (a device's training rows followed by its
    /// validation rows, see [`crate::head::Head::train_joined`]).
    pub fn into_canonical_split(mut self, split: usize) -> Dataset {
        let split = split.min(self.len());
        let (mut indices, mut labels, classes) = self.canonical_order_of(0..split);
        let (rest, rest_labels, _) = self.canonical_order_of(split..self.len());
        indices.extend(rest);
        labels.extend(rest_labels);
        permute_rows(&mut self.features, &indices);
        Dataset {
            features: self.features,
            labels,
            classes,
        }
    }

    /// The canonical order: for each new row the old row it takes, the new labels and the
    /// class names in their new order.
    fn canonical_order(&self) -> (Vec<usize>, Vec<usize>, Vec<String>) {
        self.canonical_order_of(0..self.len())
    }

    /// [`Dataset::canonical_order`] of the rows `range` alone (row indices stay those of the
    /// whole matrix).
    fn canonical_order_of(
        &self,
        range: std::ops::Range<usize>,
    ) -> (Vec<usize>, Vec<usize>, Vec<String>) {
        let mut class_order: Vec<usize> = (0..self.classes.len()).collect();
        class_order.sort_by(|&a, &b| self.classes[a].cmp(&self.classes[b]));
        let mut new_label = vec![0; self.classes.len()];
        for (new, &old) in class_order.iter().enumerate() {
            new_label[old] = new;
        }
        let row_key = |i: usize| -> u64 {
            self.features
                .row(i)
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, &v| {
                    (h ^ u64::from(half::f16::from_f32(v).to_bits())).wrapping_mul(0x0100_0000_01b3)
                })
        };
        let mut rows: Vec<(usize, u64, usize)> = range
            .map(|i| (new_label[self.labels[i]], row_key(i), i))
            .collect();
        rows.sort_unstable();
        (
            rows.iter().map(|r| r.2).collect(),
            rows.iter().map(|r| r.0).collect(),
            class_order
                .iter()
                .map(|&c| self.classes[c].clone())
                .collect(),
        )
    }

    /// Splits off a stratified hold-out of about `fraction` of each class, taking at least one sample
    /// of every class that has two or more and never the last one. Returns `(rest, held_out)` index
    /// lists; the shuffle comes from `rng`, so a seed fixes the split.
    pub fn stratified_split(
        &self,
        fraction: f32,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<usize>, Vec<usize>) {
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.classes.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            if let Some(v) = by_class.get_mut(l) {
                v.push(i);
            }
        }
        let (mut rest, mut held) = (Vec::new(), Vec::new());
        for mut members in by_class {
            members.shuffle(rng);
            let n = members.len();
            let k = if n < 2 {
                0
            } else {
                ((n as f32 * fraction).round() as usize).clamp(1, n - 1)
            };
            held.extend_from_slice(&members[..k]);
            rest.extend_from_slice(&members[k..]);
        }
        rest.sort_unstable();
        held.sort_unstable();
        (rest, held)
    }
}

/// Reorders the rows of `m` so that new row `i` is old row `from[i]` (`from` a permutation),
/// following each cycle of the permutation with one row of scratch.
fn permute_rows(m: &mut Array2<f32>, from: &[usize]) {
    let cols = m.ncols();
    if !m.is_standard_layout() {
        *m = m.select(Axis(0), from);
        return;
    }
    let Some(flat) = m.as_slice_mut() else {
        return;
    };
    let mut done = vec![false; from.len()];
    let mut scratch = vec![0.0f32; cols];
    for start in 0..from.len() {
        if done[start] || from[start] == start {
            done[start] = true;
            continue;
        }
        scratch.copy_from_slice(&flat[start * cols..(start + 1) * cols]);
        let mut i = start;
        loop {
            done[i] = true;
            let source = from[i];
            if source == start {
                flat[i * cols..(i + 1) * cols].copy_from_slice(&scratch);
                break;
            }
            flat.copy_within(source * cols..(source + 1) * cols, i * cols);
            i = source;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn into_canonical_moves_the_rows_as_canonical_copies_them() {
        use super::Dataset;
        let n = 37;
        let features = ndarray::Array2::from_shape_fn((n, 5), |(r, c)| {
            ((r * 7 + c * 3) % 11) as f32 - (r % 3) as f32 * 0.5
        });
        let data = Dataset {
            features,
            labels: (0..n).map(|r| (r * 5) % 3).collect(),
            classes: vec!["rust".into(), "blight".into(), "healthy".into()],
        };
        let copied = data.canonical();
        let moved = data.into_canonical();
        assert_eq!(moved.labels, copied.labels);
        assert_eq!(moved.classes, copied.classes);
        assert_eq!(moved.features, copied.features);
    }

    #[test]
    fn canonical_order_does_not_depend_on_the_given_order_or_f16_rounding() {
        use super::Dataset;
        let rows = [[1.0f32, 2.0], [0.5, 0.25], [3.0, 1.0], [2.0, 2.0]];
        let make = |order: &[usize], classes: Vec<String>, labels: &[usize], f16: bool| {
            let mut features = ndarray::Array2::<f32>::zeros((order.len(), 2));
            for (r, &i) in order.iter().enumerate() {
                for j in 0..2 {
                    let v = rows[i][j] + 1e-4;
                    features[[r, j]] = if f16 {
                        half::f16::from_f32(v).to_f32()
                    } else {
                        v
                    };
                }
            }
            Dataset {
                features,
                labels: order.iter().map(|&i| labels[i]).collect(),
                classes,
            }
        };
        let names = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        // Rows 0, 2 are "cat", rows 1, 3 "dog": once with classes [cat, dog], once [dog, cat].
        let a = make(&[0, 1, 2, 3], names("cat", "dog"), &[0, 1, 0, 1], false).canonical();
        let b = make(&[3, 2, 1, 0], names("dog", "cat"), &[1, 0, 1, 0], true).canonical();
        assert_eq!(a.classes, b.classes);
        assert_eq!(a.labels, b.labels);
        for (x, y) in a.features.iter().zip(b.features.iter()) {
            assert!((x - y).abs() < 1e-2, "{x} vs {y}");
        }
    }

    use super::*;
    use rand::SeedableRng;

    fn toy(labels: Vec<usize>, classes: usize) -> Dataset {
        let n = labels.len();
        Dataset {
            features: Array2::from_shape_fn((n, 3), |(i, j)| (i * 3 + j) as f32),
            labels,
            classes: (0..classes).map(|c| format!("c{c}")).collect(),
        }
    }

    #[test]
    fn split_is_stratified_and_disjoint() {
        let d = toy([vec![0; 20], vec![1; 10], vec![2; 1]].concat(), 3);
        let (rest, held) = d.stratified_split(0.2, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(rest.len() + held.len(), d.len());
        let held_counts = d.select(&held).class_counts();
        assert_eq!(held_counts, vec![4, 2, 0]);
        assert!(rest.iter().all(|i| !held.contains(i)));
    }

    #[test]
    fn check_rejects_bad_labels_and_nan() {
        let mut d = toy(vec![0, 1, 2], 2);
        assert!(matches!(
            d.check("t"),
            Err(HeadError::LabelOutOfRange {
                label: 2,
                classes: 2
            })
        ));
        d.labels = vec![0, 1, 1];
        d.features[[1, 2]] = f32::NAN;
        assert_eq!(
            d.check("t"),
            Err(HeadError::NonFiniteFeature { name: "t", row: 1 })
        );
    }
}
