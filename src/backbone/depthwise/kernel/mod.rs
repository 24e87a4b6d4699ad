//! The inner loops of the depthwise convolution, two per instruction set, one file each:
//! `portable` (plain Rust that the compiler vectorises where it can: armv7 and every other
//! target), `avx2` (x86-64 with AVX2 and FMA, chosen at run time) and `neon` (aarch64, where NEON
//! is always present); the `*_hwc` files hold the channels-last kernels.
//!
//! Channels first (NCHW, CHW), every kernel computes the same thing, a sum of shifted rows: for output row `y` and column `x`
//! (`out` is rows of `width`), `out[y·width + x] = clamp(bias + Σ_t weights[t] ·
//! src[offsets[t] + y·stride + x])`, where the clamp is `max(lo)` then `min(hi)` (ReLU6 is
//! `lo = 0, hi = 6`; no clamp is `lo = -∞, hi = +∞`). `geometry` lays a channel's input out so
//! that each tap of the filter is such a grid of rows. The SIMD kernels work in blocks of 4 rows
//! × one vector; a row or a column count that is not a multiple of the block ends with a block
//! that overlaps the one before (the same values are written twice), so nothing is computed
//! outside the output and no scalar tail is needed.
//!
//! Channels last (NHWC, HWC), the channel is the contiguous axis, so the vectors run across
//! channels: for output pixel `i` of a run of pixels (`out` is pixels of `channels` values) and
//! channel `c`, `out[i·channels + c] = clamp(bias[c] + Σ_t weights[w_t + c] · src[s_t + i·step +
//! c])`, where tap `t` reads its weights (one per channel) at `w_t` and its source pixel at `s_t`
//! (`Pixels`). A tap's weights are loaded once per block of 4 pixels; a channel count that is not
//! a multiple of the block ends with an overlapping block, as the rows do above.

mod portable;
mod portable_hwc;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_hwc;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
mod neon_hwc;

/// The taps and the shape of one channel's sum.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// Where each tap's grid starts in the source.
    pub offsets: &'a [usize],
    /// One weight per tap.
    pub weights: &'a [f32],
    pub bias: f32,
    /// Output columns per row.
    pub width: usize,
    /// Source values from one row to the next (at least `width`).
    pub stride: usize,
}

/// The taps and the shape of a run of output pixels, channels last.
#[derive(Debug, Clone, Copy)]
pub struct Pixels<'a> {
    /// For each tap: where its source pixel starts for the run's first output pixel, and where
    /// its weights (one per channel) start in `weights`.
    pub taps: &'a [(usize, usize)],
    /// The weights, `channels` values per tap.
    pub weights: &'a [f32],
    /// One value per channel.
    pub bias: &'a [f32],
    pub channels: usize,
    /// Source values from one output pixel to the next (`stride_w × channels`).
    pub step: usize,
}

/// The starts of blocks of `size` covering `0..n` (`n >= size`): `0, size, 2·size, …`, and
/// `n - size` last when `size` does not divide `n`.
fn blocks(n: usize, size: usize) -> impl Iterator<Item = usize> {
    debug_assert!(n >= size && size > 0);
    let whole = n / size;
    let tail = (!n.is_multiple_of(size)).then_some(n - size);
    (0..whole).map(move |i| i * size).chain(tail)
}

/// What a kernel clamps its sums to: `max(lo)` then `min(hi)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamp {
    pub lo: f32,
    pub hi: f32,
}

impl Clamp {
    /// No clamp.
    pub const NONE: Clamp = Clamp {
        lo: f32::NEG_INFINITY,
        hi: f32::INFINITY,
    };

    /// Clamps `x` as every kernel does.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        x.max(self.lo).min(self.hi)
    }
}

