//! The prior a head is trained toward: the imprinted class-mean ("prototype") head, so that a head
//! taught with a handful of labels starts as, and stays near, the nearest-class-mean classifier and
//! only moves away from it as far as the data pays for.
//!
//! The prototype head is linear: nearest class mean by squared distance is
//! `argmax_c  s·(m_c·x − ‖m_c‖²/2)`, so it is a linear layer for any scale `s > 0`, and stays one
//! on the head's standardised input (see [`prototype_layer`]): the prior predicts exactly what the
//! nearest-class-mean baseline predicts. The scale sets how confident the prior is; it is fitted by minimising
//! the cross-entropy of the leave-one-out prototype logits of the training samples (each sample
//! scored against its own class's mean computed without it), which is what the prior would say of
//! data it has not seen. With a single sample in some class there is no leave-one-out score and the
//! scale is the one that puts the typical logit difference at 1.
//!
//! For an MLP with at least `2·classes` hidden units the same head is embedded exactly: hidden unit
//! `c` computes `relu(l_c)`, unit `classes + c` computes `relu(−l_c)`, and the output layer adds the
//! first and subtracts the second (`relu(x) − relu(−x) = x`); the remaining hidden units keep their
//! random initialisation with zero output weights. A narrower MLP gets no prior.
//!
//! The prior's confidence fades with the number of samples a class ([`prior_weight`]).
//! Training starts from the prior and its weight decay pulls toward it instead of toward zero
//! (`weight_decay/2 · ‖W − W₀‖²`, see [`pull_toward`]); with early stopping (`patience` > 0) the
//! prior itself is a candidate (epoch 0), and with a single validation sample in some class the
//! head stays the prior. By default the schedule runs to its end: the decay toward the prior,
//! faded with the labels, is what keeps a few-shot head near the class means. Measured with
//! `fieldtune curve` (README, "Learning from few labels").

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand_chacha::ChaCha8Rng;

use super::calibration::fit_temperature;
use super::params::{Layer, Params};
use super::standardize::Standardizer;
use super::HeadKind;

/// Squared distances `‖z_i − m_c‖²` of every row to every class mean, `n × classes`, with row `i`'s
/// own class mean taken without it (leave-one-out) when `leave_one_out`; `NaN` where a class has
/// no (other) sample.
fn squared_distances(
    z: ArrayView2<f32>,
    labels: &[usize],
    classes: usize,
    leave_one_out: bool,
) -> Array2<f32> {
    let dim = z.ncols();
    let mut sums = Array2::<f32>::zeros((classes, dim));
    let mut counts = vec![0usize; classes];
    for (row, &y) in z.axis_iter(Axis(0)).zip(labels) {
        sums.row_mut(y).scaled_add(1.0, &row);
        counts[y] += 1;
    }
    let means = {
        let mut m = sums.clone();
        for (mut r, &c) in m.axis_iter_mut(Axis(0)).zip(&counts) {
            r /= c.max(1) as f32;
        }
        m
    };
    let mut d2 = Array2::<f32>::from_elem((z.nrows(), classes), f32::NAN);
    // Rows go through in groups of `GROUP`, each row with its own running sum: the same
    // operations in the same order as one row at a time, but `GROUP` independent additions per
    // step instead of one long chain of dependent ones (in AVX2 registers, a lane per row).
    let flat = z.as_standard_layout();
    let flat = flat.as_slice().expect("standard layout");
    let rows: Vec<&[f32]> = flat.chunks_exact(dim.max(1)).take(z.nrows()).collect();
    for (g, (block, ys)) in rows.chunks(GROUP).zip(labels.chunks(GROUP)).enumerate() {
        let own: Vec<[bool; GROUP]> = (0..classes)
            .map(|c| std::array::from_fn(|r| leave_one_out && ys.get(r) == Some(&c)))
            .collect();
        let mut acc = vec![[0.0f32; GROUP]; classes];
        let class_sums = ClassSums {
            sums: sums.as_slice().expect("a fresh matrix"),
            means: means.as_slice().expect("a fresh matrix"),
            counts: &counts,
            own: &own,
        };
        group_distances(block, &class_sums, &mut acc);
        for (c, a) in acc.iter().enumerate() {
            if counts[c] == 0 {
                continue;
            }
            for (r, &a) in a.iter().enumerate().take(block.len()) {
                if !(own[c][r] && counts[c] < 2) {
                    d2[[g * GROUP + r, c]] = a;
                }
            }
        }
    }
    d2
}

/// Rows per group of [`squared_distances`].
const GROUP: usize = 8;

