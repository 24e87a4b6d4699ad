//! The nearest-class-mean baseline: each class is the mean of its raw feature vectors and a sample
//! gets the class whose mean is nearest (Euclidean). No training, no hyper-parameters: the "before"
//! column of the evaluation table that a trained head must beat.

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::error::HeadError;

/// Class means of raw features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearestClassMean {
    means: Array2<f32>,
    present: Vec<bool>,
    classes: Vec<String>,
}

impl NearestClassMean {
    /// Computes the class means of `data` (classes without samples are never predicted).
    ///
    /// # Errors
    /// Whatever [`Dataset::check`] refuses.
    pub fn fit(data: &Dataset) -> Result<NearestClassMean, HeadError> {
        data.check("baseline")?;
        let k = data.classes.len();
        let mut means = Array2::<f32>::zeros((k, data.dim()));
        for (row, &y) in data.features.axis_iter(Axis(0)).zip(&data.labels) {
            means.row_mut(y).scaled_add(1.0, &row);
        }
        let counts = data.class_counts();
        for (mut m, &c) in means.axis_iter_mut(Axis(0)).zip(&counts) {
            if c > 0 {
                m /= c as f32;
            }
        }
        Ok(NearestClassMean {
            means,
            present: counts.iter().map(|&c| c > 0).collect(),
            classes: data.classes.clone(),
        })
    }

    /// Class names in index order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The class with the nearest mean; `None` if the length is wrong.
    pub fn predict(&self, feature: ArrayView1<f32>) -> Option<usize> {
        if feature.len() != self.means.ncols() {
            return None;
        }
        self.means
            .axis_iter(Axis(0))
            .enumerate()
            .filter(|(c, _)| self.present[*c])
            .map(|(c, m)| {
                let d: f32 = m.iter().zip(&feature).map(|(a, b)| (a - b) * (a - b)).sum();
                (c, d)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, _)| c)
    }

    /// [`NearestClassMean::predict`] for every row.
    pub fn predict_batch(&self, features: ArrayView2<f32>) -> Vec<Option<usize>> {
        features
            .axis_iter(Axis(0))
            .map(|r| self.predict(r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn predicts_the_nearest_mean() {
        let d = Dataset::new(
            array![[0.0f32, 0.0], [0.0, 2.0], [10.0, 10.0]],
            vec![0, 0, 1],
            vec!["a".into(), "b".into()],
        )
        .unwrap();
        let ncm = NearestClassMean::fit(&d).unwrap();
        assert_eq!(ncm.predict(array![1.0f32, 1.0].view()), Some(0));
        assert_eq!(ncm.predict(array![8.0f32, 9.0].view()), Some(1));
        assert_eq!(ncm.predict(array![1.0f32].view()), None);
    }
}
