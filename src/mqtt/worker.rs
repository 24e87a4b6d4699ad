//! The threads of one broker connection (the device's MQTT link or its fleet link), stopped
//! together: dropping a [`Worker`] raises its stop flag and waits up to five seconds for every
//! thread to say it is done, so a broker that does not answer is never waited for longer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The running threads of one connection; dropping it stops them.
pub(crate) struct Worker {
    /// The link's name in the log line ("mqtt", "fleet").
    name: &'static str,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// One `()` from each thread as it ends.
    done: Receiver<()>,
}

impl Worker {
    /// Threads that watch `stop` and send one `()` on `done`'s channel as they end.
    pub(crate) fn new(
        name: &'static str,
        stop: Arc<AtomicBool>,
        threads: Vec<JoinHandle<()>>,
        done: Receiver<()>,
    ) -> Self {
        Worker {
            name,
            stop,
            threads,
            done,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The publisher disconnects; the connection thread then ends, which closes the other
        // threads' channels. A broker that does not answer is not waited for.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ended = 0;
        while ended < self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(()) => ended += 1,
                Err(_) => break,
            }
        }
        if ended == self.threads.len() {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        } else {
            tracing::warn!(
                "{}: the broker did not acknowledge the disconnect in time; leaving",
                self.name
            );
        }
    }
}
