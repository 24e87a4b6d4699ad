//! The channels-last depthwise kernel in plain Rust, for every target without a kernel of its own
//! (armv7, …): blocks of 4 pixels × 8 channels whose accumulators the compiler keeps in vector
//! registers where the target has them; each tap's 8 weights are read once per block.

use super::{blocks, Clamp, Pixels};

/// Channels per block.
const LANES: usize = 8;
/// Pixels per block.
const PIXELS: usize = 4;

/// See [`super::Isa::sum_channels`]; the caller checked every read and write.
pub fn sum_channels(src: &[f32], pixels: &Pixels, clamp: Clamp, out: &mut [f32]) {
    let Pixels {
        taps,
        weights,
        bias,
        channels,
        step,
    } = *pixels;
    let count = out.len() / channels;
    if channels < LANES {
        return scalar(src, pixels, clamp, out);
    }
    let size = if count >= PIXELS { PIXELS } else { 1 };
    for i in blocks(count, size) {
        for c in blocks(channels, LANES) {
            let first: &[f32; LANES] = bias[c..c + LANES].try_into().expect("LANES long");
            let mut acc = [*first; PIXELS];
            for &(s, w) in taps {
                let weight: &[f32; LANES] = weights[w + c..w + c + LANES]
                    .try_into()
                    .expect("LANES long");
                for (p, acc) in acc.iter_mut().enumerate().take(size) {
                    let start = s + (i + p) * step + c;
                    let values: &[f32; LANES] =
                        src[start..start + LANES].try_into().expect("LANES long");
                    for ((a, v), k) in acc.iter_mut().zip(values).zip(weight) {
                        *a += k * v;
                    }
                }
            }
            for (p, acc) in acc.iter().enumerate().take(size) {
                let start = (i + p) * channels + c;
                for (o, a) in out[start..start + LANES].iter_mut().zip(acc) {
                    *o = clamp.apply(*a);
                }
            }
        }
    }
}

/// One value at a time: fewer channels than a block.
pub fn scalar(src: &[f32], pixels: &Pixels, clamp: Clamp, out: &mut [f32]) {
    let channels = pixels.channels;
    for (i, pixel) in out.chunks_exact_mut(channels).enumerate() {
        for (c, o) in pixel.iter_mut().enumerate() {
            let at = i * pixels.step + c;
            let sum = pixels.taps.iter().fold(pixels.bias[c], |acc, &(s, w)| {
                acc + pixels.weights[w + c] * src[s + at]
            });
            *o = clamp.apply(sum);
        }
    }
}
