//! The only module that knows tract: ONNX file → verified checksum → fixed input shape → optimised,
//! runnable plan (its matrix products on one thread or a private pool of several) → feature vector.
//! No tract type leaks past this file.
//!
//! The plan's running state and its input tensor are made once and kept: every frame re-runs the
//! same state (tract clears the state's values after each run, and the per-node scratch its matrix
//! products keep for a session stays warm) and copies the frame into the same input buffer. The
//! run's activations go to the process's arena (`heap::in_arena`), so they reuse the same resident
//! pages frame after frame instead of being mapped afresh.
//!
//! Between tract's decluttering and its optimisation, the depthwise convolutions are handed to our
//! own op (`depthwise/`: SIMD kernels, the ReLU6 clamp fused), unless [`Depthwise::Tract`] asks for
//! tract's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::OpState;
use tract_onnx::tract_core::plan::EvalContext;
use tract_onnx::tract_core::runtime::RunOptions;
use tract_onnx::tract_hir::infer::Factoid;

use crate::model::{to_hex, BackboneId, ModelDescriptor};

mod depthwise;

pub use depthwise::Isa as DepthwiseKernel;

/// Who runs the backbone's depthwise convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depthwise {
    /// tract's own operation (a scalar loop per channel for channels-first models).
    Tract,
    /// Our op with this kernel (one of [`DepthwiseKernel::available`]).
    Ours(DepthwiseKernel),
}

impl Default for Depthwise {
    /// Our op with the fastest SIMD kernel this machine runs; tract's own op where only our
    /// portable kernel would run (armv7 and the rest): on x86-64 the portable kernel measured
    /// slower than tract's op (4.4-4.6x against 3.9x ONNX Runtime's CPU time, README "Speed").
    fn default() -> Self {
        match DepthwiseKernel::best() {
            DepthwiseKernel::Portable => Depthwise::Tract,
            kernel => Depthwise::Ours(kernel),
        }
    }
}

impl Depthwise {
    /// Every choice this machine runs, tract's first.
    pub fn available() -> Vec<Depthwise> {
        std::iter::once(Depthwise::Tract)
            .chain(
                DepthwiseKernel::available()
                    .into_iter()
                    .map(Depthwise::Ours),
            )
            .collect()
    }

    /// `tract`, or our kernel's name (`portable`, `avx2+fma`, `neon`).
    pub fn name(self) -> &'static str {
        match self {
            Depthwise::Tract => "tract",
            Depthwise::Ours(kernel) => kernel.name(),
        }
    }
}

impl std::str::FromStr for Depthwise {
    type Err = String;

    /// `tract`, `best`, or the name of a kernel this machine runs.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "best" {
            return Ok(Depthwise::default());
        }
        let available = Depthwise::available();
        available
            .iter()
            .find(|d| d.name() == s)
            .copied()
            .ok_or_else(|| {
                let names: Vec<&str> = available.iter().map(|d| d.name()).collect();
                format!(
                    "unknown depthwise kernel {s:?}; this machine runs: best, {}",
                    names.join(", ")
                )
            })
    }
}

/// How [`TractBackbone::load_with_options`] builds the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Threads of the plan's private pool (1 or 0: the calling thread only).
    pub threads: usize,
    /// Who runs the depthwise convolutions.
    pub depthwise: Depthwise,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: 1,
            depthwise: Depthwise::default(),
        }
    }
}

