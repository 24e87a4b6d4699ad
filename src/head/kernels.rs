//! The two products of a dense layer with few outputs (the output layer: one row per class), written
//! for that shape: `out = X · Wᵀ + b` and `∂W = decay · W + Δᵀ · X`.
//!
//! A general matrix product copies ("packs") both operands into blocks before it multiplies; with a
//! handful of outputs there is so little arithmetic per input value that the copy of the batch costs
//! as much as the products themselves, and the kernel's 8- or 16-wide output tiles are mostly
//! padding. Here each row of `X` is read straight from the batch and multiplied against every
//! output row at once (four at a time, eight lanes each), with nothing copied and nothing
//! allocated. On x86-64 the same code is also compiled for AVX2 + FMA and chosen at run time when
//! the processor has them; aarch64 fuses multiply-adds (NEON) everywhere; other targets take the
//! portable build. Wider layers (the MLP's hidden layer) go to ndarray's `general_mat_mul`.

use ndarray::{linalg::general_mat_mul, s, ArrayView1, ArrayView2, ArrayViewMut2};

/// Layers with at most this many outputs use the kernels here.
pub const MAX_NARROW_OUTPUTS: usize = 16;

/// Lanes per accumulator.
const LANES: usize = 8;

/// `out = X · Wᵀ + b` (`X` is `m × d`, `W` is `k × d`, `out` is `m × k`).
pub fn forward(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: ArrayView1<f32>,
    out: &mut ArrayViewMut2<f32>,
) {
    if let (true, Some(xs), Some(ws)) =
        (w.nrows() <= MAX_NARROW_OUTPUTS, x.as_slice(), w.as_slice())
    {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the processor has AVX2 and FMA (checked just above).
                unsafe { forward_avx2(xs, ws, b, out) };
                return;
            }
        }
        forward_body::<{ cfg!(target_arch = "aarch64") }>(xs, ws, b, out);
        return;
    }
    out.assign(&b.insert_axis(ndarray::Axis(0)));
    general_mat_mul(1.0, &x, &w.t(), 1.0, out);
}

/// `∂W = decay · W + Δᵀ · X` into `gw` (`Δ` is `m × k`, `X` is `m × d`, `W` and `gw` are `k × d`).
/// Wide layers take the product in column blocks of `block` (see [`super::batch`]).
pub fn weight_grad(
    delta: ArrayView2<f32>,
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    decay: f32,
    gw: &mut ndarray::Array2<f32>,
    block: usize,
) {
    let k = w.nrows();
    if let (true, Some(xs), Some(ws), Some(gs)) = (
        k <= MAX_NARROW_OUTPUTS,
        x.as_slice(),
        w.as_slice(),
        gw.as_slice_mut(),
    ) {
        let d = x.ncols();
        let mut c = 0;
        while c < k {
            let take = (k - c).min(4);
            grad4(
                delta.slice(s![.., c..c + take]),
                xs,
                d,
                &ws[c * d..(c + take) * d],
                decay,
                &mut gs[c * d..(c + take) * d],
                take,
            );
            c += take;
        }
        return;
    }
    gw.assign(&w);
    let cols = x.ncols();
    for start in (0..cols).step_by(block.max(1)) {
        let cols_block = s![.., start..(start + block).min(cols)];
        general_mat_mul(
            1.0,
            &delta.t(),
            &x.slice(cols_block),
            decay,
            &mut gw.slice_mut(cols_block),
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(xs: &[f32], ws: &[f32], b: ArrayView1<f32>, out: &mut ArrayViewMut2<f32>) {
    forward_body::<true>(xs, ws, b, out)
}

#[inline(always)]
fn forward_body<const FMA: bool>(
    xs: &[f32],
    ws: &[f32],
    b: ArrayView1<f32>,
    out: &mut ArrayViewMut2<f32>,
) {
    let k = b.len();
    let d = ws.len() / k.max(1);
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        let xi = &xs[i * d..(i + 1) * d];
        let mut c = 0;
        while c < k {
            let take = (k - c).min(4);
            let dots = dot4_body::<FMA>(xi, &ws[c * d..(c + take) * d], take);
            for (t, v) in dots.iter().take(take).enumerate() {
                row[c + t] = b[c + t] + v;
            }
            c += take;
        }
    }
}

/// Dot products of `x` with the first `take` (1-4) rows of `w` (rows of `x.len()` each).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, acc: f32) -> f32 {
    if FMA {
        a.mul_add(b, acc)
    } else {
        a * b + acc
    }
}

#[inline(always)]
fn dot4_body<const FMA: bool>(x: &[f32], w: &[f32], take: usize) -> [f32; 4] {
    let d = x.len();
    let zero: &[f32] = &[];
    let row = |t: usize| {
        if t < take {
            &w[t * d..(t + 1) * d]
        } else {
            zero
        }
    };
    let (w0, w1, w2, w3) = (row(0), row(1), row(2), row(3));
    let mut acc = [[0.0f32; LANES]; 4];
    let full = d / LANES * LANES;
    // Four output rows at once when there are four; fewer rows reuse the same loop on `x` itself
    // for the missing ones (their results are dropped).
    let (w1, w2, w3) = (
        if w1.is_empty() { x } else { w1 },
        if w2.is_empty() { x } else { w2 },
        if w3.is_empty() { x } else { w3 },
    );
    for j in (0..full).step_by(LANES) {
        let xc = &x[j..j + LANES];
        let (c0, c1, c2, c3) = (
            &w0[j..j + LANES],
            &w1[j..j + LANES],
            &w2[j..j + LANES],
            &w3[j..j + LANES],
        );
        for l in 0..LANES {
            acc[0][l] = madd::<FMA>(xc[l], c0[l], acc[0][l]);
            acc[1][l] = madd::<FMA>(xc[l], c1[l], acc[1][l]);
            acc[2][l] = madd::<FMA>(xc[l], c2[l], acc[2][l]);
            acc[3][l] = madd::<FMA>(xc[l], c3[l], acc[3][l]);
        }
    }
    let mut out = [0.0f32; 4];
    let rows = [w0, w1, w2, w3];
    for t in 0..4 {
        let mut sum = acc[t].iter().sum::<f32>();
        for j in full..d {
            sum = madd::<FMA>(x[j], rows[t][j], sum);
        }
        out[t] = sum;
    }
    out
}

/// `gw[t] = decay · w[t] + Σ_i delta[i, t] · x[i]` for the `take` (1-4) rows `t`.
fn grad4(
    delta: ArrayView2<f32>,
    x: &[f32],
    d: usize,
    w: &[f32],
    decay: f32,
    gw: &mut [f32],
    take: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            return unsafe { grad4_avx2(delta, x, d, w, decay, gw, take) };
        }
    }
    grad4_body::<{ cfg!(target_arch = "aarch64") }>(delta, x, d, w, decay, gw, take)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad4_avx2(
    delta: ArrayView2<f32>,
    x: &[f32],
    d: usize,
    w: &[f32],
    decay: f32,
    gw: &mut [f32],
    take: usize,
) {
    grad4_body::<true>(delta, x, d, w, decay, gw, take)
}

