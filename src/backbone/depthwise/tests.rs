//! Our depthwise op against tract's own on random shapes, in every layout (NCHW, CHW, NHWC, HWC):
//! the same small model (a depthwise `Conv`, optionally followed by a ReLU6 as `Max` then `Min`)
//! optimised by tract alone and with our op put in, run on the same input, for every kernel this
//! machine runs.

use proptest::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::math::{max, min};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::rewrite::ours;
use super::{replace_depthwise, Isa, Replaced};

/// One random depthwise problem.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    pub(super) channels: usize,
    pub(super) hw: (usize, usize),
    pub(super) kernel: (usize, usize),
    pub(super) stride: (usize, usize),
    pub(super) padding: PaddingSpec,
    pub(super) format: DataFormat,
    pub(super) relu6: bool,
    pub(super) seed: u64,
}

fn problems() -> impl Strategy<Value = Problem> {
    (
        // Past 32: every block size of the channels-last kernels, and their overlapping tails.
        2usize..40,
        (1usize..4, 1usize..4),
        (1usize..6, 2usize..6),
        (1usize..4, 1usize..4),
        0u8..4,
        (0..FORMATS.len(), any::<bool>(), 0u64..1000),
        (0usize..18, 0usize..18),
    )
        .prop_map(
            |(channels, pads, kernel, stride, padding, (format, relu6, seed), extra)| {
                // At least the filter's size, so that every padding gives an output.
                let hw = (kernel.0 + extra.0, kernel.1 + extra.1);
                let padding = match padding {
                    0 => PaddingSpec::Valid,
                    1 => PaddingSpec::SameUpper,
                    2 => PaddingSpec::Explicit(
                        tvec!(pads.0.min(kernel.0 - 1), pads.1.min(kernel.1 - 1)),
                        tvec!(pads.1.min(kernel.0 - 1), pads.0.min(kernel.1 - 1)),
                    ),
                    _ => PaddingSpec::Explicit(tvec!(0, 0), tvec!(kernel.0 - 1, kernel.1 - 1)),
                };
                Problem {
                    channels,
                    hw,
                    kernel,
                    stride,
                    padding,
                    format: FORMATS[format],
                    relu6,
                    seed,
                }
            },
        )
}

/// Every layout tract's `Conv` takes.
const FORMATS: [DataFormat; 4] = [
    DataFormat::NCHW,
    DataFormat::CHW,
    DataFormat::NHWC,
    DataFormat::HWC,
];

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + seed as f32 * 7.3) * 0.731).sin() * scale)
        .collect()
}

/// The problem as a decluttered typed model, and its input.
pub(super) fn model(p: &Problem) -> TractResult<(TypedModel, Tensor)> {
    let (c, (h, w), (kh, kw)) = (p.channels, p.hw, p.kernel);
    let shape = p.format.from_n_c_hw(1, c, [h, w])?.shape;
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(&*shape))?;
    let k = model.add_const(
        "k",
        Tensor::from_shape(&[c, 1, kh, kw], &values(c * kh * kw, p.seed, 0.5))?,
    )?;
    let b = model.add_const("b", Tensor::from_shape(&[c], &values(c, p.seed + 1, 2.0))?)?;
    let conv = Conv {
        pool_spec: PoolSpec {
            data_format: p.format,
            kernel_shape: tvec!(kh, kw),
            padding: p.padding.clone(),
            dilations: None,
            strides: Some(tvec!(p.stride.0, p.stride.1)),
            input_channels: c,
            output_channels: c,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: c,
        q_params: None,
    };
    let mut out = model.wire_node("dw", conv, &[x, k, b])?;
    if p.relu6 {
        let ones: TVec<usize> = shape.iter().map(|_| 1).collect();
        let zero = model.add_const("zero", Tensor::zero::<f32>(&ones)?)?;
        let six = model.add_const("six", Tensor::from_shape(&ones, &[6.0f32])?)?;
        out = model.wire_node("relu.max", max(), &[out[0], zero])?;
        out = model.wire_node("relu.min", min(), &[out[0], six])?;
    }
    model.select_output_outlets(&out)?;
    let input = Tensor::from_shape(&shape, &values(shape.iter().product(), p.seed + 2, 8.0))?;
    Ok((model.into_decluttered()?, input))
}

