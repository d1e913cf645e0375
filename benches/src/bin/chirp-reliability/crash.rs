//! Part 1: SIGKILL under steady load, restart on the same store.

use crate::prelude::*;

/// Part 1. Returns whether it held.
pub(crate) async fn crash(options: &Options) -> bool {
    println!(
        "\n## 1. SIGKILL under steady load ({} kills)\n",
        options.kills
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    let mock = Mock::start(Plan {
        latency: Duration::from_millis(5),
        ..Plan::success()
    })
    .await;
    let port = free_port();
    let mut setup = Setup::new(
        &options.chirp,
        &plugins,
        format!("surrealkv://{}", dir.path().join("store").display()),
        &mock.base,
    )
    .set("CHIRP_LEASE", "2s")
    .set("CHIRP_RETRY_BACKOFF", "200ms");
    setup.listen = format!("127.0.0.1:{port}");
    let base = format!("http://127.0.0.1:{port}");
    let client = admin_client(4);

    let mut chirp = start(&setup);
    let load = SteadyLoad::start(options, &base, "crash");
    let mut random = Random::new();
    let mut in_flight = Vec::new();
    for _ in 0..options.kills {
        tokio::time::sleep(Duration::from_millis(800 + random.below(2200))).await;
        chirp.kill();
        chirp = start(&setup);
        // Leased at the kill and not yet taken back: what may go twice.
        in_flight.push(count_status(&client, &base, "sending").await);
    }
    let (report, settled, stored) = load.finish(&client, &base).await;
    chirp.stop();

    let accepted: HashSet<&str> = report.accepted.iter().map(|a| a.key.as_str()).collect();
    let (missing, unfinished) = missing_and_unfinished(&accepted, &stored);
    let sent = stored.values().filter(|(_, s)| s == "sent").count();
    let failed = stored.values().filter(|(_, s)| s == "failed").count();
    let delivered = mock.delivered();
    let duplicates: u32 = delivered.values().map(|n| n.saturating_sub(1)).sum();
    let duplicated_keys = delivered.values().filter(|n| **n > 1).count();
    let unknown = delivered
        .keys()
        .filter(|k| !stored.contains_key(k.as_str()))
        .count();
    let in_flight_total: usize = in_flight.iter().sum();
    let not_delivered = stored
        .iter()
        .filter(|(k, (_, s))| s == "sent" && !delivered.contains_key(k.as_str()))
        .count();
    let held = settled
        && missing == 0
        && unfinished == 0
        && unknown == 0
        && not_delivered == 0
        && duplicates as usize <= in_flight_total;
    println!("| what | count |\n|---|---|");
    println!(
        "| kills (SIGKILL, restart on the same store) | {} |",
        options.kills
    );
    println!("| requests answered 202 | {} |", accepted.len());
    println!(
        "| requests not answered 202 (chirp down or killed mid-request) | {} |",
        report.refused_total()
    );
    println!("| messages in the store | {} |", stored.len());
    println!("| ... sent / failed | {sent} / {failed} |");
    println!("| 202 but missing from the store | {missing} |");
    println!("| 202 but not finished after settling | {unfinished} |");
    println!("| `sent` but never delivered to the mock | {not_delivered} |");
    println!("| delivered keys unknown to the store | {unknown} |");
    println!("| leased (in flight) at the kills, per kill | {in_flight:?} = {in_flight_total} |");
    println!(
        "| duplicate deliveries (same idempotency key) | {duplicates} on {duplicated_keys} keys |"
    );
    println!("\ncrash: {}", if held { "HELD" } else { "BROKEN" });
    held
}
