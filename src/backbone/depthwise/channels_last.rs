//! Where a channels-last (NHWC, HWC) depthwise convolution reads. The channel is the contiguous
//! axis, so no copy is needed: output row `y` reads the input rows its filter covers, and an
//! output pixel whose filter lies wholly inside the input (the *interior* columns, the same for
//! every row) reads tap `(ky, kx)` at a fixed offset from the pixel before it plus `stride_w ×
//! channels`. So each row is one kernel call over its interior columns (the taps of rows in the
//! padding left out) and one call per border pixel with only the taps that land inside the input:
//! the zero padding is never read nor written anywhere.

use super::geometry::Geometry;
use super::kernel::{Clamp, Isa, Pixels};

/// The plan of one channels-last depthwise convolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelsLast {
    geometry: Geometry,
    /// Output columns `interior.0..interior.1` have their whole filter inside the input (an
    /// empty range when none has).
    interior: (usize, usize),
}

impl ChannelsLast {
    /// The plan of a valid geometry.
    pub fn new(geometry: Geometry) -> ChannelsLast {
        debug_assert!(geometry.is_valid());
        let g = geometry;
        let first = g.pad_left.div_ceil(g.stride_w).min(g.out_w());
        // Column x is inside when x·stride_w - pad_left + kernel_w <= in_w.
        let end = (g.in_w + g.pad_left)
            .checked_sub(g.kernel_w)
            .map_or(0, |room| room / g.stride_w + 1);
        ChannelsLast {
            geometry,
            interior: (first, end.clamp(first, g.out_w())),
        }
    }

    /// The weights as this plan reads them, tap by tap (`taps × channels`), from ONNX's
    /// channel-by-channel order (`channels × taps`).
    pub fn arrange_weights(&self, weights: &[f32]) -> Vec<f32> {
        let (channels, taps) = (self.geometry.channels, self.geometry.taps());
        assert_eq!(weights.len(), channels * taps);
        (0..taps)
            .flat_map(|t| (0..channels).map(move |c| weights[c * taps + t]))
            .collect()
    }

    /// Values of one output row (`out_w × channels`).
    pub fn row_len(&self) -> usize {
        self.geometry.out_w() * self.geometry.channels
    }

    /// Computes output rows `first..first + output.len() / row_len` of `input` (the whole image,
    /// `in_h × in_w × channels` values) into `output` with `isa`'s kernel. `weights` holds
    /// `taps × channels` values (`arrange_weights`), `bias` one per channel.
    ///
    /// # Panics
    /// On slices of the wrong lengths.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        isa: Isa,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        clamp: Clamp,
        first: usize,
        output: &mut [f32],
    ) {
        let g = &self.geometry;
        let channels = g.channels;
        assert_eq!(input.len(), g.in_plane() * channels);
        assert_eq!(weights.len(), g.taps() * channels);
        assert_eq!(bias.len(), channels);
        assert_eq!(output.len() % self.row_len(), 0);
        let (interior_first, interior_end) = self.interior;
        let mut taps: Vec<(usize, usize)> = Vec::with_capacity(g.taps());
        for (k, row) in output.chunks_exact_mut(self.row_len()).enumerate() {
            let y = first + k;
            // The filter's rows that land inside the input.
            let top = y * g.stride_h;
            let rows = g.pad_top.saturating_sub(top)..g.kernel_h.min(g.in_h + g.pad_top - top);
            if interior_first < interior_end {
                taps.clear();
                let x0 = interior_first * g.stride_w - g.pad_left;
                for ky in rows.clone() {
                    let iy = top + ky - g.pad_top;
                    taps.extend((0..g.kernel_w).map(|kx| {
                        let source = (iy * g.in_w + x0 + kx) * channels;
                        (source, (ky * g.kernel_w + kx) * channels)
                    }));
                }
                let pixels = Pixels {
                    taps: &taps,
                    weights,
                    bias,
                    channels,
                    step: g.stride_w * channels,
                };
                let out = &mut row[interior_first * channels..interior_end * channels];
                isa.sum_channels(input, &pixels, clamp, out);
            }
            let border = (0..interior_first).chain(interior_end..g.out_w());
            for x in border {
                taps.clear();
                let left = x * g.stride_w;
                let columns =
                    g.pad_left.saturating_sub(left)..g.kernel_w.min(g.in_w + g.pad_left - left);
                for ky in rows.clone() {
                    let iy = top + ky - g.pad_top;
                    taps.extend(columns.clone().map(|kx| {
                        let source = (iy * g.in_w + left + kx - g.pad_left) * channels;
                        (source, (ky * g.kernel_w + kx) * channels)
                    }));
                }
                let pixels = Pixels {
                    taps: &taps,
                    weights,
                    bias,
                    channels,
                    step: channels,
                };
                isa.sum_channels(input, &pixels, clamp, &mut row[x * channels..][..channels]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::depthwise::geometry::reference;

    fn geometry(in_hw: (usize, usize), kernel: usize, stride: usize, pads: [usize; 4]) -> Geometry {
        reference::square(19, in_hw, kernel, stride, pads)
    }

    #[test]
    fn the_shapes_of_efficientnet_lite0_match_the_definition() {
        let cases = [
            geometry((112, 112), 3, 1, [1, 1, 1, 1]),
            geometry((112, 112), 3, 2, [0, 0, 1, 1]),
            geometry((56, 56), 5, 2, [1, 1, 2, 2]),
            geometry((28, 28), 5, 1, [2, 2, 2, 2]),
            geometry((7, 7), 3, 1, [1, 1, 1, 1]),
            geometry((9, 11), 5, 2, [2, 2, 2, 2]),
            // No interior column at all: every pixel is a border pixel.
            geometry((3, 4), 5, 1, [2, 2, 2, 2]),
            geometry((5, 1), 5, 1, [4, 4, 0, 0]),
        ];
        for g in cases {
            assert!(g.is_valid(), "{g:?}");
            let input: Vec<f32> = (0..g.channels * g.in_plane())
                .map(|i| (i as f32 * 0.13).sin())
                .collect();
            let weights: Vec<f32> = (0..g.channels * g.taps())
                .map(|i| (i as f32 * 0.7).cos())
                .collect();
            let bias: Vec<f32> = (0..g.channels).map(|c| c as f32 * 0.1 - 0.5).collect();
            let want = reference::output(&g, &input, &weights, &bias, true);
            let plan = ChannelsLast::new(g);
            let arranged = plan.arrange_weights(&weights);
            for isa in Isa::available() {
                let mut got = vec![f32::NAN; g.channels * g.out_plane()];
                plan.run(isa, &input, &arranged, &bias, Clamp::NONE, 0, &mut got);
                let diff = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(diff < 1e-5, "{} {g:?}: {diff}", isa.name());
                // Row by row (as the threads split it) gives the same values.
                let mut rows = vec![f32::NAN; got.len()];
                for (y, row) in rows.chunks_exact_mut(plan.row_len()).enumerate() {
                    plan.run(isa, &input, &arranged, &bias, Clamp::NONE, y, row);
                }
                assert_eq!(rows, got, "{} {g:?}", isa.name());
            }
        }
    }
}
