//! Finds tract's depthwise convolutions in a decluttered typed model and puts ours in their
//! place, with the clamp that follows fused in. Either layout is taken: channels first (NCHW,
//! CHW: what the ONNX file says) or last (NHWC, HWC: where tract moves them when its machine has
//! a channels-inner depthwise kernel, as on aarch64, and where `relayout` moves them first
//! everywhere else). Anything else (dilations, batches,
//! quantised or non-constant weights, padding as wide as the filter) stays with tract's own op,
//! and the reason is logged.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::math::{Max, Min};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::geometry::Geometry;
use super::kernel::{Clamp, Isa};
use super::op::DepthwiseConv;
use super::relayout::move_channels_last;

/// What [`replace_depthwise`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Depthwise convolutions now run by our op.
    pub convolutions: usize,
    /// Of these, how many took the clamp (ReLU or ReLU6) after them in.
    pub clamps_fused: usize,
    /// Depthwise convolutions left to tract (a shape or layout we do not run).
    pub left_to_tract: usize,
    /// Of these, how many run channels last (moved there by tract, or by `relayout`).
    pub channels_last: usize,
}

/// Replaces every depthwise convolution of `model` that our op runs, using `isa`'s kernel, after
/// moving the graph channels last around them where tract can (`relayout`: our channels-last
/// kernels are the faster ones, see `speed`). Each one left to tract is logged (info) with the
/// reason.
///
/// # Errors
/// When patching the model fails (a bug: nothing is replaced that was not checked first).
pub fn replace_depthwise(model: &mut TypedModel, isa: Isa) -> TractResult<Replaced> {
    let moved = move_channels_last(model)?;
    tracing::debug!("{moved} depthwise convolutions moved channels last");
    let mut replaced = Replaced::default();
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|node| node.op_as::<Conv>().is_some_and(is_depthwise))
        .map(|node| node.id)
        .collect();
    for id in candidates {
        let (op, last) = match ours(model, id, isa)? {
            Ok(found) => found,
            Err(why) => {
                tracing::info!(
                    node = %model.node(id).name,
                    "depthwise convolution left to tract: {why}"
                );
                replaced.left_to_tract += 1;
                continue;
            }
        };
        let node = model.node(id);
        let channels_last = op.channels_last();
        tracing::debug!(node = %node.name, "depthwise convolution run by ours: {:?}", op.info()?);
        let mut patch = TypedModelPatch::new(format!("fieldtune depthwise {}", node.name));
        let input = patch.tap_model(model, node.inputs[0])?;
        let fused = last.node != id;
        let out = patch.wire_node(&node.name, op, &[input])?[0];
        patch.shunt_outside(model, last, out)?;
        patch.apply(model)?;
        replaced.convolutions += 1;
        replaced.clamps_fused += usize::from(fused);
        replaced.channels_last += usize::from(channels_last);
    }
    model.compact()?;
    Ok(replaced)
}

/// One filter per channel (channel multiplier 1).
pub(super) fn is_depthwise(conv: &Conv) -> bool {
    let spec = &conv.pool_spec;
    conv.group > 1 && conv.group == spec.input_channels && conv.group == spec.output_channels
}

