//! Where a depthwise convolution reads: its shape (either layout), and, channels first, the
//! layout that turns every tap of the filter into one contiguous row for the kernels.
//!
//! A channel's input is copied, with its zero padding, into `stride_h × stride_w` *phase planes*:
//! plane `(a, b)` holds the padded rows `a, a + stride_h, …` and, of each, the columns
//! `b, b + stride_w, …`. Output `(y, x)` then reads tap `(ky, kx)` at row `y + ky / stride_h`,
//! column `x + kx / stride_w` of plane `(ky % stride_h, kx % stride_w)`: for stride 1 and 2 alike,
//! a tap is a fixed offset into the planes, and output row `y` reads `y · plane_w` further on: a
//! whole channel is one `sum_taps` call, written straight into the output. Padding never changes between channels, so the planes
//! are zeroed once per run and each channel only overwrites the positions that hold its input.

use super::kernel::{Clamp, Isa, Rows};

/// The shape of a depthwise convolution of one image (batch 1), channels first or last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub pad_bottom: usize,
    pub pad_right: usize,
}

impl Geometry {
    /// Whether the shape is one this op computes: a non-empty filter that fits in the padded
    /// input, non-zero strides, padding smaller than the filter (so every output sees input).
    pub fn is_valid(&self) -> bool {
        self.channels > 0
            && self.in_h > 0
            && self.in_w > 0
            && self.kernel_h > 0
            && self.kernel_w > 0
            && self.stride_h > 0
            && self.stride_w > 0
            && self.pad_top < self.kernel_h
            && self.pad_bottom < self.kernel_h
            && self.pad_left < self.kernel_w
            && self.pad_right < self.kernel_w
            && self.padded_h() >= self.kernel_h
            && self.padded_w() >= self.kernel_w
    }

    fn padded_h(&self) -> usize {
        self.in_h + self.pad_top + self.pad_bottom
    }

    fn padded_w(&self) -> usize {
        self.in_w + self.pad_left + self.pad_right
    }

    /// Output rows.
    pub fn out_h(&self) -> usize {
        (self.padded_h() - self.kernel_h) / self.stride_h + 1
    }

    /// Output columns.
    pub fn out_w(&self) -> usize {
        (self.padded_w() - self.kernel_w) / self.stride_w + 1
    }

    /// Taps of the filter.
    pub fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w
    }

    /// Values in one channel of the input.
    pub fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    /// Values in one channel of the output.
    pub fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }
}

/// The phase-plane layout of a channels-first [`Geometry`]: the scratch buffers' sizes and each tap's offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    geometry: Geometry,
    plane_h: usize,
    plane_w: usize,
    /// Values in one phase plane (with room for the last row's reach past it).
    plane_len: usize,
    /// Offset of tap `ky * kernel_w + kx` in the planes buffer.
    offsets: Vec<usize>,
    /// Where input column `x` goes in a row of the planes, for strides across columns (a
    /// table instead of a division per value).
    columns: Vec<usize>,
}

impl Layout {
    /// The layout of a valid geometry.
    pub fn new(geometry: Geometry) -> Layout {
        debug_assert!(geometry.is_valid());
        let g = geometry;
        let plane_h = g.padded_h().div_ceil(g.stride_h);
        let plane_w = g.padded_w().div_ceil(g.stride_w);
        // Room for the farthest tap, ((kh-1)/sh) rows and ((kw-1)/sw) columns on.
        let plane_len = plane_h * plane_w + (g.kernel_w - 1) / g.stride_w;
        let offsets = (0..g.kernel_h)
            .flat_map(|ky| (0..g.kernel_w).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| {
                let plane = (ky % g.stride_h) * g.stride_w + kx % g.stride_w;
                plane * plane_len + (ky / g.stride_h) * plane_w + kx / g.stride_w
            })
            .collect();
        let columns = (0..g.in_w)
            .map(|x| {
                let padded_x = x + g.pad_left;
                (padded_x % g.stride_w) * plane_len + padded_x / g.stride_w
            })
            .collect();
        Layout {
            geometry,
            plane_h,
            plane_w,
            plane_len,
            offsets,
            columns,
        }
    }

    /// Values of the planes buffer (every phase plane of one channel).
    pub fn planes_len(&self) -> usize {
        self.geometry.stride_h * self.geometry.stride_w * self.plane_len
    }

    /// Copies one channel's input plane into its positions of the (zero-initialised) planes.
    fn scatter(&self, input: &[f32], planes: &mut [f32]) {
        let g = &self.geometry;
        for (y, row) in input.chunks_exact(g.in_w).enumerate() {
            let padded_y = y + g.pad_top;
            let (a, py) = (padded_y % g.stride_h, padded_y / g.stride_h);
            debug_assert!(py < self.plane_h);
            let start = a * g.stride_w * self.plane_len + py * self.plane_w;
            if g.stride_w == 1 {
                let start = start + g.pad_left;
                planes[start..start + g.in_w].copy_from_slice(row);
                continue;
            }
            let planes = &mut planes[start..];
            for (&value, &column) in row.iter().zip(&self.columns) {
                planes[column] = value;
            }
        }
    }