/// The class sums and means (`classes × dim`, row-major) of [`squared_distances`], the class
/// counts, and which rows of the group each class leaves out (`own[c][r]`).
struct ClassSums<'a> {
    sums: &'a [f32],
    means: &'a [f32],
    counts: &'a [usize],
    own: &'a [[bool; GROUP]],
}

/// `acc[c][r] = Σ_j (x_rj − m_cj)²` for the rows `block` (at most [`GROUP`]), `m_c` the mean of
/// class `c`, or for a row the class leaves out, `(s_cj − x_rj) / (n_c − 1)`: each row's sum in
/// the order of `j`, one addition at a time, so that every path gives the same bits.
fn group_distances(block: &[&[f32]], cs: &ClassSums, acc: &mut [[f32; GROUP]]) {
    #[cfg(target_arch = "x86_64")]
    if block.len() == GROUP && std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above); the group is full.
        unsafe { x86::group_distances(block, cs, acc) };
        return;
    }
    group_distances_portable(block, cs, acc, 0);
}

/// [`group_distances`] one row at a time from column `from` on (adding to what `acc` holds).
fn group_distances_portable(
    block: &[&[f32]],
    cs: &ClassSums,
    acc: &mut [[f32; GROUP]],
    from: usize,
) {
    let dim = block.first().map_or(0, |r| r.len());
    for (c, acc) in acc.iter_mut().enumerate() {
        let n = cs.counts[c];
        if n == 0 {
            continue;
        }
        let inv = if n >= 2 { 1.0 / (n - 1) as f32 } else { 0.0 };
        let (sum, mean) = (&cs.sums[c * dim..][..dim], &cs.means[c * dim..][..dim]);
        for j in from..dim {
            let (s, m) = (sum[j], mean[j]);
            for (r, x) in block.iter().enumerate() {
                let x = x[j];
                let m = if cs.own[c][r] { (s - x) * inv } else { m };
                acc[r] += (x - m) * (x - m);
            }
        }
    }
}

/// [`group_distances`] on a full group in AVX2 registers: eight columns of the eight rows
/// transposed into eight registers (one per column, a lane per row), then per class the same
/// subtraction, multiplication and addition per lane as the portable loop (no fused
/// multiply-add), in the same order.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{group_distances_portable, ClassSums, GROUP};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn group_distances(
        block: &[&[f32]],
        cs: &ClassSums,
        acc: &mut [[f32; GROUP]],
    ) {
        let dim = block[0].len();
        let full = dim / 8 * 8;
        let rows: [*const f32; GROUP] = std::array::from_fn(|r| block[r].as_ptr());
        for (c, acc) in acc.iter_mut().enumerate() {
            let n = cs.counts[c];
            if n == 0 {
                continue;
            }
            let inv = _mm256_set1_ps(if n >= 2 { 1.0 / (n - 1) as f32 } else { 0.0 });
            let own: [f32; GROUP] = std::array::from_fn(|r| {
                if cs.own[c][r] {
                    f32::from_bits(u32::MAX)
                } else {
                    0.0
                }
            });
            // SAFETY: `own` holds eight floats.
            let own = unsafe { _mm256_loadu_ps(own.as_ptr()) };
            let (sum, mean) = (&cs.sums[c * dim..][..dim], &cs.means[c * dim..][..dim]);
            let mut a = _mm256_setzero_ps();
            let mut j = 0;
            while j < full {
                // SAFETY: j + 8 <= dim inside every row.
                let x: [__m256; 8] = transpose(std::array::from_fn(|r| unsafe {
                    _mm256_loadu_ps(rows[r].add(j))
                }));
                for (t, &x) in x.iter().enumerate() {
                    let m = _mm256_blendv_ps(
                        _mm256_set1_ps(mean[j + t]),
                        _mm256_mul_ps(_mm256_sub_ps(_mm256_set1_ps(sum[j + t]), x), inv),
                        own,
                    );
                    let d = _mm256_sub_ps(x, m);
                    a = _mm256_add_ps(a, _mm256_mul_ps(d, d));
                }
                j += 8;
            }
            // SAFETY: `acc` holds eight floats.
            unsafe { _mm256_storeu_ps(acc.as_mut_ptr(), a) };
        }
        if full < dim {
            group_distances_portable(block, cs, acc, full);
        }
    }

    /// Rows `r[i]` (eight lanes each) to columns: lane `i` of result `t` is lane `t` of `r[i]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn transpose(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