/// An instruction set a kernel is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust; runs everywhere.
    Portable,
    /// x86-64 with AVX2 and FMA (checked at run time).
    Avx2Fma,
    /// aarch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// The fastest kernel this machine runs.
    pub fn best() -> Isa {
        *Isa::available().last().unwrap_or(&Isa::Portable)
    }

    /// Every kernel this machine runs, the portable one first.
    pub fn available() -> Vec<Isa> {
        // `mut` is unused where neither SIMD set exists (armv7 and the rest).
        #[cfg_attr(
            not(any(target_arch = "x86_64", target_arch = "aarch64")),
            allow(unused_mut)
        )]
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            isas.push(Isa::Avx2Fma);
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            isas.push(Isa::Neon);
        }
        isas
    }

    /// A short name for profiles and logs.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Neon => "neon",
        }
    }

    /// `out[y·width + x] = clamp(bias + Σ_t weights[t] · src[offsets[t] + y·stride + x])` for
    /// every row `y` of `out` and column `x < width`.
    ///
    /// # Panics
    /// When the taps and weights differ in length, `out` is not whole rows, `stride < width`, or
    /// a tap's rows run past `src`; or when this machine does not run the instruction set (only
    /// `Isa::available()` ones may be used).
    pub fn sum_taps(self, src: &[f32], rows: &Rows, clamp: Clamp, out: &mut [f32]) {
        assert_eq!(rows.offsets.len(), rows.weights.len(), "one weight per tap");
        assert!(
            rows.width > 0 && out.len().is_multiple_of(rows.width),
            "whole rows"
        );
        assert!(rows.stride >= rows.width, "rows do not overlap");
        if out.is_empty() {
            return;
        }
        let height = out.len() / rows.width;
        let last = rows.offsets.iter().max().copied().unwrap_or(0);
        let reach = last + (height - 1) * rows.stride + rows.width;
        assert!(reach <= src.len(), "a tap reads past the source");
        match self {
            Isa::Portable => portable::sum_taps(src, rows, clamp, out),
            Isa::Avx2Fma => {
                #[cfg(target_arch = "x86_64")]
                {
                    assert!(
                        std::is_x86_feature_detected!("avx2")
                            && std::is_x86_feature_detected!("fma"),
                        "this CPU lacks AVX2 or FMA"
                    );
                    // SAFETY: the CPU has AVX2 and FMA (checked above) and every tap's row lies
                    // inside `src` (checked above).
                    unsafe { avx2::sum_taps(src, rows, clamp, out) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                panic!("the AVX2 kernel exists on x86-64 only")
            }
            Isa::Neon => {
                #[cfg(target_arch = "aarch64")]
                {
                    // SAFETY: NEON is part of every aarch64 CPU; every tap's row lies inside
                    // `src` (checked above).
                    unsafe { neon::sum_taps(src, rows, clamp, out) }
                }
                #[cfg(not(target_arch = "aarch64"))]
                panic!("the NEON kernel exists on aarch64 only")
            }
        }
    }

    /// `out[i·channels + c] = clamp(bias[c] + Σ_(s, w) weights[w + c] · src[s + i·step + c])`
    /// for every pixel `i` of `out` and channel `c < channels`, `(s, w)` running over the taps.
    ///
    /// # Panics
    /// When `out` is not whole pixels, the bias is not one value per channel, a tap's weights run
    /// past `weights` or its pixels past `src`; or when this machine does not run the
    /// instruction set (only `Isa::available()` ones may be used).
    pub fn sum_channels(self, src: &[f32], pixels: &Pixels, clamp: Clamp, out: &mut [f32]) {
        let channels = pixels.channels;
        assert!(
            channels > 0 && out.len().is_multiple_of(channels),
            "whole pixels"
        );
        assert_eq!(pixels.bias.len(), channels, "one bias per channel");
        if out.is_empty() {
            return;
        }
        let last = (out.len() / channels - 1) * pixels.step + channels;
        for &(s, w) in pixels.taps {
            assert!(s + last <= src.len(), "a tap reads past the source");
            assert!(
                w + channels <= pixels.weights.len(),
                "a tap's weights run past the end"
            );
        }
        match self {
            Isa::Portable => portable_hwc::sum_channels(src, pixels, clamp, out),
            Isa::Avx2Fma => {
                #[cfg(target_arch = "x86_64")]
                {
                    assert!(
                        std::is_x86_feature_detected!("avx2")
                            && std::is_x86_feature_detected!("fma"),
                        "this CPU lacks AVX2 or FMA"
                    );
                    // SAFETY: the CPU has AVX2 and FMA, and every tap's pixels and weights lie
                    // inside `src` and `weights` (both checked above).
                    unsafe { avx2_hwc::sum_channels(src, pixels, clamp, out) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                panic!("the AVX2 kernel exists on x86-64 only")
            }
            Isa::Neon => {
                #[cfg(target_arch = "aarch64")]
                {
                    // SAFETY: NEON is part of every aarch64 CPU; every tap's pixels and weights
                    // lie inside `src` and `weights` (checked above).
                    unsafe { neon_hwc::sum_channels(src, pixels, clamp, out) }
                }
                #[cfg(not(target_arch = "aarch64"))]
                panic!("the NEON kernel exists on aarch64 only")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum as written, one output at a time.
    fn naive(src: &[f32], rows: &Rows, height: usize, clamp: Clamp) -> Vec<f32> {
        let mut out = Vec::new();
        for y in 0..height {
            for x in 0..rows.width {
                let sum = rows
                    .offsets
                    .iter()
                    .zip(rows.weights)
                    .fold(rows.bias, |acc, (&o, &w)| {
                        acc + w * src[o + y * rows.stride + x]
                    });
                out.push(clamp.apply(sum));
            }
        }
        out
    }

    proptest::proptest! {
        /// Every kernel this machine runs gives the naive sum on every shape (whole blocks,
        /// overlapping last blocks, rows too narrow or too few for a block), tap count and clamp.
        #[test]
        fn every_kernel_sums_the_taps(
            width in 1usize..40,
            height in 0usize..12,
            gap in 0usize..5,
            offsets in proptest::collection::vec(0usize..40, 0..26),
            seed in 0u32..1000,
            clamped in proptest::bool::ANY,
        ) {
            let stride = width + gap;
            let len = offsets.iter().max().copied().unwrap_or(0) + height * stride + width;
            let src: Vec<f32> = (0..len)
                .map(|i| ((i as f32 + seed as f32) * 0.37).sin() * 4.0)
                .collect();
            let weights: Vec<f32> =
                (0..offsets.len()).map(|t| ((t as f32) * 0.71 + 0.2).cos()).collect();
            let clamp = if clamped { Clamp { lo: 0.0, hi: 6.0 } } else { Clamp::NONE };
            let rows = Rows { offsets: &offsets, weights: &weights, bias: 0.25, width, stride };
            let want = naive(&src, &rows, height, clamp);
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; width * height];
                isa.sum_taps(&src, &rows, clamp, &mut out);
                for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                    proptest::prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{} at {i}: {got} against {want}", isa.name());
                }
            }
        }
    }

    proptest::proptest! {
        /// Every kernel this machine runs gives the naive channels-last sum on every shape
        /// (whole and overlapping blocks of pixels and of channels, too few of either for a
        /// block), tap count, tap order and clamp.
        #[test]
        fn every_kernel_sums_the_channels(
            channels in 1usize..70,
            count in 0usize..11,
            step_pixels in 1usize..4,
            taps in proptest::collection::vec((0usize..30, 0usize..25), 0..26),
            seed in 0u32..1000,
            clamped in proptest::bool::ANY,
        ) {
            let step = step_pixels * channels;
            let taps: Vec<(usize, usize)> =
                taps.iter().map(|&(s, w)| (s * channels + s % 3, w * channels)).collect();
            let reach = count.saturating_sub(1) * step + channels;
            let len = taps.iter().map(|&(s, _)| s).max().unwrap_or(0) + reach;
            let src: Vec<f32> = (0..len)
                .map(|i| ((i as f32 + seed as f32) * 0.37).sin() * 4.0)
                .collect();
            let weights: Vec<f32> = (0..25 * channels).map(|t| ((t as f32) * 0.71 + 0.2).cos()).collect();
            let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.05 - 0.7).collect();
            let clamp = if clamped { Clamp { lo: 0.0, hi: 6.0 } } else { Clamp::NONE };
            let pixels = Pixels { taps: &taps, weights: &weights, bias: &bias, channels, step };
            let mut want = Vec::new();
            for i in 0..count {
                for c in 0..channels {
                    let sum = taps.iter().fold(bias[c], |acc, &(s, w)| {
                        acc + weights[w + c] * src[s + i * step + c]
                    });
                    want.push(clamp.apply(sum));
                }
            }
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; channels * count];
                isa.sum_channels(&src, &pixels, clamp, &mut out);
                for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                    proptest::prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{} at {i}: {got} against {want}", isa.name());
                }
            }
        }
    }

    #[test]
    fn blocks_cover_every_column_once_or_twice_and_never_past_the_end() {
        assert_eq!(blocks(16, 8).collect::<Vec<_>>(), [0, 8]);
        assert_eq!(blocks(14, 8).collect::<Vec<_>>(), [0, 6]);
        assert_eq!(blocks(7, 4).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(blocks(4, 4).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn the_best_kernel_is_one_this_machine_runs() {
        assert!(Isa::available().contains(&Isa::best()));
        assert_eq!(Isa::available()[0], Isa::Portable);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Isa::best(), Isa::Neon);
    }
}