    /// Computes channels `first..first + output.len() / out_plane` of `input` (every channel,
    /// `channels × in_plane` values) into `output` with `isa`'s kernel. `weights` holds
    /// `channels × taps` values, `bias` one per channel.
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
        let (taps, in_plane, out_plane) = (g.taps(), g.in_plane(), g.out_plane());
        assert_eq!(input.len(), g.channels * in_plane);
        assert_eq!(weights.len(), g.channels * taps);
        assert_eq!(bias.len(), g.channels);
        assert_eq!(output.len() % out_plane, 0);
        let mut planes = vec![0.0f32; self.planes_len()];
        for (k, out) in output.chunks_exact_mut(out_plane).enumerate() {
            let c = first + k;
            self.scatter(&input[c * in_plane..(c + 1) * in_plane], &mut planes);
            let rows = Rows {
                offsets: &self.offsets,
                weights: &weights[c * taps..(c + 1) * taps],
                bias: bias[c],
                width: g.out_w(),
                stride: self.plane_w,
            };
            isa.sum_taps(&planes, &rows, clamp, out);
        }
    }
}

/// The convolution as defined, for the kernels' tests in both layouts.
#[cfg(test)]
pub(super) mod reference {
    use super::Geometry;

    /// A square kernel and stride over `channels` channels; `pads` top, left, bottom, right.
    pub fn square(
        channels: usize,
        in_hw: (usize, usize),
        kernel: usize,
        stride: usize,
        pads: [usize; 4],
    ) -> Geometry {
        Geometry {
            channels,
            in_h: in_hw.0,
            in_w: in_hw.1,
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: stride,
            stride_w: stride,
            pad_top: pads[0],
            pad_left: pads[1],
            pad_bottom: pads[2],
            pad_right: pads[3],
        }
    }

    /// Every output as a plain sum (weights `C × taps`), in the input's layout: channels first
    /// (`C × H × W`) or channels last (`H × W × C`).
    pub fn output(
        g: &Geometry,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        channels_last: bool,
    ) -> Vec<f32> {
        let (c_n, out_plane) = (g.channels, g.out_h() * g.out_w());
        let at = |c: usize, y: usize, x: usize| {
            if channels_last {
                (y * g.in_w + x) * c_n + c
            } else {
                c * g.in_plane() + y * g.in_w + x
            }
        };
        let mut out = vec![0.0; c_n * out_plane];
        for c in 0..c_n {
            for y in 0..g.out_h() {
                for x in 0..g.out_w() {
                    let mut sum = bias[c];
                    for ky in 0..g.kernel_h {
                        for kx in 0..g.kernel_w {
                            let iy = (y * g.stride_h + ky).checked_sub(g.pad_top);
                            let ix = (x * g.stride_w + kx).checked_sub(g.pad_left);
                            if let (Some(iy), Some(ix)) = (iy, ix) {
                                if iy < g.in_h && ix < g.in_w {
                                    sum += weights[c * g.taps() + ky * g.kernel_w + kx]
                                        * input[at(c, iy, ix)];
                                }
                            }
                        }
                    }
                    let pixel = y * g.out_w() + x;
                    let index = if channels_last {
                        pixel * c_n + c
                    } else {
                        c * out_plane + pixel
                    };
                    out[index] = sum;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(in_hw: (usize, usize), kernel: usize, stride: usize, pads: [usize; 4]) -> Geometry {
        reference::square(2, in_hw, kernel, stride, pads)
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
        ];
        for g in cases {
            assert!(g.is_valid(), "{g:?}");
            let input: Vec<f32> = (0..g.channels * g.in_plane())
                .map(|i| (i as f32 * 0.13).sin())
                .collect();
            let weights: Vec<f32> = (0..g.channels * g.taps())
                .map(|i| (i as f32 * 0.7).cos())
                .collect();
            let bias = [0.5, -0.25];
            let want = reference::output(&g, &input, &weights, &bias, false);
            for isa in Isa::available() {
                let mut got = vec![f32::NAN; g.channels * g.out_plane()];
                Layout::new(g).run(isa, &input, &weights, &bias, Clamp::NONE, 0, &mut got);
                let diff = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(diff < 1e-5, "{} {g:?}: {diff}", isa.name());
            }
        }
    }

    #[test]
    fn stride_two_output_size_follows_the_padding() {
        let g = geometry((112, 112), 3, 2, [0, 0, 1, 1]);
        assert_eq!((g.out_h(), g.out_w()), (56, 56));
        let g = geometry((56, 56), 5, 2, [1, 1, 2, 2]);
        assert_eq!((g.out_h(), g.out_w()), (28, 28));
        assert!(!geometry((2, 2), 5, 1, [0, 0, 0, 0]).is_valid());
    }
}
