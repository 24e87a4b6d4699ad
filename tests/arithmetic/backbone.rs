//! The real backbone and preprocessing against what ONNX Runtime computed for four reference photos
//! (tests/data/reference), and every way a model can be wrong. Runs under the binary's own global
//! allocator, which keeps the backbone's big blocks between frames.

use std::path::{Path, PathBuf};

use fieldtune::backbone::{
    Backbone, BackboneError, Depthwise, DepthwiseKernel, LoadOptions, TractBackbone,
};
use fieldtune::embedder::{EmbedError, Embedder};
use fieldtune::model::{ModelDescriptor, ModelError};

#[global_allocator]
static ALLOCATOR: fieldtune::heap::GlobalArena = fieldtune::heap::GlobalArena;

const PHOTOS: [(&str, &str); 4] = [
    ("chelsea", "png"),
    ("coffee", "png"),
    ("china", "jpg"),
    ("flower", "jpg"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn descriptor() -> ModelDescriptor {
    ModelDescriptor::load(&root().join("models/efficientnet_lite0.toml"))
        .expect("shipped descriptor")
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn reference(name: &str, what: &str) -> Vec<f32> {
    read_f32(&root().join(format!("tests/data/reference/{name}.{what}.f32")))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn assert_matches_onnx_runtime(mut backbone: TractBackbone) {
    assert_eq!(backbone.id().dim, 1280);
    for (name, _) in PHOTOS {
        let features = backbone.embed(&reference(name, "input")).expect("runs");
        let expected = reference(name, "features");
        assert_eq!(features.len(), expected.len());
        let max_diff = features
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff <= 1e-4, "{name}: max abs diff {max_diff}");
    }
}

#[test]
fn backbone_matches_onnx_runtime_on_reference_tensors() {
    assert_matches_onnx_runtime(TractBackbone::load(&descriptor()).expect("model loads"));
}

#[test]
fn a_backbone_on_a_thread_pool_matches_onnx_runtime_too() {
    // Three threads: more than this machine's cores, so the pool really splits the work.
    let backbone = TractBackbone::load_with_threads(&descriptor(), 3).expect("model loads");
    assert_matches_onnx_runtime(backbone);
}

#[test]
fn every_depthwise_kernel_matches_onnx_runtime() {
    // tract's own op, then ours with every kernel this machine runs (portable, and AVX2+FMA on
    // x86-64 or NEON on aarch64): the whole backbone against ONNX Runtime's features.
    let available = Depthwise::available();
    assert_eq!(available.len(), DepthwiseKernel::available().len() + 1);
    for depthwise in available {
        let options = LoadOptions {
            threads: 1,
            depthwise,
        };
        let backbone = TractBackbone::load_with_options(&descriptor(), options).expect("loads");
        let summary = backbone.depthwise_summary();
        if depthwise != Depthwise::Tract {
            // EfficientNet-Lite0: 16 depthwise convolutions, each followed by a ReLU6; all but
            // the first (which tract's axis propagation cannot move, on aarch64 too) run
            // channels last on every machine (tract moves them there on aarch64, our rewrite
            // elsewhere), so both layouts of our op run here.
            assert!(
                summary.ends_with(
                    " (15 channels last): 16 convolutions, 16 clamps fused, 0 left to tract"
                ),
                "{summary}"
            );
        }
        assert_matches_onnx_runtime(backbone);
    }
}

#[test]
fn depthwise_runners_are_named_on_the_command_line_by_what_this_machine_runs() {
    assert_eq!("tract".parse::<Depthwise>(), Ok(Depthwise::Tract));
    assert_eq!("best".parse::<Depthwise>(), Ok(Depthwise::default()));
    assert_eq!(
        "portable".parse::<Depthwise>(),
        Ok(Depthwise::Ours(DepthwiseKernel::Portable))
    );
    let error = "sse9".parse::<Depthwise>().unwrap_err();
    assert!(
        error.contains("this machine runs: best, tract, portable"),
        "{error}"
    );
}

#[test]
fn frame_after_frame_the_kept_state_and_the_arena_give_the_same_features() {
    let mut backbone = TractBackbone::load(&descriptor()).expect("model loads");
    let (cat, coffee) = (reference("chelsea", "input"), reference("coffee", "input"));
    let first = backbone.embed(&cat).expect("runs");
    let placed_before = fieldtune::heap::ARENA.stats().arena_allocations;
    for _ in 0..3 {
        // Another image in between: nothing of the previous frame may leak into the next.
        let other = backbone.embed(&coffee).expect("runs");
        assert_ne!(other, first);
        assert_eq!(backbone.embed(&cat).expect("runs"), first);
    }
    assert!(
        fieldtune::heap::ARENA.stats().arena_allocations > placed_before,
        "the activations are placed in the arena"
    );
    let wrong = backbone.embed(&cat[1..]).unwrap_err();
    assert!(matches!(wrong, BackboneError::InputLen { .. }), "{wrong}");
    assert_eq!(
        backbone.embed(&cat).expect("runs after a refused input"),
        first
    );
}

#[test]
fn the_per_operation_profile_covers_the_plan() {
    let mut backbone = TractBackbone::load(&descriptor()).expect("model loads");
    let profile = backbone
        .profile_ops(&reference("flower", "input"), 3)
        .expect("profiles");
    let kinds: Vec<&str> = profile.iter().map(|op| op.kind.as_str()).collect();
    // EfficientNet-Lite0 is convolutions (matrix products and depthwise) and ReLU6 clamps.
    assert!(kinds.iter().any(|k| k.contains("MatMul")), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k.to_lowercase().contains("depthwise")),
        "{kinds:?}"
    );
    let share: f64 = profile.iter().map(|op| op.share).sum();
    assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
    assert!(profile.windows(2).all(|w| w[0].median_ms >= w[1].median_ms));
    assert!(profile.iter().all(|op| op.nodes > 0));
    // Profiling runs the same state: the features afterwards are still the reference ones.
    assert_matches_onnx_runtime(backbone);
}

#[test]
fn own_preprocessing_gives_reference_features() {
    let mut embedder = Embedder::load(&descriptor()).expect("model loads");
    for (name, ext) in PHOTOS {
        let bytes =
            std::fs::read(root().join(format!("tests/data/reference/{name}.{ext}"))).unwrap();
        let features = embedder.embed_bytes(&bytes).expect("embeds");
        let similarity = cosine(&features, &reference(name, "features"));
        assert!(similarity >= 0.99, "{name}: cosine {similarity}");
    }
}

#[test]
fn preprocessed_tensor_is_close_to_the_reference_tensor() {
    let mut pre = fieldtune::preprocess::Preprocessor::new(descriptor().preprocessing);
    for (name, ext) in PHOTOS {
        let bytes =
            std::fs::read(root().join(format!("tests/data/reference/{name}.{ext}"))).unwrap();
        let mut tensor = Vec::new();
        pre.bytes_to_tensor(&bytes, &mut tensor).unwrap();
        let expected = reference(name, "input");
        let mean_abs = tensor
            .iter()
            .zip(&expected)
            .map(|(a, b)| f64::from((a - b).abs()))
            .sum::<f64>()
            / expected.len() as f64;
        // One 8-bit step is 1/128 ≈ 0.0078; resizers differ by about one step on average at most.
        assert!(mean_abs < 0.01, "{name}: mean abs diff {mean_abs}");
    }
}

fn descriptor_in(dir: &Path, onnx: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("models/efficientnet_lite0.toml")).unwrap();
    let text = text.replace(
        "file = \"efficientnet_lite0_features.onnx\"",
        &format!("file = {:?}", onnx.display().to_string()),
    );
    let path = dir.join("model.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

#[test]
fn checksum_mismatch_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("damaged.onnx");
    let mut bytes = std::fs::read(root().join("models/efficientnet_lite0_features.onnx")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&onnx, bytes).unwrap();
    let descriptor = ModelDescriptor::load(&descriptor_in(dir.path(), &onnx, |t| t)).unwrap();
    let error = TractBackbone::load(&descriptor).unwrap_err();
    assert!(matches!(error, BackboneError::Checksum { .. }), "{error}");
    assert!(error.to_string().contains("damaged.onnx"), "{error}");
}

#[test]
fn a_file_that_is_not_onnx_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("not-a-model.onnx");
    std::fs::write(&onnx, b"this is a text file, not a protobuf").unwrap();
    let sha = fieldtune::model::to_hex(&sha256(&std::fs::read(&onnx).unwrap()));
    let path = descriptor_in(dir.path(), &onnx, |t| replace_sha(&t, &sha));
    let error = TractBackbone::load(&ModelDescriptor::load(&path).unwrap()).unwrap_err();
    assert!(matches!(error, BackboneError::NotOnnx { .. }), "{error}");
    assert!(error.to_string().contains("not-a-model.onnx"), "{error}");
}

#[test]
fn wrong_output_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = root().join("models/efficientnet_lite0_features.onnx");
    let path = descriptor_in(dir.path(), &onnx, |t| t.replace("dim = 1280", "dim = 1000"));
    let error = TractBackbone::load(&ModelDescriptor::load(&path).unwrap()).unwrap_err();
    assert!(
        matches!(error, BackboneError::OutputShape { .. }),
        "{error}"
    );
}

