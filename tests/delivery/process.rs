//! chirp as a process: health, its threads and memory settings, start-up
//! checks, and the rate limits.

use super::*;

#[tokio::test]
async fn health_reports_the_store_and_loaded_plugins() {
    let w = world().await;
    let chirp = w.options.start();
    let (status, health) = chirp.get("/api/notifications/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "ok");
    assert_eq!(health["plugins"][0]["name"], "myoperator");
    assert_eq!(health["plugins"][0]["version"], "0.1.0");
    // Files, hashes and hosts are for admins (`GET /api/plugins`).
    for hidden in ["sha256", "file", "hosts"] {
        assert!(health["plugins"][0].get(hidden).is_none(), "{health}");
    }
    let text = health.to_string();
    assert!(!text.contains(API_KEY), "a secret leaked into /health");

    let (status, answer) = chirp
        .post("/api/notifications/process-queue", json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["due"], 0);
}

/// `THP_enabled` of a process: 0 once it has turned transparent huge
/// pages off for itself.
fn thp_enabled(pid: u32) -> Option<u8> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn chirp_keeps_transparent_huge_pages_off_unless_the_operator_allows_them() {
    let w = world().await;
    let chirp = w.options.start();
    assert_eq!(thp_enabled(chirp.pid()), Some(0));
    drop(chirp);

    let allowed = ChirpOptions::new(&w.options.db, w.options.plugins_dir.clone(), &w.mock)
        .set("MIMALLOC_ALLOW_THP", "1")
        .start();
    // As the system has it for any process that did not opt out.
    assert_eq!(thp_enabled(allowed.pid()), thp_enabled(std::process::id()));
}

/// The name and nice value of every thread of a process.
fn threads(pid: u32) -> Vec<(String, i32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: the name may hold spaces and
            // parentheses, so the fields are counted from the last ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_string();
            // Field 19 of stat is the nice value; `rest` starts at field 3.
            let nice = rest.split_whitespace().nth(16)?.parse().ok()?;
            Some((name, nice))
        })
        .collect()
}

#[tokio::test]
async fn the_store_compacts_on_threads_of_its_own_below_chirps_priority() {
    let w = world().await;
    let chirp = durable(&w).start();
    let threads = threads(chirp.pid());
    let nice_of = |name: &str| -> Vec<i32> {
        threads
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, nice)| *nice)
            .collect()
    };
    // The two workers SurrealKV flushes and compacts on.
    let background = nice_of("chirp-store-bg");
    assert!(
        background.iter().filter(|&&nice| nice == 5).count() >= 2,
        "{threads:?}"
    );
    // The commit path and chirp's own workers keep their priority.
    assert_eq!(nice_of("surrealkv-commi"), vec![0], "{threads:?}");
    let workers = nice_of("tokio-rt-worker");
    assert!(
        !workers.is_empty() && workers.iter().all(|&nice| nice == 0),
        "{threads:?}"
    );
}

#[tokio::test]
async fn a_missing_provider_setting_stops_start_up_naming_the_variable() {
    let w = world().await;
    let stderr = w
        .options
        .unset("CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID")
        .start_failure();
    assert!(
        stderr.contains("CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_provider_rate_limit_delays_sends_without_failing_them() {
    let w = world().await;
    let chirp = w.options.set("CHIRP_PROVIDER_RATE", "5").start();
    let mut ids = Vec::new();
    for n in 0..15 {
        ids.push(
            accept(
                &chirp,
                json!({"phone": "+919876543210", "text": format!("n{n}")}),
            )
            .await,
        );
    }
    for id in &ids {
        assert_eq!(chirp.wait_final(id).await["status"], "sent");
    }
    let received = w.mock.received();
    assert_eq!(received.len(), 15);
    let span = received.last().unwrap().at - received.first().unwrap().at;
    // A bucket of 5 with 5 more each second: 15 sends take at least 2 s.
    assert!(
        span >= Duration::from_millis(1800),
        "15 sends at 5/s took only {span:?}"
    );
}

#[tokio::test]
async fn the_api_rate_limit_answers_429_with_retry_after() {
    let w = world().await;
    let chirp = w.options.set("CHIRP_API_RATE_LIMIT", "5").start();
    let mut limited = None;
    for _ in 0..20 {
        let response = chirp
            .http
            .get(chirp.url("/api/notifications/history"))
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("20 requests at once were never limited at 5/s");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Health is never limited.
    let (status, _) = chirp.get("/api/notifications/health").await;
    assert_eq!(status, 200);
}
