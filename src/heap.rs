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
//! The price was speed: the backbone's activations (up to ~5 MB) were mapped afresh every frame,
//! each page faulted in and zeroed by the kernel again (a third of the backbone's time). Two more
//! pieces take that price back while keeping the bound:
//! - [`Arena`], in the binary's global allocator: during the backbone's run ([`in_arena`]),
//!   allocations of the mapped sizes (256 KiB to 8 MiB) are placed first-fit in one 12 MiB region,
//!   so from the second frame on the activations reuse pages that are already resident; what it
//!   can add to resident memory is its size, fixed, and what does not fit goes to glibc as before;
//! - a trim threshold of 1 MiB ([`TRIM_THRESHOLD_BYTES`]), so the heap stops shrinking and growing
//!   again around the activations under 256 KiB.
//!
//! The figures below predate both (see the README for the figures with them).
//! `fieldtune run --folder corn4/train --bench-frames N` (release, 2 backbone threads, one binary,
//! the threshold set through glibc's own variable, trimming on), 3,000 frames: glibc's default
//! 40.6 fps, peak 107 MB; 256 KiB 25.5 fps, peak 57 MB; 4 MiB 38.2 fps, peak 74 MB; 8 MiB 41.2
//! fps, peak 72 MB; 16 MiB 40.7 fps, peak 92 MB. Over 100,000 frames 8 MiB stayed flat (median
//! 68 MB over the first tenth, 69 MB over the last) at 34.7 fps but peaked at 94 MB; 256 KiB
//! (without trimming, one backbone thread) stayed flat at 49-50 MB and peaked at 76 MB, inside the
//! 80 MB goal, so it is the default. A device with memory to spare runs about 60 % faster with
//! `MALLOC_MMAP_THRESHOLD_=8388608` in its environment: a threshold the user gives glibc through
//! that variable is left alone. Other C libraries do not have the adjustment: glibc only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The fixed mmap threshold: buffers from this size up are mapped and unmapped one by one.
pub const MMAP_THRESHOLD_BYTES: usize = 256 * 1024;

/// glibc's own variable for the threshold; when it is set, glibc has already applied it.
pub const GLIBC_THRESHOLD_VARIABLE: &str = "MALLOC_MMAP_THRESHOLD_";

/// The heap's top is given back to the system only when more than this is free there. glibc's
/// default (128 KiB) made the main heap shrink and grow again several times a frame around the
/// backbone's activations under 256 KiB (about 680 KB each time), faulting their pages in again:
/// 146,000 page faults in 200 frames, against 21,000 with 1 MiB (`perf stat -e page-faults
/// fieldtune bench --ops --runs 100`, the activations' big blocks already reused; 2 MiB gave the
/// same count). At most this much stays free at the top of each glibc arena; `malloc_trim` (after
/// retrains and snapshots) still gives it all back.
pub const TRIM_THRESHOLD_BYTES: usize = 1024 * 1024;

