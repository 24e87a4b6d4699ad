//! The inner loop of the depthwise convolution, one file per instruction set: `portable` (plain
//! Rust that the compiler vectorises where it can: armv7 and every other target), `avx2` (x86-64
//! with AVX2 and FMA, chosen at run time) and `neon` (aarch64, where NEON is always present).
//!
//! Every kernel computes the same thing, a sum of shifted rows:
//! `out[i] = clamp(bias + Σ_t weights[t] · src[offsets[t] + i])` for `i` in `0..out.len()`,
//! where the clamp is `max(lo)` then `min(hi)` (ReLU6 is `lo = 0, hi = 6`; no clamp is
//! `lo = -∞, hi = +∞`). `geometry` lays a channel's input out so that each tap of the filter is
//! one such row.

mod portable;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(target_arch = "aarch64")]
mod neon;

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

    /// `out[i] = clamp(bias + Σ_t weights[t] · src[offsets[t] + i])`.
    ///
    /// # Panics
    /// When `offsets` and `weights` differ in length, or a tap's row runs past `src`; or when this
    /// machine does not run the instruction set (only `Isa::available()` ones may be used).
    pub fn sum_taps(
        self,
        src: &[f32],
        offsets: &[usize],
        weights: &[f32],
        bias: f32,
        clamp: Clamp,
        out: &mut [f32],
    ) {
        assert_eq!(offsets.len(), weights.len(), "one weight per tap");
        let reach = offsets.iter().max().copied().unwrap_or(0) + out.len();
        assert!(reach <= src.len(), "a tap reads past the source");
        match self {
            Isa::Portable => portable::sum_taps(src, offsets, weights, bias, clamp, out),
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
                    unsafe { avx2::sum_taps(src, offsets, weights, bias, clamp, out) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                panic!("the AVX2 kernel exists on x86-64 only")
            }
            Isa::Neon => {
                #[cfg(target_arch = "aarch64")]
                {
                    // SAFETY: NEON is part of every aarch64 CPU; every tap's row lies inside
                    // `src` (checked above).
                    unsafe { neon::sum_taps(src, offsets, weights, bias, clamp, out) }
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
    fn naive(src: &[f32], offsets: &[usize], weights: &[f32], bias: f32, clamp: Clamp) -> Vec<f32> {
        let n = src.len() - offsets.iter().max().copied().unwrap_or(0);
        (0..n)
            .map(|i| {
                let sum = offsets
                    .iter()
                    .zip(weights)
                    .fold(bias, |acc, (&o, &w)| acc + w * src[o + i]);
                clamp.apply(sum)
            })
            .collect()
    }

    proptest::proptest! {
        /// Every kernel this machine runs gives the naive sum on every length (vector bodies and
        /// scalar tails), tap count and clamp.
        #[test]
        fn every_kernel_sums_the_taps(
            len in 0usize..150,
            offsets in proptest::collection::vec(0usize..40, 0..26),
            seed in 0u32..1000,
            clamped in proptest::bool::ANY,
        ) {
            let src: Vec<f32> = (0..len + 40)
                .map(|i| ((i as f32 + seed as f32) * 0.37).sin() * 4.0)
                .collect();
            let weights: Vec<f32> = (0..offsets.len()).map(|t| ((t as f32) * 0.71 + 0.2).cos()).collect();
            let clamp = if clamped { Clamp { lo: 0.0, hi: 6.0 } } else { Clamp::NONE };
            let reach = offsets.iter().max().copied().unwrap_or(0) + len;
            let src = &src[..reach];
            let want = naive(src, &offsets, &weights, 0.25, clamp);
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; len];
                isa.sum_taps(src, &offsets, &weights, 0.25, clamp, &mut out);
                for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                    proptest::prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{} at {i}: {got} against {want}", isa.name());
                }
            }
        }
    }

    #[test]
    fn the_best_kernel_is_one_this_machine_runs() {
        assert!(Isa::available().contains(&Isa::best()));
        assert_eq!(Isa::available()[0], Isa::Portable);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Isa::best(), Isa::Neon);
    }
}
