//! Image folders in the ImageFolder layout: `DIR/<class>/*.{jpg,jpeg,png}`, one sub-folder per class.
//! Scanning only lists files; decoding happens when features are computed ([`crate::featurize`]).

use std::path::{Path, PathBuf};

/// Why a folder cannot be used as a data set.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The folder does not exist or cannot be listed.
    #[error("cannot read data folder {path}; expected the layout DIR/<class>/*.jpg")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No class sub-folders.
    #[error("data folder {path} has no class sub-folders; expected the layout DIR/<class>/*.jpg")]
    NoClasses { path: PathBuf },
    /// A class folder holds no images.
    #[error("class folder {path} has no .jpg/.jpeg/.png images; add some or remove the folder")]
    EmptyClass { path: PathBuf },
    /// A class folder whose name cannot be a class name.
    #[error("class folder {path} cannot be a class: {source}; rename the folder")]
    BadClassName {
        path: PathBuf,
        #[source]
        source: crate::learner::names::NameError,
    },
    /// Two class folders whose names are the same after Unicode normalisation.
    #[error("class folders {first} and {second} are the same class name after Unicode normalisation; merge or rename one")]
    DuplicateClass { first: PathBuf, second: PathBuf },
    /// A class that the head does not know.
    #[error("class folder {path} is not one of the head's classes ({known}); remove it or train a head that has it")]
    UnknownClass { path: PathBuf, known: String },
}

/// One labelled image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The image file.
    pub path: PathBuf,
    /// Index into [`ImageFolder::classes`].
    pub label: usize,
}

/// The files of an ImageFolder data set, classes and files in sorted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// The folder scanned.
    pub root: PathBuf,
    /// Class names (sub-folder names), sorted.
    pub classes: Vec<String>,
    /// Every image with its label, sorted by class then file name.
    pub items: Vec<Item>,
    /// Entries that were passed over, with why (a FIFO named `.jpg`, a dangling link, a loop).
    pub skipped: Vec<(PathBuf, String)>,
}

/// What a directory entry is, following symbolic links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory (or a link to one).
    Dir,
    /// A regular file (or a link to one).
    File,
    /// Anything else, with why it is passed over.
    Skip(String),
}

/// Classifies `path`, saying why when it is neither a directory nor a regular file.
pub fn entry_kind(path: &Path) -> Entry {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_dir() {
                Entry::Dir
            } else if kind.is_file() {
                Entry::File
            } else if kind.is_fifo() {
                Entry::Skip("a FIFO (named pipe), not an image file".into())
            } else if kind.is_socket() {
                Entry::Skip("a socket, not an image file".into())
            } else {
                Entry::Skip("a device or special file, not an image file".into())
            }
        }
        Err(e) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if is_link && e.raw_os_error() == Some(libc::ELOOP) {
                Entry::Skip("a symbolic link loop".into())
            } else if is_link && e.kind() == std::io::ErrorKind::NotFound {
                let target = std::fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                Entry::Skip(format!(
                    "a dangling symbolic link (to {target}, which does not exist)"
                ))
            } else {
                Entry::Skip(format!("cannot be read: {e}"))
            }
        }
    }
}

/// True for the file extensions fieldtune reads.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        .unwrap_or(false)
}

impl ImageFolder {
    /// Lists `root/<class>/*.{jpg,jpeg,png}`; classes are the sorted sub-folder names.
    ///
    /// # Errors
    /// [`DatasetError`] for a missing folder, no classes, or an empty class folder.
    pub fn scan(root: &Path) -> Result<Self, DatasetError> {
        let mut skipped = Vec::new();
        let mut class_dirs = Vec::new();
        for path in list(root)? {
            match entry_kind(&path) {
                Entry::Dir => class_dirs.push(path),
                Entry::File => skipped.push((
                    path,
                    "a file at the top of the data folder, not in a class folder".into(),
                )),
                Entry::Skip(why) => skipped.push((path, why)),
            }
        }
        class_dirs.sort();
        if class_dirs.is_empty() {
            return Err(DatasetError::NoClasses {
                path: root.to_path_buf(),
            });
        }
        let mut classes = Vec::new();
        let mut items = Vec::new();
        let rules = crate::learner::names::NameRules::BROADEST;
        let mut class_paths: Vec<PathBuf> = Vec::new();
        for dir in class_dirs {
            let label = classes.len();
            let name =
                rules
                    .normalize(&file_name(&dir))
                    .map_err(|source| DatasetError::BadClassName {
                        path: dir.clone(),
                        source,
                    })?;
            if let Some(k) = classes.iter().position(|c| *c == name) {
                return Err(DatasetError::DuplicateClass {
                    first: class_paths[k].clone(),
                    second: dir,
                });
            }
            classes.push(name);
            items.extend(
                images_in(&dir, &mut skipped)?
                    .into_iter()
                    .map(|path| Item { path, label }),
            );
            class_paths.push(dir);
        }
        Ok(Self {
            root: root.to_path_buf(),
            classes,
            items,
            skipped,
        })
    }

    /// Like [`Self::scan`], but labels follow `known` (a head's class order); a sub-folder whose
    /// name is not in `known` is an error. Classes of `known` without a folder are simply absent.
    ///
    /// # Errors
    /// As [`Self::scan`], plus [`DatasetError::UnknownClass`].
    pub fn scan_with_classes(root: &Path, known: &[String]) -> Result<Self, DatasetError> {
        let scanned = Self::scan(root)?;
        let mut items = Vec::with_capacity(scanned.items.len());
        for item in scanned.items {
            let name = &scanned.classes[item.label];
            let Some(label) = known.iter().position(|k| k == name) else {
                return Err(DatasetError::UnknownClass {
                    path: root.join(name),
                    known: known.join(", "),
                });
            };
            items.push(Item {
                path: item.path,
                label,
            });
        }
        Ok(Self {
            root: scanned.root,
            classes: known.to_vec(),
            items,
            skipped: scanned.skipped,
        })
    }

    /// Number of images per class.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for item in &self.items {
            counts[item.label] += 1;
        }
        counts
    }
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let read_error = |source| DatasetError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        paths.push(entry.map_err(read_error)?.path());
    }
    Ok(paths)
}

fn images_in(
    dir: &Path,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files = Vec::new();
    for path in list(dir)? {
        match entry_kind(&path) {
            Entry::File if is_image_path(&path) => files.push(path),
            Entry::File => skipped.push((path, "not a .jpg, .jpeg or .png file".into())),
            Entry::Dir => skipped.push((path, "a folder inside a class folder".into())),
            Entry::Skip(why) => skipped.push((path, why)),
        }
    }
    if files.is_empty() {
        return Err(DatasetError::EmptyClass {
            path: dir.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
