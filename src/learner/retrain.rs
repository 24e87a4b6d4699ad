//! Background retraining: a head is fitted to a copy of the replay set on its own thread while
//! the service keeps predicting with the current head; the learner swaps the result in between
//! two frames ([`super::Learner::poll`]). At most one runs at a time.

use std::thread::JoinHandle;

use super::fit::TrainingData;
use crate::head::{Head, HeadError, HeadKind, HyperParams};

/// What a retrain was started from, handed back with its result.
#[derive(Debug, Clone)]
pub struct Job {
    /// The learner's removal generation when it started: samples removed since make it stale.
    pub generation: u64,
    /// The newest sample id it was trained on (later ones are taught online after the swap).
    pub last_sample: Option<u64>,
    /// Fingerprint of its training set.
    pub basis: u64,
    /// State class index of each head class, in head order.
    pub classes: Vec<u32>,
}

/// A finished retrain.
pub struct Retrained {
    /// The head, or why it could not be trained.
    pub head: Result<Head, String>,
    /// What it was started from.
    pub job: Job,
}

/// At most one retrain at a time.
#[derive(Default)]
pub struct Retrainer {
    running: Option<(JoinHandle<Result<Head, HeadError>>, Job)>,
}

impl Retrainer {
    /// Whether a retrain is running.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Starts fitting a head to `data` unless one is running; returns whether it started.
    /// With `prior` (an imported head), the fit fine-tunes it instead of training from scratch.
    pub fn start(
        &mut self,
        data: TrainingData,
        kind: HeadKind,
        hyper: HyperParams,
        prior: Option<Head>,
        job: Job,
    ) -> bool {
        if self.running.is_some() {
            return false;
        }
        let handle = std::thread::Builder::new()
            .name("fieldtune-retrain".into())
            .spawn(move || super::fit::fit_split(data, kind, &hyper, prior.as_ref()));
        match handle {
            Ok(handle) => {
                self.running = Some((handle, job));
                true
            }
            Err(e) => {
                tracing::warn!("cannot start a retrain thread: {e}");
                false
            }
        }
    }

    /// The result, once the thread has finished; with `wait`, blocks until it has.
    pub fn poll(&mut self, wait: bool) -> Option<Retrained> {
        if !wait && !self.running.as_ref()?.0.is_finished() {
            return None;
        }
        let (handle, job) = self.running.take()?;
        let head = match handle.join() {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the retrain thread panicked".into()),
        };
        Some(Retrained { head, job })
    }
}