/// Our op for depthwise node `id` and the outlet it replaces (the node's own, or that of the
/// clamp it fuses), or why the node is not one we run.
pub(super) fn ours(
    model: &TypedModel,
    id: usize,
    isa: Isa,
) -> TractResult<Result<(DepthwiseConv, OutletId), String>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(Err(format!("{} is not a convolution", node.op.name())));
    };
    let spec = &conv.pool_spec;
    let format = spec.data_format;
    if conv.q_params.is_some() {
        return Ok(Err("quantised".into()));
    }
    if conv.kernel_fmt != KernelFormat::OIHW {
        return Ok(Err(format!(
            "kernel format {:?}, not OIHW",
            conv.kernel_fmt
        )));
    }
    if spec.kernel_shape.len() != 2 {
        return Ok(Err(format!(
            "{}-D, not 2-D (kernel {:?})",
            spec.kernel_shape.len(),
            spec.kernel_shape
        )));
    }
    let dilations = spec.dilations();
    if dilations.iter().any(|&d| d != 1) {
        return Ok(Err(format!("dilation {dilations:?}")));
    }
    if node.inputs.len() != 3 {
        return Ok(Err(format!(
            "{} inputs, not input, filter, bias",
            node.inputs.len()
        )));
    }
    let input = model.outlet_fact(node.inputs[0])?;
    if input.datum_type != f32::datum_type() {
        return Ok(Err(format!("input of {:?}, not f32", input.datum_type)));
    }
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(Err(format!("input shape {:?} not concrete", input.shape)));
    };
    let (batch, channels, in_h, in_w) = match (format, shape) {
        (DataFormat::NCHW, &[n, c, h, w]) | (DataFormat::NHWC, &[n, h, w, c]) => (n, c, h, w),
        (DataFormat::CHW, &[c, h, w]) | (DataFormat::HWC, &[h, w, c]) => (1, c, h, w),
        _ => {
            return Ok(Err(format!(
                "input {shape:?} in {format:?} is not an image"
            )))
        }
    };
    if batch != 1 {
        return Ok(Err(format!("batch of {batch}")));
    }
    if channels != conv.group {
        return Ok(Err(format!("{channels} channels in {} groups", conv.group)));
    }
    let (kernel_h, kernel_w) = (spec.kernel_shape[0], spec.kernel_shape[1]);
    let Some(weights) = constant(model, node.inputs[1], channels * kernel_h * kernel_w)? else {
        return Ok(Err("filter not a constant of one filter per channel".into()));
    };
    let Some(bias) = constant(model, node.inputs[2], channels)? else {
        return Ok(Err("bias not a constant of one value per channel".into()));
    };
    let pads = spec.computed_padding(&[in_h, in_w]);
    let strides = spec.strides();
    let geometry = Geometry {
        channels,
        in_h,
        in_w,
        kernel_h,
        kernel_w,
        stride_h: strides[0],
        stride_w: strides[1],
        pad_top: pads[0].pad_before,
        pad_left: pads[1].pad_before,
        pad_bottom: pads[0].pad_after,
        pad_right: pads[1].pad_after,
    };
    if !geometry.is_valid() {
        return Ok(Err(format!(
            "padding {:?} ({}) not smaller than the {kernel_h}x{kernel_w} filter, or stride {strides:?}",
            spec.padding,
            pads.iter()
                .map(|p| format!("{}+{}", p.pad_before, p.pad_after))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let (clamp, last) = following_clamp(model, OutletId::new(id, 0))?;
    let op = DepthwiseConv::new(geometry, weights, bias, clamp, isa, format)?;
    // Our op computes what the node (and the clamp) did, with the same output shape.
    let theirs = model.outlet_fact(last)?;
    let mine = op.output_facts(&[input])?;
    if theirs.shape.as_concrete() != mine[0].shape.as_concrete()
        || theirs.datum_type != f32::datum_type()
    {
        return Ok(Err(format!(
            "tract's output {:?} of {:?}, ours would be {:?}",
            theirs.shape, theirs.datum_type, mine[0].shape
        )));
    }
    Ok(Ok((op, last)))
}

/// The values of a constant f32 input of `len` values (a broadcast scalar bias included).
fn constant(model: &TypedModel, outlet: OutletId, len: usize) -> TractResult<Option<Vec<f32>>> {
    let fact = model.outlet_fact(outlet)?;
    let Some(konst) = &fact.konst else {
        return Ok(None);
    };
    let Ok(konst) = konst.cast_to::<f32>() else {
        return Ok(None);
    };
    let plain = konst.try_as_plain_ram()?;
    let values = plain.as_slice::<f32>()?;
    Ok(match values.len() {
        n if n == len => Some(values.to_vec()),
        1 => Some(vec![values[0]; len]),
        _ => None,
    })
}

/// The clamp right after `outlet`, when it is its only reader: `Max(x, lo)`, optionally then
/// `Min(·, hi)`, with constant scalar bounds. Returns the clamp and the outlet whose readers
/// must read our op instead (`outlet` itself when there is no clamp).
fn following_clamp(model: &TypedModel, outlet: OutletId) -> TractResult<(Clamp, OutletId)> {
    let mut clamp = Clamp::NONE;
    let Some(lo) = scalar_bin_after::<Max>(model, outlet)? else {
        return Ok((clamp, outlet));
    };
    clamp.lo = lo.0;
    let max = lo.1;
    if let Some((hi, min)) = scalar_bin_after::<Min>(model, max)? {
        if hi >= clamp.lo {
            clamp.hi = hi;
            return Ok((clamp, min));
        }
    }
    Ok((clamp, max))
}

/// When `outlet`'s only reader is a binary op `B` with a constant scalar on its other side (and
/// the op's output has the outlet's shape), that scalar and the op's output.
fn scalar_bin_after<B: BinMiniOp>(
    model: &TypedModel,
    outlet: OutletId,
) -> TractResult<Option<(f32, OutletId)>> {
    let successors = model.outlet_successors(outlet);
    if successors.len() != 1 || model.output_outlets()?.contains(&outlet) {
        return Ok(None);
    }
    let node = model.node(successors[0].node);
    let Some(bin) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<B>() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let other = node.inputs[1 - successors[0].slot];
    let other = model.outlet_fact(other)?;
    let Some(konst) = &other.konst else {
        return Ok(None);
    };
    if konst.len() != 1 || konst.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let value = konst.try_as_plain_ram()?.as_slice::<f32>()?[0];
    let out = OutletId::new(node.id, 0);
    let same_shape = model.outlet_fact(out)?.shape == model.outlet_fact(outlet)?.shape;
    Ok(same_shape.then_some((value, out)))
}