fn run(model: TypedModel, input: &Tensor) -> TractResult<Vec<f32>> {
    let outputs = model
        .into_optimized()?
        .into_runnable()?
        .run(tvec!(input.clone().into_tvalue()))?;
    Ok(outputs[0]
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect())
}

fn check(p: &Problem) -> Result<(), TestCaseError> {
    let (decluttered, input) = model(p).expect("model builds");
    let formats: Vec<DataFormat> = decluttered
        .nodes()
        .iter()
        .filter_map(|n| n.op_as::<Conv>())
        .map(|conv| conv.pool_spec.data_format)
        .collect();
    prop_assert_eq!(
        formats,
        vec![p.format],
        "tract keeps the depthwise Conv and its layout through declutter"
    );
    let want = run(decluttered.clone(), &input).expect("tract runs");
    for isa in Isa::available() {
        let mut ours = decluttered.clone();
        let replaced = replace_depthwise(&mut ours, isa).expect("patches");
        prop_assert_eq!(
            replaced,
            Replaced {
                convolutions: 1,
                clamps_fused: usize::from(p.relu6),
                left_to_tract: 0,
                channels_last: usize::from(p.format.c_is_last()),
            }
        );
        let got = run(ours, &input).expect("our op runs");
        prop_assert_eq!(got.len(), want.len());
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        prop_assert!(diff <= 1e-4, "{}: max abs diff {diff} on {p:?}", isa.name());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn every_kernel_matches_tracts_own_depthwise(p in problems()) {
        check(&p)?;
    }
}

#[test]
fn efficientnet_lite0_shapes_match_tract() {
    // (channels, size, kernel, stride, pads before, pads after) as in the model.
    let shapes = [
        (32, 112, 3, 1, 1, 1),
        (96, 112, 3, 2, 0, 1),
        (24, 56, 5, 2, 1, 2),
        (16, 28, 5, 1, 2, 2),
        (24, 14, 5, 1, 2, 2),
        (40, 7, 3, 1, 1, 1),
    ];
    for (channels, size, kernel, stride, before, after) in shapes {
        // Channels first as in the file, channels last as tract moves them on aarch64.
        let formats = if stride == 1 {
            [DataFormat::NCHW, DataFormat::NHWC]
        } else {
            [DataFormat::CHW, DataFormat::HWC]
        };
        for (relu6, format) in [false, true]
            .into_iter()
            .flat_map(|r| formats.map(|f| (r, f)))
        {
            check(&Problem {
                channels,
                hw: (size, size),
                kernel: (kernel, kernel),
                stride: (stride, stride),
                padding: PaddingSpec::Explicit(tvec!(before, before), tvec!(after, after)),
                format,
                relu6,
                seed: 3,
            })
            .expect("matches");
        }
    }
}

#[test]
fn a_convolution_with_dilation_stays_with_tract() {
    let p = Problem {
        channels: 3,
        hw: (9, 9),
        kernel: (3, 3),
        stride: (1, 1),
        padding: PaddingSpec::Valid,
        format: DataFormat::NHWC,
        relu6: false,
        seed: 1,
    };
    let (mut decluttered, _) = model(&p).expect("model builds");
    let mut id = None;
    for node in &mut decluttered.nodes {
        if let Some(conv) = node.op_as_mut::<Conv>() {
            conv.pool_spec.dilations = Some(tvec!(2, 2));
            id = Some(node.id);
        }
    }
    let why = ours(&decluttered, id.expect("a Conv"), Isa::best())
        .expect("inspects")
        .expect_err("left to tract");
    assert_eq!(why, "dilation [2, 2]");
    let replaced = replace_depthwise(&mut decluttered, Isa::best()).expect("patches");
    assert_eq!(replaced.convolutions, 0);
    assert_eq!(replaced.left_to_tract, 1);
}