/// glibc's own variable for the trim threshold; when it is set, glibc has already applied it.
pub const GLIBC_TRIM_VARIABLE: &str = "MALLOC_TRIM_THRESHOLD_";

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`] and its trim threshold at
/// [`TRIM_THRESHOLD_BYTES`] (call once, early in `main`), unless [`GLIBC_THRESHOLD_VARIABLE`] is
/// set (then glibc's own settings stay; a trim threshold given through [`GLIBC_TRIM_VARIABLE`] is
/// kept too). Returns whether the mmap threshold was set here (always `false` on other C
/// libraries).
pub fn keep_resident_memory_flat() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os(GLIBC_THRESHOLD_VARIABLE).is_some() {
            return false;
        }
        let int = |bytes: usize| libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        if std::env::var_os(GLIBC_TRIM_VARIABLE).is_none() {
            // SAFETY: as below; a failure only leaves glibc's default trim threshold.
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, int(TRIM_THRESHOLD_BYTES)) };
        }
        // SAFETY: mallopt only changes a tuning value of the allocator; it is called before any
        // other thread starts, takes plain integers and reports failure through its result.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, int(MMAP_THRESHOLD_BYTES)) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives the resident pages of [`ARENA`]'s free space and the free memory of every allocator arena back to the
/// system (glibc's `malloc_trim`; a no-op elsewhere). Cheap next to what follows it: call it after
/// the big, rare frees (model loading, a background retrain, a snapshot). Returns whether glibc
/// released any memory.
pub fn release_free_memory() -> bool {
    ARENA.release();
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

/// Drops this program's machine code from resident memory (Linux; a no-op elsewhere): the pages
/// of the executable's read-and-execute mappings, which the kernel reads back from the file, on
/// demand, for the code that runs again. Call once, after loading: most of a 36 MB binary's code
/// (ONNX parsing, tract's optimiser, the command line) runs only at start, yet its pages stay
/// resident and count in the process's RSS (23 MB file-backed RSS during the loop, against ~8 MB
/// that the loop's own code faults back in). Only code mappings are touched: never written, so
/// the file holds exactly what they held. Returns the bytes advised away.
pub fn release_startup_code() -> usize {
    #[cfg(target_os = "linux")]
    {
        let (Ok(exe), Ok(maps)) = (
            std::fs::read_link("/proc/self/exe"),
            std::fs::read_to_string("/proc/self/maps"),
        ) else {
            return 0;
        };
        let mut released = 0;
        for line in maps.lines() {
            // start-end perms offset dev inode path
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [range, perms, _, _, _, path] = fields[..] else {
                continue;
            };
            if perms != "r-xp" || std::path::Path::new(path) != exe {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            // SAFETY: a private, read-and-execute mapping of the executable: its pages are never
            // written, so dropping them only makes the next use read them from the file again.
            let advised = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if advised == 0 {
                released += end - start;
            }
        }
        released
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Allocations from this size up are served from the [`Arena`]: exactly the blocks glibc would map
/// and unmap one by one under [`MMAP_THRESHOLD_BYTES`], whose every use would fault in fresh
/// zeroed pages.
pub const ARENA_MIN_BYTES: usize = MMAP_THRESHOLD_BYTES;

/// Allocations above this size never use the arena: EfficientNet-Lite0's largest activation is
/// 4.8 MB; the bigger blocks are rare (a retrain's feature matrix, a snapshot's encoding).
pub const ARENA_MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;

/// The arena's size: the most it can ever add to resident memory. One EfficientNet-Lite0 frame
/// maps 41 blocks of 37.5 MB in all but never holds more than 6.4 MB of them at once; placed
/// first-fit in one region, they reach 7.2 MB into it. An allocation that finds no room goes to
/// the system allocator as before.
pub const ARENA_BYTES: usize = 12 * 1024 * 1024;

/// Arena space is handed out in whole pages.
const PAGE: usize = 4096;

/// Free extents the arena tracks at most (neighbours merge, so there are at most one more than
/// blocks in use, a dozen in a frame); space freed while all are taken is never reused, only
/// counted ([`ArenaStats::lost_bytes`]).
const MAX_EXTENTS: usize = 128;

/// A run of free pages of the region, as byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    start: usize,
    len: usize,
}

/// The free space of the region, sorted by offset, neighbours merged.
struct FreeList {
    extents: [Extent; MAX_EXTENTS],
    len: usize,
    in_use: usize,
    high_water: usize,
    lost: usize,
}

impl FreeList {
    const fn whole() -> FreeList {
        let mut extents = [Extent { start: 0, len: 0 }; MAX_EXTENTS];
        extents[0] = Extent {
            start: 0,
            len: ARENA_BYTES,
        };
        FreeList {
            extents,
            len: 1,
            in_use: 0,
            high_water: 0,
            lost: 0,
        }
    }

    fn free(&self) -> &[Extent] {
        &self.extents[..self.len]
    }

    /// The lowest free run of `len` bytes (first fit keeps the used part of the region small).
    fn take(&mut self, len: usize) -> Option<usize> {
        let index = self.free().iter().position(|e| e.len >= len)?;
        let extent = &mut self.extents[index];
        let start = extent.start;
        extent.start += len;
        extent.len -= len;
        if extent.len == 0 {
            self.extents.copy_within(index + 1..self.len, index);
            self.len -= 1;
        }
        self.in_use += len;
        self.high_water = self.high_water.max(start + len);
        Some(start)
    }

    /// Gives `len` bytes at `start` back, merged with the free runs either side.
    fn give_back(&mut self, start: usize, len: usize) {
        self.in_use -= len;
        let index = self.free().partition_point(|e| e.start < start);
        let joins_before = index > 0 && {
            let before = self.extents[index - 1];
            before.start + before.len == start
        };
        let joins_after = index < self.len && start + len == self.extents[index].start;
        match (joins_before, joins_after) {
            (true, true) => {
                self.extents[index - 1].len += len + self.extents[index].len;
                self.extents.copy_within(index + 1..self.len, index);
                self.len -= 1;
            }
            (true, false) => self.extents[index - 1].len += len,
            (false, true) => {
                self.extents[index].start = start;
                self.extents[index].len += len;
            }
            (false, false) if self.len < MAX_EXTENTS => {
                self.extents.copy_within(index..self.len, index + 1);
                self.extents[index] = Extent { start, len };
                self.len += 1;
            }
            (false, false) => self.lost += len,
        }
    }
}

/// Counters of an [`Arena`], for the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArenaStats {
    /// Allocations served from the arena.
    pub arena_allocations: u64,
    /// Allocations of the arena's size range that found no room and went to the system allocator.
    pub overflowed: u64,
    /// Bytes of the arena in use now.
    pub in_use_bytes: usize,
    /// The furthest into the arena any allocation reached: what it adds to resident memory.
    pub high_water_bytes: usize,
    /// Freed bytes that could not be tracked (every extent record in use); never seen so far.
    pub lost_bytes: usize,
}

/// The system allocator, except that allocations of [`ARENA_MIN_BYTES`] to
/// [`ARENA_MAX_BLOCK_BYTES`] are placed first-fit in one region of [`ARENA_BYTES`], allocated once.
///
/// Why: with the 256 KiB mmap threshold every tract activation was a fresh mapping, so each frame
/// faulted in and zeroed 37.5 MB of pages (41 blocks) although it never holds more than 6.4 MB at
/// once, which cost a third of the backbone's time. In the arena the same activations reuse the
/// same pages frame after frame, and what the arena can add to resident memory is fixed by its
/// size, not by glibc's heuristics. The binary installs one ([`GlobalArena`]) for the backbone's
/// runs ([`in_arena`]).
pub struct Arena {
    /// The region (null until the first allocation in the arena's range).
    base: AtomicPtr<u8>,
    free: Mutex<FreeList>,
    arena_allocations: AtomicU64,
    overflowed: AtomicU64,
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

impl Arena {
    /// An arena whose region is allocated on first use.
    pub const fn new() -> Arena {
        Arena {
            base: AtomicPtr::new(std::ptr::null_mut()),
            free: Mutex::new(FreeList::whole()),
            arena_allocations: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
        }
    }

    fn region_layout() -> Layout {
        // SAFETY: a non-zero size, a power-of-two alignment, no overflow.
        unsafe { Layout::from_size_align_unchecked(ARENA_BYTES, PAGE) }
    }

    fn in_range(layout: Layout) -> bool {
        (ARENA_MIN_BYTES..=ARENA_MAX_BLOCK_BYTES).contains(&layout.size()) && layout.align() <= PAGE
    }

    fn free_list(&self) -> std::sync::MutexGuard<'_, FreeList> {
        // Nothing panics while holding the lock; a poisoned list is still consistent.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The offset of `ptr` in the region, if it is in it.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        let base = self.base.load(Ordering::Acquire);
        let offset = (ptr as usize).wrapping_sub(base as usize);
        (!base.is_null() && offset < ARENA_BYTES).then_some(offset)
    }

    /// Room for `layout` in the region, or `None` (then the system allocator serves it).
    fn place(&self, layout: Layout) -> Option<*mut u8> {
        let mut free = self.free_list();
        let mut base = self.base.load(Ordering::Acquire);
        if base.is_null() {
            // SAFETY: a valid layout; `System` never calls back into this allocator. Only
            // virtual memory: pages become resident when first written.
            base = unsafe { System.alloc(Self::region_layout()) };
            if base.is_null() {
                return None;
            }
            self.base.store(base, Ordering::Release);
        }
        let placed = free.take(layout.size().next_multiple_of(PAGE));
        drop(free);
        let counter = match placed {
            Some(_) => &self.arena_allocations,
            None => &self.overflowed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the offset is inside the region.
        placed.map(|offset| unsafe { base.add(offset) })
    }

    /// Gives the resident pages of the arena's free space back to the system (they are faulted
    /// in again when next used).
    pub fn release(&self) {
        #[cfg(target_os = "linux")]
        {
            let base = self.base.load(Ordering::Acquire);
            if base.is_null() {
                return;
            }
            let free = self.free_list();
            for extent in free.free() {
                // SAFETY: the extent is free space of the region, page-aligned, that nobody uses;
                // MADV_DONTNEED only drops its pages (reads as zeros after).
                unsafe {
                    libc::madvise(
                        base.add(extent.start).cast(),
                        extent.len,
                        libc::MADV_DONTNEED,
                    );
                }
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> ArenaStats {
        let free = self.free_list();
        ArenaStats {
            arena_allocations: self.arena_allocations.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
            in_use_bytes: free.in_use,
            high_water_bytes: free.high_water,
            lost_bytes: free.lost,
        }
    }
}

// SAFETY: a block of the region is handed out to one caller at a time (the free list never holds
// a run in use, and a freed run is given back once, with the size it was taken with: both are the
// caller's size rounded up to whole pages); the region is page-aligned, so every block is aligned
// for any alignment up to a page (bigger ones go to `System`). Every other block is `System`'s,
// freed there with the caller's layout. Nothing allocates while the lock is held but the region's
// own allocation, which `System` serves without calling back.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::in_range(layout) {
            if let Some(block) = self.place(layout) {
                return block;
            }
        }
        // SAFETY: the caller's layout has a non-zero size (GlobalAlloc's contract).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::in_range(layout) {
            if let Some(block) = self.place(layout) {
                // SAFETY: the block holds `layout.size()` bytes and belongs to the caller now.
                unsafe { std::ptr::write_bytes(block, 0, layout.size()) };
                return block;
            }
        }
        // SAFETY: as in `alloc`; calloc skips the clearing of freshly mapped pages.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(offset) = self.offset(ptr) {
            self.free_list()
                .give_back(offset, layout.size().next_multiple_of(PAGE));
            return;
        }
        // SAFETY: `ptr` is not the arena's, so `System` allocated it with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` is non-zero and fits with the same alignment (realloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if self.offset(ptr).is_none() && !Self::in_range(new_layout) {
            // SAFETY: `System`'s block, and the new size stays out of the arena.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if self.offset(ptr).is_some()
            && layout.size().next_multiple_of(PAGE) == new_size.next_multiple_of(PAGE)
        {
            return ptr;
        }
        // SAFETY: a new block for the new layout; the old one is copied and then freed.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

/// The arena of this process, used when the binary installs [`GlobalArena`].
pub static ARENA: Arena = Arena::new();

thread_local! {
    /// Whether this thread's allocations go to [`ARENA`] (inside [`in_arena`]).
    static IN_ARENA: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` with this thread's allocations of the arena's range placed in [`ARENA`] (when the
/// binary installed [`GlobalArena`]): for the backbone's run, whose activations live one frame.
/// Everything else (the model's weights, the store, the head) stays with the system allocator, so
/// nothing long-lived takes the arena's room. Blocks are freed to wherever they came from, on
/// any thread.
pub fn in_arena<R>(work: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_ARENA.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(IN_ARENA.with(|flag| flag.replace(true)));
    work()
}

fn arena_scope() -> bool {
    IN_ARENA.try_with(std::cell::Cell::get).unwrap_or(false)
}

/// The global allocator the `fieldtune` binary installs: [`ARENA`] inside [`in_arena`], the
/// system allocator elsewhere.
pub struct GlobalArena;

// SAFETY: inside the scope every call goes to `ARENA`, a `GlobalAlloc`; outside it allocations go
// to `System` and frees and reallocations go to `ARENA` only for its own blocks (which it
// recognises by address), to `System` otherwise.
unsafe impl GlobalAlloc for GlobalArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if arena_scope() {
                ARENA.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if arena_scope() {
                ARENA.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees; `ARENA` hands `System`'s blocks on.
        unsafe { ARENA.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if arena_scope() || ARENA.offset(ptr).is_some() {
                ARENA.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
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

    /// This process's file-backed resident memory, in KiB (Linux).
    fn rss_file_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("RssFile:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn startup_code_leaves_resident_memory_and_comes_back_on_use() {
        let before = rss_file_kib();
        let released = release_startup_code();
        let after = rss_file_kib();
        if cfg!(target_os = "linux") {
            assert!(released > 0, "the test binary has code mappings");
            let (before, after) = (before.expect("RssFile"), after.expect("RssFile"));
            assert!(
                after < before,
                "file-backed RSS {before} KiB -> {after} KiB"
            );
        }
        // The program runs on: the code it needs is read back from the file.
        let squares: u64 = (0..1000u64).map(|i| i * i).sum();
        assert_eq!(squares, 332_833_500);
        assert_eq!(format!("{:.1}", 2.25f64.sqrt()), "1.5");
    }

    const MIB: usize = 1024 * 1024;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 128).expect("valid layout")
    }

    #[test]
    fn freed_space_serves_the_next_allocation_lowest_first() {
        let arena = Arena::new();
        unsafe {
            let a = arena.alloc(layout(MIB));
            let b = arena.alloc(layout(ARENA_MIN_BYTES + 1));
            assert_eq!(b, a.add(MIB), "placed right after");
            arena.dealloc(a, layout(MIB));
            let c = arena.alloc(layout(ARENA_MIN_BYTES));
            assert_eq!(c, a, "the lowest free run that fits");
            assert_eq!(
                arena.stats().in_use_bytes,
                ARENA_MIN_BYTES + (ARENA_MIN_BYTES + 1).next_multiple_of(PAGE)
            );
            arena.dealloc(b, layout(ARENA_MIN_BYTES + 1));
            arena.dealloc(c, layout(ARENA_MIN_BYTES));
        }
        let stats = arena.stats();
        assert_eq!(stats.in_use_bytes, 0);
        assert_eq!(stats.arena_allocations, 3);
        assert_eq!(stats.high_water_bytes, MIB + ARENA_MIN_BYTES + PAGE);
        assert_eq!(
            arena.free_list().free(),
            [Extent {
                start: 0,
                len: ARENA_BYTES
            }]
        );
    }

    #[test]
    fn freed_neighbours_merge_into_one_run() {
        let arena = Arena::new();
        unsafe {
            let blocks: Vec<*mut u8> = (0..3).map(|_| arena.alloc(layout(MIB))).collect();
            let rest = arena.alloc(layout(MIB));
            arena.dealloc(blocks[0], layout(MIB));
            arena.dealloc(blocks[2], layout(MIB));
            assert_eq!(arena.free_list().len, 3);
            arena.dealloc(blocks[1], layout(MIB));
            assert_eq!(arena.free_list().len, 2);
            let three = arena.alloc(layout(3 * MIB));
            assert_eq!(three, blocks[0]);
            arena.dealloc(three, layout(3 * MIB));
            arena.dealloc(rest, layout(MIB));
        }
        assert_eq!(
            arena.free_list().free(),
            [Extent {
                start: 0,
                len: ARENA_BYTES
            }]
        );
    }

    #[test]
    fn small_huge_and_overaligned_blocks_stay_with_the_system_allocator() {
        let arena = Arena::new();
        let layouts = [
            layout(64),
            layout(ARENA_MIN_BYTES - 1),
            layout(ARENA_MAX_BLOCK_BYTES + 1),
            Layout::from_size_align(MIB, 2 * PAGE).expect("valid layout"),
        ];
        for layout in layouts {
            unsafe {
                let block = arena.alloc(layout);
                assert!(!block.is_null());
                assert_eq!(block as usize % layout.align(), 0);
                assert!(arena.offset(block).is_none());
                arena.dealloc(block, layout);
            }
        }
        assert_eq!(arena.stats(), ArenaStats::default());
    }

    #[test]
    fn a_full_arena_hands_over_to_the_system_allocator() {
        let arena = Arena::new();
        let big = layout(ARENA_MAX_BLOCK_BYTES);
        unsafe {
            let first = arena.alloc(big);
            let second = arena.alloc(big);
            assert!(arena.offset(first).is_some());
            assert!(
                arena.offset(second).is_none(),
                "12 MiB hold one 8 MiB block"
            );
            std::ptr::write_bytes(second, 7, big.size());
            arena.dealloc(second, big);
            arena.dealloc(first, big);
        }
        let stats = arena.stats();
        assert_eq!((stats.arena_allocations, stats.overflowed), (1, 1));
        assert_eq!(stats.in_use_bytes, 0);
    }

    #[test]
    fn reused_space_is_zeroed_when_asked_and_released_pages_read_as_zeros() {
        let arena = Arena::new();
        unsafe {
            let block = arena.alloc(layout(MIB));
            std::ptr::write_bytes(block, 0xAB, MIB);
            arena.dealloc(block, layout(MIB));
            let zeroed = arena.alloc_zeroed(layout(MIB));
            assert_eq!(zeroed, block);
            assert!(std::slice::from_raw_parts(zeroed, MIB)
                .iter()
                .all(|b| *b == 0));
            std::ptr::write_bytes(zeroed, 0xCD, MIB);
            arena.dealloc(zeroed, layout(MIB));
            arena.release();
            let again = arena.alloc(layout(MIB));
            assert_eq!(again, block);
            if cfg!(target_os = "linux") {
                let bytes = std::slice::from_raw_parts(again, MIB);
                assert!(bytes.iter().all(|b| *b == 0), "the pages were given back");
            }
            arena.dealloc(again, layout(MIB));
        }
    }

    #[test]
    fn realloc_into_and_out_of_the_arena_keeps_the_contents() {
        let arena = Arena::new();
        unsafe {
            let small = arena.alloc(layout(1000));
            for i in 0..1000 {
                *small.add(i) = (i % 251) as u8;
            }
            let big = arena.realloc(small, layout(1000), MIB);
            assert!(arena.offset(big).is_some());
            let same = arena.realloc(big, layout(MIB), MIB - 100);
            assert_eq!(same, big, "the same pages hold it");
            let back = arena.realloc(same, layout(MIB - 100), 500);
            assert!(arena.offset(back).is_none());
            for i in 0..500 {
                assert_eq!(*back.add(i), (i % 251) as u8);
            }
            arena.dealloc(back, layout(500));
        }
        assert_eq!(arena.stats().in_use_bytes, 0);
    }

    proptest::proptest! {
        /// Any sequence of allocations and frees: every live block keeps what was written to it
        /// (so no two overlap), the arena never holds more than its size, and once everything is
        /// freed its free space is one run again.
        #[test]
        fn live_blocks_are_never_shared_or_overwritten(
            steps in proptest::collection::vec((0usize..7, 0u8..3, proptest::bool::ANY), 1..150)
        ) {
            let sizes = [
                1000,
                ARENA_MIN_BYTES,
                ARENA_MIN_BYTES + 8,
                MIB,
                3 * MIB + 5,
                ARENA_MAX_BLOCK_BYTES,
                ARENA_MAX_BLOCK_BYTES + 64,
            ];
            let arena = Arena::new();
            let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
            for (n, (size_index, align_shift, free)) in steps.into_iter().enumerate() {
                if free && !live.is_empty() {
                    let (ptr, layout, tag) = live.swap_remove(n % live.len());
                    unsafe {
                        let bytes = std::slice::from_raw_parts(ptr, layout.size());
                        proptest::prop_assert!(bytes.iter().step_by(4093).all(|b| *b == tag));
                        proptest::prop_assert_eq!(bytes[layout.size() - 1], tag);
                        arena.dealloc(ptr, layout);
                    }
                } else {
                    let layout = Layout::from_size_align(sizes[size_index], 16 << align_shift)
                        .expect("valid layout");
                    let tag = n as u8;
                    unsafe {
                        let ptr = arena.alloc(layout);
                        proptest::prop_assert!(!ptr.is_null());
                        proptest::prop_assert_eq!(ptr as usize % layout.align(), 0);
                        std::ptr::write_bytes(ptr, tag, layout.size());
                        live.push((ptr, layout, tag));
                    }
                }
                let stats = arena.stats();
                proptest::prop_assert!(stats.in_use_bytes <= ARENA_BYTES);
                proptest::prop_assert!(stats.high_water_bytes <= ARENA_BYTES);
                proptest::prop_assert_eq!(stats.lost_bytes, 0);
            }
            for (ptr, layout, tag) in live {
                unsafe {
                    proptest::prop_assert_eq!(*ptr, tag);
                    arena.dealloc(ptr, layout);
                }
            }
            proptest::prop_assert_eq!(arena.stats().in_use_bytes, 0);
            proptest::prop_assert!(arena.free_list().len <= 1);
        }
    }
}
