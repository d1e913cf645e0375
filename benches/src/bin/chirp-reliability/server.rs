//! Part 5: the SurrealDB server chirp runs on is killed, then frozen,
//! under load.

use crate::prelude::*;

/// The SurrealDB server part 5 runs: `--surreal`, or built from
/// `tests/surreal-server` under the cargo target directory.
pub(crate) async fn surreal_binary(options: &Options) -> Result<PathBuf, String> {
    if let Some(path) = &options.surreal {
        return Ok(path.clone());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("surreal-server");
    println!(
        "(building SurrealDB's server, tests/surreal-server, under {})\n",
        target.display()
    );
    tokio::task::spawn_blocking(move || surreal_server::build(&target))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot build the SurrealDB server: {e}"))
}

/// Part 5. Returns whether it held.
pub(crate) async fn server_goes_away(options: &Options) -> bool {
    println!(
        "\n## 5. The SurrealDB server goes away ({} outages, `ws://`)\n",
        options.outages
    );
    let surreal = match surreal_binary(options).await {
        Ok(path) => path,
        Err(e) => {
            println!("server: BROKEN ({e})");
            return false;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    let server_store = format!("surrealkv://{}", dir.path().join("server-store").display());
    let server_log = dir.path().join("surreal.log");
    let started = tokio::task::block_in_place(|| {
        SurrealServer::start(&surreal, &server_store, free_port(), &server_log)
    });
    let mut server = match started {
        Ok(server) => server,
        Err(e) => {
            println!("server: BROKEN ({e})");
            return false;
        }
    };
    let mock = Mock::start(Plan {
        latency: Duration::from_millis(5),
        ..Plan::success()
    })
    .await;
    let mut setup = server
        .chirp_setup(&options.chirp, &plugins, &mock.base)
        .set("CHIRP_LEASE", "2s")
        .set("CHIRP_RETRY_BACKOFF", "200ms");
    setup.listen = format!("127.0.0.1:{}", free_port());
    let mut chirp = start(&setup);
    let base = chirp.base.clone();
    let client = admin_client(4);

    let load = SteadyLoad::start(options, &base, "outage");
    const PROBES: usize = 10;
    let mut random = Random::new();
    let mut in_flight = Vec::new();
    // Each outage, from the kill or freeze until the first `202` after it.
    let mut outages: Vec<(Instant, Instant)> = Vec::new();
    let mut held = true;
    println!(
        "| outage | server | health says `unreachable` after | then {PROBES} requests: answers | slowest | chirp alive | first `202` after the server is back | held |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for outage in 1..=options.outages {
        tokio::time::sleep(Duration::from_millis(2000 + random.below(2000))).await;
        // Leased when the server goes: what may be sent twice (a lease
        // runs out while its completion cannot be written).
        in_flight.push(count_status(&client, &base, "sending").await);
        let kind = if outage % 2 == 1 {
            server.kill();
            "killed"
        } else {
            if let Err(e) = server.freeze() {
                println!("server: BROKEN ({e})");
                return false;
            }
            "frozen"
        };
        let went = Instant::now();
        // Until chirp's health says the store is unreachable: requests in
        // this window wait for CHIRP_STORE_TIMEOUT at most.
        let noticed = loop {
            let answer = client
                .get(format!("{base}/api/notifications/health"))
                .send()
                .await;
            if let Ok(r) = answer
                && r.status().as_u16() == 503
                && json_of(r).await["store"] == "unreachable"
            {
                break Some(went.elapsed());
            }
            if went.elapsed() > Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut answers: HashMap<u16, usize> = HashMap::new();
        let mut slowest = Duration::ZERO;
        for n in 0..PROBES {
            let started = Instant::now();
            let status = client
                .post(format!("{base}/api/notifications/send-message"))
                .header("content-type", "application/json")
                .body(load::message_body(&format!("down{outage}"), n).to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            slowest = slowest.max(started.elapsed());
            *answers.entry(status).or_default() += 1;
        }
        // The server stays down a little longer, under the load.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let restarted = if kind == "killed" {
            tokio::task::block_in_place(|| server.restart())
        } else {
            server.thaw()
        };
        if let Err(e) = restarted {
            println!("server: BROKEN ({e})");
            return false;
        }
        let restarted_at = Instant::now();
        let back = recovery(
            &client,
            &base,
            &format!("back{outage}"),
            Duration::from_secs(60),
        )
        .await;
        outages.push((
            went,
            back.as_ref()
                .map_or_else(Instant::now, |(after, _)| restarted_at + *after),
        ));
        let alive = chirp.alive();
        let good =
            noticed.is_some() && answers.get(&503) == Some(&PROBES) && alive && back.is_some();
        held &= good;
        println!(
            "| {outage} | {kind} | {} | {answers:?} | {:.0} ms | {alive} | {} | {} |",
            noticed.map_or("never (30 s)".into(), |after| format!(
                "{:.1} s",
                after.as_secs_f64()
            )),
            slowest.as_secs_f64() * 1e3,
            back.map_or("never (60 s)".into(), |(after, _)| format!(
                "{:.1} s",
                after.as_secs_f64()
            )),
            if good { "yes" } else { "NO" }
        );
    }
    let (report, settled, stored) = load.finish(&client, &base).await;
    // chirp restarted on the same server: it must find what it accepted.
    chirp.stop();
    chirp = start(&setup);
    let stored_after_restart = all_messages(&client, &chirp.base).await;
    chirp.stop();

    let accepted: HashSet<&str> = report.accepted.iter().map(|a| a.key.as_str()).collect();
    let (missing, _) = missing_and_unfinished(&accepted, &stored_after_restart);
    let (_, unfinished) = missing_and_unfinished(&accepted, &stored);
    let delivered = mock.delivered();
    let duplicates: u32 = delivered
        .iter()
        .filter(|(k, _)| k.starts_with("outage-"))
        .map(|(_, n)| n.saturating_sub(1))
        .sum();
    // A duplicate is expected only of a message sent while its completion
    // could not be written: first delivered just before the server went or during
    // the outage, and sent again once its lease (2 s) ran out afterwards.
    let first_delivered = mock.first_delivered();
    let unexplained = delivered
        .iter()
        .filter(|(_, n)| **n > 1)
        .filter(|(key, _)| {
            first_delivered.get(*key).is_none_or(|first| {
                !outages
                    .iter()
                    .any(|(went, back)| *first + Duration::from_secs(1) >= *went && *first <= *back)
            })
        })
        .count();
    if std::env::var_os("CHIRP_RELIABILITY_DEBUG").is_some() {
        print_duplicates_against_outages(&outages, &delivered, &first_delivered);
    }
    // A refusal either says nothing was stored (`store_unavailable`) or
    // that the store did not confirm (`store_unconfirmed`). Only the
    // second may be found in the store afterwards.
    let stored_though_refused = |code: &str| {
        report
            .refusals
            .iter()
            .filter(|r| r.code == code && stored_after_restart.contains_key(&r.key))
            .count()
    };
    let refused_yet_stored = stored_though_refused("store_unavailable");
    let unconfirmed_and_stored = stored_though_refused("store_unconfirmed");
    let unconfirmed = report
        .refusals
        .iter()
        .filter(|r| r.code == "store_unconfirmed")
        .count();
    let not_delivered = stored
        .iter()
        .filter(|(k, (_, s))| s == "sent" && !delivered.contains_key(k.as_str()))
        .count();
    let in_flight_total: usize = in_flight.iter().sum();
    held &= settled
        && missing == 0
        && unfinished == 0
        && not_delivered == 0
        && unexplained == 0
        && refused_yet_stored == 0;
    println!("\n| what | count |\n|---|---|");
    println!(
        "| server outages (odd: SIGKILL, restart on the same store; even: SIGSTOP, SIGCONT) | {} |",
        options.outages
    );
    println!("| load: requests answered 202 | {} |", accepted.len());
    println!(
        "| load: other answers, by status (0: none) | {:?} |",
        report.refused
    );
    println!("| messages in the store | {} |", stored.len());
    println!(
        "| refused as not stored (`store_unavailable`), yet in the store | {refused_yet_stored} |"
    );
    println!(
        "| refused as unconfirmed (`store_unconfirmed`) | {unconfirmed}, of which {unconfirmed_and_stored} in the store |"
    );
    println!("| 202 but missing from the store (read after restarting chirp) | {missing} |");
    println!("| 202 but not finished after settling | {unfinished} |");
    println!("| `sent` but never delivered to the mock | {not_delivered} |");
    println!("| leased (in flight) when the server went | {in_flight:?} = {in_flight_total} |");
    println!("| duplicate deliveries of the load (same idempotency key) | {duplicates} |");
    println!(
        "| ... of messages first delivered outside an outage (from 1 s before the server went to the first `202` after it) | {unexplained} |"
    );
    println!("\nserver: {}", if held { "HELD" } else { "BROKEN" });
    held
}

/// For `CHIRP_RELIABILITY_DEBUG`: each outage and each duplicated key's
/// first delivery, in seconds from the first kill, to see which outage (if
/// any) a duplicate belongs to.
pub(crate) fn print_duplicates_against_outages(
    outages: &[(Instant, Instant)],
    delivered: &HashMap<String, u32>,
    first_delivered: &HashMap<String, Instant>,
) {
    let t0 = outages.first().map(|o| o.0).unwrap_or_else(Instant::now);
    let secs = |t: Instant| {
        t.checked_duration_since(t0).map_or_else(
            || -(t0.duration_since(t).as_secs_f64()),
            |d| d.as_secs_f64(),
        )
    };
    for (went, back) in outages {
        eprintln!("outage: went {:.2} back {:.2}", secs(*went), secs(*back));
    }
    let mut duplicates: Vec<_> = delivered
        .iter()
        .filter(|(_, n)| **n > 1)
        .filter_map(|(k, n)| Some((secs(*first_delivered.get(k)?), k, n)))
        .collect();
    duplicates.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (first, key, n) in duplicates {
        eprintln!("duplicate {key} x{n}, first delivered at {first:.2}");
    }
}
