//! The depthwise kernel in plain Rust, for every target without a kernel of its own (armv7, …):
//! blocks of 4 rows × 8 columns whose accumulators the compiler keeps in vector registers where
//! the target has them.

use super::{blocks, Clamp, Rows};

/// Columns per block.
const LANES: usize = 8;
/// Rows per block.
const ROWS: usize = 4;

/// See [`super::Isa::sum_taps`]; the caller checked every read and write.
pub fn sum_taps(src: &[f32], rows: &Rows, clamp: Clamp, out: &mut [f32]) {
    let Rows {
        offsets,
        weights,
        bias,
        width,
        stride,
    } = *rows;
    let height = out.len() / width;
    if width < LANES || height < ROWS {
        return scalar(src, rows, clamp, out);
    }
    for y in blocks(height, ROWS) {
        for x in blocks(width, LANES) {
            let mut acc = [[bias; LANES]; ROWS];
            for (&offset, &weight) in offsets.iter().zip(weights) {
                for (r, acc) in acc.iter_mut().enumerate() {
                    let start = offset + (y + r) * stride + x;
                    let row: &[f32; LANES] = src[start..start + LANES]
                        .try_into()
                        .expect("a block is LANES long");
                    for (a, v) in acc.iter_mut().zip(row) {
                        *a += weight * v;
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let start = (y + r) * width + x;
                for (o, a) in out[start..start + LANES].iter_mut().zip(acc) {
                    *o = clamp.apply(*a);
                }
            }
        }
    }
}

/// One output at a time: rows narrower than a block, or fewer rows than a block.
pub fn scalar(src: &[f32], rows: &Rows, clamp: Clamp, out: &mut [f32]) {
    for (y, line) in out.chunks_exact_mut(rows.width).enumerate() {
        for (x, o) in line.iter_mut().enumerate() {
            let at = y * rows.stride + x;
            let sum = rows
                .offsets
                .iter()
                .zip(rows.weights)
                .fold(rows.bias, |acc, (&offset, &weight)| {
                    acc + weight * src[offset + at]
                });
            *o = clamp.apply(sum);
        }
    }
}
