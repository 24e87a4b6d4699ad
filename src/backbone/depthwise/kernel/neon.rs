//! The depthwise kernel for aarch64's Advanced SIMD (NEON): 16 outputs per step in four
//! independent accumulators, then 4 at a time, then one at a time.

use std::arch::aarch64::{
    float32x4_t, vdupq_n_f32, vfmaq_f32, vld1q_f32, vmaxq_f32, vminq_f32, vst1q_f32,
};

use super::Clamp;

/// `out[i] = clamp(bias + Σ_t weights[t] · src[offsets[t] + i])`.
///
/// # Safety
/// `offsets[t] + out.len() <= src.len()` for every tap (NEON itself is part of every aarch64 CPU).
#[target_feature(enable = "neon")]
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
        vdupq_n_f32(bias),
        vdupq_n_f32(clamp.lo),
        vdupq_n_f32(clamp.hi),
    );
    let clamp_v = |x: float32x4_t| vminq_f32(vmaxq_f32(x, lo), hi);
    let mut i = 0;
    // SAFETY (every load and store below): `i + width <= n`, and each tap's row
    // `src[offset..offset + n]` lies inside `src` (the caller's contract).
    unsafe {
        while i + 16 <= n {
            let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
            for (&offset, &weight) in offsets.iter().zip(weights) {
                let w = vdupq_n_f32(weight);
                let p = src.add(offset + i);
                a0 = vfmaq_f32(a0, vld1q_f32(p), w);
                a1 = vfmaq_f32(a1, vld1q_f32(p.add(4)), w);
                a2 = vfmaq_f32(a2, vld1q_f32(p.add(8)), w);
                a3 = vfmaq_f32(a3, vld1q_f32(p.add(12)), w);
            }
            let q = dst.add(i);
            vst1q_f32(q, clamp_v(a0));
            vst1q_f32(q.add(4), clamp_v(a1));
            vst1q_f32(q.add(8), clamp_v(a2));
            vst1q_f32(q.add(12), clamp_v(a3));
            i += 16;
        }
        while i + 4 <= n {
            let mut a = b;
            for (&offset, &weight) in offsets.iter().zip(weights) {
                a = vfmaq_f32(a, vld1q_f32(src.add(offset + i)), vdupq_n_f32(weight));
            }
            vst1q_f32(dst.add(i), clamp_v(a));
            i += 4;
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
