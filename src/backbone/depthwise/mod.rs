//! Our own depthwise convolution for tract: tract 0.23.9 runs a channels-first model's depthwise
//! convolutions with a generic scalar loop per channel, which was 63 % of EfficientNet-Lite0's
//! time. After tract declutters the model, [`replace_depthwise`] puts [`op::DepthwiseConv`] in
//! place of every depthwise `Conv` it can run (2-D, batch 1, channels first (NCHW, CHW) or last
//! (NHWC, HWC: tract's layout on aarch64, and ours everywhere: see `relayout`), f32, any kernel
//! size, stride and padding without dilation) and fuses the ReLU6 clamp that follows; tract's optimiser then plans the rest as
//! usual.
//!
//! - `geometry`: the shape, and, channels first, the phase-plane layout that makes every filter
//!   tap one contiguous row (stride 2 included);
//! - `channels_last`: channels last, the taps of each output row and of its border pixels;
//! - `kernel/`: the sums, one file per instruction set and layout (portable, AVX2+FMA picked at
//!   run time, NEON);
//! - `op`: the tract operation; `rewrite`: the model patch; `relayout`: the graph moved channels
//!   last first, where tract can (the faster kernels; what tract does itself on aarch64).

mod channels_last;
mod geometry;
mod kernel;
mod op;
mod relayout;
mod rewrite;

#[cfg(test)]
mod speed;
#[cfg(test)]
mod tests;

pub use kernel::Isa;
pub use rewrite::{replace_depthwise, Replaced};