/// Why a backbone could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    /// The ONNX file could not be read.
    #[error("cannot read model file {path}; the descriptor {descriptor} points to it, check that models/ is complete")]
    Read {
        path: PathBuf,
        descriptor: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's sha256 is not the descriptor's.
    #[error("model file {path} has sha256 {actual} but its descriptor {descriptor} expects {expected}; the file is damaged or not the model the descriptor describes: restore it from the release (models/SHA256SUMS) or write a descriptor for the new model")]
    Checksum {
        path: PathBuf,
        descriptor: PathBuf,
        expected: String,
        actual: String,
    },
    /// tract could not parse or prepare the model.
    #[error("model file {path} is not a usable ONNX model ({message}); use an ONNX file exported with opset 11 or later")]
    NotOnnx { path: PathBuf, message: String },
    /// The descriptor's input/output name, shape or type is not the graph's.
    #[error("model file {path} does not match its descriptor {descriptor}: {problem}; fix `{key}` in the descriptor or use the model it describes")]
    Graph {
        path: PathBuf,
        descriptor: PathBuf,
        key: &'static str,
        problem: String,
    },
    /// The model's output is not a [1, dim] vector.
    #[error("model file {path} outputs shape {shape} but its descriptor says [1, {dim}]; fix `output.dim` in the descriptor or use a feature-extractor model")]
    OutputShape {
        path: PathBuf,
        shape: String,
        dim: u32,
    },
    /// The input tensor has the wrong number of values.
    #[error("input tensor has {actual} values but the model takes {expected}")]
    InputLen { expected: usize, actual: usize },
    /// Running the plan failed.
    #[error("backbone inference failed: {0}")]
    Run(String),
}

/// A frozen feature extractor: input tensor in, feature vector out.
pub trait Backbone: Send {
    /// Which backbone this is (file sha256 and feature length).
    fn id(&self) -> BackboneId;
    /// Number of f32 values one input tensor holds.
    fn input_len(&self) -> usize;
    /// Runs the backbone on one preprocessed NCHW tensor.
    ///
    /// # Errors
    /// [`BackboneError::InputLen`] or [`BackboneError::Run`].
    fn embed(&mut self, input: &[f32]) -> Result<Vec<f32>, BackboneError>;
}

/// An ONNX backbone run by tract.
pub struct TractBackbone {
    /// The plan's running state, kept between frames.
    state: TypedSimpleState,
    /// The input tensor, refilled in place every frame (tract holds it only during a run).
    input: Arc<Tensor>,
    id: BackboneId,
    input_shape: [usize; 4],
    threads: usize,
    depthwise: Depthwise,
    /// What the depthwise rewrite did (all zero with [`Depthwise::Tract`]).
    replaced: depthwise::Replaced,
}

impl std::fmt::Debug for TractBackbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackbone")
            .field("id", &self.id)
            .field("input_shape", &self.input_shape)
            .field("threads", &self.threads)
            .field("depthwise", &self.depthwise)
            .finish()
    }
}

impl TractBackbone {
    /// Reads the descriptor's ONNX file, verifies its sha256, fixes the input shape, optimises once
    /// and checks that the output is `[1, dim]`. Runs on the calling thread.
    ///
    /// # Errors
    /// [`BackboneError`] naming the file and the fix.
    pub fn load(descriptor: &ModelDescriptor) -> Result<Self, BackboneError> {
        Self::load_with_threads(descriptor, 1)
    }

    /// As [`TractBackbone::load`], but the plan splits its matrix products over a private pool
    /// of `threads` threads (1 or 0: the calling thread only). The features are the same as with
    /// one thread up to float rounding.
    ///
    /// # Errors
    /// [`BackboneError`] naming the file and the fix.
    pub fn load_with_threads(
        descriptor: &ModelDescriptor,
        threads: usize,
    ) -> Result<Self, BackboneError> {
        Self::load_with_options(
            descriptor,
            LoadOptions {
                threads,
                ..LoadOptions::default()
            },
        )
    }

