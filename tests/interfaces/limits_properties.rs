//! Property tests of every parser that takes outside input: the control request reader and
//! parser, the board parser, the MJPEG splitter, image decoding with limits and the class name
//! rules. Each must never panic and must hold its bound whatever it is given.

use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use fieldtune::control::{parse_request, read_bounded_line, Line};
use fieldtune::learner::names::{check_unique, escaped, same_name, shown, NameRules};
use fieldtune::preprocess::{decode_with, DecodeLimits, Preprocessor};
use fieldtune::source::mjpeg::{MjpegStream, MAX_FRAME_BYTES};
use fieldtune::source::{FrameData, FrameSource, SourceError};
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn real_jpeg() -> Vec<u8> {
    std::fs::read(root().join("tests/data/reference/china.jpg")).expect("reference JPEG")
}

/// A reader that hands out its bytes in the given chunk sizes, as a socket does.
struct Chunked {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Lines come out exactly as sent when short enough; longer ones are refused without being
    /// kept; the buffer never holds more than the limit.
    #[test]
    fn request_lines_are_bounded(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        sizes in proptest::collection::vec(1usize..64, 1..6),
        max in 1usize..200,
    ) {
        let mut data = Vec::new();
        for line in &lines {
            data.extend(line.iter().copied().filter(|&b| b != b'\n'));
            data.push(b'\n');
        }
        let capacity = 32;
        let mut reader = BufReader::with_capacity(capacity, Chunked { data, at: 0, sizes, turn: 0 });
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            let line = read_bounded_line(&mut reader, max, &mut buf).expect("in-memory read");
            prop_assert!(buf.len() <= max);
            match line {
                Line::Closed => break,
                Line::Idle => prop_assert!(false, "an in-memory reader never times out"),
                other => seen.push(other),
            }
            buf.clear();
        }
        // Every line sent gives one outcome until the first refusal (which closes the connection
        // in the server; here the reader simply goes on with what follows).
        for (line, outcome) in lines.iter().zip(&seen) {
            let sent: Vec<u8> = line.iter().copied().filter(|&b| b != b'\n').collect();
            let mut expected = sent.clone();
            if expected.last() == Some(&b'\r') {
                expected.pop();
            }
            if sent.len() > max {
                prop_assert_eq!(outcome, &Line::TooLong);
                break;
            }
            match std::str::from_utf8(&expected) {
                Ok(text) => prop_assert_eq!(outcome, &Line::Text(text.to_string())),
                Err(_) => prop_assert_eq!(outcome, &Line::NotUtf8),
            }
        }
    }

    /// Any text is a request or an error reply that says how to write one; never a panic.
    #[test]
    fn request_parser_never_panics(text in ".{0,200}") {
        if let Err(reply) = parse_request(&text) {
            prop_assert!(!reply.ok);
            prop_assert!(reply.error.unwrap_or_default().contains("one JSON object per line"));
        }
    }

    /// Requests that look almost right parse or are refused, never panic.
    #[test]
    fn near_requests_never_panic(
        cmd in prop::sample::select(vec!["label", "undo", "status", "rename", "delete", "current", "x"]),
        class in ".{0,40}",
        frame in proptest::option::of(any::<i64>()),
    ) {
        let mut value = serde_json::json!({"cmd": cmd, "class": class, "from": class, "to": class});
        if let Some(f) = frame {
            value["frame"] = serde_json::json!(f);
        }
        let _ = parse_request(&value.to_string());
    }

    /// Arbitrary text as a board file: a board or an error naming the file, never a panic.
    #[test]
    fn board_parser_never_panics(text in "[\\[\\]a-z_=\" .0-9\n]{0,300}") {
        if let Err(e) = fieldtune::board::Board::parse(&text, Path::new("prop.toml")) {
            prop_assert!(format!("{e:#}").contains("prop.toml"), "{e:#}");
        }
    }

    /// Board keys with arbitrary values: validated, never a panic, and any board accepted holds
    /// limits inside their documented ranges.
    #[test]
    fn board_limits_are_validated(
        request in any::<u32>(),
        connections in any::<u16>(),
        idle in any::<u32>(),
        classes in any::<u16>(),
        chars in any::<u16>(),
    ) {
        let text = format!(
            "[control]\nmax_request_bytes = {request}\nmax_connections = {connections}\nidle_timeout_s = {idle}\n\
             [store]\nmax_classes = {classes}\nmax_class_name_chars = {chars}\n"
        );
        if let Ok(board) = fieldtune::board::Board::parse(&text, Path::new("prop.toml")) {
            prop_assert!((256..=65_536).contains(&board.control_limits.max_request_bytes));
            prop_assert!((1..=256).contains(&board.control_limits.max_connections));
            prop_assert!((2..=1024).contains(&board.store.names.max_classes));
            prop_assert!((1..=NameRules::LONGEST).contains(&board.store.names.max_chars));
        }
    }

    /// Camera sizes: a board is accepted only if its frames fit the decode limits that files
    /// have, so the camera path is bounded like the folder and stdin paths.
    #[test]
    fn camera_sizes_stay_within_the_decode_limits(width in 0u32..20_000, height in 0u32..20_000) {
        let text = format!(
            "[source]\nkind = \"camera\"\ndevice = 0\nwidth = {width}\nheight = {height}\n"
        );
        match fieldtune::board::Board::parse(&text, Path::new("prop.toml")) {
            Ok(board) => {
                let fieldtune::board::SourceKind::Camera { width, height, .. } = board.source.kind
                else {
                    prop_assert!(false, "a camera board");
                    unreachable!()
                };
                prop_assert!(DecodeLimits::DEFAULT.check(width, height).is_ok());
            }
            Err(e) => prop_assert!(format!("{e:#}").contains("source.width"), "{e:#}"),
        }
    }

    /// Arbitrary bytes on the MJPEG stream: frames come out as SOI … EOI within the cap, and the
    /// stream ends; never a panic, never an endless loop.
    #[test]
    fn mjpeg_splitter_is_bounded(data in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let mut stream = MjpegStream::new(Cursor::new(data), "prop");
        for _ in 0..10_000 {
            match stream.next_frame() {
                Ok(frame) => {
                    let FrameData::Encoded(bytes) = frame.data else {
                        prop_assert!(false, "MJPEG frames are encoded");
                        unreachable!()
                    };
                    prop_assert!(bytes.starts_with(&[0xFF, 0xD8]));
                    prop_assert!(bytes.ends_with(&[0xFF, 0xD9]));
                    prop_assert!(bytes.len() <= MAX_FRAME_BYTES + 70_000);
                }
                Err(SourceError::Ended { .. }) => return Ok(()),
                Err(e) => prop_assert!(e.is_transient(), "{e}"),
            }
        }
        prop_assert!(false, "the stream never ended");
    }

    /// Real frames with garbage between them come out whole and unchanged.
    #[test]
    fn mjpeg_splitter_keeps_real_frames(
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        copies in 1usize..4,
    ) {
        let jpeg = real_jpeg();
        let mut data = Vec::new();
        for _ in 0..copies {
            // Garbage without a start marker, so it cannot start a frame of its own.
            data.extend(garbage.iter().map(|&b| if b == 0xFF { 0 } else { b }));
            data.extend_from_slice(&jpeg);
        }
        let mut stream = MjpegStream::new(Cursor::new(data), "prop");
        for _ in 0..copies {
            let frame = stream.next_frame().expect("a whole frame");
            let FrameData::Encoded(bytes) = frame.data else { unreachable!() };
            prop_assert!(bytes == jpeg, "the frame is the file, byte for byte");
        }
        let ended = matches!(stream.next_frame(), Err(SourceError::Ended { .. }));
        prop_assert!(ended);
    }

    /// Damaged JPEG bytes: an error or an image within the limits, never a panic.
    #[test]
    fn decode_of_damaged_jpegs_is_bounded(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = real_jpeg();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len()) + 1);
        let limits = DecodeLimits { max_width: 2000, max_height: 2000, max_pixels: 1_000_000, max_file_bytes: 1 << 20 };
        if let Ok(rgb) = decode_with(&bytes, &limits) {
            prop_assert!(rgb.width() <= 2000 && rgb.height() <= 2000);
            prop_assert!(u64::from(rgb.width()) * u64::from(rgb.height()) <= 1_000_000);
        }
    }

    /// Arbitrary bytes: never a panic.
    #[test]
    fn decode_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode_with(&bytes, &DecodeLimits::DEFAULT);
    }

    /// Any image size within the limits, however thin, becomes a full tensor of finite values;
    /// sizes over the limits are refused from the header alone.
    #[test]
    fn images_of_any_shape_are_bounded(width in 1u32..3000, height in 1u32..3000) {
        let limits = DecodeLimits { max_width: 2500, max_height: 2500, max_pixels: 2_000_000, max_file_bytes: 64 << 20 };
        // Only the header and a tiny body: the size check must come before any pixel is decoded.
        let png = png_header(width, height);
        let within = width <= 2500 && height <= 2500 && u64::from(width) * u64::from(height) <= 2_000_000;
        match decode_with(&png, &limits) {
            Err(fieldtune::preprocess::PreprocessError::TooLarge { .. }) => prop_assert!(!within),
            _ => prop_assert!(within, "{width}×{height} passed the size check"),
        }
        if within && u64::from(width) * u64::from(height) <= 200_000 {
            let rgb = image::RgbImage::from_pixel(width, height, image::Rgb([90, 160, 40]));
            let descriptor = fieldtune::model::ModelDescriptor::load(&root().join("models/efficientnet_lite0.toml"))
                .expect("descriptor");
            let mut pre = Preprocessor::new(descriptor.preprocessing);
            let mut tensor = Vec::new();
            pre.rgb_to_tensor(&rgb, &mut tensor).expect("any size within limits");
            prop_assert_eq!(tensor.len(), pre.tensor_len());
            prop_assert!(tensor.iter().all(|v| v.is_finite()));
        }
    }

    /// A name is refused or comes out NFC, bounded, printable, trimmed, and is its own
    /// normal form; errors never carry a raw control or format character.
    #[test]
    fn names_are_safe(name in "\\PC{0,60}|.{0,60}|[\\u{0}-\\u{40}\\u{200b}-\\u{202e}\\u{fe00}-\\u{feff}a-z ]{0,60}", max in 1usize..64) {
        let rules = NameRules { max_chars: max, max_classes: 8 };
        match rules.normalize(&name) {
            Ok(normal) => {
                prop_assert!(normal.nfc().eq(normal.chars()));
                let n = normal.chars().count();
                prop_assert!((1..=max).contains(&n));
                prop_assert_eq!(normal.trim(), normal.as_str());
                prop_assert!(normal.chars().all(|c| !c.is_control()));
                let again = rules.normalize(&normal);
                prop_assert_eq!(again, Ok(normal.clone()));
                prop_assert!(same_name(&normal, &name));
                prop_assert!(check_unique(&normal, [name.as_str()].into_iter()).is_err());
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.chars().any(|c| c.is_control() || ('\u{200b}'..='\u{200f}').contains(&c) || ('\u{202a}'..='\u{202e}').contains(&c)), "{text:?}");
            }
        }
        let shown = shown(&name);
        prop_assert!(!shown.chars().any(char::is_control));
        prop_assert!(!escaped(&name).chars().any(char::is_control));
    }
}

/// A PNG of the given size whose pixel data is missing: enough for a decoder to read the size.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &ihdr);
    // The start of a zlib stream: a decoder reads the header up to here, then runs out of data.
    chunk(&mut out, b"IDAT", &[0x78, 0x9c]);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}
