//! Keeps the resident memory of a long-running process flat on glibc.
//!
//! glibc serves an allocation above its mmap threshold (128 KiB at start) with its own mapping and
//! returns it to the system when freed, but every such free also raises the threshold (up to 32
//! MiB). The service frees multi-megabyte buffers all day (the backbone's activations every frame,
//! the matrices of every background retrain, snapshot encodings), so after a while they all come
//! from the heap, whose free space fragments across threads and is not given back: after 41,000
//! frames the process held 140 MB resident (peak 182 MB).
//!
//! Two settings fix it. The threshold is fixed at 256 KiB (which turns the adjustment off), so
//! big buffers are mapped and unmapped one by one; and after the rare big frees (model loading, a
//! retrain swapped in, a snapshot written) `malloc_trim` gives every arena's free pages back.
//!
//! The price is speed: the backbone's activations (up to ~5 MB) are mapped afresh every frame.
//! `fieldtune run --folder corn4/train --bench-frames N` (release, 2 backbone threads, one binary,
//! the threshold set through glibc's own variable, trimming on), 3,000 frames: glibc's default
//! 40.6 fps, peak 107 MB; 256 KiB 25.5 fps, peak 57 MB; 4 MiB 38.2 fps, peak 74 MB; 8 MiB 41.2
//! fps, peak 72 MB; 16 MiB 40.7 fps, peak 92 MB. Over 100,000 frames 8 MiB stayed flat (median
//! 68 MB over the first tenth, 69 MB over the last) at 34.7 fps but peaked at 94 MB; 256 KiB
//! (without trimming, one backbone thread) stayed flat at 49-50 MB and peaked at 76 MB, inside the
//! 80 MB goal, so it is the default. A device with memory to spare runs about 60 % faster with
//! `MALLOC_MMAP_THRESHOLD_=8388608` in its environment: a threshold the user gives glibc through
//! that variable is left alone. Other C libraries do not have the adjustment: glibc only.

/// The fixed mmap threshold: buffers from this size up are mapped and unmapped one by one.
pub const MMAP_THRESHOLD_BYTES: usize = 256 * 1024;

/// glibc's own variable for the threshold; when it is set, glibc has already applied it.
pub const GLIBC_THRESHOLD_VARIABLE: &str = "MALLOC_MMAP_THRESHOLD_";

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`] (call once, early in `main`), unless
/// [`GLIBC_THRESHOLD_VARIABLE`] is set. Returns whether it was set here (always `false` on other C
/// libraries).
pub fn keep_resident_memory_flat() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os(GLIBC_THRESHOLD_VARIABLE).is_some() {
            return false;
        }
        // SAFETY: mallopt only changes a tuning value of the allocator; it is called before any
        // other thread starts, takes plain integers and reports failure through its result.
        let threshold = libc::c_int::try_from(MMAP_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives the free memory of every allocator arena back to the system (glibc's `malloc_trim`; a
/// no-op elsewhere). Cheap next to what follows it: call it after the big, rare frees (model
/// loading, a background retrain, a snapshot). Returns whether any memory was released.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns unused pages of the allocator's own arenas to the
        // system; it takes an integer and is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_the_fixed_threshold() {
        let glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
        let users_own = std::env::var_os(GLIBC_THRESHOLD_VARIABLE).is_some();
        assert_eq!(keep_resident_memory_flat(), glibc && !users_own);
    }
}