    /// As [`TractBackbone::load`], with the thread count and the depthwise convolutions' runner
    /// of `options`.
    ///
    /// # Errors
    /// [`BackboneError`] naming the file and the fix.
    pub fn load_with_options(
        descriptor: &ModelDescriptor,
        options: LoadOptions,
    ) -> Result<Self, BackboneError> {
        let LoadOptions { threads, depthwise } = options;
        let path = &descriptor.onnx_path;
        let bytes = std::fs::read(path).map_err(|source| BackboneError::Read {
            path: path.clone(),
            descriptor: descriptor.descriptor_path.clone(),
            source,
        })?;
        let actual: [u8; 32] = Sha256::digest(&bytes).into();
        if actual != descriptor.sha256 {
            return Err(BackboneError::Checksum {
                path: path.clone(),
                descriptor: descriptor.descriptor_path.clone(),
                expected: to_hex(&descriptor.sha256),
                actual: to_hex(&actual),
            });
        }
        let not_onnx = |e: TractError| BackboneError::NotOnnx {
            path: path.clone(),
            message: format!("{e:#}")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        let shape = descriptor.input_shape;
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(not_onnx)?;
        // The file's bytes (13 MB for EfficientNet-Lite0) are not needed past parsing: freed
        // before optimisation, the load's peak memory is that much lower.
        drop(bytes);
        check_graph(&mut model, descriptor).map_err(|(key, problem)| BackboneError::Graph {
            path: path.clone(),
            descriptor: descriptor.descriptor_path.clone(),
            key,
            problem,
        })?;
        let mut model = model
            .with_input_fact(0, f32::fact(shape).into())
            .map_err(not_onnx)?
            .into_typed()
            .map_err(not_onnx)?
            .into_decluttered()
            .map_err(not_onnx)?;
        let replaced = match depthwise {
            Depthwise::Tract => depthwise::Replaced::default(),
            Depthwise::Ours(kernel) => {
                depthwise::replace_depthwise(&mut model, kernel).map_err(not_onnx)?
            }
        };
        let model = model.into_optimized().map_err(not_onnx)?;
        let output_fact = model.output_fact(0).map_err(not_onnx)?;
        let output_shape: Option<Vec<usize>> =
            output_fact.shape.as_concrete().map(<[usize]>::to_vec);
        let dim = descriptor.output_dim;
        if output_fact.datum_type != f32::datum_type() {
            return Err(BackboneError::Graph {
                path: path.clone(),
                descriptor: descriptor.descriptor_path.clone(),
                key: "output.name",
                problem: format!(
                    "output {:?} is of type {:?}, not f32 features",
                    descriptor.output_name, output_fact.datum_type
                ),
            });
        }
        if output_shape.as_deref() != Some(&[1, dim as usize][..]) {
            return Err(BackboneError::OutputShape {
                path: path.clone(),
                shape: format!("{:?}", output_fact.shape),
                dim,
            });
        }
        let threads = threads.max(1);
        let options = RunOptions {
            executor: (threads > 1)
                .then(|| Executor::multithread_with_name(threads, "fieldtune-backbone")),
            ..RunOptions::default()
        };
        let plan = model
            .into_runnable_with_options(&options)
            .map_err(not_onnx)?;
        let state = plan.spawn().map_err(not_onnx)?;
        let input = Tensor::zero::<f32>(&shape).map_err(not_onnx)?;
        Ok(Self {
            state,
            input: Arc::new(input),
            id: BackboneId {
                sha256: actual,
                dim,
            },
            input_shape: shape,
            threads,
            depthwise,
            replaced,
        })
    }
}

/// Checks the descriptor's input and output against the graph's own, before anything is fixed:
/// the one input must be the named one, f32, of the descriptor's shape (a symbolic dimension
/// such as a batch `N` fits any size); the named output is kept as the only output.
///
/// # Errors
/// The descriptor key at fault and what the model has instead.
fn check_graph(
    model: &mut InferenceModel,
    descriptor: &ModelDescriptor,
) -> Result<(), (&'static str, String)> {
    let tract = |e: TractError| ("input.name", format!("{e:#}"));
    let inputs: Vec<String> = model
        .input_outlets()
        .map_err(tract)?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let listed = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(ix) = inputs.iter().position(|n| *n == descriptor.input_name) else {
        return Err((
            "input.name",
            format!(
                "the model has no input {:?}; its inputs are: {}",
                descriptor.input_name,
                listed(&inputs)
            ),
        ));
    };
    if inputs.len() != 1 {
        return Err((
            "input.name",
            format!(
                "the model has {} inputs ({}); fieldtune feeds one image tensor",
                inputs.len(),
                listed(&inputs)
            ),
        ));
    }
    let fact = model.input_fact(ix).map_err(tract)?;
    if let Some(datum) = fact.datum_type.concretize() {
        if datum != f32::datum_type() {
            return Err((
                "input.name",
                format!(
                    "input {:?} takes {datum:?} tensors; fieldtune feeds f32",
                    descriptor.input_name
                ),
            ));
        }
    }
    let dims: Vec<Option<i64>> = fact
        .shape
        .dims()
        .map(|d| d.concretize().and_then(|d| d.to_i64().ok()))
        .collect();
    let fits = dims.len() == 4
        && dims
            .iter()
            .zip(descriptor.input_shape)
            .all(|(d, want)| d.is_none_or(|d| d == want as i64));
    if !fact.shape.is_open() && !fits {
        let shown: Vec<String> = dims
            .iter()
            .map(|d| d.map_or_else(|| "?".to_string(), |d| d.to_string()))
            .collect();
        return Err((
            "input.shape",
            format!(
                "the descriptor says {:?} but input {:?} has shape [{}]",
                descriptor.input_shape,
                descriptor.input_name,
                shown.join(", ")
            ),
        ));
    }
    let outputs: Vec<OutletId> = model.output_outlets().map_err(tract)?.to_vec();
    let names: Vec<String> = outputs
        .iter()
        .map(|&o| {
            model
                .outlet_label(o)
                .map_or_else(|| model.node(o.node).name.clone(), str::to_string)
        })
        .collect();
    let Some(k) = names.iter().position(|n| *n == descriptor.output_name) else {
        return Err((
            "output.name",
            format!(
                "the model has no output {:?}; its outputs are: {}",
                descriptor.output_name,
                listed(&names)
            ),
        ));
    };
    model
        .select_output_outlets(&[outputs[k]])
        .map_err(|e| ("output.name", format!("{e:#}")))?;
    Ok(())
}

impl TractBackbone {
    /// Who runs the depthwise convolutions, and how many of them ours took (with how many
    /// clamps fused, how many run channels last, and how many were left to tract), e.g.
    /// `avx2+fma (15 channels last): 16 convolutions, 16 clamps fused, 0 left to tract`.
    pub fn depthwise_summary(&self) -> String {
        let r = &self.replaced;
        match self.depthwise {
            Depthwise::Tract => "tract's own".to_string(),
            Depthwise::Ours(kernel) => format!(
                "{} ({} channels last): {} convolutions, {} clamps fused, {} left to tract",
                kernel.name(),
                r.channels_last,
                r.convolutions,
                r.clamps_fused,
                r.left_to_tract
            ),
        }
    }
}

/// The time one kind of operation of the optimised plan takes per frame.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpTime {
    /// tract's name of the operation (e.g. `OptMatMul`, `DepthWiseConv`).
    pub kind: String,
    /// Nodes of this kind in the plan.
    pub nodes: usize,
    /// Median over the profiled frames of the time all these nodes took in a frame.
    pub median_ms: f64,
    /// `median_ms` over the sum of every kind's `median_ms`.
    pub share: f64,
}

