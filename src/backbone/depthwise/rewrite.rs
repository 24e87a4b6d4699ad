//! Finds tract's depthwise convolutions in a decluttered typed model and puts ours in their
//! place, with the clamp that follows fused in. Anything it does not recognise (other layouts,
//! dilations, batches, quantised or non-constant weights) stays with tract's own op.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::math::{Max, Min};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::geometry::Geometry;
use super::kernel::{Clamp, Isa};
use super::op::DepthwiseConv;

/// What [`replace_depthwise`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Depthwise convolutions now run by our op.
    pub convolutions: usize,
    /// Of these, how many took the clamp (ReLU or ReLU6) after them in.
    pub clamps_fused: usize,
    /// Depthwise convolutions left to tract (a shape or layout we do not run).
    pub left_to_tract: usize,
}

/// Replaces every depthwise convolution of `model` that our op runs, using `isa`'s kernel.
///
/// # Errors
/// When patching the model fails (a bug: nothing is replaced that was not checked first).
pub fn replace_depthwise(model: &mut TypedModel, isa: Isa) -> TractResult<Replaced> {
    let mut replaced = Replaced::default();
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|node| node.op_as::<Conv>().is_some_and(is_depthwise))
        .map(|node| node.id)
        .collect();
    for id in candidates {
        let Some((op, last)) = ours(model, id, isa)? else {
            replaced.left_to_tract += 1;
            continue;
        };
        let node = model.node(id);
        let mut patch = TypedModelPatch::new(format!("fieldtune depthwise {}", node.name));
        let input = patch.tap_model(model, node.inputs[0])?;
        let fused = last.node != id;
        let out = patch.wire_node(&node.name, op, &[input])?[0];
        patch.shunt_outside(model, last, out)?;
        patch.apply(model)?;
        replaced.convolutions += 1;
        replaced.clamps_fused += usize::from(fused);
    }
    model.compact()?;
    Ok(replaced)
}

/// One filter per channel, f32.
fn is_depthwise(conv: &Conv) -> bool {
    let spec = &conv.pool_spec;
    conv.q_params.is_none()
        && conv.group > 1
        && conv.group == spec.input_channels
        && conv.group == spec.output_channels
}

/// Our op for depthwise node `id` and the outlet it replaces (the node's own, or that of the
/// clamp it fuses), or `None` when the node is not one we run.
fn ours(model: &TypedModel, id: usize, isa: Isa) -> TractResult<Option<(DepthwiseConv, OutletId)>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let batch_axis = match spec.data_format {
        DataFormat::NCHW => true,
        DataFormat::CHW => false,
        _ => return Ok(None),
    };
    if conv.kernel_fmt != KernelFormat::OIHW
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    let (batch, chw) = if batch_axis {
        (shape.first().copied(), shape.get(1..))
    } else {
        (Some(1), Some(shape))
    };
    let (Some(1), Some(&[channels, in_h, in_w])) = (batch, chw) else {
        return Ok(None);
    };
    if input.datum_type != f32::datum_type() || channels != conv.group {
        return Ok(None);
    }
    let (kernel_h, kernel_w) = (spec.kernel_shape[0], spec.kernel_shape[1]);
    let Some(weights) = constant(model, node.inputs[1], channels * kernel_h * kernel_w)? else {
        return Ok(None);
    };
    let Some(bias) = constant(model, node.inputs[2], channels)? else {
        return Ok(None);
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
        return Ok(None);
    }
    let (clamp, last) = following_clamp(model, OutletId::new(id, 0))?;
    let op = DepthwiseConv::new(geometry, weights, bias, clamp, isa, batch_axis)?;
    // Our op computes what the node (and the clamp) did, with the same output shape.
    let theirs = model.outlet_fact(last)?;
    let mine = op.output_facts(&[input])?;
    if theirs.shape.as_concrete() != mine[0].shape.as_concrete()
        || theirs.datum_type != f32::datum_type()
    {
        return Ok(None);
    }
    Ok(Some((op, last)))
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