/// How many samples a class needs before the data outweighs the class-mean prior: the prior's
/// logits are scaled by `PRIOR_SAMPLES / (PRIOR_SAMPLES + n)` for `n` samples a class (see
/// [`prior_weight`]).
pub const PRIOR_SAMPLES: f32 = 10.0;

/// The factor on the prior's logits with `per_class` samples a class: near 1 with a label or two,
/// ⅓ at 20, near 0 with hundreds, where the prior would only hold the head back (at full corn4 a
/// full-strength prior cost half a point, seeds 1-6). Scaling the logits keeps the prior's
/// predictions (the class means') and lowers its confidence, so the start of training, the weight
/// decay's target and the epoch-0 candidate of early stopping all fade toward the plain head.
pub fn prior_weight(per_class: f32) -> f32 {
    PRIOR_SAMPLES / (PRIOR_SAMPLES + per_class.max(0.0))
}

/// The scale `s` of the prototype logits `−s/2 · ‖z − m_c‖²` (see the module docs).
pub fn prototype_scale(z: ArrayView2<f32>, labels: &[usize], classes: usize) -> f32 {
    let mut counts = vec![0usize; classes];
    for &y in labels {
        counts[y] += 1;
    }
    let loo = counts.iter().all(|&c| c >= 2);
    let d2 = squared_distances(z, labels, classes, loo);
    // Logits −d²/2, centred per row; their spread normalises the search range of the temperature.
    let mut logits = d2.mapv(|v| -0.5 * v);
    let mut spread = 0.0f64;
    let mut terms = 0usize;
    for mut row in logits.axis_iter_mut(Axis(0)) {
        let finite: Vec<f32> = row.iter().copied().filter(|v| v.is_finite()).collect();
        let mean = finite.iter().sum::<f32>() / finite.len().max(1) as f32;
        row.mapv_inplace(|v| if v.is_finite() { v - mean } else { -1e30 });
        for v in finite {
            spread += f64::from((v - mean) * (v - mean));
            terms += 1;
        }
    }
    let sigma = ((spread / terms.max(1) as f64).sqrt() as f32).max(f32::MIN_POSITIVE);
    if !loo {
        return 1.0 / sigma;
    }
    let normed = logits.mapv(|v| v / sigma);
    let (t, _, _) = fit_temperature(normed.view(), labels);
    1.0 / (sigma * t)
}

/// The imprinted prototype head of the raw rows `x` (labels in `0..classes`) as a linear layer on
/// their standardised form `standardizer.transform(x)`: it predicts exactly what the nearest class
/// mean of the raw features predicts (the baseline of `fieldtune eval` and `fieldtune curve`).
/// In raw space the logits are `s·(m_c·x − ‖m_c‖²/2)`; with `x = μ + z/σ⁻¹` that is
/// `W_c = s·m_c/σ⁻¹`, `b_c = s·(m_c·μ − ‖m_c‖²/2)`. Raw, not standardised, class means: with a
/// few samples the per-dimension spread is itself noise, and on data sets measured (`curve`)
/// nearest mean in standardised space lost up to 3 points to nearest raw mean at 5 labels a class.
pub fn prototype_layer(
    x: ArrayView2<f32>,
    labels: &[usize],
    classes: usize,
    standardizer: &Standardizer,
) -> Layer {
    let per_class = labels.len() as f32 / classes.max(1) as f32;
    let s = prototype_scale(x, labels, classes) * prior_weight(per_class);
    let dim = x.ncols();
    let mut means = Array2::<f32>::zeros((classes, dim));
    let mut counts = vec![0usize; classes];
    for (row, &y) in x.axis_iter(Axis(0)).zip(labels) {
        means.row_mut(y).scaled_add(1.0, &row);
        counts[y] += 1;
    }
    let mut w = Array2::<f32>::zeros((classes, dim));
    let mut b = Array1::<f32>::zeros(classes);
    for (c, mut m) in means.axis_iter_mut(Axis(0)).enumerate() {
        m /= counts[c].max(1) as f32;
        b[c] = s * (m.dot(standardizer.mean()) - 0.5 * m.dot(&m));
        ndarray::Zip::from(w.row_mut(c))
            .and(&m)
            .and(standardizer.inv_std())
            .for_each(|w, &m, &inv| *w = s * m / inv);
    }
    // Softmax sees only logit differences: centring over the classes changes no prediction, and
    // keeps the logits (the MLP's hidden activations, see `prior_params`) at the size of those
    // differences instead of `s·‖x‖²/2`, which blew the MLP's first SGD steps up.
    if classes > 0 {
        let w_mean = w.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(dim));
        let b_mean = b.mean().unwrap_or(0.0);
        w -= &w_mean.view().insert_axis(Axis(0));
        b -= b_mean;
    }
    Layer { w, b }
}

