//! Keeps the resident memory of a long-running process flat on glibc.
//!
//! glibc serves an allocation above its mmap threshold (128 KiB at start) with its own mapping and
//! returns it to the system when freed, but every such free also raises the threshold (up to 32
//! MiB). The service frees multi-megabyte buffers all day (decoded frames, the matrices of every
//! background retrain, snapshot encodings), so after a while they all come from the heap, whose
//! free space fragments across threads and is not given back. Measured with `fieldtune run
//! --bench-frames` over corn4 (a label every tenth frame, a background retrain every fourth label):
//! after 41,000 frames the process held 140 MB resident (peak 182 MB); in 2,000-frame runs it
//! went from 62 to 79 MB and kept rising, and with the threshold fixed at 256 KiB from 38 to 32 MB
//! (peak 56 MB), flat in between. Setting the threshold explicitly turns the adjustment off. Other
//! C libraries do not have the adjustment, so this is glibc only. A threshold the user gives glibc
//! through its own `MALLOC_MMAP_THRESHOLD_` variable is left alone (that is also how the cost of
//! this setting is measured: the same binary with and without it).

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
