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
        let mut class_dirs = list(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect::<Vec<_>>();
        class_dirs.sort();
        if class_dirs.is_empty() {
            return Err(DatasetError::NoClasses {
                path: root.to_path_buf(),
            });
        }
        let mut classes = Vec::new();
        let mut items = Vec::new();
        for dir in class_dirs {
            let label = classes.len();
            classes.push(file_name(&dir));
            items.extend(
                images_in(&dir)?
                    .into_iter()
                    .map(|path| Item { path, label }),
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
            classes,
            items,
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

fn images_in(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files: Vec<PathBuf> = list(dir)?
        .into_iter()
        .filter(|p| p.is_file() && is_image_path(p))
        .collect();
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
