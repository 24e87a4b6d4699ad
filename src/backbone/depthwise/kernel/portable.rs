//! The depthwise kernel in plain Rust, for every target without a kernel of its own (armv7, …):
//! blocks of 16 outputs whose accumulators the compiler keeps in vector registers where the
//! target has them.

use super::Clamp;

/// Outputs per block: four SSE or NEON registers of accumulators.
const LANES: usize = 16;

/// `out[i] = clamp(bias + Σ_t weights[t] · src[offsets[t] + i])`; the caller checked that every
/// tap's row lies inside `src`.
pub fn sum_taps(
    src: &[f32],
    offsets: &[usize],
    weights: &[f32],
    bias: f32,
    clamp: Clamp,
    out: &mut [f32],
) {
    let mut blocks = out.chunks_exact_mut(LANES);
    let mut start = 0;
    for block in &mut blocks {
        let mut acc = [bias; LANES];
        for (&offset, &weight) in offsets.iter().zip(weights) {
            let row: &[f32; LANES] = src[offset + start..offset + start + LANES]
                .try_into()
                .expect("a block is LANES long");
            for (a, x) in acc.iter_mut().zip(row) {
                *a += weight * x;
            }
        }
        for (o, a) in block.iter_mut().zip(acc) {
            *o = clamp.apply(a);
        }
        start += LANES;
    }
    for (k, o) in blocks.into_remainder().iter_mut().enumerate() {
        let i = start + k;
        let sum = offsets
            .iter()
            .zip(weights)
            .fold(bias, |acc, (&offset, &weight)| {
                acc + weight * src[offset + i]
            });
        *o = clamp.apply(sum);
    }
}
