//! Starting a device from a head trained elsewhere (`fieldtune state import --head`): the head's
//! classes become the device's and the head becomes the prior of every refit (see [`super::prior`]).
//!
//! The steps, each durable before the next: (1) every class of the head that the state lacks is
//! created, one journalled `NewClass` event each (a class of the same name, after NFC, is reused);
//! (2) the head with the state class of each of its classes is saved atomically as
//! [`super::prior::IMPORTED_HEAD_FILE`] — the commit point: a crash before it leaves only empty
//! classes, and running the import again finishes it; (3) the head is refitted (with no samples:
//! the imported head itself) and a snapshot written.

use tracing::info;

use super::prior::{ImportedHead, Prior};
use super::{names, Learner, LearnerError};
use crate::head::Head;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadImported {
    /// The head's classes, in its order.
    pub classes: Vec<String>,
    /// Those the import created (the others existed already and were kept, samples and all).
    pub created: Vec<String>,
    /// Stored samples of live classes the imported head is now fine-tuned on.
    pub samples: usize,
    /// Whether an earlier imported head was replaced.
    pub replaced: bool,
}

impl Learner {
    /// The imported head, if the device was started from one.
    pub fn imported_head(&self) -> Option<&ImportedHead> {
        self.prior.as_ref().map(Prior::imported)
    }

    /// Makes `head` (trained with this state's backbone; the caller checked its file's checksum)
    /// the device's imported head: its classes become live classes, and the head that serves is
    /// it, fine-tuned on whatever samples the state holds (see the module docs). Durable when it
    /// returns.
    ///
    /// # Errors
    /// A head of another feature length, a class name that breaks the board's rules or one class
    /// too many (nothing changed), or the storage failure (classes created before it stay, empty;
    /// importing again finishes the import).
    pub fn import_head(&mut self, head: Head) -> Result<HeadImported, LearnerError> {
        let dim = self.store.backbone().dim as usize;
        if head.dim() != dim {
            return Err(LearnerError::Head(format!(
                "the head takes {}-d features, this state's backbone gives {dim}",
                head.dim()
            )));
        }
        // Check every name before changing anything.
        let mut normal = Vec::with_capacity(head.classes().len());
        let mut new = 0usize;
        for name in head.classes() {
            let name = self.names.normalize(name)?;
            names::check_unique(&name, normal.iter().map(String::as_str))?;
            if self.find_live(&name).is_none() {
                new += 1;
            }
            normal.push(name);
        }
        let live = self.store.data().live_classes().count();
        if live + new > self.names.max_classes {
            return Err(names::NameError::TooManyClasses {
                shown: names::shown(&normal[normal.len() - 1]),
                max: self.names.max_classes,
            }
            .into());
        }
        let mut classes = Vec::with_capacity(normal.len());
        let mut created = Vec::new();
        for name in &normal {
            let class = match self.find_live(name) {
                Some(class) => class,
                None => {
                    self.new_class(name)?;
                    created.push(name.clone());
                    self.find_live(name).ok_or_else(|| {
                        LearnerError::Head(format!("class {name:?} vanished after its creation"))
                    })?
                }
            };
            classes.push(class);
        }
        let imported = ImportedHead { head, classes };
        Prior::save(
            self.fs.as_ref(),
            self.store.dir(),
            &imported,
            self.store.backbone(),
        )?;
        let replaced = self.prior.replace(Prior::new(imported)).is_some();
        // Whatever served before was fitted without this head.
        self.generation += 1;
        self.head_basis = None;
        self.failed_basis = None;
        if let Some(done) = self.retrainer.poll(true) {
            drop(done);
        }
        self.refit_now()?;
        self.snapshot()?;
        let samples = self.store.data().live_samples().count();
        info!(
            "imported a head of {} classes ({} created), fine-tuned on {samples} stored samples",
            normal.len(),
            created.len()
        );
        Ok(HeadImported {
            classes: normal,
            created,
            samples,
            replaced,
        })
    }
}
