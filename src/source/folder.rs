//! Folder replay: the images of a folder, one frame each (or each for several frames, as a camera
//! looking at one leaf for a while sees it), in order or shuffled, once or in a loop.
//!
//! Takes either a flat folder of images or the ImageFolder layout `DIR/<class>/<image>`; in the
//! latter the class folder's name becomes the frame's `truth`, so the service can report accuracy on
//! labelled frames and the tests can check predictions.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{Frame, FrameData, FrameSource, SourceError};

/// Replay order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By path, the same every pass.
    Sorted,
    /// A new seeded shuffle each pass: the same sequence for the same seed.
    Shuffled { seed: u64 },
}

impl Order {
    /// The order a board's `order`/`seed` keys ask for.
    pub fn from_flags(shuffled: bool, seed: u64) -> Self {
        if shuffled {
            Order::Shuffled { seed }
        } else {
            Order::Sorted
        }
    }
}

/// Replays a folder of images.
#[derive(Debug)]
pub struct FolderSource {
    root: PathBuf,
    images: Vec<(PathBuf, Option<String>)>,
    order: Order,
    repeat: bool,
    /// Indices into `images` for the current pass.
    pass: Vec<usize>,
    position: usize,
    passes: u64,
    /// Frames each image is shown for.
    repeat_each: u32,
    /// The image being shown and how many more frames it is shown for.
    showing: Option<(Frame, u32)>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::ListFolder {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::ListFolder {
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

impl FolderSource {
    /// Lists the images of `root` (and of its class subfolders).
    ///
    /// # Errors
    /// [`SourceError::ListFolder`] when it cannot be listed, [`SourceError::EmptyFolder`] when it
    /// holds no image.
    pub fn open(root: &Path, order: Order, repeat: bool) -> Result<Self, SourceError> {
        use crate::dataset::{entry_kind, Entry};
        let mut images = Vec::new();
        let skip = |path: &Path, why: &str| {
            tracing::warn!(
                "skipped {}: {why}",
                crate::learner::names::escaped(&path.display().to_string())
            );
        };
        for path in list_dir(root)? {
            match entry_kind(&path) {
                Entry::Dir => {
                    let class = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    for inner in list_dir(&path)? {
                        match entry_kind(&inner) {
                            Entry::File if is_image(&inner) => {
                                images.push((inner, class.clone()));
                            }
                            Entry::File => skip(&inner, "not a .jpg, .jpeg or .png file"),
                            Entry::Dir => skip(&inner, "a folder inside a class folder"),
                            Entry::Skip(why) => skip(&inner, &why),
                        }
                    }
                }
                Entry::File if is_image(&path) => images.push((path, None)),
                Entry::File => skip(&path, "not a .jpg, .jpeg or .png file"),
                Entry::Skip(why) => skip(&path, &why),
            }
        }
        if images.is_empty() {
            return Err(SourceError::EmptyFolder {
                path: root.to_path_buf(),
            });
        }
        let mut source = FolderSource {
            root: root.to_path_buf(),
            images,
            order,
            repeat,
            pass: Vec::new(),
            position: 0,
            passes: 0,
            repeat_each: 1,
            showing: None,
        };
        source.new_pass();
        Ok(source)
    }

    /// Shows each image for `frames` consecutive frames (at least 1), the bytes read once.
    pub fn repeat_each(mut self, frames: u32) -> Self {
        self.repeat_each = frames.max(1);
        self
    }

    /// How many images one pass holds.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Never true: an empty folder is refused by [`FolderSource::open`].
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    fn new_pass(&mut self) {
        self.pass = (0..self.images.len()).collect();
        if let Order::Shuffled { seed } = self.order {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(self.passes));
            self.pass.shuffle(&mut rng);
        }
        self.position = 0;
        self.passes += 1;
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        if let Some((frame, left)) = &mut self.showing {
            if *left > 0 {
                *left -= 1;
                return Ok(frame.clone());
            }
        }
        let frame = self.next_image()?;
        if self.repeat_each > 1 {
            self.showing = Some((frame.clone(), self.repeat_each - 1));
        }
        Ok(frame)
    }

    fn describe(&self) -> String {
        format!(
            "folder {} ({} images, {}{})",
            self.root.display(),
            self.images.len(),
            match self.order {
                Order::Sorted => "sorted".to_string(),
                Order::Shuffled { seed } => format!("shuffled, seed {seed}"),
            },
            if self.repeat_each > 1 {
                format!(", each shown for {} frames", self.repeat_each)
            } else {
                String::new()
            }
        )
    }
}

impl FolderSource {
    /// The next image of the pass, read from its file.
    fn next_image(&mut self) -> Result<Frame, SourceError> {
        if self.position == self.pass.len() {
            if !self.repeat {
                return Err(SourceError::Ended {
                    what: format!("folder {} played once", self.root.display()),
                });
            }
            self.new_pass();
        }
        let (path, truth) = &self.images[self.pass[self.position]];
        self.position += 1;
        let limits = crate::preprocess::DecodeLimits::DEFAULT;
        let bytes = crate::preprocess::read_image_file(path, &limits).map_err(|source| {
            SourceError::ReadImage {
                path: path.clone(),
                source,
            }
        })?;
        Ok(Frame {
            data: FrameData::Encoded(bytes),
            origin: path.display().to_string(),
            truth: truth.clone(),
        })
    }
}
