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
//! portable build. Wider layers (the MLP's hidden layer) go to the AVX-512 kernels of [`super::wide`]
//! when the processor has them, else to ndarray's `general_mat_mul`.
//!
//! A training step's batch is a list of row indices into the whole standardised training matrix
//! ([`Rows`]): the narrow kernels read those rows where they lie (no copy of the batch), and on
//! x86-64 fetch the next rows while multiplying the current ones; the wide products get them
//! copied into one matrix ([`Rows::gather_into`]).

use ndarray::{linalg::general_mat_mul, s, ArrayView1, ArrayView2, ArrayViewMut2};

/// Layers with at most this many outputs use the kernels here.
pub const MAX_NARROW_OUTPUTS: usize = 16;

/// Lanes per accumulator.
const LANES: usize = 8;

/// The rows a product reads: every row of a matrix in standard layout, or the rows `rows` of one
/// (a mini-batch read in place from the whole training matrix, nothing gathered).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    data: &'a [f32],
    dim: usize,
    index: Option<&'a [usize]>,
    len: usize,
}

impl<'a> Rows<'a> {
    /// Every row of `x`, or `None` when `x` is not in standard (row-major, contiguous) layout.
    pub fn all(x: ArrayView2<'a, f32>) -> Option<Rows<'a>> {
        let (len, dim) = x.dim();
        let data = x.to_slice()?;
        Some(Rows {
            data,
            dim,
            index: None,
            len,
        })
    }

    /// Rows `index` of `x` in that order, or `None` when `x` is not in standard layout.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn picked(x: ArrayView2<'a, f32>, index: &'a [usize]) -> Option<Rows<'a>> {
        let (n, dim) = x.dim();
        assert!(index.iter().all(|&i| i < n), "row index out of range");
        let data = x.to_slice()?;
        Some(Rows {
            data,
            dim,
            index: Some(index),
            len: index.len(),
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length of a row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The rows as one matrix, when they are every row of one (no index).
    pub fn as_matrix(&self) -> Option<ArrayView2<'a, f32>> {
        match self.index {
            Some(_) => None,
            None => {
                ArrayView2::from_shape((self.len, self.dim), &self.data[..self.len * self.dim]).ok()
            }
        }
    }

    /// Row `i`.
    #[inline(always)]
    pub fn row(&self, i: usize) -> &'a [f32] {
        let r = match self.index {
            Some(ix) => ix[i],
            None => i,
        };
        &self.data[r * self.dim..(r + 1) * self.dim]
    }

    /// The rows copied into `out` (`len × dim`), for the wide products that take a matrix; the
    /// next row is fetched while one is copied.
    pub fn gather_into(&self, out: &mut ArrayViewMut2<f32>) {
        for (i, mut o) in out.rows_mut().into_iter().enumerate().take(self.len) {
            if i + 1 < self.len {
                prefetch(self.row(i + 1));
            }
            if let Some(o) = o.as_slice_mut() {
                o.copy_from_slice(self.row(i));
            } else {
                o.assign(&ArrayView1::from(self.row(i)));
            }
        }
    }
}

/// Asks the processor to bring `v` into its cache (x86-64; nothing elsewhere).
#[inline(always)]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: a prefetch reads nothing and cannot fault; SSE is part of x86-64.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// `out = X · Wᵀ + b` (`X` is `m × d`, `W` is `k × d`, `out` is `m × k`).
pub fn forward(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: ArrayView1<f32>,
    out: &mut ArrayViewMut2<f32>,
) {
    if let (true, Some(rows)) = (w.nrows() <= MAX_NARROW_OUTPUTS, Rows::all(x)) {
        if let Some(ws) = w.as_slice() {
            forward_rows(rows, ws, b, out);
            return;
        }
    }
    if let (Some(rows), Some(ws), Some(bs)) = (Rows::all(x), w.as_slice(), b.as_slice()) {
        if let Some(os) = out.as_slice_mut() {
            if super::wide::forward(rows, ws, bs, os) {
                return;
            }
        }
    }
    out.assign(&b.insert_axis(ndarray::Axis(0)));
    general_mat_mul(1.0, &x, &w.t(), 1.0, out);
}

/// `out = X · Wᵀ + b` for a layer of at most [`MAX_NARROW_OUTPUTS`] outputs (`ws` is `W`, `k × d`
/// row-major), its rows read where they are.
pub fn forward_rows(x: Rows, ws: &[f32], b: ArrayView1<f32>, out: &mut ArrayViewMut2<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            unsafe { forward_avx2(x, ws, b, out) };
            return;
        }
    }
    forward_body::<{ cfg!(target_arch = "aarch64") }>(x, ws, b, out);
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
    if let (true, Some(rows), Some(ws)) = (k <= MAX_NARROW_OUTPUTS, Rows::all(x), w.as_slice()) {
        if let Some(gs) = gw.as_slice_mut() {
            grad_rows(delta, rows, Some((ws, decay)), gs);
            return;
        }
    }
    gw.assign(&w);
    if let (Some(rows), Some(ds), Some(gs)) = (Rows::all(x), delta.as_slice(), gw.as_slice_mut()) {
        if super::wide::weight_grad(ds, rows, decay, gs) {
            return;
        }
    }
    wide_grad(delta, x, decay, gw, block);
}

