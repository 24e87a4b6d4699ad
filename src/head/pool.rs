//! A small fork-join pool for the MLP's training step: a few worker threads that wait (spinning,
//! then yielding) for a task, run their part of it, and report back, so that one mini-batch's
//! wide products can be split over the cores without spawning threads per step (a step of the
//! MLP is about a quarter of a millisecond; a thread spawn costs tens of microseconds).
//!
//! A task is a closure called once per part, `0..parts()`, the calling thread taking part 0; the
//! parts must touch disjoint data, so the result does not depend on the number of threads.
//! [`Pool::run`] returns when every part has finished, which is what lets a task borrow from the
//! caller's stack. The workers end when the pool is dropped.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Most threads a retrain uses (a Raspberry Pi has four cores).
pub const MAX_THREADS: usize = 4;

/// Spins of a waiting thread before it starts yielding its core.
const SPINS: usize = 4096;

/// The threads a retrain uses by default: the cores, at most [`MAX_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

/// A task with its borrow's lifetime erased; only dereferenced while [`Pool::run`] waits.
#[derive(Clone, Copy)]
struct TaskPtr(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync`, and `Pool::run` keeps it alive until every part that was
// claimed has finished.
unsafe impl Send for TaskPtr {}

/// Bits of [`Shared::claims`] counting the parts claimed; the bits above hold the task's number.
const PART_BITS: u32 = 16;

struct Shared {
    /// The current task and its number (0: none yet).
    task: Mutex<(usize, Option<TaskPtr>)>,
    /// Bumped once per task, for the waiting workers to see.
    generation: AtomicUsize,
    /// `task number << PART_BITS | parts claimed`: a part is claimed by whoever gets it first,
    /// the caller or a worker, and only within its own task.
    claims: AtomicUsize,
    /// Parts of the current task finished.
    finished: AtomicUsize,
    /// A part panicked.
    panicked: AtomicBool,
    stop: AtomicBool,
    parts: usize,
}

impl Shared {
    /// Claims and runs parts of task `number` until none is left.
    fn work(&self, number: usize, task: &(dyn Fn(usize) + Sync)) {
        loop {
            let now = self.claims.load(Ordering::Acquire);
            let part = now & ((1 << PART_BITS) - 1);
            if now >> PART_BITS != number & (usize::MAX >> PART_BITS) || part >= self.parts {
                return;
            }
            if self
                .claims
                .compare_exchange(now, now + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            if catch_unwind(AssertUnwindSafe(|| task(part))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.finished.fetch_add(1, Ordering::Release);
        }
    }
}

/// Worker threads that help with the parts of a task.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} parts)", self.parts())
    }
}

/// Waits until `ready()`, spinning first, then yielding the core.
fn wait_until(mut ready: impl FnMut() -> bool) {
    let mut spins = 0usize;
    while !ready() {
        if spins < SPINS {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

impl Pool {
    /// A pool running tasks in `threads` parts (the caller and `threads − 1` workers); `None`
    /// for one thread, or when no worker thread can be started.
    pub fn new(threads: usize) -> Option<Pool> {
        if threads < 2 {
            return None;
        }
        let parts = threads.min(MAX_THREADS);
        let shared = Arc::new(Shared {
            task: Mutex::new((0, None)),
            generation: AtomicUsize::new(0),
            claims: AtomicUsize::new(parts),
            finished: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            parts,
        });
        let mut pool = Pool {
            shared,
            workers: Vec::with_capacity(parts - 1),
        };
        for _ in 1..parts {
            let shared = Arc::clone(&pool.shared);
            let spawned = std::thread::Builder::new()
                .name("fieldtune-train".into())
                .spawn(move || worker(&shared));
            match spawned {
                Ok(handle) => pool.workers.push(handle),
                // Dropping the pool ends the workers already started.
                Err(_) => return None,
            }
        }
        Some(pool)
    }

    /// Parts of a task: one per thread, the caller's included.
    pub fn parts(&self) -> usize {
        self.shared.parts
    }

    /// Runs `task(part)` for every part in `0..parts()` and returns when all are done. The
    /// calling thread takes parts too, so a worker that the system has not scheduled yet delays
    /// nothing: its part is taken by whoever is free first.
    ///
    /// # Panics
    /// When a part panicked.
    pub fn run(&self, task: &(dyn Fn(usize) + Sync)) {
        // SAFETY: only the lifetime is erased; a worker dereferences the pointer only for a part
        // it claimed of this task, and this function does not return before every part is done.
        let erased: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(task) };
        let shared = &*self.shared;
        let number = {
            let mut slot = shared.task.lock().unwrap_or_else(|e| e.into_inner());
            let number = slot.0 + 1;
            *slot = (number, Some(TaskPtr(erased)));
            shared.finished.store(0, Ordering::Relaxed);
            shared.claims.store(number << PART_BITS, Ordering::Release);
            number
        };
        shared.generation.fetch_add(1, Ordering::Release);
        shared.work(number, task);
        wait_until(|| shared.finished.load(Ordering::Acquire) == shared.parts);
        shared.task.lock().unwrap_or_else(|e| e.into_inner()).1 = None;
        assert!(
            !shared.panicked.swap(false, Ordering::Relaxed),
            "a part of a training task panicked"
        );
    }
}

fn worker(shared: &Shared) {
    let mut seen = 0usize;
    loop {
        let mut stop = false;
        wait_until(|| {
            stop = shared.stop.load(Ordering::Acquire);
            stop || shared.generation.load(Ordering::Acquire) != seen
        });
        if stop {
            return;
        }
        seen = shared.generation.load(Ordering::Acquire);
        let (number, task) = *shared.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(TaskPtr(task)) = task {
            // SAFETY: `Pool::run` keeps the task alive until every claimed part has finished,
            // and `work` only runs parts it claimed of this very task.
            shared.work(number, unsafe { &*task });
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

/// The half-open range of part `part` of `0..n` cut into `parts` pieces whose boundaries are
/// multiples of `align` (the last piece takes the rest).
pub fn part_range(n: usize, parts: usize, part: usize, align: usize) -> std::ops::Range<usize> {
    let align = align.max(1);
    let blocks = n.div_ceil(align);
    let at = |p: usize| (blocks * p / parts.max(1) * align).min(n);
    at(part)..if part + 1 >= parts { n } else { at(part + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_per_task() {
        let pool = Pool::new(3).expect("threads start");
        assert_eq!(pool.parts(), 3);
        let counts: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..1000 {
            pool.run(&|p| {
                counts[p].fetch_add(1, Ordering::Relaxed);
            });
        }
        for c in &counts {
            assert_eq!(c.load(Ordering::Relaxed), 1000);
        }
    }

    #[test]
    fn parts_cover_the_range_on_aligned_boundaries() {
        for (n, parts, align) in [
            (128, 2, 4),
            (128, 3, 4),
            (10, 4, 4),
            (1280, 4, 16),
            (3, 4, 1),
        ] {
            let ranges: Vec<_> = (0..parts).map(|p| part_range(n, parts, p, align)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[parts - 1].end, n);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(w[0].end.is_multiple_of(align) || w[0].end == n);
            }
        }
    }

    #[test]
    fn a_panicking_part_panics_the_caller() {
        let pool = Pool::new(2).expect("threads start");
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|p| assert!(p != 1, "part 1"))
        }));
        assert!(result.is_err());
        // The pool still works afterwards.
        let ran = AtomicUsize::new(0);
        pool.run(&|_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }
}
