//! Threads of its own, at a lower CPU priority, for the embedded store's
//! background work: SurrealKV's memtable flushes and level compactions.
//!
//! Why: SurrealKV runs each flush and each compaction as a tokio task that
//! blocks its worker thread for as long as it takes (about 70 ms to flush
//! a 16 MiB memtable, 0.4-1 s for a compaction), on the runtime that built
//! the store. On chirp's runtime, one worker per core, the compaction took
//! a worker from the API, the commit loop and the scheduler, and competed
//! with them for the CPU as an equal: accepting at a fixed 2,000
//! requests/s after a 100,000 backlog, p99 latency was 257-519 ms in seven
//! runs of eight (median 359 ms), made in the half second each compaction
//! took (BENCHMARKS.md).
//!
//! So the tasks an embedded SurrealKV store starts are spawned on a runtime
//! of its own, whose threads run at nice [`NICE`]. A compaction still gets
//! whatever CPU chirp leaves idle, and about a quarter of a core when chirp
//! uses all of it.
//!
//! **Invariant:** only the tasks move, not the threads SurrealDB starts
//! while it builds the store. Those (its commit coordinator, on every
//! write's path; its thread pool; its clock) inherit the priority of the
//! thread that starts them, so the store is built on chirp's own thread,
//! with this runtime entered only for spawning.

use std::future::Future;
use std::task::Poll;

/// The nice value of the background threads: the scheduler weighs a
/// nice-5 thread at 335 against 1,024 for chirp's own. Nice 10 (110)
/// bought no lower latency (BENCHMARKS.md) and would give compactions a
/// third of that share of a busy CPU, so more room to fall behind.
pub const NICE: i32 = 5;

/// A flush and a compaction may run at once, each blocking a thread.
const WORKERS: usize = 2;

/// The runtime the store's background tasks run on. Shut down (without
/// waiting for a compaction in progress) when dropped.
pub(super) struct BackgroundThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundThreads {
    pub(super) fn start() -> std::io::Result<BackgroundThreads> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("chirp-store-bg")
            .enable_all()
            .on_thread_start(lower_this_thread)
            .build()?;
        Ok(BackgroundThreads {
            runtime: Some(runtime),
        })
    }

    /// Drives `build` (the store's construction) on the calling task, with
    /// this runtime as the one any task it spawns goes to.
    pub(super) async fn spawning_here<T>(&self, build: impl Future<Output = T>) -> T {
        let here = self
            .runtime
            .as_ref()
            .map(|runtime| runtime.handle().clone());
        let mut build = std::pin::pin!(build);
        std::future::poll_fn(move |cx| -> Poll<T> {
            let _entered = here.as_ref().map(|handle| handle.enter());
            build.as_mut().poll(cx)
        })
        .await
    }
}

impl Drop for BackgroundThreads {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value to [`NICE`]. On Linux a nice value
/// belongs to a thread, not to the whole process.
#[cfg(target_os = "linux")]
fn lower_this_thread() {
    // SAFETY: setpriority reads no memory of ours; raising a nice value
    // needs no privilege. A failure leaves the thread as it was.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) } != 0;
    if failed {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the priority of the store's background thread"
        );
    }
}

/// Elsewhere a nice value belongs to the whole process: left alone.
#[cfg(not(target_os = "linux"))]
fn lower_this_thread() {}
