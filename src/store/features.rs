//! How stored feature vectors are kept, in memory and on flash: plain f32, or f16 (half the
//! bytes). EfficientNet-Lite0 features are averages of ReLU6 outputs, all in [0, 6], where f16
//! keeps about 3 significant decimal digits (relative error ≤ 2⁻¹¹ ≈ 0.05 %), far below what moves
//! a linear head's decision; the store test `f16_costs_no_accuracy` measures it. f16 is the default
//! because it halves both flash writes per label and the replay set's RAM.

use half::f16;
use serde::{Deserialize, Serialize};

/// The encoding of stored features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum FeatureEncoding {
    /// 4 bytes per value, exact.
    F32,
    /// 2 bytes per value, ~3 significant digits.
    #[default]
    F16,
}

impl FeatureEncoding {
    /// Bytes per value.
    pub fn width(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

/// A byte buffer that postcard writes in one piece (length + raw bytes) instead of element by
/// element, which keeps decoding 10,000 stored features fast.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> serde::de::Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.push(byte);
                }
                Ok(Blob(out))
            }
        }
        deserializer.deserialize_byte_buf(BlobVisitor)
    }
}

/// One feature vector as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFeature {
    encoding: FeatureEncoding,
    bytes: Blob,
}

impl StoredFeature {
    /// Encodes `values`.
    pub fn encode(values: &[f32], encoding: FeatureEncoding) -> Self {
        let mut bytes = Vec::with_capacity(values.len() * encoding.width());
        match encoding {
            FeatureEncoding::F32 => {
                for v in values {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            FeatureEncoding::F16 => {
                for v in values {
                    bytes.extend_from_slice(&f16::from_f32(*v).to_le_bytes());
                }
            }
        }
        Self {
            encoding,
            bytes: Blob(bytes),
        }
    }

    /// The encoding.
    pub fn encoding(&self) -> FeatureEncoding {
        self.encoding
    }

    /// Number of values (a trailing partial value, impossible from [`Self::encode`], is ignored).
    pub fn dim(&self) -> usize {
        self.bytes.0.len() / self.encoding.width()
    }

    /// Bytes the values take.
    pub fn byte_len(&self) -> usize {
        self.bytes.0.len()
    }

    /// Writes the values into `out` (which must hold [`Self::dim`] values; extra room is left
    /// untouched, missing room truncates).
    pub fn decode_into(&self, out: &mut [f32]) {
        match self.encoding {
            FeatureEncoding::F32 => {
                for (o, c) in out.iter_mut().zip(self.bytes.0.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            FeatureEncoding::F16 => {
                for (o, c) in out.iter_mut().zip(self.bytes.0.chunks_exact(2)) {
                    *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
        }
    }

    /// The values as f32.
    pub fn to_vec(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.dim()];
        self.decode_into(&mut out);
        out
    }
}