#[inline(always)]
fn grad4_body<const FMA: bool>(
    delta: ArrayView2<f32>,
    x: &[f32],
    d: usize,
    w: &[f32],
    decay: f32,
    gw: &mut [f32],
    take: usize,
) {
    let m = delta.nrows();
    // The batch's coefficients, four per row (zero for missing output rows).
    let mut coef = [[0.0f32; 4]; 64];
    let full = d / LANES * LANES;
    for i0 in (0..m).step_by(coef.len()) {
        let rows = (m - i0).min(coef.len());
        for (r, c) in coef.iter_mut().take(rows).enumerate() {
            for t in 0..4 {
                c[t] = if t < take { delta[[i0 + r, t]] } else { 0.0 };
            }
        }
        let first = i0 == 0;
        for j in (0..full).step_by(LANES) {
            let mut acc = [[0.0f32; LANES]; 4];
            for (t, a) in acc.iter_mut().enumerate().take(take) {
                let g = &gw[t * d + j..t * d + j + LANES];
                let wv = &w[t * d + j..t * d + j + LANES];
                for l in 0..LANES {
                    a[l] = if first { decay * wv[l] } else { g[l] };
                }
            }
            for (r, c) in coef.iter().take(rows).enumerate() {
                let xc = &x[(i0 + r) * d + j..(i0 + r) * d + j + LANES];
                for l in 0..LANES {
                    acc[0][l] = madd::<FMA>(c[0], xc[l], acc[0][l]);
                    acc[1][l] = madd::<FMA>(c[1], xc[l], acc[1][l]);
                    acc[2][l] = madd::<FMA>(c[2], xc[l], acc[2][l]);
                    acc[3][l] = madd::<FMA>(c[3], xc[l], acc[3][l]);
                }
            }
            for (t, a) in acc.iter().enumerate().take(take) {
                gw[t * d + j..t * d + j + LANES].copy_from_slice(a);
            }
        }
        for j in full..d {
            for t in 0..take {
                let mut sum = if first {
                    decay * w[t * d + j]
                } else {
                    gw[t * d + j]
                };
                for (r, c) in coef.iter().take(rows).enumerate() {
                    sum = madd::<FMA>(c[t], x[(i0 + r) * d + j], sum);
                }
                gw[t * d + j] = sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    fn filled(rows: usize, cols: usize, seed: f32) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            ((i * 31 + j * 17) as f32 * seed).sin()
        })
    }

    #[test]
    fn the_narrow_kernels_match_general_products() {
        for (m, k, d) in [
            (1, 1, 1),
            (3, 4, 19),
            (64, 4, 1280),
            (70, 5, 33),
            (5, 16, 8),
            (2, 7, 9),
        ] {
            let x = filled(m, d, 0.37);
            let w = filled(k, d, 0.11);
            let b = Array1::from_shape_fn(k, |c| c as f32 * 0.5);
            let mut out = Array2::zeros((m, k));
            forward(x.view(), w.view(), b.view(), &mut out.view_mut());
            let want = x.dot(&w.t()) + &b;
            let err = (&out - &want).mapv(f32::abs).fold(0.0f32, |a, &v| a.max(v));
            assert!(err < 1e-3, "forward {m}×{k}×{d}: {err}");

            let delta = filled(m, k, 0.23);
            let mut gw = Array2::zeros((k, d));
            weight_grad(delta.view(), x.view(), w.view(), 0.1, &mut gw, 512);
            let want = &w * 0.1 + delta.t().dot(&x);
            let err = (&gw - &want).mapv(f32::abs).fold(0.0f32, |a, &v| a.max(v));
            assert!(err < 1e-3, "grad {m}×{k}×{d}: {err}");
        }
    }
}