/// Where training starts and what its weight decay pulls toward. The same head for the linear
/// kind; for the MLP the first-layer weights of the hidden units beyond the embedded prototypes
/// start random (He) but decay toward zero, as a plain MLP's weights do (decay toward their random
/// start cost the MLP a point at full corn4).
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    /// The prior itself: it predicts the nearest class mean (epoch 0 of early stopping, and the
    /// head kept when validation is too small to move away from it).
    pub start: Params,
    /// Where the SGD starts: `start`, except that an MLP's output weights start random (He)
    /// scaled by `(1 − prior_weight)⁴` besides the embedded prototypes' ±1: near 0 with a few
    /// labels a class (scaled by `1 − prior_weight` the noise cost the MLP up to 17 points at
    /// one label), near 1 with hundreds, where the MLP then starts as a plain one (zero output
    /// weights froze the other units' gradients at first and cost 0.4-1 point at full corn4).
    pub init: Params,
    /// Target of the weight decay.
    pub target: Params,
}

/// The [`Prior`] of a head of `kind` for raw rows `x` standardised by `standardizer` (see
/// [`prior_params`]).
pub fn prior(
    kind: HeadKind,
    x: ArrayView2<f32>,
    labels: &[usize],
    classes: usize,
    standardizer: &Standardizer,
    rng: &mut ChaCha8Rng,
) -> Option<Prior> {
    let start = prior_params(kind, x, labels, classes, standardizer, rng)?;
    let mut init = start.clone();
    if let (HeadKind::Mlp { hidden }, Some(out)) = (kind, init.layers.get_mut(1)) {
        let per_class = labels.len() as f32 / classes.max(1) as f32;
        let mut random = Layer::he(classes, hidden, rng);
        random.w *= (1.0 - prior_weight(per_class)).powi(4);
        for c in 0..classes {
            random.w[[c, c]] = 1.0;
            random.w[[c, classes + c]] = -1.0;
        }
        out.w = random.w;
    }
    let mut target = init.clone();
    if let (HeadKind::Mlp { .. }, Some(first)) = (kind, target.layers.first_mut()) {
        first.w.slice_mut(ndarray::s![2 * classes.., ..]).fill(0.0);
    }
    Some(Prior {
        start,
        init,
        target,
    })
}

/// The prior head of `kind` for raw rows `x` standardised by `standardizer`: the prototype head
/// (embedded in the MLP when it is wide enough), or `None` for an MLP narrower than `2·classes`.
pub fn prior_params(
    kind: HeadKind,
    x: ArrayView2<f32>,
    labels: &[usize],
    classes: usize,
    standardizer: &Standardizer,
    rng: &mut ChaCha8Rng,
) -> Option<Params> {
    let proto = prototype_layer(x, labels, classes, standardizer);
    match kind {
        HeadKind::Linear => Some(Params {
            layers: vec![proto],
        }),
        HeadKind::Mlp { hidden } if hidden >= 2 * classes => {
            let mut first = Layer::he(hidden, x.ncols(), rng);
            let mut out = Layer::zeros(classes, hidden);
            for c in 0..classes {
                first.w.row_mut(c).assign(&proto.w.row(c));
                first.b[c] = proto.b[c];
                first.w.row_mut(classes + c).assign(&(-&proto.w.row(c)));
                first.b[classes + c] = -proto.b[c];
                out.w[[c, c]] = 1.0;
                out.w[[c, classes + c]] = -1.0;
            }
            Some(Params {
                layers: vec![first, out],
            })
        }
        HeadKind::Mlp { .. } => None,
    }
}

/// Turns a gradient whose weight decay pulls toward zero (`∂CE + wd·W`) into one pulling toward
/// `prior` (`∂CE + wd·(W − W₀)`); biases are not decayed, so they are left alone.
pub fn pull_toward(grad: &mut Params, prior: &Params, weight_decay: f32) {
    for (g, p) in grad.layers.iter_mut().zip(&prior.layers) {
        g.w.scaled_add(-weight_decay, &p.w);
    }
}

