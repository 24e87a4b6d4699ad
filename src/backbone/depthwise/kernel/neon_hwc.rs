//! The channels-last depthwise kernel for aarch64's Advanced SIMD (NEON): blocks of 4 pixels × 16
//! channels (four vectors) in sixteen independent accumulators (of the 32 vector registers),
//! each tap's weight vectors loaded once per block; a lone pixel (the borders, where the taps
//! differ pixel by pixel) takes 16 channels at a time. Fewer than 4 channels go to the portable
//! scalar loop.

use std::arch::aarch64::{
    float32x4_t, vdupq_n_f32, vfmaq_f32, vld1q_f32, vmaxq_f32, vminq_f32, vst1q_f32,
};

use super::{blocks, portable_hwc, Clamp, Pixels};

/// Lanes of a vector.
const LANES: usize = 4;

/// See [`super::Isa::sum_channels`].
///
/// # Safety
/// The caller checked every read and write (NEON itself is part of every aarch64 CPU).
#[target_feature(enable = "neon")]
pub unsafe fn sum_channels(src: &[f32], pixels: &Pixels, clamp: Clamp, out: &mut [f32]) {
    let channels = pixels.channels;
    let count = out.len() / channels;
    if channels < LANES {
        return portable_hwc::scalar(src, pixels, clamp, out);
    }
    let size = if count >= 4 { 4 } else { 1 };
    // SAFETY (every call): blocks stay inside the pixels and the channels (`blocks`), and the
    // caller checked that every tap's pixels lie inside `src` and its weights inside `weights`.
    unsafe {
        for i in blocks(count, size) {
            match (size, channels >= 4 * LANES) {
                (4, true) => {
                    for c in blocks(channels, 4 * LANES) {
                        block::<4, 4>(src, pixels, clamp, out, i, c);
                    }
                }
                (4, false) => {
                    for c in blocks(channels, LANES) {
                        block::<4, 1>(src, pixels, clamp, out, i, c);
                    }
                }
                (_, true) => {
                    for c in blocks(channels, 4 * LANES) {
                        block::<1, 4>(src, pixels, clamp, out, i, c);
                    }
                }
                (_, false) => {
                    for c in blocks(channels, LANES) {
                        block::<1, 1>(src, pixels, clamp, out, i, c);
                    }
                }
            }
        }
    }
}

/// Pixels `i..i + P`, channels `c..c + V × 4`.
///
/// # Safety
/// As [`sum_channels`], with the block inside the output and the channels.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn block<const P: usize, const V: usize>(
    src: &[f32],
    pixels: &Pixels,
    clamp: Clamp,
    out: &mut [f32],
    i: usize,
    c: usize,
) {
    let (src, weights, dst) = (src.as_ptr(), pixels.weights.as_ptr(), out.as_mut_ptr());
    // SAFETY: see the function's contract.
    unsafe {
        let mut bias = [vdupq_n_f32(0.0); V];
        for (v, b) in bias.iter_mut().enumerate() {
            *b = vld1q_f32(pixels.bias.as_ptr().add(c + v * LANES));
        }
        let mut acc = [bias; P];
        let base = i * pixels.step + c;
        for &(s, w) in pixels.taps {
            let mut k = [vdupq_n_f32(0.0); V];
            for (v, k) in k.iter_mut().enumerate() {
                *k = vld1q_f32(weights.add(w + c + v * LANES));
            }
            let at = src.add(s + base);
            for (p, acc) in acc.iter_mut().enumerate() {
                for (v, (a, k)) in acc.iter_mut().zip(&k).enumerate() {
                    let x = vld1q_f32(at.add(p * pixels.step + v * LANES));
                    *a = vfmaq_f32(*a, x, *k);
                }
            }
        }
        let (lo, hi) = (vdupq_n_f32(clamp.lo), vdupq_n_f32(clamp.hi));
        let clamped = |v: float32x4_t| vminq_f32(vmaxq_f32(v, lo), hi);
        for (p, acc) in acc.iter().enumerate() {
            let q = dst.add((i + p) * pixels.channels + c);
            for (v, a) in acc.iter().enumerate() {
                vst1q_f32(q.add(v * LANES), clamped(*a));
            }
        }
    }
}
