//! The depthwise convolution as a tract operation: one f32 input, channels first (NCHW with batch
//! 1, CHW) or last (NHWC with batch 1, HWC), the filter and bias held in the op, the following
//! ReLU6 (or ReLU) clamp fused in. It stands in a typed model where tract's `Conv` was (see
//! `rewrite`), and tract's optimiser leaves it alone.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::channels_last::ChannelsLast;
use super::geometry::{Geometry, Layout};
use super::kernel::{Clamp, Isa};

/// How the op walks its tensors: by channel planes (channels first) or by output rows of pixels
/// (channels last).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    ChannelsFirst(Arc<Layout>),
    ChannelsLast(Arc<ChannelsLast>),
}

/// A depthwise convolution with its weights, run by our kernels.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    plan: Plan,
    format: DataFormat,
    geometry: Geometry,
    /// The filter values: channels first `channels × taps` (row-major per channel), channels
    /// last `taps × channels` (`ChannelsLast::arrange_weights`).
    weights: Arc<[f32]>,
    /// One value per channel.
    bias: Arc<[f32]>,
    clamp: Clamp,
    isa: Isa,
    /// `[1, C, H, W]`, `[C, H, W]`, `[1, H, W, C]` or `[H, W, C]`.
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
}

impl DepthwiseConv {
    /// The op for `geometry` (valid) with these weights (`channels × taps`, as ONNX's OIHW
    /// filter), clamp and kernel, on tensors of `format` (a batch axis, if any, of 1).
    ///
    /// # Errors
    /// When the weights or bias do not fit the geometry, or the geometry is not valid.
    pub fn new(
        geometry: Geometry,
        weights: Vec<f32>,
        bias: Vec<f32>,
        clamp: Clamp,
        isa: Isa,
        format: DataFormat,
    ) -> TractResult<DepthwiseConv> {
        ensure!(
            geometry.is_valid(),
            "not a depthwise shape we run: {geometry:?}"
        );
        ensure!(weights.len() == geometry.channels * geometry.taps());
        ensure!(bias.len() == geometry.channels);
        let g = &geometry;
        let (input_shape, output_shape) = if format.c_is_last() {
            (
                tvec!(g.in_h, g.in_w, g.channels),
                tvec!(g.out_h(), g.out_w(), g.channels),
            )
        } else {
            (
                tvec!(g.channels, g.in_h, g.in_w),
                tvec!(g.channels, g.out_h(), g.out_w()),
            )
        };
        let (input_shape, output_shape) = if format.has_n() {
            let batch = |shape: TVec<usize>| std::iter::once(1).chain(shape).collect();
            (batch(input_shape), batch(output_shape))
        } else {
            (input_shape, output_shape)
        };
        let (plan, weights) = if format.c_is_last() {
            let plan = ChannelsLast::new(geometry);
            let weights = plan.arrange_weights(&weights);
            (Plan::ChannelsLast(Arc::new(plan)), weights)
        } else {
            (
                Plan::ChannelsFirst(Arc::new(Layout::new(geometry))),
                weights,
            )
        };
        Ok(DepthwiseConv {
            plan,
            format,
            geometry,
            weights: weights.into(),
            bias: bias.into(),
            clamp,
            isa,
            input_shape,
            output_shape,
        })
    }
}

impl DepthwiseConv {
    /// Whether the op runs on channels-last tensors.
    pub fn channels_last(&self) -> bool {
        self.format.c_is_last()
    }
}

impl PartialEq for DepthwiseConv {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.geometry == other.geometry
            && self.format == other.format
            && self.isa == other.isa
            && self.input_shape == other.input_shape
            && self.clamp.lo.to_bits() == other.clamp.lo.to_bits()
            && self.clamp.hi.to_bits() == other.clamp.hi.to_bits()
            && bits(&self.weights) == bits(&other.weights)
            && bits(&self.bias) == bits(&other.bias)
    }
}

impl Eq for DepthwiseConv {}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "DepthwiseConv(fieldtune)".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{}x{}, stride {}x{}, pads {},{},{},{}, {} channels of {}x{} ({:?}), clamp {}..{}, kernel {}",
            g.kernel_h,
            g.kernel_w,
            g.stride_h,
            g.stride_w,
            g.pad_top,
            g.pad_left,
            g.pad_bottom,
            g.pad_right,
            g.channels,
            g.in_h,
            g.in_w,
            self.format,
            self.clamp.lo,
            self.clamp.hi,
            self.isa.name()
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for DepthwiseConv {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "DepthwiseConv takes one input");
        let input = inputs[0].try_as_plain_ram()?;
        let x = input.as_slice::<f32>()?;
        let g = &self.geometry;
        ensure!(
            x.len() == g.channels * g.in_plane(),
            "input is not {:?}",
            self.input_shape
        );
        // SAFETY: every value of the output is written below before it is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            let out = plain.as_slice_mut::<f32>()?;
            let work = out.len() * g.taps();
            let (weights, bias) = (&self.weights[..], &self.bias[..]);
            // Channels first, channels are independent; channels last, output rows are: on a
            // pool they split across its threads.
            match &self.plan {
                Plan::ChannelsFirst(layout) => {
                    tract_linalg::multithread::par_chunks_mut(
                        out,
                        g.out_plane(),
                        work,
                        |first, chunk| {
                            layout.run(self.isa, x, weights, bias, self.clamp, first, chunk);
                            Ok(())
                        },
                    )?;
                }
                Plan::ChannelsLast(plan) => {
                    tract_linalg::multithread::par_chunks_mut(
                        out,
                        plan.row_len(),
                        work,
                        |first, chunk| {
                            plan.run(self.isa, x, weights, bias, self.clamp, first, chunk);
                            Ok(())
                        },
                    )?;
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(EvalOp::eval(
            self,
            &EvalContext::out_of_plan(),
            inputs,
        )?))
    }
}

impl TypedOp for DepthwiseConv {
    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "DepthwiseConv takes one input");
        ensure!(
            inputs[0].datum_type == f32::datum_type(),
            "DepthwiseConv runs on f32"
        );
        ensure!(
            inputs[0].shape.as_concrete() == Some(&*self.input_shape),
            "DepthwiseConv expects {:?}, got {:?}",
            self.input_shape,
            inputs[0].shape
        );
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (g.channels * g.out_plane() * g.taps()).into()
        )))
    }
}
