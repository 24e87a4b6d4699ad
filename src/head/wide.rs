//! The two products of a wide dense layer (the MLP's hidden layer: 128 outputs of 1280 inputs),
//! written for that shape with AVX-512 and chosen at run time: `out = X · Wᵀ + b` and
//! `∂W = beta · ∂W + Δᵀ · X`.
//!
//! Neither product copies an operand. The forward product is a block of dot products: six rows
//! of `X` against four rows of `W` (both contiguous along the inputs), 24 accumulators of
//! sixteen lanes, each summed across its lanes once at the end of the row. The gradient is a block
//! of scaled row sums: six rows of `∂W` times sixty-four inputs (24 accumulators), each batch row
//! adding `Δ[r, j] · X[r, c..c+64]`. The rows of `X` are read where they lie ([`Rows`]), so a
//! mini-batch picked from the whole training matrix needs no gather. A ragged last tile takes
//! smaller blocks, a ragged last column block masked loads and stores.
//!
//! Without AVX-512 (or off x86-64) the functions return `false` and the caller takes ndarray's
//! matrix product.

use super::kernels::Rows;
#[cfg(target_arch = "x86_64")]
use super::pool::part_range;
use super::pool::Pool;

/// True when this processor runs the kernels here (x86-64 with AVX-512F).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out = X · Wᵀ + b` (`X` is `m × d`, `w` is `W`, `k × d` row-major, `out` is `m × k`
/// row-major). Returns `false` (and writes nothing) when the processor lacks AVX-512.
///
/// # Panics
/// When the lengths disagree.
pub fn forward(x: Rows, w: &[f32], b: &[f32], out: &mut [f32]) -> bool {
    forward_parts(None, x, w, b, out)
}

/// [`forward`] with the outputs (the units, rows of `W`) cut into the parts of `pool`, each
/// part on its own thread; every output is the same sum in the same order whatever the parts.
///
/// # Panics
/// When the lengths disagree.
pub fn forward_parts(pool: Option<&Pool>, x: Rows, w: &[f32], b: &[f32], out: &mut [f32]) -> bool {
    let (m, d, k) = (x.len(), x.dim(), b.len());
    assert_eq!(w.len(), k * d, "weights are not k × d");
    assert_eq!(out.len(), m * k, "output is not m × k");
    #[cfg(target_arch = "x86_64")]
    if available() {
        let out = SharedOut(out.as_mut_ptr());
        match pool {
            Some(pool) => pool.run(&|part| {
                let units = part_range(k, pool.parts(), part, 4);
                // SAFETY: AVX-512F is present (checked above), the lengths are checked, and
                // each part writes only its own columns `units` of `out`.
                unsafe { avx512::forward(x, w, b, out.ptr(), units) };
            }),
            // SAFETY: as above, one part.
            None => unsafe { avx512::forward(x, w, b, out.0, 0..k) },
        }
        return true;
    }
    let _ = pool;
    false
}

/// `gw = beta · gw + Δᵀ · X` (`Δ` is `m × k` row-major, `X` is `m × d`, `gw` is `k × d`
/// row-major; `beta = 0` overwrites `gw` whatever it held). Returns `false` (and writes nothing)
/// when the processor lacks AVX-512 or there are no rows.
///
/// # Panics
/// When the lengths disagree.
pub fn weight_grad(delta: &[f32], x: Rows, beta: f32, gw: &mut [f32]) -> bool {
    weight_grad_parts(None, delta, x, beta, gw)
}

/// [`weight_grad`] with the rows of `gw` (the units) cut into the parts of `pool`, each part on
/// its own thread; every element is the same sum in the same order whatever the parts.
///
/// # Panics
/// When the lengths disagree.
pub fn weight_grad_parts(
    pool: Option<&Pool>,
    delta: &[f32],
    x: Rows,
    beta: f32,
    gw: &mut [f32],
) -> bool {
    let (m, d) = (x.len(), x.dim());
    if m == 0 {
        return false;
    }
    assert!(delta.len().is_multiple_of(m), "delta is not m × k");
    let k = delta.len() / m;
    assert_eq!(gw.len(), k * d, "gradient is not k × d");
    #[cfg(target_arch = "x86_64")]
    if available() {
        let gw = SharedOut(gw.as_mut_ptr());
        match pool {
            Some(pool) => pool.run(&|part| {
                let units = part_range(k, pool.parts(), part, 6);
                // SAFETY: AVX-512F is present (checked above), the lengths are checked, and
                // each part writes only its own rows `units` of `gw`.
                unsafe { avx512::weight_grad(delta, k, x, beta, gw.ptr(), units) };
            }),
            // SAFETY: as above, one part.
            None => unsafe { avx512::weight_grad(delta, k, x, beta, gw.0, 0..k) },
        }
        return true;
    }
    let _ = (pool, beta);
    false
}

