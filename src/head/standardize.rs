//! Feature standardisation stored with a head: `z = (x − mean) / std`, fitted on the training set.
//!
//! Backbone features have dimensions with tiny variance; dividing by a raw per-dimension std would
//! blow their noise up, and with a handful of samples the std estimate itself is noise. So the
//! per-dimension variance is shrunk towards the variance pooled over all dimensions, as if
//! [`PRIOR_SAMPLES`] extra samples with the pooled variance had been seen, and floored at a fraction
//! of the pooled std. Below [`MIN_SAMPLES`] samples the transform is the identity: a device that has
//! seen three frames keeps raw features until it retrains on more.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis};
use serde::{Deserialize, Serialize};

/// Fewer samples than this → identity transform.
pub const MIN_SAMPLES: usize = 16;
/// Pseudo-samples of pooled variance mixed into each dimension's variance.
pub const PRIOR_SAMPLES: f32 = 16.0;
/// No dimension's std falls below this fraction of the pooled std.
pub const STD_FLOOR: f32 = 0.05;

/// Per-dimension affine transform `z = (x − mean) · inv_std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    mean: Array1<f32>,
    inv_std: Array1<f32>,
}

impl Standardizer {
    /// The identity transform on `dim` dimensions.
    pub fn identity(dim: usize) -> Standardizer {
        Standardizer {
            mean: Array1::zeros(dim),
            inv_std: Array1::ones(dim),
        }
    }

    /// Fits mean and shrunk std on the rows of `x` (identity when there are too few rows).
    pub fn fit(x: ArrayView2<f32>) -> Standardizer {
        let (n, dim) = x.dim();
        if n < MIN_SAMPLES {
            return Standardizer::identity(dim);
        }
        let nf = n as f32;
        let mean = x.sum_axis(Axis(0)) / nf;
        let mut var = Array1::<f32>::zeros(dim);
        for row in x.axis_iter(Axis(0)) {
            ndarray::Zip::from(&mut var)
                .and(&row)
                .and(&mean)
                .for_each(|v, &x, &m| *v += (x - m) * (x - m));
        }
        var /= (nf - 1.0).max(1.0);
        let pooled = var.mean().unwrap_or(1.0).max(f32::MIN_POSITIVE);
        let floor = STD_FLOOR * pooled.sqrt();
        let inv_std = var.mapv(|v| {
            let shrunk = (nf * v + PRIOR_SAMPLES * pooled) / (nf + PRIOR_SAMPLES);
            1.0 / shrunk.sqrt().max(floor)
        });
        Standardizer { mean, inv_std }
    }

    /// The mean subtracted from every vector.
    pub fn mean(&self) -> &Array1<f32> {
        &self.mean
    }

    /// The per-dimension factor applied after subtracting the mean.
    pub fn inv_std(&self) -> &Array1<f32> {
        &self.inv_std
    }

    /// Length of the vectors it transforms.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Standardises every row.
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = &x - &self.mean.view().insert_axis(Axis(0));
        z *= &self.inv_std.view().insert_axis(Axis(0));
        z
    }

    /// Standardises every row of `x` in place (the same values as [`Standardizer::transform`],
    /// without a second matrix).
    pub fn transform_owned(&self, mut x: Array2<f32>) -> Array2<f32> {
        x -= &self.mean.view().insert_axis(Axis(0));
        x *= &self.inv_std.view().insert_axis(Axis(0));
        x
    }

    /// Standardises one vector into `out` (same length), allocating nothing.
    pub fn transform_into(&self, x: ArrayView1<f32>, mut out: ArrayViewMut1<f32>) {
        ndarray::Zip::from(&mut out)
            .and(&x)
            .and(&self.mean)
            .and(&self.inv_std)
            .for_each(|o, &x, &m, &s| *o = (x - m) * s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn few_samples_give_identity() {
        let x = array![[1.0f32, 2.0], [3.0, 4.0]];
        assert_eq!(Standardizer::fit(x.view()), Standardizer::identity(2));
    }

    #[test]
    fn constant_dimension_does_not_blow_up() {
        let x = Array2::from_shape_fn((40, 3), |(i, j)| if j == 0 { 5.0 } else { (i * j) as f32 });
        let s = Standardizer::fit(x.view());
        let z = s.transform(x.view());
        assert!(z.iter().all(|v| v.is_finite()));
        assert!(z.column(0).iter().all(|v| v.abs() < 1e-3));
        let std1 = z.column(1).std(1.0);
        assert!(std1 > 0.5 && std1 < 1.5, "std of a varying column {std1}");
    }

    #[test]
    fn transform_into_matches_transform() {
        let x = Array2::from_shape_fn((20, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
        let s = Standardizer::fit(x.view());
        let z = s.transform(x.view());
        let mut one = Array1::zeros(4);
        s.transform_into(x.row(5), one.view_mut());
        assert_eq!(one, z.row(5));
        assert_eq!(s.transform_owned(x.clone()), z);
    }
}
