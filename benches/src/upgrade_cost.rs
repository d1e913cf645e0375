//! Scenario 12: how long chirp's first start takes on a large store written
//! by an older layout. Each round writes a layout 1 store of `count`
//! messages (with their attempts, leases, waiting messages and caller keys;
//! see `chirp::store::write_layout_1_store`), then times chirp opening it
//! (the upgrade) and opening it again (today's layout: nothing to do). Five
//! rounds, each on a fresh store; the median and range of the wall time
//! and the process's CPU time.

use std::time::{Duration, Instant};

use chirp::store::{ServerAccess, Store, write_layout_1_store};

use crate::store_path::store_memory;

/// Rounds, each on a fresh store.
const ROUNDS: usize = 5;

/// Runs the scenario on stores of `count` messages under `dir`.
pub async fn run(count: usize, dir: &std::path::Path, process_cpu: fn() -> Duration) {
    let mut upgrade = Vec::new();
    let mut reopen = Vec::new();
    for round in 0..ROUNDS {
        let path = dir.join(format!("layout-1-{round}"));
        let url = format!("surrealkv://{}", path.display());
        write_layout_1_store(&url, count)
            .await
            .expect("write a layout 1 store");
        for times in [&mut upgrade, &mut reopen] {
            let started = Instant::now();
            let cpu_started = process_cpu();
            let store = Store::open(&url, &ServerAccess::default(), store_memory())
                .await
                .expect("open the store");
            times.push((
                started.elapsed().as_secs_f64(),
                (process_cpu() - cpu_started).as_secs_f64(),
            ));
            store.close().await.expect("close");
        }
        let _ = std::fs::remove_dir_all(&path);
    }
    for (what, times) in [
        ("upgrade from layout 1", &upgrade),
        ("a start on layout 2", &reopen),
    ] {
        println!(
            "12. {what}, {count} messages: {} rounds, median {} s, CPU {} s; {} msg/s",
            times.len(),
            crate::spread(times.iter().map(|t| t.0), 2),
            crate::spread(times.iter().map(|t| t.1), 2),
            crate::spread(times.iter().map(|t| count as f64 / t.0), 0),
        );
    }
}