/// `∂W = Δᵀ · X` into `gw` (no decay term) for a layer of at most [`MAX_NARROW_OUTPUTS`]
/// outputs, its input rows read where they are (`gw` is `k × d` row-major).
pub fn weight_grad_rows(delta: ArrayView2<f32>, x: Rows, gw: &mut [f32]) {
    grad_rows(delta, x, None, gw);
}

/// `gw = beta · gw + Δᵀ · X` by ndarray's matrix product, in column blocks of `block`.
pub fn wide_grad(
    delta: ArrayView2<f32>,
    x: ArrayView2<f32>,
    beta: f32,
    gw: &mut ndarray::Array2<f32>,
    block: usize,
) {
    let cols = x.ncols();
    for start in (0..cols).step_by(block.max(1)) {
        let cols_block = s![.., start..(start + block).min(cols)];
        general_mat_mul(
            1.0,
            &delta.t(),
            &x.slice(cols_block),
            beta,
            &mut gw.slice_mut(cols_block),
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(x: Rows, ws: &[f32], b: ArrayView1<f32>, out: &mut ArrayViewMut2<f32>) {
    let k = b.len();
    let d = x.dim();
    let m = x.len().min(out.nrows());
    let mut i = 0;
    // Two rows at a time: eight independent accumulators keep both FMA pipes busy, and each
    // weight vector loaded serves two rows. Each dot product is summed exactly as
    // `dot4_body::<true>` sums it.
    while i < m {
        let pair = m - i >= 2;
        let x0 = x.row(i);
        let x1 = if pair { x.row(i + 1) } else { x0 };
        let mut c = 0;
        while c < k {
            let take = (k - c).min(4);
            let w = &ws[c * d..(c + take) * d];
            let row = |t: usize| if t < take { &w[t * d..(t + 1) * d] } else { x0 };
            // The next two rows are fetched while these are multiplied (the batch's rows come
            // from all over the training matrix, in shuffled order); only on the first pass
            // over the weights.
            let next = match (c == 0, m - i) {
                (true, 4..) => Some([x.row(i + 2), x.row(i + 3)]),
                (true, 3) => Some([x.row(i + 2), x.row(i + 2)]),
                _ => None,
            };
            // SAFETY: AVX2 and FMA are enabled in this function; every slice has length `d`.
            let dots = unsafe { x86::dot4x2(x0, x1, [row(0), row(1), row(2), row(3)], next) };
            for t in 0..take {
                out[[i, c + t]] = b[c + t] + dots[0][t];
                if pair {
                    out[[i + 1, c + t]] = b[c + t] + dots[1][t];
                }
            }
            c += take;
        }
        i += if pair { 2 } else { 1 };
    }
}

#[inline(always)]
fn forward_body<const FMA: bool>(
    x: Rows,
    ws: &[f32],
    b: ArrayView1<f32>,
    out: &mut ArrayViewMut2<f32>,
) {
    let k = b.len();
    let d = x.dim();
    for (i, mut row) in out.rows_mut().into_iter().enumerate().take(x.len()) {
        let xi = x.row(i);
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

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, acc: f32) -> f32 {
    if FMA {
        a.mul_add(b, acc)
    } else {
        a * b + acc
    }
}

/// Dot products of `x` with the first `take` (1-4) rows of `w` (rows of `x.len()` each).
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

/// `gw = [decay · W] + Δᵀ · X` for a narrow layer (`W`, `gw`: `k × d` row-major).
fn grad_rows(delta: ArrayView2<f32>, x: Rows, decayed: Option<(&[f32], f32)>, gw: &mut [f32]) {
    let k = delta.ncols();
    let d = x.dim();
    let mut c = 0;
    while c < k {
        let take = (k - c).min(4);
        let w = decayed.map(|(w, decay)| (&w[c * d..(c + take) * d], decay));
        grad4(
            delta.slice(s![.., c..c + take]),
            x,
            w,
            &mut gw[c * d..(c + take) * d],
            take,
        );
        c += take;
    }
}

/// `gw[t] = [decay · w[t]] + Σ_i delta[i, t] · x[i]` for the `take` (1-4) rows `t`.
fn grad4(delta: ArrayView2<f32>, x: Rows, w: Option<(&[f32], f32)>, gw: &mut [f32], take: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            return unsafe { grad4_avx2(delta, x, w, gw, take) };
        }
    }
    grad4_body::<{ cfg!(target_arch = "aarch64") }>(delta, x, w, gw, take)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad4_avx2(
    delta: ArrayView2<f32>,
    x: Rows,
    w: Option<(&[f32], f32)>,
    gw: &mut [f32],
    take: usize,
) {
    let m = delta.nrows().min(x.len());
    let d = x.dim();
    let mut coef = [[0.0f32; 4]; 64];
    // Sixteen columns at a time (eight accumulators); each element is summed in the order
    // `grad4_body` sums it.
    let full = d / (2 * LANES) * (2 * LANES);
    for i0 in (0..m).step_by(coef.len()) {
        let rows = (m - i0).min(coef.len());
        fill_coef(&mut coef, delta, i0, rows, take);
        let first = i0 == 0;
        for j in (0..full).step_by(2 * LANES) {
            // SAFETY: AVX2 and FMA are enabled in this function; `j + 16 <= d` for every row.
            unsafe { x86::grad_tile(&coef[..rows], x, i0, j, w, first, gw, d, take) };
        }
        grad_columns::<true>(&coef[..rows], x, i0, full, w, first, gw, d, take);
    }
}

/// The batch's coefficients of rows `i0..i0 + rows`, four per row (zero for missing outputs).
#[inline(always)]
fn fill_coef(
    coef: &mut [[f32; 4]; 64],
    delta: ArrayView2<f32>,
    i0: usize,
    rows: usize,
    take: usize,
) {
    for (r, c) in coef.iter_mut().take(rows).enumerate() {
        for t in 0..4 {
            c[t] = if t < take { delta[[i0 + r, t]] } else { 0.0 };
        }
    }
}

/// Columns `from..d` of a gradient block, one at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_columns<const FMA: bool>(
    coef: &[[f32; 4]],
    x: Rows,
    i0: usize,
    from: usize,
    w: Option<(&[f32], f32)>,
    first: bool,
    gw: &mut [f32],
    d: usize,
    take: usize,
) {
    for j in from..d {
        for t in 0..take {
            let mut sum = match (first, w) {
                (true, Some((w, decay))) => decay * w[t * d + j],
                (true, None) => 0.0,
                (false, _) => gw[t * d + j],
            };
            for (r, c) in coef.iter().enumerate() {
                sum = madd::<FMA>(c[t], x.row(i0 + r)[j], sum);
            }
            gw[t * d + j] = sum;
        }
    }
}

#[inline(always)]
fn grad4_body<const FMA: bool>(
    delta: ArrayView2<f32>,
    x: Rows,
    w: Option<(&[f32], f32)>,
    gw: &mut [f32],
    take: usize,
) {
    let m = delta.nrows().min(x.len());
    let d = x.dim();
    // The batch's coefficients, four per row (zero for missing output rows).
    let mut coef = [[0.0f32; 4]; 64];
    let full = d / LANES * LANES;
    for i0 in (0..m).step_by(coef.len()) {
        let rows = (m - i0).min(coef.len());
        fill_coef(&mut coef, delta, i0, rows, take);
        let first = i0 == 0;
        for j in (0..full).step_by(LANES) {
            let mut acc = [[0.0f32; LANES]; 4];
            for (t, a) in acc.iter_mut().enumerate().take(take) {
                let g = &gw[t * d + j..t * d + j + LANES];
                for l in 0..LANES {
                    a[l] = match (first, w) {
                        (true, Some((w, decay))) => decay * w[t * d + j + l],
                        (true, None) => 0.0,
                        (false, _) => g[l],
                    };
                }
            }
            for (r, c) in coef.iter().take(rows).enumerate() {
                let xc = &x.row(i0 + r)[j..j + LANES];
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
        grad_columns::<FMA>(&coef[..rows], x, i0, full, w, first, gw, d, take);
    }
}

/// The x86-64 AVX2 + FMA inner loops, with explicit vector registers.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Rows, LANES};
    use std::arch::x86_64::*;

    /// The eight lanes of `v` summed left to right (as `[f32; 8]::iter().sum()` does).
    #[inline(always)]
    unsafe fn lanes_sum(v: __m256) -> f32 {
        let mut a = [0.0f32; LANES];
        // SAFETY: `a` holds eight floats.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        a.iter().sum()
    }

    /// Dot products `[row of x][output t]` of `x0` and `x1` with `w[t]` (all of one length).
    ///
    /// # Safety
    /// The processor has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot4x2(
        x0: &[f32],
        x1: &[f32],
        w: [&[f32]; 4],
        next: Option<[&[f32]; 2]>,
    ) -> [[f32; 4]; 2] {
        let d = x0.len();
        assert!(x1.len() == d && w.iter().all(|r| r.len() == d));
        let full = d / LANES * LANES;
        let mut a = [_mm256_setzero_ps(); 8];
        let mut j = 0;
        while j < full {
            // SAFETY: `j + 8 <= d` and every slice has length `d`; a prefetch reads nothing.
            unsafe {
                if let (Some(next), 0) = (next, j % (2 * LANES)) {
                    for r in next {
                        _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(j.min(r.len() - 1)).cast());
                    }
                }
                let p = _mm256_loadu_ps(x0.as_ptr().add(j));
                let q = _mm256_loadu_ps(x1.as_ptr().add(j));
                for t in 0..4 {
                    let c = _mm256_loadu_ps(w[t].as_ptr().add(j));
                    a[t] = _mm256_fmadd_ps(p, c, a[t]);
                    a[4 + t] = _mm256_fmadd_ps(q, c, a[4 + t]);
                }
            }
            j += LANES;
        }
        let mut out = [[0.0f32; 4]; 2];
        for (r, xr) in [x0, x1].into_iter().enumerate() {
            for t in 0..4 {
                // SAFETY: AVX is enabled in this function.
                let mut sum = unsafe { lanes_sum(a[4 * r + t]) };
                for j in full..d {
                    sum = xr[j].mul_add(w[t][j], sum);
                }
                out[r][t] = sum;
            }
        }
        out
    }

    /// Columns `j..j + 16` of the gradient rows `t < take`: from `decay · W` (first block of
    /// rows) or the partial sums in `gw`, plus `Σ_r coef[r][t] · x[i0 + r][j..j + 16]`.
    ///
    /// # Safety
    /// The processor has AVX2 and FMA; `j + 16 <= d`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn grad_tile(
        coef: &[[f32; 4]],
        x: Rows,
        i0: usize,
        j: usize,
        w: Option<(&[f32], f32)>,
        first: bool,
        gw: &mut [f32],
        d: usize,
        take: usize,
    ) {
        assert!(j + 2 * LANES <= d && gw.len() >= take * d);
        let mut acc = [_mm256_setzero_ps(); 8];
        for t in 0..take {
            for h in 0..2 {
                let at = t * d + j + h * LANES;
                // SAFETY: `at + 8 <= t * d + d <= gw.len()` (and `w.len()`).
                acc[2 * t + h] = unsafe {
                    match (first, w) {
                        (true, Some((w, decay))) => _mm256_mul_ps(
                            _mm256_set1_ps(decay),
                            _mm256_loadu_ps(w.as_ptr().add(at)),
                        ),
                        (true, None) => _mm256_setzero_ps(),
                        (false, _) => _mm256_loadu_ps(gw.as_ptr().add(at)),
                    }
                };
            }
        }
        for (r, c) in coef.iter().enumerate() {
            let xr = &x.row(i0 + r)[j..j + 2 * LANES];
            // SAFETY: `xr` holds sixteen floats.
            unsafe {
                let lo = _mm256_loadu_ps(xr.as_ptr());
                let hi = _mm256_loadu_ps(xr.as_ptr().add(LANES));
                for t in 0..4 {
                    let ct = _mm256_set1_ps(c[t]);
                    acc[2 * t] = _mm256_fmadd_ps(ct, lo, acc[2 * t]);
                    acc[2 * t + 1] = _mm256_fmadd_ps(ct, hi, acc[2 * t + 1]);
                }
            }
        }
        for t in 0..take {
            for h in 0..2 {
                let at = t * d + j + h * LANES;
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(gw.as_mut_ptr().add(at), acc[2 * t + h]) };
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
            (7, 3, 40),
            (65, 4, 1283),
        ] {
            let x = filled(m, d, 0.37);
            let w = filled(k, d, 0.11);
            let b = Array1::from_shape_fn(k, |c| c as f32 * 0.5);
            let mut out = Array2::zeros((m, k));
            forward(x.view(), w.view(), b.view(), &mut out.view_mut());
            let want = x.dot(&w.t()) + &b;
            let err = (&out - &want).mapv(f32::abs).fold(0.0f32, |a, &v| a.max(v));
            assert!(err < 1e-3, "forward {m}×{k}×{d}: {err}");

            // The same rows picked out of a larger matrix, in another order, read in place.
            let pick: Vec<usize> = (0..m).rev().map(|i| 2 * i + 1).collect();
            let big = filled(2 * m + 1, d, 0.29);
            let chosen = big.select(ndarray::Axis(0), &pick);
            let rows = Rows::picked(big.view(), &pick).unwrap();
            let mut picked = Array2::zeros((m, k));
            forward_rows(
                rows,
                w.as_slice().unwrap(),
                b.view(),
                &mut picked.view_mut(),
            );
            let want_picked = chosen.dot(&w.t()) + &b;
            let err = (&picked - &want_picked)
                .mapv(f32::abs)
                .fold(0.0f32, |a, &v| a.max(v));
            assert!(err < 1e-3, "picked forward {m}×{k}×{d}: {err}");
            let mut gathered = Array2::zeros((m, d));
            rows.gather_into(&mut gathered.view_mut());
            assert_eq!(gathered, chosen);

            let delta = filled(m, k, 0.23);
            let mut gp = Array2::zeros((k, d));
            weight_grad_rows(delta.view(), rows, gp.as_slice_mut().unwrap());
            let want = delta.t().dot(&chosen);
            let err = (&gp - &want).mapv(f32::abs).fold(0.0f32, |a, &v| a.max(v));
            assert!(err < 1e-3, "picked grad {m}×{k}×{d}: {err}");
            let mut gw = Array2::zeros((k, d));
            weight_grad(delta.view(), x.view(), w.view(), 0.1, &mut gw, 512);
            let want = &w * 0.1 + delta.t().dot(&x);
            let err = (&gw - &want).mapv(f32::abs).fold(0.0f32, |a, &v| a.max(v));
            assert!(err < 1e-3, "grad {m}×{k}×{d}: {err}");
        }
    }
}
