//! What chirp asks of its allocator, mimalloc, beyond allocating: a shorter
//! purge delay and no transparent huge pages, set at start, and giving a
//! thread's freed pages back on request. The only place that calls
//! mimalloc's C API directly (`libmimalloc-sys`); the `#[global_allocator]`
//! itself is in `main.rs`, so that tests and tools linking the library keep
//! their own.

/// mimalloc's `purge_delay` option: `mi_option_purge_delay` in the enum of
/// mimalloc 3.3's `mimalloc.h`, which libmimalloc-sys has no name for.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's `allow_thp` option (`mi_option_allow_thp`, likewise).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Shortens mimalloc's purge delay to 10 ms and turns transparent huge
/// pages off.
///
/// mimalloc 3 returns freed memory to the system only after a second
/// (`purge_delay` 1000 ms). SurrealKV's commits free and allocate so much
/// per second that chirp's RSS rose by 100-200 MiB in a few seconds before
/// each purge; at 10 ms (mimalloc 2's default) the accept peak fell from
/// 223 to 178-184 MiB at the same rates (BENCHMARKS.md). Checked against the
/// option's known default: a renumbered enum changes nothing, and an
/// operator's own `MIMALLOC_PURGE_DELAY` is kept.
///
/// Then turns transparent huge pages off for the process, unless the
/// operator set `MIMALLOC_ALLOW_THP`. mimalloc asks the kernel for huge
/// pages for its arenas, and a 2 MiB page stays resident whole while any
/// object in it lives and until all of it is purged. Draining 105,000
/// messages chirp held 154-183 MiB with them and 128-135 MiB without;
/// accepting 100,000 it peaked at 217 and 188 MiB; the rates stayed within
/// the spread between runs (BENCHMARKS.md). mimalloc reads
/// its own option before `main`, so chirp also sets the process's
/// `PR_SET_THP_DISABLE`, which covers the arena reserved already.
///
/// Call it first in `main`, before any other thread starts.
pub fn tune() {
    // SAFETY: mi_option_get/mi_option_set take any option number; `set` is
    // not thread safe, and the caller runs this before other threads exist.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == 1000 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10);
        }
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
        disable_transparent_huge_pages();
    }
}

#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and touches no
    // memory of ours; a failure (an old kernel) leaves THP as it was.
    let refused = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0;
    if refused {
        eprintln!("chirp: could not turn transparent huge pages off; memory use may be higher");
    }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

/// Gives the calling thread's freed pages back to the operating system
/// now. mimalloc otherwise does so only when that thread allocates again,
/// which a thread that has gone idle never does.
pub fn return_freed_memory() {
    // SAFETY: mi_collect only walks and trims the calling thread's own heap
    // (and is harmless when mimalloc is not the global allocator).
    unsafe { libmimalloc_sys::mi_collect(true) }
}
