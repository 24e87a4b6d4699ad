//! Image → feature vector: the preprocessing and the backbone of one model, with the time each
//! stage took for the last image (what the benchmarks and the service report).

use std::time::{Duration, Instant};

use image::RgbImage;

use crate::backbone::{Backbone, BackboneError, TractBackbone};
use crate::model::{BackboneId, ModelDescriptor};
use crate::preprocess::{decode, PreprocessError, Preprocessor};

/// Why an image could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The image could not be decoded or preprocessed.
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// The backbone failed.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
}

/// Time spent in each stage for the last embedded image.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Decoding the bytes (zero for an already decoded frame).
    pub decode: Duration,
    /// Resize, crop, normalise.
    pub preprocess: Duration,
    /// The backbone.
    pub backbone: Duration,
}

/// Preprocessing plus backbone of one model.
pub struct Embedder {
    preprocessor: Preprocessor,
    backbone: Box<dyn Backbone>,
    tensor: Vec<f32>,
    last: StageTimes,
}

impl Embedder {
    /// Loads the descriptor's backbone with tract (checksum verified).
    ///
    /// # Errors
    /// [`EmbedError::Backbone`] naming the file and the fix.
    pub fn load(descriptor: &ModelDescriptor) -> Result<Self, EmbedError> {
        Self::load_with_threads(descriptor, 1)
    }

    /// As [`Embedder::load`], with the backbone's matrix products on `threads` threads.
    ///
    /// # Errors
    /// [`EmbedError::Backbone`] naming the file and the fix.
    pub fn load_with_threads(
        descriptor: &ModelDescriptor,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let backbone = TractBackbone::load_with_threads(descriptor, threads)?;
        Ok(Self::with_backbone(descriptor, Box::new(backbone)))
    }

    /// An embedder around any backbone (e.g. a test double).
    pub fn with_backbone(descriptor: &ModelDescriptor, backbone: Box<dyn Backbone>) -> Self {
        Self {
            preprocessor: Preprocessor::new(descriptor.preprocessing.clone()),
            backbone,
            tensor: Vec::new(),
            last: StageTimes::default(),
        }
    }

    /// Which backbone this embedder runs.
    pub fn backbone_id(&self) -> BackboneId {
        self.backbone.id()
    }

    /// Feature length.
    pub fn dim(&self) -> usize {
        self.backbone.id().dim as usize
    }

    /// Stage times of the last embedded image.
    pub fn last_times(&self) -> StageTimes {
        self.last
    }

    /// JPEG/PNG bytes → feature vector.
    ///
    /// # Errors
    /// [`EmbedError`] if the bytes are not a complete image or the backbone fails.
    pub fn embed_bytes(&mut self, bytes: &[u8]) -> Result<Vec<f32>, EmbedError> {
        let start = Instant::now();
        let rgb = decode(bytes)?;
        let decode_time = start.elapsed();
        let features = self.embed_rgb(&rgb)?;
        self.last.decode = decode_time;
        Ok(features)
    }

    /// Decoded RGB frame → feature vector.
    ///
    /// # Errors
    /// [`EmbedError`] if the image is empty or the backbone fails.
    pub fn embed_rgb(&mut self, rgb: &RgbImage) -> Result<Vec<f32>, EmbedError> {
        let start = Instant::now();
        self.preprocessor.rgb_to_tensor(rgb, &mut self.tensor)?;
        let preprocessed = Instant::now();
        let features = self.backbone.embed(&self.tensor)?;
        self.last = StageTimes {
            decode: Duration::ZERO,
            preprocess: preprocessed - start,
            backbone: preprocessed.elapsed(),
        };
        Ok(features)
    }

    /// Preprocessed tensor → feature vector (for reference tensors).
    ///
    /// # Errors
    /// [`EmbedError::Backbone`].
    pub fn embed_tensor(&mut self, tensor: &[f32]) -> Result<Vec<f32>, EmbedError> {
        Ok(self.backbone.embed(tensor)?)
    }
}