impl TractBackbone {
    /// Runs the plan `runs` times on `input` (after one warm-up run), timing every node, and
    /// returns the time per kind of operation, the most expensive first. Timing each node adds a
    /// little to each, so the shares mean more than the absolute sum.
    ///
    /// # Errors
    /// [`BackboneError::InputLen`] or [`BackboneError::Run`].
    pub fn profile_ops(
        &mut self,
        input: &[f32],
        runs: usize,
    ) -> Result<Vec<OpTime>, BackboneError> {
        self.embed(input)?;
        let model = self.state.model();
        let kinds: Vec<String> = model
            .nodes()
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        let mut nodes_per_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for &id in self.state.plan().order_without_consts() {
            if !model
                .input_outlets()
                .is_ok_and(|i| i.iter().any(|o| o.node == id))
            {
                *nodes_per_kind.entry(kinds[id].as_str()).or_default() += 1;
            }
        }
        let mut per_run: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut spent = vec![Duration::ZERO; kinds.len()];
        for _ in 0..runs.max(1) {
            spent.fill(Duration::ZERO);
            self.run_timed(input, &mut spent)?;
            let mut frame: BTreeMap<&str, Duration> = BTreeMap::new();
            for (id, time) in spent.iter().enumerate() {
                if nodes_per_kind.contains_key(kinds[id].as_str()) {
                    *frame.entry(kinds[id].as_str()).or_default() += *time;
                }
            }
            for (kind, time) in frame {
                per_run.entry(kind).or_default().push(time);
            }
        }
        let mut times: Vec<OpTime> = per_run
            .into_iter()
            .map(|(kind, mut samples)| {
                samples.sort();
                OpTime {
                    kind: kind.to_string(),
                    nodes: nodes_per_kind.get(kind).copied().unwrap_or_default(),
                    median_ms: samples[samples.len() / 2].as_secs_f64() * 1e3,
                    share: 0.0,
                }
            })
            .collect();
        let total: f64 = times.iter().map(|t| t.median_ms).sum();
        for t in &mut times {
            t.share = if total > 0.0 {
                t.median_ms / total
            } else {
                0.0
            };
        }
        times.sort_by(|a, b| b.median_ms.total_cmp(&a.median_ms));
        Ok(times)
    }

