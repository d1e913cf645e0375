//! Threads of its own, at a lower CPU priority, for the embedded store's
//! background work: SurrealKV's memtable flushes and level compactions.
//!
//! Why: SurrealKV runs each flush and each compaction as a tokio task that
//! blocks its worker thread for as long as it takes (about 70 ms to flush
//! a 16 MiB memtable, 0.4-1 s for a compaction), on the runtime that built
//! the store. On chirp's runtime, one worker per core, that took a worker
//! from the API, the commit loop and the scheduler, and the compaction
//! competed with them for the CPU as an equal: accepting at a fixed
//! 2,000 requests/s, p99 latency was 300-500 ms, almost all of it in the
//! half second each compaction took (BENCHMARKS.md, "Compactions moved
//! off chirp's threads").
//!
//! So an embedded SurrealKV store is built on a runtime of its own, where
//! its background tasks then run, and that runtime's threads run at nice
//! [`NICE`]. The compaction still gets whatever CPU chirp leaves idle, and
//! about a quarter of a core when chirp uses all of it.
//!
//! **Invariant:** only the runtime's own threads are lowered, and only
//! once the store is built. Threads SurrealDB starts while it builds the
//! store (its commit coordinator, its thread pool, its clock) inherit the
//! priority of the thread that starts them, and the commit coordinator is
//! on every write's path: they must keep chirp's priority.

use std::sync::{Arc, Mutex, PoisonError};

/// The nice value of the background threads: the scheduler weighs a
/// nice-5 thread at 335 against 1,024 for chirp's own. Nice 10 (110)
/// helped latency as much but starved the compactions enough that the
/// drain's memory no longer stayed flat (BENCHMARKS.md).
pub const NICE: i32 = 5;

/// A flush and a compaction may run at once, each blocking a thread.
const WORKERS: usize = 2;

/// The runtime the store's background tasks run on. Shut down (without
/// waiting for a compaction in progress) when dropped.
pub(super) struct BackgroundThreads {
    runtime: Option<tokio::runtime::Runtime>,
    threads: Arc<Mutex<Threads>>,
}

/// The runtime's threads, and whether they have been lowered yet.
#[derive(Default)]
struct Threads {
    lowered: bool,
    /// Thread IDs of the threads started before they were lowered.
    started: Vec<ThreadId>,
}

impl BackgroundThreads {
    pub(super) fn start() -> std::io::Result<BackgroundThreads> {
        let threads = Arc::new(Mutex::new(Threads::default()));
        let on_start = threads.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("chirp-store-bg")
            .enable_all()
            .on_thread_start(move || {
                let mut threads = on_start.lock().unwrap_or_else(PoisonError::into_inner);
                if threads.lowered {
                    lower(this_thread());
                } else {
                    threads.started.push(this_thread());
                }
            })
            .build()?;
        Ok(BackgroundThreads {
            runtime: Some(runtime),
            threads,
        })
    }

    /// Runs `build` (the store's construction) on these threads, so that
    /// the tasks it starts stay here, then lowers the threads' priority.
    pub(super) async fn build<T: Send + 'static>(
        &self,
        build: impl Future<Output = T> + Send + 'static,
    ) -> std::io::Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the store's background runtime is shut down"))?;
        let built = runtime.spawn(build).await.map_err(std::io::Error::other)?;
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.lowered = true;
        for &thread in &threads.started {
            lower(thread);
        }
        Ok(built)
    }
}

impl Drop for BackgroundThreads {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A thread as the kernel numbers it.
type ThreadId = i32;

#[cfg(target_os = "linux")]
fn this_thread() -> ThreadId {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Sets `thread`'s nice value to [`NICE`]. On Linux a nice value belongs
/// to a thread, not to the whole process.
#[cfg(target_os = "linux")]
fn lower(thread: ThreadId) {
    // SAFETY: setpriority reads no memory of ours; raising a nice value
    // needs no privilege. A failure leaves the thread as it was.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, NICE) } != 0;
    if failed {
        tracing::warn!(
            thread,
            error = %std::io::Error::last_os_error(),
            "cannot lower the priority of the store's background thread"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn this_thread() -> ThreadId {
    0
}

/// Elsewhere a nice value belongs to the whole process: left alone.
#[cfg(not(target_os = "linux"))]
fn lower(_thread: ThreadId) {}
