//! The depthwise kernel for x86-64 with AVX2 and FMA: 32 outputs per step in four independent
//! accumulators (so consecutive fused multiply-adds do not wait on each other), then 8 at a
//! time, then one at a time.

use std::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps,
    _mm256_storeu_ps,
};

use super::Clamp;

/// `out[i] = clamp(bias + Σ_t weights[t] · src[offsets[t] + i])`.
///
/// # Safety
/// The CPU has AVX2 and FMA, and `offsets[t] + out.len() <= src.len()` for every tap.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_taps(
    src: &[f32],
    offsets: &[usize],
    weights: &[f32],
    bias: f32,
    clamp: Clamp,
    out: &mut [f32],
) {
    let n = out.len();
    let (src, dst) = (src.as_ptr(), out.as_mut_ptr());
    let (b, lo, hi) = (
        _mm256_set1_ps(bias),
        _mm256_set1_ps(clamp.lo),
        _mm256_set1_ps(clamp.hi),
    );
    let clamp_v = |x: __m256| _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    let mut i = 0;
    // SAFETY (every load and store below): `i + width <= n`, and each tap's row
    // `src[offset..offset + n]` lies inside `src` (the caller's contract).
    unsafe {
        while i + 32 <= n {
            let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
            for (&offset, &weight) in offsets.iter().zip(weights) {
                let w = _mm256_set1_ps(weight);
                let p = src.add(offset + i);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p), w, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(8)), w, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(16)), w, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(24)), w, a3);
            }
            let q = dst.add(i);
            _mm256_storeu_ps(q, clamp_v(a0));
            _mm256_storeu_ps(q.add(8), clamp_v(a1));
            _mm256_storeu_ps(q.add(16), clamp_v(a2));
            _mm256_storeu_ps(q.add(24), clamp_v(a3));
            i += 32;
        }
        while i + 8 <= n {
            let mut a = b;
            for (&offset, &weight) in offsets.iter().zip(weights) {
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(src.add(offset + i)),
                    _mm256_set1_ps(weight),
                    a,
                );
            }
            _mm256_storeu_ps(dst.add(i), clamp_v(a));
            i += 8;
        }
        while i < n {
            let mut a = bias;
            for (&offset, &weight) in offsets.iter().zip(weights) {
                a = weight.mul_add(*src.add(offset + i), a);
            }
            *dst.add(i) = clamp.apply(a);
            i += 1;
        }
    }
}