    /// Copies `input` (of the right length) into the kept input tensor and returns a handle to it
    /// for one run.
    fn fill_input(&mut self, input: &[f32]) -> Result<TValue, BackboneError> {
        let run = |e: TractError| BackboneError::Run(format!("{e:#}"));
        if Arc::get_mut(&mut self.input).is_none() {
            // A failed run can leave the state holding the tensor: start a new one.
            self.state.reset_turn().map_err(run)?;
            self.input = Arc::new(Tensor::zero::<f32>(&self.input_shape).map_err(run)?);
        }
        let tensor = Arc::get_mut(&mut self.input).ok_or_else(|| {
            BackboneError::Run("the input tensor is still held by the plan".into())
        })?;
        tensor
            .try_as_plain_ram_mut()
            .and_then(|mut plain| {
                plain
                    .as_slice_mut::<f32>()
                    .map(|s| s.copy_from_slice(input))
            })
            .map_err(run)?;
        Ok(Arc::clone(&self.input).into_tvalue())
    }

    /// One run of the kept state that adds each node's evaluation time to `spent[node id]`.
    fn run_timed(&mut self, input: &[f32], spent: &mut [Duration]) -> Result<(), BackboneError> {
        let run = |e: TractError| BackboneError::Run(format!("{e:#}"));
        let tensor = self.fill_input(input)?;
        let timed = |ctx: &EvalContext,
                     state: Option<&mut (dyn OpState + 'static)>,
                     node: &TypedNode,
                     inputs: TVec<TValue>|
         -> TractResult<TVec<TValue>> {
            let start = Instant::now();
            let outputs = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
            spent[node.id] += start.elapsed();
            outputs
        };
        let result = crate::heap::in_arena(|| {
            self.state
                .run_plan_with_eval(tvec!(tensor), timed)
                .map(drop)
                .map_err(run)
        });
        if result.is_err() {
            self.state.reset_turn().map_err(run)?;
        }
        result
    }
}

impl Backbone for TractBackbone {
    fn id(&self) -> BackboneId {
        self.id
    }

    fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    fn embed(&mut self, input: &[f32]) -> Result<Vec<f32>, BackboneError> {
        if input.len() != self.input_len() {
            return Err(BackboneError::InputLen {
                expected: self.input_len(),
                actual: input.len(),
            });
        }
        let run = |e: TractError| BackboneError::Run(format!("{e:#}"));
        let input = self.fill_input(input)?;
        // The activations live one frame: they go to the arena (src/heap.rs).
        let outputs = crate::heap::in_arena(|| self.state.run(tvec!(input))).map_err(run)?;
        let view = outputs[0].to_plain_array_view::<f32>().map_err(run)?;
        Ok(view.iter().copied().collect())
    }
}
