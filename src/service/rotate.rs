//! Bounded prediction files: `[output.rotate]` in the board file. When the file would grow past
//! `max_kb`, it is renamed `FILE.1` (`FILE.1` becomes `FILE.2`, … up to `keep` old files; the
//! oldest is removed) and a new `FILE` is started, always between two lines. At one line a second
//! a day is about 15 MB, so the default (16 MB, 3 old files) keeps several days in at most 64 MB.
//!
//! ```toml
//! [output]
//! predictions = "/var/lib/fieldtune/predictions.jsonl"
//! [output.rotate]
//! max_kb = 16384  # 0: never rotate (the file grows without bound)
//! keep = 3        # old files kept: FILE.1 … FILE.3
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::board::BoardError;

/// `[output.rotate]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRotate {
    /// Largest file in KiB before it is rotated (default 16384, 16 MiB; 0 = never).
    pub max_kb: Option<u64>,
    /// Old files kept (default 3; 0 = the old lines are dropped at each rotation).
    pub keep: Option<u32>,
}

/// `[output.rotate]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes before rotating; `None` = never.
    pub max_bytes: Option<u64>,
    /// Old files kept.
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: Some(16 << 20),
            keep: 3,
        }
    }
}

/// Checks `[output.rotate]` (absent: the defaults).
///
/// # Errors
/// [`BoardError::Invalid`] naming the key.
pub fn validate(raw: Option<RawRotate>, path: &Path) -> Result<Rotation, BoardError> {
    let raw = raw.unwrap_or_default();
    let bad = |key: &'static str, problem: String| BoardError::Invalid {
        path: path.to_path_buf(),
        key,
        problem,
    };
    let max_kb = raw.max_kb.unwrap_or(16 << 10);
    if max_kb > 1 << 30 {
        return Err(bad(
            "output.rotate.max_kb",
            format!("is {max_kb}; use 0 (never rotate) to 1073741824"),
        ));
    }
    let keep = raw.keep.unwrap_or(3);
    if keep > 100 {
        return Err(bad(
            "output.rotate.keep",
            format!("is {keep}; use 0 to 100 old files"),
        ));
    }
    Ok(Rotation {
        max_bytes: (max_kb > 0).then_some(max_kb << 10),
        keep,
    })
}

/// A file appended to and rotated by size, only ever between two lines. The size is checked
/// against the first write of each line, so a caller writes each line's text in one piece (as
/// [`super::output`] does) for files never to pass the bound.
pub struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    rotation: Rotation,
    at_line_start: bool,
}

fn open_append(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

impl RotatingFile {
    /// Opens `path` for appending.
    ///
    /// # Errors
    /// When it cannot be opened.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<RotatingFile> {
        let (file, size) = open_append(path)?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            at_line_start: true,
        })
    }

    /// `FILE.n`.
    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// FILE → FILE.1 → … → FILE.keep (the oldest removed), then a new FILE.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.rotation.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(self.numbered(self.rotation.keep));
            for n in (1..self.rotation.keep).rev() {
                let from = self.numbered(n);
                if from.exists() {
                    std::fs::rename(&from, self.numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(max) = self.rotation.max_bytes {
            if self.at_line_start && self.size > 0 && self.size + buf.len() as u64 > max {
                self.rotate()?;
            }
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        if n > 0 {
            self.at_line_start = buf[n - 1] == b'\n';
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_between_lines_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let rotation = Rotation {
            max_bytes: Some(100),
            keep: 2,
        };
        let mut file = RotatingFile::open(&path, rotation).unwrap();
        for i in 0..30 {
            // 19 bytes a line, in two writes as the service's `writeln!(w, "{text}")` does.
            file.write_all(format!("line {i:03} of twenty").as_bytes())
                .unwrap();
            writeln!(file).unwrap();
        }
        file.flush().unwrap();
        drop(file);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let names = |suffix: &str| {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        // 30 lines of 19 bytes, 5 a file: the newest 15 lines are in FILE, FILE.1, FILE.2.
        assert_eq!(read(&path).lines().count(), 5);
        assert!(read(&path).ends_with("line 029 of twenty\n"));
        assert!(read(&names(".1")).starts_with("line 020"));
        assert!(read(&names(".2")).starts_with("line 015"));
        assert!(!names(".3").exists());
        for p in [path.clone(), names(".1"), names(".2")] {
            assert!(read(&p).lines().all(|l| l.len() == 18), "whole lines only");
        }
        let opened_again = RotatingFile::open(&path, rotation).unwrap();
        assert_eq!(opened_again.size, 95);
    }

    #[test]
    fn bad_values_name_their_key() {
        let raw = RawRotate {
            max_kb: Some(1 << 40),
            keep: None,
        };
        match validate(Some(raw), Path::new("b.toml")) {
            Err(BoardError::Invalid { key, .. }) => assert_eq!(key, "output.rotate.max_kb"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            validate(None, Path::new("b.toml")).unwrap(),
            Rotation::default()
        );
    }
}