#[test]
fn missing_model_file_and_bad_descriptors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = descriptor_in(dir.path(), &dir.path().join("absent.onnx"), |t| t);
    let error = TractBackbone::load(&ModelDescriptor::load(&path).unwrap()).unwrap_err();
    assert!(error.to_string().contains("absent.onnx"), "{error}");

    let bad_shape = descriptor_in(dir.path(), &dir.path().join("x.onnx"), |t| {
        t.replace("shape = [1, 3, 224, 224]", "shape = [1, 3, 224, 200]")
    });
    let error = ModelDescriptor::load(&bad_shape).unwrap_err();
    assert!(matches!(error, ModelError::Invalid { .. }), "{error}");

    let bad_sha = descriptor_in(dir.path(), &dir.path().join("x.onnx"), |t| {
        replace_sha(&t, "abc")
    });
    let error = ModelDescriptor::load(&bad_sha).unwrap_err();
    assert!(error.to_string().contains("sha256"), "{error}");

    std::fs::write(dir.path().join("broken.toml"), "name = ").unwrap();
    let error = ModelDescriptor::load(&dir.path().join("broken.toml")).unwrap_err();
    assert!(matches!(error, ModelError::Parse { .. }), "{error}");
}

#[test]
fn truncated_and_non_image_bytes_are_errors_not_panics() {
    let mut embedder = Embedder::load(&descriptor()).expect("model loads");
    let bytes = std::fs::read(root().join("tests/data/reference/china.jpg")).unwrap();
    for cut in [0, 10, 100, bytes.len() / 3] {
        let result = embedder.embed_bytes(&bytes[..cut]);
        assert!(
            matches!(result, Err(EmbedError::Preprocess(_))),
            "cut {cut}"
        );
    }
    assert!(embedder.embed_bytes(b"plain text").is_err());
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn replace_sha(text: &str, sha: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("sha256 = ") {
                format!("sha256 = \"{sha}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
