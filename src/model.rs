//! Model descriptors (`models/*.toml`) and the identity of a backbone.
//!
//! A descriptor says everything fieldtune needs to run an ONNX backbone: the file, its sha256, the
//! input shape, the preprocessing and the output. Any other backbone is a new descriptor, not new
//! code. Loading a descriptor validates every value (errors name the key) but does not read the
//! ONNX file; [`crate::backbone`] verifies the checksum when it loads the model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The descriptor the default build uses.
pub const DEFAULT_DESCRIPTOR: &str = "efficientnet_lite0.toml";

/// What identifies a backbone to everything that stores its features: the sha256 of the ONNX file
/// and the length of the feature vector. Features from two different backbones mean nothing to each
/// other, so heads, caches and device states record this and refuse a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackboneId {
    /// sha256 of the ONNX file's bytes.
    pub sha256: [u8; 32],
    /// Length of one feature vector.
    pub dim: u32,
}

impl BackboneId {
    /// The first 12 hex digits of the sha256, for messages.
    pub fn short_hex(&self) -> String {
        self.sha256[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Why a descriptor could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The descriptor file could not be read.
    #[error("cannot read model descriptor {path}; check the path (descriptors live in models/)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The descriptor is not valid TOML or misses a key.
    #[error("model descriptor {path} is not valid: {message}; compare it with models/efficientnet_lite0.toml")]
    Parse { path: PathBuf, message: String },
    /// A key has a value fieldtune cannot use.
    #[error("model descriptor {path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
    /// No descriptor was found in any of the usual places.
    #[error("no model descriptor {name} found (looked in: {looked}); pass --model FILE or set FIELDTUNE_MODEL_DIR")]
    NotFound { name: String, looked: String },
}

/// Channel order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// Resampling filter used to resize the shorter side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    Bilinear,
    Bicubic,
    Lanczos3,
}

/// How an image becomes the backbone's input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// The shorter side is resized to this many pixels, keeping the aspect ratio.
    pub resize_shorter: u32,
    /// Resampling filter (antialiased when shrinking, like Pillow's).
    pub filter: ResizeFilter,
    /// Side of the centre crop taken after resizing.
    pub crop: u32,
    /// Channel order of the tensor.
    pub channel_order: ChannelOrder,
    /// Per-channel value subtracted from the 0..=255 pixel.
    pub mean: [f32; 3],
    /// Per-channel divisor applied after subtracting `mean`.
    pub std: [f32; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSpec {
    name: String,
    shape: [usize; 4],
    layout: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSpec {
    name: String,
    dim: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    name: String,
    file: PathBuf,
    sha256: String,
    input: InputSpec,
    preprocessing: Preprocessing,
    output: OutputSpec,
}

/// A validated model descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDescriptor {
    /// Short name, e.g. `efficientnet_lite0`.
    pub name: String,
    /// Where the descriptor was read from.
    pub descriptor_path: PathBuf,
    /// The ONNX file, resolved relative to the descriptor.
    pub onnx_path: PathBuf,
    /// Expected sha256 of the ONNX file.
    pub sha256: [u8; 32],
    /// Name of the graph input (checked against the model at load).
    pub input_name: String,
    /// Input shape, NCHW with N = 1.
    pub input_shape: [usize; 4],
    /// The preprocessing the weights were trained with.
    pub preprocessing: Preprocessing,
    /// Name of the graph output used as the features (checked against the model at load).
    pub output_name: String,
    /// Length of the feature vector.
    pub output_dim: u32,
}

impl ModelDescriptor {
    /// Reads and validates a descriptor.
    ///
    /// # Errors
    /// [`ModelError`] naming the file and the key at fault.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = crate::bounded_file::read_text(path, crate::bounded_file::MAX_CONFIG_BYTES)
            .map_err(|source| ModelError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let raw: RawDescriptor = toml::from_str(&text).map_err(|e| ModelError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::validate(raw, path)
    }

    /// Finds [`DEFAULT_DESCRIPTOR`] in the usual places and loads it: `$FIELDTUNE_MODEL_DIR`,
    /// `./models`, next to the executable (`models/`, `../share/fieldtune/models`),
    /// `/usr/share/fieldtune/models`, and the source tree the binary was built from.
    ///
    /// # Errors
    /// [`ModelError::NotFound`] listing where it looked, or the descriptor's own error.
    pub fn load_default() -> Result<Self, ModelError> {
        let candidates = default_model_dirs();
        for dir in &candidates {
            let path = dir.join(DEFAULT_DESCRIPTOR);
            if path.is_file() {
                return Self::load(&path);
            }
        }
        Err(ModelError::NotFound {
            name: DEFAULT_DESCRIPTOR.to_string(),
            looked: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn validate(raw: RawDescriptor, path: &Path) -> Result<Self, ModelError> {
        let invalid = |key: &'static str, problem: String| ModelError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        let sha256 = parse_sha256(&raw.sha256)
            .ok_or_else(|| invalid("sha256", "must be 64 hex digits".into()))?;
        if raw.input.layout != "nchw" {
            return Err(invalid(
                "input.layout",
                format!("is {:?}; only \"nchw\" is supported", raw.input.layout),
            ));
        }
        let [n, c, h, w] = raw.input.shape;
        let p = &raw.preprocessing;
        if n != 1 || c != 3 {
            return Err(invalid(
                "input.shape",
                format!("is {:?}; expected [1, 3, H, W]", raw.input.shape),
            ));
        }
        if h != w || h != p.crop as usize {
            return Err(invalid(
                "preprocessing.crop",
                format!("is {} but the input is {h}×{w}; they must agree", p.crop),
            ));
        }
        if p.resize_shorter < p.crop {
            return Err(invalid(
                "preprocessing.resize_shorter",
                format!(
                    "is {} and must be at least crop ({})",
                    p.resize_shorter, p.crop
                ),
            ));
        }
        if p.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || p.mean.iter().any(|m| !m.is_finite())
        {
            return Err(invalid(
                "preprocessing.std",
                "and mean must be finite, std non-zero".into(),
            ));
        }
        if raw.output.dim == 0 {
            return Err(invalid("output.dim", "must be positive".into()));
        }
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Ok(Self {
            name: raw.name,
            descriptor_path: path.to_path_buf(),
            onnx_path: base.join(&raw.file),
            sha256,
            input_name: raw.input.name,
            input_shape: raw.input.shape,
            preprocessing: raw.preprocessing,
            output_name: raw.output.name,
            output_dim: raw.output.dim,
        })
    }

    /// The identity of this backbone (valid once the file's checksum has been verified).
    pub fn backbone_id(&self) -> BackboneId {
        BackboneId {
            sha256: self.sha256,
            dim: self.output_dim,
        }
    }

    /// What turns an image into this backbone's input, as 8 hex digits: the input shape and every
    /// preprocessing setting (resize, filter, crop, channel order, mean, std). The same ONNX file
    /// under another preprocessing gives other features, so the feature cache keeps them apart.
    pub fn input_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let p = &self.preprocessing;
        let mut hasher = Sha256::new();
        for side in self.input_shape {
            hasher.update((side as u64).to_le_bytes());
        }
        hasher.update(p.resize_shorter.to_le_bytes());
        hasher.update(format!("{:?}|{:?}", p.filter, p.channel_order).as_bytes());
        hasher.update(p.crop.to_le_bytes());
        for value in p.mean.iter().chain(&p.std) {
            hasher.update(value.to_bits().to_le_bytes());
        }
        to_hex(&hasher.finalize()[..4])
    }

    /// Number of f32 values in one input tensor.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }
}

fn default_model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("FIELDTUNE_MODEL_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from("models"));
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("models"));
        dirs.push(exe_dir.join("../share/fieldtune/models"));
    }
    dirs.push(PathBuf::from("/usr/share/fieldtune/models"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs
}

/// Parses 64 hex digits.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Formats bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
