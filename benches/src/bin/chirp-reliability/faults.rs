//! Part 2: the provider misbehaves; each fault ends as its classification
//! promises.

use crate::prelude::*;

/// Part 2. Returns whether every fault ended as promised.
pub(crate) async fn provider_faults(options: &Options) -> bool {
    println!("\n## 2. Provider faults\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    let mock = Mock::start(Plan::success()).await;
    let setup = Setup::new(&options.chirp, &plugins, "mem://".into(), &mock.base)
        .set("CHIRP_SANDBOX__MYOPERATOR__HTTP_TIMEOUT", "500ms")
        .set("CHIRP_RETRY_BACKOFF", "100ms")
        .set("CHIRP_MAX_ATTEMPTS", "3");
    let chirp = start(&setup);
    let client = admin_client(4);
    let cases: [(&str, Fault, u32, &str, u32, &str); 7] = [
        (
            "timeout (answer after 2 s)",
            Fault::Timeout {
                after: Duration::from_secs(2),
            },
            2,
            "sent",
            3,
            "timeout",
        ),
        ("connection reset", Fault::Reset, 2, "sent", 3, "connect"),
        ("500", Fault::ServerError, 2, "sent", 3, "http_500"),
        (
            "429 Retry-After: 1",
            Fault::RateLimited {
                retry_after_secs: 1,
            },
            1,
            "sent",
            2,
            "http_429",
        ),
        (
            "slow body (1 byte / 100 ms)",
            Fault::SlowBody,
            2,
            "sent",
            3,
            "timeout",
        ),
        (
            "malformed JSON on 200",
            Fault::Malformed,
            2,
            "sent",
            3,
            "malformed_response",
        ),
        (
            "CHAT_4001 (empty wallet)",
            Fault::Chat4001,
            1,
            "failed",
            1,
            "CHAT_4001",
        ),
    ];
    const PER_CASE: usize = 5;
    let mut all_held = true;
    println!("| fault | messages | expected | ended | attempts | first error code | held |");
    println!("|---|---|---|---|---|---|---|");
    for (name, fault, times, expected, attempts, code) in cases {
        mock.set_plan(Plan {
            fault: Some((fault, times)),
            ..Plan::success()
        });
        let tag = format!("fault-{}", code.to_lowercase());
        let mut ids = Vec::new();
        for n in 0..PER_CASE {
            let answer = client
                .post(format!("{}/api/notifications/send-message", chirp.base))
                .header("content-type", "application/json")
                .body(load::message_body(&tag, n).to_string())
                .send()
                .await
                .expect("send");
            let answer = json_of(answer).await;
            ids.push(answer["id"].as_str().unwrap_or_default().to_string());
        }
        let mut ended = HashMap::<String, usize>::new();
        let mut attempt_counts = HashSet::new();
        let mut codes = HashSet::new();
        let mut held = true;
        for (n, id) in ids.iter().enumerate() {
            let message = final_message(&client, &chirp.base, id).await;
            let status = message["status"].as_str().unwrap_or("?").to_string();
            let trail = message["attempts"].as_array().cloned().unwrap_or_default();
            attempt_counts.insert(trail.len());
            let first_code = trail
                .first()
                .and_then(|a| a["error_code"].as_str())
                .unwrap_or("-")
                .to_string();
            held &= status == expected
                && trail.len() == attempts as usize
                && first_code == code
                && message["attempt_count"] == attempts;
            if let Fault::RateLimited { retry_after_secs } = fault {
                // The retry waited for Retry-After, not for the 100 ms backoff.
                let arrivals = mock.requests_of(&format!("{tag}-{n}"));
                held &= arrivals.len() == 2
                    && arrivals[1] - arrivals[0] >= Duration::from_secs(retry_after_secs);
            }
            codes.insert(first_code);
            *ended.entry(status).or_default() += 1;
        }
        all_held &= held;
        println!(
            "| {name} | {PER_CASE} | {expected} after {attempts} | {ended:?} | {attempt_counts:?} | {codes:?} | {} |",
            if held { "yes" } else { "NO" }
        );
    }
    chirp.stop();
    println!(
        "\nprovider faults: {}",
        if all_held { "HELD" } else { "BROKEN" }
    );
    all_held
}