/// An output buffer the parts of a task write disjoint pieces of (only the x86-64 kernels split
/// a product over the pool).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: the parts that share it write disjoint elements, and `Pool::run` returns only when
// all of them are done.
#[cfg(target_arch = "x86_64")]
unsafe impl Send for SharedOut {}
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for SharedOut {}

#[cfg(target_arch = "x86_64")]
impl SharedOut {
    /// The pointer (a method, so that a closure captures the whole `Sync` wrapper).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Rows;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Lanes per register.
    const L: usize = 16;
    /// Registers of inputs per gradient tile.
    const C: usize = 4;

    /// The mask of the lanes `lo..lo+16` that lie below `d`.
    fn lane_mask(lo: usize, d: usize) -> u16 {
        if lo >= d {
            0
        } else if d - lo >= L {
            u16::MAX
        } else {
            (1u16 << (d - lo)) - 1
        }
    }

    /// The outputs `units` (columns of `out`, `m × k` with `k = b.len()`) of every row.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(
        x: Rows,
        w: &[f32],
        b: &[f32],
        out: *mut f32,
        units: Range<usize>,
    ) {
        let m = x.len();
        let mut r = 0;
        while r + 6 <= m {
            forward_rows::<6>(x, r, w, b, out, units.clone());
            r += 6;
        }
        match m - r {
            5 => forward_rows::<5>(x, r, w, b, out, units),
            4 => forward_rows::<4>(x, r, w, b, out, units),
            3 => forward_rows::<3>(x, r, w, b, out, units),
            2 => forward_rows::<2>(x, r, w, b, out, units),
            1 => forward_rows::<1>(x, r, w, b, out, units),
            _ => {}
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_rows<const R: usize>(
        x: Rows,
        r0: usize,
        w: &[f32],
        b: &[f32],
        out: *mut f32,
        units: Range<usize>,
    ) {
        let xr: [&[f32]; R] = std::array::from_fn(|i| x.row(r0 + i));
        let mut j = units.start;
        while j + 4 <= units.end {
            forward_tile::<R, 4>(&xr, w, j, b, out, r0);
            j += 4;
        }
        while j < units.end {
            forward_tile::<R, 1>(&xr, w, j, b, out, r0);
            j += 1;
        }
    }

    /// `out[r0+i, j0+t] = X[r0+i] · W[j0+t] + b[j0+t]` for `i < R`, `t < J`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_tile<const R: usize, const J: usize>(
        xr: &[&[f32]; R],
        w: &[f32],
        j0: usize,
        b: &[f32],
        out: *mut f32,
        r0: usize,
    ) {
        let d = xr[0].len();
        let k = b.len();
        let xp: [*const f32; R] = std::array::from_fn(|i| xr[i].as_ptr());
        let wp: [*const f32; J] = std::array::from_fn(|t| w[(j0 + t) * d..][..d].as_ptr());
        let mut acc = [[_mm512_setzero_ps(); J]; R];
        let full = d / L * L;
        let mut c = 0;
        while c < full {
            // SAFETY: c + 16 <= d, inside every row.
            let wv: [__m512; J] = std::array::from_fn(|t| unsafe { _mm512_loadu_ps(wp[t].add(c)) });
            for i in 0..R {
                let xv = unsafe { _mm512_loadu_ps(xp[i].add(c)) };
                for t in 0..J {
                    acc[i][t] = _mm512_fmadd_ps(xv, wv[t], acc[i][t]);
                }
            }
            c += L;
        }
        if c < d {
            let mask = lane_mask(c, d);
            // SAFETY: the masked-off lanes (at and past d) are not read.
            let wv: [__m512; J] =
                std::array::from_fn(|t| unsafe { _mm512_maskz_loadu_ps(mask, wp[t].add(c)) });
            for i in 0..R {
                let xv = unsafe { _mm512_maskz_loadu_ps(mask, xp[i].add(c)) };
                for t in 0..J {
                    acc[i][t] = _mm512_fmadd_ps(xv, wv[t], acc[i][t]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (t, &sum) in row.iter().enumerate() {
                // SAFETY: row r0 + i < m and column j0 + t < k of the caller's m × k output.
                unsafe {
                    *out.add((r0 + i) * k + j0 + t) = _mm512_reduce_add_ps(sum) + b[j0 + t];
                }
            }
        }
    }

    /// The rows `units` of `gw` (`k × d`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad(
        delta: &[f32],
        k: usize,
        x: Rows,
        beta: f32,
        gw: *mut f32,
        units: Range<usize>,
    ) {
        let d = x.dim();
        for c0 in (0..d).step_by(C * L) {
            let masks: [u16; C] = std::array::from_fn(|v| lane_mask(c0 + v * L, d));
            let mut j = units.start;
            while j + 6 <= units.end {
                grad_tile::<6>(delta, k, x, j, c0, masks, beta, gw);
                j += 6;
            }
            while j < units.end {
                grad_tile::<1>(delta, k, x, j, c0, masks, beta, gw);
                j += 1;
            }
        }
    }

    /// `gw[j0+t, c0..c0+64] = beta · gw[..] + Σ_r Δ[r, j0+t] · X[r, c0..c0+64]` for `t < J`,
    /// lanes past the row's end masked off.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn grad_tile<const J: usize>(
        delta: &[f32],
        k: usize,
        x: Rows,
        j0: usize,
        c0: usize,
        masks: [u16; C],
        beta: f32,
        gw: *mut f32,
    ) {
        let d = x.dim();
        let mut acc = [[_mm512_setzero_ps(); C]; J];
        for r in 0..x.len() {
            let xp = x.row(r).as_ptr().wrapping_add(c0);
            // SAFETY: masked-off lanes (past the row's end) are not read.
            let xv: [__m512; C] = std::array::from_fn(|v| unsafe {
                _mm512_maskz_loadu_ps(masks[v], xp.wrapping_add(v * L))
            });
            let dr = &delta[r * k + j0..][..J];
            for t in 0..J {
                let dv = _mm512_set1_ps(dr[t]);
                for v in 0..C {
                    acc[t][v] = _mm512_fmadd_ps(dv, xv[v], acc[t][v]);
                }
            }
        }
        let bv = _mm512_set1_ps(beta);
        for (t, row) in acc.iter().enumerate() {
            let gp = gw.wrapping_add((j0 + t) * d + c0);
            for (v, &part) in row.iter().enumerate() {
                let p = gp.wrapping_add(v * L);
                // SAFETY: masked-off lanes (past the row's end) are neither read nor written.
                unsafe {
                    let sum = if beta == 0.0 {
                        part
                    } else {
                        _mm512_fmadd_ps(bv, _mm512_maskz_loadu_ps(masks[v], p), part)
                    };
                    _mm512_mask_storeu_ps(p, masks[v], sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{linalg::general_mat_mul, Array1, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(rng: &mut ChaCha8Rng, r: usize, c: usize) -> Array2<f32> {
        Array2::from_shape_simple_fn((r, c), || rng.gen_range(-1.0f32..1.0))
    }

    fn close(got: &Array2<f32>, want: &Array2<f32>, scale: f32) {
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(
                (g - w).abs() <= 1e-5 * scale.max(1.0),
                "got {g}, want {w} (scale {scale})"
            );
        }
    }

    /// Both products against ndarray's matrix product, on random shapes around the MLP's
    /// (ragged batches, ragged outputs, inputs not a multiple of 16 or 64), rows read in place.
    #[test]
    fn products_match_ndarray() {
        if !available() {
            eprintln!("no AVX-512 here: the kernels are not run");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let shapes = [
            (64, 1280, 128),
            (47, 1280, 128),
            (1, 1280, 128),
            (5, 33, 7),
            (13, 100, 130),
            (3, 16, 1),
            (9, 64, 6),
            (66, 257, 19),
            (8, 1280, 128),
        ];
        for &(m, d, k) in &shapes {
            let all = random(&mut rng, m + 11, d);
            let index: Vec<usize> = (0..m).map(|_| rng.gen_range(0..m + 11)).collect();
            let x = all.select(ndarray::Axis(0), &index);
            let rows = Rows::picked(all.view(), &index).expect("standard layout");
            let w = random(&mut rng, k, d);
            let b: Array1<f32> = Array1::from_shape_simple_fn(k, || rng.gen_range(-1.0..1.0));
            let mut out = Array2::<f32>::from_elem((m, k), f32::NAN);
            assert!(forward(
                rows,
                w.as_slice().unwrap(),
                b.as_slice().unwrap(),
                out.as_slice_mut().unwrap()
            ));
            let mut want = Array2::from_shape_fn((m, k), |(_, j)| b[j]);
            general_mat_mul(1.0, &x, &w.t(), 1.0, &mut want);
            close(&out, &want, d as f32);

            let delta = random(&mut rng, m, k);
            for beta in [0.0f32, 0.7] {
                let start = random(&mut rng, k, d);
                let mut gw = if beta == 0.0 {
                    Array2::from_elem((k, d), f32::NAN)
                } else {
                    start.clone()
                };
                assert!(weight_grad(
                    delta.as_slice().unwrap(),
                    rows,
                    beta,
                    gw.as_slice_mut().unwrap()
                ));
                let mut want = start.clone();
                general_mat_mul(1.0, &delta.t(), &x, beta, &mut want);
                close(&gw, &want, m as f32);
            }
        }
    }
}
