//! The depthwise convolution as a tract operation: one NCHW (batch 1) or CHW f32 input, the
//! filter and bias held in the op, the following ReLU6 (or ReLU) clamp fused in. It stands in a
//! typed model where tract's `Conv` was (see `rewrite`), and tract's optimiser leaves it alone.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::geometry::{Geometry, Layout};
use super::kernel::{Clamp, Isa};

/// A depthwise convolution with its weights, run by our kernels.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    layout: Arc<Layout>,
    geometry: Geometry,
    /// `channels × taps` filter values, row-major per channel.
    weights: Arc<[f32]>,
    /// One value per channel.
    bias: Arc<[f32]>,
    clamp: Clamp,
    isa: Isa,
    /// `[1, C, H, W]` or `[C, H, W]`.
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
}

impl DepthwiseConv {
    /// The op for `geometry` (valid) with these weights, clamp and kernel; `batch_axis` says
    /// whether the tensors are NCHW (batch 1) rather than CHW.
    ///
    /// # Errors
    /// When the weights or bias do not fit the geometry, or the geometry is not valid.
    pub fn new(
        geometry: Geometry,
        weights: Vec<f32>,
        bias: Vec<f32>,
        clamp: Clamp,
        isa: Isa,
        batch_axis: bool,
    ) -> TractResult<DepthwiseConv> {
        ensure!(
            geometry.is_valid(),
            "not a depthwise shape we run: {geometry:?}"
        );
        ensure!(weights.len() == geometry.channels * geometry.taps());
        ensure!(bias.len() == geometry.channels);
        let g = &geometry;
        let mut input_shape: TVec<usize> = tvec!(g.channels, g.in_h, g.in_w);
        let mut output_shape: TVec<usize> = tvec!(g.channels, g.out_h(), g.out_w());
        if batch_axis {
            input_shape.insert(0, 1);
            output_shape.insert(0, 1);
        }
        Ok(DepthwiseConv {
            layout: Arc::new(Layout::new(geometry)),
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

impl PartialEq for DepthwiseConv {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.geometry == other.geometry
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
            "{}x{}, stride {}x{}, pads {},{},{},{}, {} channels of {}x{}, clamp {}..{}, kernel {}",
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
            // Channels are independent: on a pool they split across its threads.
            tract_linalg::multithread::par_chunks_mut(out, g.out_plane(), work, |first, chunk| {
                self.layout.run(
                    self.isa,
                    x,
                    &self.weights,
                    &self.bias,
                    self.clamp,
                    first,
                    chunk,
                );
                Ok(())
            })?;
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