/// `weight_decay/2 · ‖W − W₀‖²` minus the `weight_decay/2 · ‖W‖²` the batch loss already holds,
/// so the reported training loss is that of the objective actually minimised.
pub fn prior_penalty_correction(params: &Params, prior: &Params, weight_decay: f32) -> f32 {
    let mut acc = 0.0f32;
    for (l, p) in params.layers.iter().zip(&prior.layers) {
        for (&w, &w0) in l.w.iter().zip(p.w.iter()) {
            acc += w0 * w0 - 2.0 * w * w0;
        }
    }
    0.5 * weight_decay * acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::{Rng, SeedableRng};

    /// The register path of a group's distances gives the portable loop's bits, on widths that
    /// are and are not multiples of eight, with rows left out of their class and a class of one.
    #[test]
    fn group_distances_match_the_portable_loop_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for dim in [1280, 37, 8, 5] {
            let classes = 5;
            let rows: Vec<Vec<f32>> = (0..GROUP)
                .map(|_| (0..dim).map(|_| rng.gen_range(-3.0f32..3.0)).collect())
                .collect();
            let block: Vec<&[f32]> = rows.iter().map(|r| &r[..]).collect();
            let sums: Vec<f32> = (0..classes * dim)
                .map(|_| rng.gen_range(-50.0..50.0))
                .collect();
            let means: Vec<f32> = (0..classes * dim)
                .map(|_| rng.gen_range(-2.0..2.0))
                .collect();
            let counts = [30, 1, 0, 7, 2];
            let own: Vec<[bool; GROUP]> = (0..classes)
                .map(|_| std::array::from_fn(|_| rng.gen_bool(0.3)))
                .collect();
            let cs = ClassSums {
                sums: &sums,
                means: &means,
                counts: &counts,
                own: &own,
            };
            let mut fast = vec![[0.0f32; GROUP]; classes];
            let mut slow = fast.clone();
            group_distances(&block, &cs, &mut fast);
            group_distances_portable(&block, &cs, &mut slow, 0);
            let bits = |a: &[[f32; GROUP]]| -> Vec<u32> {
                a.iter().flatten().map(|v| v.to_bits()).collect()
            };
            assert_eq!(bits(&fast), bits(&slow), "dim {dim}");
        }
    }

    fn nearest(z: ArrayView2<f32>, labels: &[usize], k: usize, x: &[f32]) -> usize {
        let mut best = (f32::INFINITY, 0);
        for c in 0..k {
            let (mut s, mut n) = (vec![0.0f32; z.ncols()], 0);
            for (r, &y) in z.axis_iter(Axis(0)).zip(labels) {
                if y == c {
                    for (a, b) in s.iter_mut().zip(r) {
                        *a += b;
                    }
                    n += 1;
                }
            }
            let d: f32 = s
                .iter()
                .zip(x)
                .map(|(m, v)| (m / n as f32 - v).powi(2))
                .sum();
            if d < best.0 {
                best = (d, c);
            }
        }
        best.1
    }

    #[test]
    fn the_prior_predicts_the_nearest_class_mean_for_both_kinds() {
        let z = array![
            [1.0f32, 0.0, 0.5],
            [1.2, 0.3, 0.1],
            [0.0, 1.0, -0.4],
            [-0.2, 1.4, 0.0],
            [0.5, 0.5, 2.0],
            [0.4, 0.7, 1.5]
        ];
        let labels = [0, 0, 1, 1, 2, 2];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let id = Standardizer::identity(3);
        let lin = prior_params(HeadKind::Linear, z.view(), &labels, 3, &id, &mut rng).unwrap();
        let mlp = prior_params(
            HeadKind::Mlp { hidden: 8 },
            z.view(),
            &labels,
            3,
            &id,
            &mut rng,
        )
        .unwrap();
        assert!(prior_params(
            HeadKind::Mlp { hidden: 5 },
            z.view(),
            &labels,
            3,
            &id,
            &mut rng
        )
        .is_none());
        let probes = array![
            [0.9f32, 0.2, 0.3],
            [0.1, 1.1, 0.2],
            [0.6, 0.6, 1.0],
            [0.5, 0.5, 0.4]
        ];
        let a = lin.logits(probes.view());
        let b = mlp.logits(probes.view());
        for (i, p) in probes.axis_iter(Axis(0)).enumerate() {
            let want = nearest(z.view(), &labels, 3, p.as_slice().unwrap());
            let arg = |r: ndarray::ArrayView1<f32>| {
                r.iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |m, (c, &v)| if v > m.1 { (c, v) } else { m },
                    )
                    .0
            };
            assert_eq!(arg(a.row(i)), want);
            for (x, y) in a.row(i).iter().zip(b.row(i)) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn scale_is_positive_and_finite_with_one_sample_per_class() {
        let z = array![[1.0f32, 0.0], [0.0, 1.0]];
        let s = prototype_scale(z.view(), &[0, 1], 2);
        assert!(s.is_finite() && s > 0.0, "{s}");
    }
}
