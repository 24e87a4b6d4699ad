//! The depthwise kernel for x86-64 with AVX2 and FMA: blocks of 4 rows × 8 columns (4 rows × 4
//! columns for rows narrower than 8) in four independent accumulators, so consecutive fused
//! multiply-adds do not wait on each other.

use std::arch::x86_64::{
    __m128, __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps,
    _mm256_storeu_ps, _mm_fmadd_ps, _mm_loadu_ps, _mm_max_ps, _mm_min_ps, _mm_set1_ps,
    _mm_storeu_ps,
};

use super::{blocks, portable, Clamp, Rows};

/// See [`super::Isa::sum_taps`].
///
/// # Safety
/// The CPU has AVX2 and FMA, and the caller checked every read and write.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_taps(src: &[f32], rows: &Rows, clamp: Clamp, out: &mut [f32]) {
    let height = out.len() / rows.width;
    if height < 4 || rows.width < 4 {
        return portable::scalar(src, rows, clamp, out);
    }
    let Rows {
        offsets,
        weights,
        bias,
        width,
        stride,
    } = *rows;
    let (src, dst) = (src.as_ptr(), out.as_mut_ptr());
    // SAFETY (every load and store below): blocks stay inside the rows (`blocks`), and the
    // caller checked that every tap's rows lie inside `src` and the rows inside `out`.
    unsafe {
        if width >= 8 {
            let (b, lo, hi) = (
                _mm256_set1_ps(bias),
                _mm256_set1_ps(clamp.lo),
                _mm256_set1_ps(clamp.hi),
            );
            let clamped = |v: __m256| _mm256_min_ps(_mm256_max_ps(v, lo), hi);
            for y in blocks(height, 4) {
                for x in blocks(width, 8) {
                    let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
                    for (&offset, &weight) in offsets.iter().zip(weights) {
                        let w = _mm256_set1_ps(weight);
                        let p = src.add(offset + y * stride + x);
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p), w, a0);
                        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(stride)), w, a1);
                        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(2 * stride)), w, a2);
                        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(3 * stride)), w, a3);
                    }
                    let q = dst.add(y * width + x);
                    _mm256_storeu_ps(q, clamped(a0));
                    _mm256_storeu_ps(q.add(width), clamped(a1));
                    _mm256_storeu_ps(q.add(2 * width), clamped(a2));
                    _mm256_storeu_ps(q.add(3 * width), clamped(a3));
                }
            }
        } else {
            let (b, lo, hi) = (
                _mm_set1_ps(bias),
                _mm_set1_ps(clamp.lo),
                _mm_set1_ps(clamp.hi),
            );
            let clamped = |v: __m128| _mm_min_ps(_mm_max_ps(v, lo), hi);
            for y in blocks(height, 4) {
                for x in blocks(width, 4) {
                    let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
                    for (&offset, &weight) in offsets.iter().zip(weights) {
                        let w = _mm_set1_ps(weight);
                        let p = src.add(offset + y * stride + x);
                        a0 = _mm_fmadd_ps(_mm_loadu_ps(p), w, a0);
                        a1 = _mm_fmadd_ps(_mm_loadu_ps(p.add(stride)), w, a1);
                        a2 = _mm_fmadd_ps(_mm_loadu_ps(p.add(2 * stride)), w, a2);
                        a3 = _mm_fmadd_ps(_mm_loadu_ps(p.add(3 * stride)), w, a3);
                    }
                    let q = dst.add(y * width + x);
                    _mm_storeu_ps(q, clamped(a0));
                    _mm_storeu_ps(q.add(width), clamped(a1));
                    _mm_storeu_ps(q.add(2 * width), clamped(a2));
                    _mm_storeu_ps(q.add(3 * width), clamped(a3));
                }
            }
        }
    }
}
