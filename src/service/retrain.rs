//! Background retraining: the head is retrained from the replay set on its own thread while the
//! loop keeps classifying with the current head; the new head is swapped in between two frames.
//!
//! Labels given while a retrain runs are not lost: the result remembers the last sample id it was
//! trained on, and the loop teaches the new head the later samples online before swapping it in.
//! An undo during a retrain makes the result stale (the epoch changes) and it is dropped.

use std::thread::JoinHandle;

use crate::head::{Dataset, Head, HeadError, HeadKind, HyperParams};

/// A finished retrain.
pub struct Retrained {
    pub head: Head,
    /// The undo epoch it was started in.
    pub epoch: u64,
    /// The newest sample id it was trained on.
    pub last_sample: u64,
}

/// A running retrain: its thread, the undo epoch and the newest sample id it started from.
type Running = (JoinHandle<Result<Head, HeadError>>, u64, u64);

/// At most one retrain at a time.
#[derive(Default)]
pub struct Retrainer {
    running: Option<Running>,
}

impl Retrainer {
    /// Whether a retrain is running.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Starts a retrain of `data` unless one is running; returns whether it started.
    pub fn start(
        &mut self,
        data: Dataset,
        kind: HeadKind,
        hyper: HyperParams,
        epoch: u64,
        last_sample: u64,
    ) -> bool {
        if self.running.is_some() {
            return false;
        }
        let handle = std::thread::Builder::new()
            .name("fieldtune-retrain".into())
            .spawn(move || Head::train(&data, None, kind, &hyper, &mut |_| {}).map(|(h, _)| h));
        match handle {
            Ok(handle) => {
                self.running = Some((handle, epoch, last_sample));
                true
            }
            Err(e) => {
                tracing::warn!("cannot start a retrain thread: {e}");
                false
            }
        }
    }

    /// The result, once the thread has finished (never blocks).
    pub fn poll(&mut self) -> Option<Result<Retrained, String>> {
        if !self.running.as_ref()?.0.is_finished() {
            return None;
        }
        let (handle, epoch, last_sample) = self.running.take()?;
        Some(match handle.join() {
            Ok(Ok(head)) => Ok(Retrained {
                head,
                epoch,
                last_sample,
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the retrain thread panicked".into()),
        })
    }

    /// Waits for a running retrain (at shutdown, so its thread is joined) and drops the result.
    pub fn finish(&mut self) {
        if let Some((handle, _, _)) = self.running.take() {
            let _ = handle.join();
        }
    }
}
