//! A stream of JPEG frames back to back (MJPEG as `rpicam-vid --codec mjpeg -o -` writes it) on
//! stdin or any reader.
//!
//! Frames are split by walking the JPEG marker segments rather than by searching for the end marker,
//! so an EXIF thumbnail (a whole JPEG inside APP1) does not cut a frame in two. Bytes before a start
//! marker are skipped, so joining a stream mid-frame resynchronises on the next frame.

use std::io::{BufRead, BufReader, Read};

use super::{Frame, FrameData, FrameSource, SourceError};

/// Frames larger than this are refused (a broken stream would otherwise grow without bound); the
/// bound holds inside entropy-coded data too. A 4K MJPEG frame is 2–4 MB.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// JPEG frames from a reader.
pub struct MjpegStream<R: Read + Send> {
    reader: BufReader<R>,
    name: String,
    frames: u64,
}

impl<R: Read + Send> MjpegStream<R> {
    /// Reads frames from `reader`; `name` is used in messages (`stdin`, a pipe's path).
    pub fn new(reader: R, name: &str) -> Self {
        MjpegStream {
            reader: BufReader::with_capacity(1 << 16, reader),
            name: name.to_string(),
            frames: 0,
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, SourceError> {
        let mut b = [0u8; 1];
        loop {
            match self.reader.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(b[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(SourceError::Stream {
                        what: self.name.clone(),
                        problem: e.to_string(),
                    })
                }
            }
        }
    }

    fn need(&mut self) -> Result<u8, SourceError> {
        self.byte()?.ok_or_else(|| SourceError::Ended {
            what: format!("{} closed in the middle of a frame", self.name),
        })
    }

    /// Reads one whole JPEG (SOI … EOI) into a buffer.
    fn read_jpeg(&mut self) -> Result<Vec<u8>, SourceError> {
        // Find SOI (FF D8), skipping anything before it.
        let mut previous = None;
        loop {
            let Some(b) = self.byte()? else {
                return Err(SourceError::Ended {
                    what: format!("{} closed after {} frames", self.name, self.frames),
                });
            };
            if previous == Some(0xFF) && b == 0xD8 {
                break;
            }
            previous = Some(b);
        }
        let mut out = vec![0xFF, 0xD8];
        loop {
            if out.len() > MAX_FRAME_BYTES {
                return Err(self.too_large());
            }
            // At a marker: FF, optional fill FFs, then the code.
            let mut b = self.need()?;
            if b != 0xFF {
                return Err(self.bad("expected a JPEG marker; is this an MJPEG stream?"));
            }
            while b == 0xFF {
                b = self.need()?;
            }
            out.extend_from_slice(&[0xFF, b]);
            match b {
                0xD9 => return Ok(out),
                0x01 | 0xD0..=0xD7 => continue, // markers without a length
                _ => {}
            }
            self.copy_segment(&mut out)?;
            if b == 0xDA {
                // Start of scan: entropy-coded data up to the next marker that is not a stuffed
                // byte (FF 00) or a restart marker (FF D0..D7).
                loop {
                    if out.len() > MAX_FRAME_BYTES {
                        return Err(self.too_large());
                    }
                    let c = self.need()?;
                    if c != 0xFF {
                        out.push(c);
                        continue;
                    }
                    let mut d = self.need()?;
                    while d == 0xFF {
                        d = self.need()?;
                    }
                    if d == 0x00 || (0xD0..=0xD7).contains(&d) {
                        out.extend_from_slice(&[0xFF, d]);
                        continue;
                    }
                    out.extend_from_slice(&[0xFF, d]);
                    if d == 0xD9 {
                        return Ok(out);
                    }
                    // Another segment after the scan (progressive JPEG): read its length next.
                    self.copy_segment(&mut out)?;
                    if d != 0xDA {
                        // Back to walking segments.
                        break;
                    }
                }
            }
        }
    }

    /// Copies one marker segment's length field and body (the marker itself is already in `out`).
    fn copy_segment(&mut self, out: &mut Vec<u8>) -> Result<(), SourceError> {
        let hi = self.need()?;
        let lo = self.need()?;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 2 {
            return Err(self.bad("a JPEG segment has a length below 2"));
        }
        out.extend_from_slice(&[hi, lo]);
        let start = out.len();
        out.resize(start + len - 2, 0);
        self.reader
            .read_exact(&mut out[start..])
            .map_err(|e| SourceError::Stream {
                what: self.name.clone(),
                problem: format!("truncated segment: {e}"),
            })
    }

    fn too_large(&self) -> SourceError {
        self.bad(&format!(
            "a frame is larger than {} MiB (the limit); skipped to the next frame. Is this an MJPEG stream at a sane resolution?",
            MAX_FRAME_BYTES >> 20
        ))
    }

    fn bad(&self, problem: &str) -> SourceError {
        SourceError::Stream {
            what: self.name.clone(),
            problem: problem.to_string(),
        }
    }
}

impl<R: Read + Send> FrameSource for MjpegStream<R> {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        match self.read_jpeg() {
            Ok(bytes) => {
                self.frames += 1;
                Ok(Frame {
                    data: FrameData::Encoded(bytes),
                    origin: format!("{}#{}", self.name, self.frames),
                    truth: None,
                })
            }
            // A garbled frame: resynchronise on the next start marker. Reported as a camera fault so
            // the loop treats it as transient.
            Err(SourceError::Stream { what, problem }) if self.reader.fill_buf().is_ok() => {
                Err(SourceError::Camera {
                    device: what,
                    problem,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn describe(&self) -> String {
        format!("MJPEG stream on {}", self.name)
    }
}
