//! The depthwise kernel for aarch64's Advanced SIMD (NEON): blocks of 4 rows × 4 columns in four
//! independent accumulators, so consecutive fused multiply-adds do not wait on each other.

use std::arch::aarch64::{
    float32x4_t, vdupq_n_f32, vfmaq_f32, vld1q_f32, vmaxq_f32, vminq_f32, vst1q_f32,
};

use super::{blocks, portable, Clamp, Rows};

/// See [`super::Isa::sum_taps`].
///
/// # Safety
/// The caller checked every read and write (NEON itself is part of every aarch64 CPU).
#[target_feature(enable = "neon")]
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
    let (b, lo, hi) = (
        vdupq_n_f32(bias),
        vdupq_n_f32(clamp.lo),
        vdupq_n_f32(clamp.hi),
    );
    let clamped = |v: float32x4_t| vminq_f32(vmaxq_f32(v, lo), hi);
    // SAFETY (every load and store below): blocks stay inside the rows (`blocks`), and the
    // caller checked that every tap's rows lie inside `src` and the rows inside `out`.
    unsafe {
        for y in blocks(height, 4) {
            for x in blocks(width, 4) {
                let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
                for (&offset, &weight) in offsets.iter().zip(weights) {
                    let w = vdupq_n_f32(weight);
                    let p = src.add(offset + y * stride + x);
                    a0 = vfmaq_f32(a0, vld1q_f32(p), w);
                    a1 = vfmaq_f32(a1, vld1q_f32(p.add(stride)), w);
                    a2 = vfmaq_f32(a2, vld1q_f32(p.add(2 * stride)), w);
                    a3 = vfmaq_f32(a3, vld1q_f32(p.add(3 * stride)), w);
                }
                let q = dst.add(y * width + x);
                vst1q_f32(q, clamped(a0));
                vst1q_f32(q.add(width), clamped(a1));
                vst1q_f32(q.add(2 * width), clamped(a2));
                vst1q_f32(q.add(3 * width), clamped(a3));
            }
        }
    }
}
