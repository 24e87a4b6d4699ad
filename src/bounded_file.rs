//! Reads a file the operator names (a board, a model descriptor, a head file, an exported state)
//! within a bound: only a regular file is opened for reading (a FIFO would wait for ever,
//! `/dev/zero` never end) and a file larger than the bound is refused before it is read.

use std::io::{self, Read};
use std::path::Path;

/// Largest board file or model descriptor read: text of a few KiB in practice.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Largest head file read: an MLP head on a 1280-d backbone with 1024 classes is under 8 MiB.
pub const MAX_HEAD_BYTES: u64 = 64 << 20;

/// Largest exported state or state file read by `fieldtune state`.
pub const MAX_STATE_FILE_BYTES: u64 = 1 << 30;

/// Reads `path` if it is a regular file of at most `max_bytes` bytes.
///
/// # Errors
/// The open or read error, or [`io::ErrorKind::InvalidInput`] saying what the path is instead of
/// a regular file, or how large it is against the bound.
pub fn read(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if let Some(kind) = not_regular(&meta.file_type()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is a {kind}, not a regular file"),
        ));
    }
    let too_large = |bytes: u64| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {bytes} bytes, more than the {max_bytes} bytes such a file may have"),
        )
    };
    if meta.len() > max_bytes {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow while it is read: never take more than the bound.
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads `path` as UTF-8 text within `max_bytes`, as [`read`].
///
/// # Errors
/// As [`read`], and [`io::ErrorKind::InvalidData`] for text that is not UTF-8.
pub fn read_text(path: &Path, max_bytes: u64) -> io::Result<String> {
    String::from_utf8(read(path, max_bytes)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// What a file type is when it is not a regular file.
pub fn not_regular(kind: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("directory")
    } else if kind.is_fifo() {
        Some("FIFO (named pipe)")
    } else if kind.is_socket() {
        Some("socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("device")
    } else {
        Some("special file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_bound_are_read_and_others_refused_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = dir.path().join("board.toml");
        std::fs::write(&small, "name = \"x\"\n").expect("write");
        assert_eq!(read_text(&small, 64).expect("read"), "name = \"x\"\n");

        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; 65]).expect("write");
        let e = read_text(&big, 64).expect_err("too large");
        assert!(e.to_string().contains("65 bytes, more than the 64"), "{e}");

        let e = read(Path::new("/dev/zero"), 64).expect_err("a device");
        assert!(e.to_string().contains("device"), "{e}");
        let e = read(dir.path(), 64).expect_err("a directory");
        assert!(e.to_string().contains("directory"), "{e}");

        let fifo = dir.path().join("fifo.toml");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
        let e = read(&fifo, 64).expect_err("a FIFO, without waiting for a writer");
        assert!(e.to_string().contains("FIFO"), "{e}");

        std::fs::write(&small, [0xFF, 0xFE]).expect("write");
        let e = read_text(&small, 64).expect_err("not UTF-8");
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }
}
