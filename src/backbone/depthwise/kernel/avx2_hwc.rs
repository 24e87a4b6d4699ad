//! The channels-last depthwise kernel for x86-64 with AVX2 and FMA: blocks of 4 pixels × 16
//! channels (two vectors) in eight independent accumulators, each tap's weight vectors loaded
//! once per block; a lone pixel (the borders, where the taps differ pixel by pixel) takes 32
//! channels at a time. Fewer than 8 channels go to the portable scalar loop.

use std::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps,
    _mm256_storeu_ps,
};

use super::{blocks, portable_hwc, Clamp, Pixels};

/// Lanes of a vector.
const LANES: usize = 8;

/// See [`super::Isa::sum_channels`].
///
/// # Safety
/// The CPU has AVX2 and FMA, and the caller checked every read and write.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_channels(src: &[f32], pixels: &Pixels, clamp: Clamp, out: &mut [f32]) {
    let channels = pixels.channels;
    let count = out.len() / channels;
    if channels < LANES {
        return portable_hwc::scalar(src, pixels, clamp, out);
    }
    // SAFETY (every call): blocks stay inside the pixels and the channels (`blocks`), and the
    // caller checked that every tap's pixels lie inside `src` and its weights inside `weights`.
    unsafe {
        if count >= 4 {
            for i in blocks(count, 4) {
                if channels >= 2 * LANES {
                    for c in blocks(channels, 2 * LANES) {
                        block::<4, 2>(src, pixels, clamp, out, i, c);
                    }
                } else {
                    for c in blocks(channels, LANES) {
                        block::<4, 1>(src, pixels, clamp, out, i, c);
                    }
                }
            }
        } else {
            for i in 0..count {
                if channels >= 4 * LANES {
                    for c in blocks(channels, 4 * LANES) {
                        block::<1, 4>(src, pixels, clamp, out, i, c);
                    }
                } else {
                    for c in blocks(channels, LANES) {
                        block::<1, 1>(src, pixels, clamp, out, i, c);
                    }
                }
            }
        }
    }
}

/// Pixels `i..i + P`, channels `c..c + V × 8`.
///
/// # Safety
/// As [`sum_channels`], with the block inside the output and the channels.
#[target_feature(enable = "avx2,fma")]
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
        let mut bias = [_mm256_set1_ps(0.0); V];
        for (v, b) in bias.iter_mut().enumerate() {
            *b = _mm256_loadu_ps(pixels.bias.as_ptr().add(c + v * LANES));
        }
        let mut acc = [bias; P];
        let base = i * pixels.step + c;
        for &(s, w) in pixels.taps {
            let mut k = [_mm256_set1_ps(0.0); V];
            for (v, k) in k.iter_mut().enumerate() {
                *k = _mm256_loadu_ps(weights.add(w + c + v * LANES));
            }
            let at = src.add(s + base);
            for (p, acc) in acc.iter_mut().enumerate() {
                for (v, (a, k)) in acc.iter_mut().zip(&k).enumerate() {
                    let x = _mm256_loadu_ps(at.add(p * pixels.step + v * LANES));
                    *a = _mm256_fmadd_ps(x, *k, *a);
                }
            }
        }
        let (lo, hi) = (_mm256_set1_ps(clamp.lo), _mm256_set1_ps(clamp.hi));
        let clamped = |v: __m256| _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        for (p, acc) in acc.iter().enumerate() {
            let q = dst.add((i + p) * pixels.channels + c);
            for (v, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(q.add(v * LANES), clamped(*a));
            }
        }
    }
}
