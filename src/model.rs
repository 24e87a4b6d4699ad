//! Model descriptors (`models/*.toml`) and the identity of a backbone.
//!
//! A descriptor says everything fieldtune needs to run an ONNX backbone: the file, its sha256, the
//! input shape, the preprocessing and the output. Any other backbone is a new descriptor, not new code.

use serde::{Deserialize, Serialize};

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
        self.sha256[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}
