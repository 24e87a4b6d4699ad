//! The feature cache: embedding a folder is the slow part, so features are kept on disk keyed by the
//! sha256 of the image's bytes, and a re-run only embeds new or changed images.
//!
//! One append-only file per backbone and preprocessing (`<dir>/<backbone sha256 prefix>-<dim>-<input
//! digest>.features`, see [`ModelDescriptor::input_digest`]), so features of different backbones,
//! or of one ONNX file under another crop, resize or normalisation, never mix. Each record is
//! `sha256 (32 bytes) | dim × f32 LE | CRC32`; a torn or damaged tail (a run killed mid-write) is
//! ignored and overwritten by the next append. The cache can always be rebuilt, so it trades
//! durability (no fsync per record) for speed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::model::{BackboneId, ModelDescriptor};

const MAGIC: &[u8; 8] = b"FTCACHE1";

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An I/O error on the cache file.
    #[error("feature cache {path}: check free space and permissions, or pass --cache DIR (the cache can be deleted safely)")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a cache of this backbone.
    #[error("feature cache {path} is not a fieldtune cache for this backbone; delete it (it is rebuilt automatically)")]
    Foreign { path: PathBuf },
}

/// sha256 of an image's bytes.
pub type ImageKey = [u8; 32];

/// Features of already embedded images, loaded in memory, appended to on disk.
#[derive(Debug)]
pub struct FeatureCache {
    path: PathBuf,
    dim: usize,
    features: HashMap<ImageKey, Vec<f32>>,
    writer: BufWriter<File>,
    dropped_bytes: u64,
}

impl FeatureCache {
    /// Opens (or creates) the cache file of `model` (its backbone and preprocessing) in `dir`.
    ///
    /// # Errors
    /// [`CacheError`] if the directory or file cannot be used.
    pub fn open(dir: &Path, model: &ModelDescriptor) -> Result<Self, CacheError> {
        let backbone = model.backbone_id();
        let input = model.input_digest();
        let path = dir.join(format!(
            "{}-{}-{input}.features",
            backbone.short_hex(),
            backbone.dim
        ));
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(false)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let dim = backbone.dim as usize;
        let header = header(&backbone, &input);
        let (features, valid_len) = if bytes.is_empty() {
            file.write_all(&header).map_err(io)?;
            (HashMap::new(), header.len() as u64)
        } else if bytes.len() < header.len() || bytes[..header.len()] != header[..] {
            return Err(CacheError::Foreign { path });
        } else {
            parse_records(&bytes[header.len()..], dim, header.len())
        };
        let dropped_bytes = (bytes.len() as u64)
            .saturating_sub(valid_len)
            .min(bytes.len() as u64);
        if !bytes.is_empty() && (bytes.len() as u64) > valid_len {
            file.set_len(valid_len).map_err(io)?;
        }
        file.seek(SeekFrom::Start(valid_len.max(header.len() as u64)))
            .map_err(io)?;
        Ok(Self {
            path,
            dim,
            features,
            writer: BufWriter::new(file),
            dropped_bytes,
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of cached feature vectors.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Bytes of a damaged tail dropped when the cache was opened.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// The cached features of an image, if any.
    pub fn get(&self, key: &ImageKey) -> Option<&[f32]> {
        self.features.get(key).map(Vec::as_slice)
    }

    /// Adds an image's features (buffered; see [`Self::flush`]).
    ///
    /// # Errors
    /// [`CacheError::Io`] if writing fails; the in-memory entry is kept either way.
    pub fn insert(&mut self, key: ImageKey, features: Vec<f32>) -> Result<(), CacheError> {
        debug_assert_eq!(features.len(), self.dim);
        if self.features.contains_key(&key) {
            return Ok(());
        }
        let mut record = Vec::with_capacity(32 + 4 * self.dim + 4);
        record.extend_from_slice(&key);
        for value in &features {
            record.extend_from_slice(&value.to_le_bytes());
        }
        record.extend_from_slice(&crc32fast::hash(&record).to_le_bytes());
        self.features.insert(key, features);
        self.writer
            .write_all(&record)
            .map_err(|source| CacheError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes buffered records to the file.
    ///
    /// # Errors
    /// [`CacheError::Io`].
    pub fn flush(&mut self) -> Result<(), CacheError> {
        self.writer.flush().map_err(|source| CacheError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for FeatureCache {
    fn drop(&mut self) {
        let _ = self.writer.flush();
    }
}

fn header(backbone: &BackboneId, input_digest: &str) -> Vec<u8> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&backbone.sha256);
    header.extend_from_slice(&backbone.dim.to_le_bytes());
    header.extend_from_slice(input_digest.as_bytes());
    header
}

/// Parses whole, checksummed records; returns them and the file length they cover.
fn parse_records(
    mut bytes: &[u8],
    dim: usize,
    offset: usize,
) -> (HashMap<ImageKey, Vec<f32>>, u64) {
    let record_len = 32 + 4 * dim + 4;
    let mut features = HashMap::new();
    let mut valid = offset as u64;
    while bytes.len() >= record_len {
        let (record, rest) = bytes.split_at(record_len);
        let (body, crc) = record.split_at(record_len - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            break;
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&body[..32]);
        let values = body[32..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        features.insert(key, values);
        valid += record_len as u64;
        bytes = rest;
    }
    (features, valid)
}

/// The default cache directory: `$XDG_CACHE_HOME/fieldtune`, else `~/.cache/fieldtune`, else
/// `.fieldtune-cache` in the working directory.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("fieldtune");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache/fieldtune");
    }
    PathBuf::from(".fieldtune-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_preprocessing_of_the_same_backbone_has_a_cache_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = ModelDescriptor::load_default().unwrap();
        let mut zoomed = shipped.clone();
        zoomed.preprocessing.resize_shorter = 288;
        assert_eq!(shipped.backbone_id(), zoomed.backbone_id());
        assert_ne!(shipped.input_digest(), zoomed.input_digest());

        let key = [7u8; 32];
        let features = vec![0.5f32; shipped.output_dim as usize];
        let mut cache = FeatureCache::open(dir.path(), &shipped).unwrap();
        cache.insert(key, features.clone()).unwrap();
        cache.flush().unwrap();
        let shipped_path = cache.path().to_path_buf();
        drop(cache);

        let other = FeatureCache::open(dir.path(), &zoomed).unwrap();
        assert_ne!(other.path(), shipped_path.as_path());
        assert!(
            other.get(&key).is_none(),
            "features of another preprocessing were served"
        );
        let again = FeatureCache::open(dir.path(), &shipped).unwrap();
        assert_eq!(again.get(&key), Some(&features[..]));
    }
}
