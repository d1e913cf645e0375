//! End-to-end: the `chirp` binary, the real MyOperator component and a mock
//! MyOperator API, all on loopback. A message goes in through the REST API
//! and comes out as an HTTP request to the mock; the audit trail shows every
//! attempt.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ACCOUNT_ID, API_KEY, ChirpOptions, PHONE_NUMBER_ID, Reply, World, read};

async fn world() -> World {
    World::new(false, false).await
}

/// chirp on a durable `surrealkv://` store in the world's directory, so a
/// test can stop it and start it again on the same data.
fn durable(w: &World) -> ChirpOptions {
    let db = format!("surrealkv://{}", w.dir.path().join("store").display());
    ChirpOptions::new(&db, w.options.plugins_dir.clone(), &w.mock)
}

fn order_confirmation(phone: &str) -> Value {
    json!({
        "phone": phone,
        "template": "order_confirmation",
        "variables": {"order_id": "A-17", "delivery_date": "25 Nov", "total_amount": 240},
        "reference_id": "order-A-17"
    })
}

/// Sends `body`, expecting a new message; returns its id.
async fn accept(chirp: &support::ChirpProcess, body: Value) -> String {
    let (id, status) = accept_any(chirp, body).await;
    assert_eq!(status, "queued");
    id
}

/// Sends `body`, new or replayed; returns the id and the status answered.
async fn accept_any(chirp: &support::ChirpProcess, body: Value) -> (String, String) {
    let (status, answer) = chirp.post("/api/notifications/send-message", body).await;
    assert_eq!(status, 202, "{answer}");
    (
        answer["id"].as_str().unwrap().into(),
        answer["status"].as_str().unwrap().into(),
    )
}

fn outcomes(message: &Value) -> Vec<String> {
    message["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_template_message_reaches_myoperator_in_its_exact_shape() {
    let w = world().await;
    let chirp = w.options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    assert_eq!(message["provider_message_id"], "wamid.1");
    assert_eq!(
        message["text"],
        "Order #A-17 confirmed. Delivery on 25 Nov, total ₹240."
    );

    let received = w.mock.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/chat/messages");
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {API_KEY}").as_str()
    );
    assert_eq!(request.headers["x-myop-company-id"], ACCOUNT_ID);
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        request.body,
        json!({
            "phone_number_id": PHONE_NUMBER_ID,
            "customer_country_code": "91",
            "customer_number": "9876543210",
            "data": {"type": "template", "context": {
                "template_name": "order_confirmation",
                "language": "en",
                "body": {"1": "A-17", "2": "25 Nov", "3": "240"}
            }},
            "myop_ref_id": id,
        })
    );

    let attempt = &message["attempts"][0];
    assert_eq!(attempt["number"], 1);
    assert_eq!(attempt["provider"], "myoperator");
    assert_eq!(attempt["provider_version"], "0.1.0");
    assert_eq!(attempt["outcome"], "sent");
    assert_eq!(attempt["provider_message_id"], "wamid.1");
    assert!(attempt["latency_ms"].is_u64());
}

#[tokio::test]
async fn a_text_message_goes_as_text_without_preview() {
    let w = world().await;
    let chirp = w.options.start();
    let id = accept(
        &chirp,
        json!({"phone": "+919876543210", "text": "Your milk is at the door 🥛", "idempotency_key": "door-1"}),
    )
    .await;
    assert_eq!(chirp.wait_final(&id).await["status"], "sent");
    let body = &w.mock.received()[0].body;
    assert_eq!(
        body["data"],
        json!({"type": "text", "context": {"body": "Your milk is at the door 🥛", "preview_url": false}})
    );
    assert_eq!(body["myop_ref_id"], "door-1");
}

#[tokio::test]
async fn two_server_errors_then_success_ends_sent_after_three_attempts() {
    let w = world().await;
    w.mock.script([
        Reply::status(500),
        Reply::status(500),
        Reply::success("wamid.ok"),
    ]);
    let chirp = w.options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    assert_eq!(outcomes(&message), ["retryable", "retryable", "sent"]);
    assert_eq!(message["attempts"][0]["error_code"], "http_500");
    assert_eq!(message["attempt_count"], 3);
    assert_eq!(message["provider_message_id"], "wamid.ok");
    // Every attempt carried the same idempotency key.
    let keys: Vec<Value> = w
        .mock
        .received()
        .iter()
        .map(|r| r.body["myop_ref_id"].clone())
        .collect();
    assert_eq!(keys, vec![json!(id); 3]);
}

#[tokio::test]
async fn three_server_errors_fail_the_message() {
    let w = world().await;
    w.mock
        .script([Reply::status(503), Reply::status(502), Reply::status(500)]);
    let chirp = w.options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "failed");
    assert_eq!(outcomes(&message), ["retryable", "retryable", "retryable"]);
    assert_eq!(message["last_error"]["code"], "http_500");
    assert_eq!(w.mock.received().len(), 3);
}

#[tokio::test]
async fn retry_after_of_a_429_is_respected() {
    let w = world().await;
    w.mock
        .script([Reply::status(429).header("retry-after", "1")]);
    let chirp = w.options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent");
    assert_eq!(outcomes(&message), ["retryable", "sent"]);
    assert_eq!(message["attempts"][0]["retry_after_ms"], 1000);
    let received = w.mock.received();
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(1000),
        "retried after {gap:?}, before Retry-After"
    );
}

#[tokio::test]
async fn unauthorized_fails_after_one_attempt() {
    let w = world().await;
    w.mock.script([Reply::json(
        401,
        json!({"status": "error", "message": "invalid token"}),
    )]);
    let chirp = w.options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "failed");
    assert_eq!(outcomes(&message), ["permanent"]);
    assert_eq!(message["last_error"]["code"], "http_401");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        w.mock.received().len(),
        1,
        "a permanent error must not be retried"
    );
}

#[tokio::test]
async fn an_empty_wallet_fails_at_once_even_on_a_5xx() {
    let w = world().await;
    w.mock.script([Reply::json(
        500,
        json!({"status": "error", "code": "CHAT_4001", "message": "Insufficient wallet balance"}),
    )]);
    let chirp = w.options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "failed");
    assert_eq!(message["attempts"][0]["error_code"], "CHAT_4001");
    assert_eq!(outcomes(&message), ["permanent"]);
}

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_id_and_one_send() {
    let w = world().await;
    let chirp = w.options.start();
    let mut body = order_confirmation("+919876543210");
    body["idempotency_key"] = json!("order-A-17-confirmation");
    let first = accept(&chirp, body.clone()).await;
    // Concurrent duplicates and a later one all map to the first message.
    let ((a, _), (b, _)) = tokio::join!(
        accept_any(&chirp, body.clone()),
        accept_any(&chirp, body.clone())
    );
    assert_eq!((a.as_str(), b.as_str()), (first.as_str(), first.as_str()));
    assert_eq!(chirp.wait_final(&first).await["status"], "sent");
    let (status, replay) = chirp.post("/api/notifications/send-message", body).await;
    assert_eq!(status, 202, "{replay}");
    assert_eq!(replay, json!({"id": first, "status": "sent"}));

    // Resending a sent message is refused rather than sent twice.
    let (status, answer) = chirp
        .post(&format!("/api/notifications/resend/{first}"), json!({}))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "already_sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.mock.received().len(), 1);
}

#[tokio::test]
async fn a_failed_message_resent_twice_is_sent_once() {
    let w = world().await;
    w.mock.script([Reply::status(401)]);
    let chirp = w.options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    assert_eq!(chirp.wait_final(&id).await["status"], "failed");

    let path = format!("/api/notifications/resend/{id}");
    let ((s1, a1), (s2, a2)) =
        tokio::join!(chirp.post(&path, json!({})), chirp.post(&path, json!({})));
    // The later of the two may find the message queued again (202, not
    // requeued) or, if the send was that quick, already sent (409).
    for (status, answer) in [(s1, &a1), (s2, &a2)] {
        assert!(
            status == 202 || (status == 409 && answer["code"] == "already_sent"),
            "{status} {answer}"
        );
    }
    let requeued = [a1["requeued"].as_bool(), a2["requeued"].as_bool()];
    assert_eq!(
        requeued.iter().filter(|r| **r == Some(true)).count(),
        1,
        "{requeued:?}"
    );

    let message = chirp
        .wait_for(&id, Duration::from_secs(20), |m| m["status"] == "sent")
        .await;
    assert_eq!(outcomes(&message), ["permanent", "sent"]);
    assert_eq!(message["attempts"][1]["number"], 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.mock.received().len(), 2);
}

#[tokio::test]
async fn a_message_leased_when_chirp_dies_is_delivered_after_restart() {
    let w = world().await;
    let options = durable(&w).set("CHIRP_LEASE", "2s");
    // The first attempt hangs at the provider; chirp is killed meanwhile.
    w.mock
        .script([Reply::success("never-seen").after(Duration::from_secs(30))]);
    let chirp = options.start();
    let id = accept(&chirp, order_confirmation("+919876543210")).await;
    chirp
        .wait_for(&id, Duration::from_secs(20), |m| m["status"] == "sending")
        .await;
    while w.mock.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    chirp.kill();

    let chirp = options.start();
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    assert_eq!(message["provider_message_id"], "wamid.2");
    let received = w.mock.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].body["myop_ref_id"],
        received[1].body["myop_ref_id"]
    );
}

#[tokio::test]
async fn accepted_messages_survive_a_restart_before_they_are_sent() {
    let w = world().await;
    let options = durable(&w).set("CHIRP_PROVIDER", "not-loaded-yet");
    let chirp = options.start();
    let mut ids = Vec::new();
    for n in 0..20 {
        let mut body = order_confirmation("+919876543210");
        body["reference_id"] = json!(format!("order-{n}"));
        ids.push(accept(&chirp, body).await);
    }
    let message = chirp
        .wait_for(&ids[0], Duration::from_secs(10), |m| {
            m["last_error"]["code"] == "provider_not_loaded"
        })
        .await;
    assert_eq!(
        message["status"], "queued",
        "a missing provider must not fail messages"
    );
    chirp.kill();

    // The messages were accepted for provider "not-loaded-yet"; nothing was lost.
    let chirp = options.start();
    let (status, page) = chirp.get("/api/notifications/history?limit=100").await;
    assert_eq!(status, 200);
    let mut listed: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ids);
    assert!(w.mock.received().is_empty());
}

#[tokio::test]
async fn bad_requests_name_the_field_and_store_nothing() {
    let w = world().await;
    let chirp = w.options.start();
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"phone": "9876543210", "text": "hi"}),
            422,
            "invalid_phone",
            "phone",
        ),
        (
            json!({"phone": "+915876543210", "text": "hi"}),
            422,
            "invalid_phone",
            "phone",
        ),
        (
            json!({"phone": "+91987654321", "text": "hi"}),
            422,
            "invalid_phone",
            "phone",
        ),
        (json!({"text": "hi"}), 422, "missing_field", "phone"),
        (
            json!({"phone": 919876543210u64, "text": "hi"}),
            422,
            "invalid_type",
            "phone",
        ),
        (
            json!({"phone": "+919876543210"}),
            422,
            "missing_content",
            "template",
        ),
        (
            json!({"phone": "+919876543210", "text": "hi", "template": "churn_risk"}),
            422,
            "template_and_text",
            "template",
        ),
        (
            json!({"phone": "+919876543210", "template": "no_such_template"}),
            422,
            "unknown_template",
            "template",
        ),
        (
            json!({"phone": "+919876543210", "template": "order_confirmation",
                   "variables": {"order_id": "A-1", "total_amount": 5}}),
            422,
            "missing_variable",
            "variables.delivery_date",
        ),
        (
            json!({"phone": "+919876543210", "template": "delivery_delayed",
                   "variables": {"eta_time": {"h": 8}}}),
            422,
            "invalid_variable",
            "variables.eta_time",
        ),
        (
            json!({"phone": "+919876543210", "text": "hi", "variable": {}}),
            422,
            "unknown_field",
            "variable",
        ),
        (
            json!({"phone": "+919876543210", "text": ""}),
            422,
            "invalid_text",
            "text",
        ),
        (json!(["not", "an", "object"]), 400, "invalid_body", ""),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = chirp
            .post("/api/notifications/send-message", body.clone())
            .await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert_eq!(answer["code"], code, "{body} -> {answer}");
        if field.is_empty() {
            assert!(answer["field"].is_null(), "{answer}");
        } else {
            assert_eq!(answer["field"], field, "{body} -> {answer}");
        }
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let path = "/api/notifications/send-message";
    let (status, answer) = chirp
        .post_raw(path, "application/json", b"{\"phone\": ".to_vec())
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("malformed_json")),
        "{answer}"
    );
    let (status, answer) = chirp.post_raw(path, "text/plain", b"{}".to_vec()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{answer}"
    );
    let huge = json!({"phone": "+919876543210", "text": "x".repeat(200_000)}).to_string();
    let response = chirp
        .post_raw_response(path, "application/json", huge.into_bytes())
        .await;
    // The unread rest of the body ends the connection, and the answer says
    // so: the client's next request must not go out on it.
    assert_eq!(
        response.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let (status, answer) = read(response).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("body_too_large")),
        "{answer}"
    );

    let (status, answer) = chirp.get("/api/notifications/history?status=lost").await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("status")),
        "{answer}"
    );
    let (status, answer) = chirp
        .get("/api/notifications/01JUNKUNKNOWNID0000000000")
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("not_found")),
        "{answer}"
    );

    let (_, page) = chirp.get("/api/notifications/history").await;
    assert_eq!(
        page["items"],
        json!([]),
        "a refused request stored something"
    );
    assert!(w.mock.received().is_empty());
}

#[tokio::test]
async fn history_filters_and_pages_newest_first() {
    let w = world().await;
    let chirp = w.options.start();
    let mut ids = Vec::new();
    for n in 0..5 {
        let phone = if n % 2 == 0 {
            "+919876543210"
        } else {
            "+919812345678"
        };
        let mut body = order_confirmation(phone);
        body["reference_id"] = json!(format!("order-{n}"));
        ids.push(accept(&chirp, body).await);
    }
    for id in &ids {
        chirp.wait_final(id).await;
    }

    let (_, page) = chirp.get("/api/notifications/history?limit=2").await;
    let first: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, [ids[4].as_str(), ids[3].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = chirp
        .get(&format!(
            "/api/notifications/history?limit=2&cursor={cursor}"
        ))
        .await;
    let second: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(second, [ids[2].as_str(), ids[1].as_str()]);

    let (_, page) = chirp.get("/api/notifications/history/+919812345678").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_null());
    let (_, page) = chirp
        .get("/api/notifications/history?reference_id=order-2&status=sent")
        .await;
    assert_eq!(page["items"][0]["id"], ids[2].as_str());
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = chirp.get("/api/notifications/history?status=failed").await;
    assert_eq!(page["items"], json!([]));
    let (_, page) = chirp
        .get("/api/notifications/history?template=order_confirmation&from=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
}

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
async fn statistics_agree_with_the_messages() {
    let w = world().await;
    let chirp = w.options.start();
    w.mock.script([Reply::status(500), Reply::success("a")]);
    let a = accept(&chirp, order_confirmation("+919876543210")).await;
    chirp.wait_final(&a).await;
    let b = accept(&chirp, json!({"phone": "+919812345678", "text": "hello"})).await;
    chirp.wait_final(&b).await;
    w.mock.script([Reply::status(401)]);
    let c = accept(&chirp, order_confirmation("+919876543210")).await;
    assert_eq!(chirp.wait_final(&c).await["status"], "failed");

    let (status, stats) = chirp.get("/api/notifications/statistics").await;
    assert_eq!(status, 200, "{stats}");
    let count = |list: &str, key: &str| {
        stats[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == key)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert_eq!(stats["total"], 3);
    assert_eq!(
        (count("by_status", "sent"), count("by_status", "failed")),
        (2, 1)
    );
    assert_eq!(count("by_template", "order_confirmation"), 2);
    assert_eq!(count("by_template", "none"), 1);
    assert_eq!(stats["by_day"].as_array().unwrap().len(), 1);
    let rate = stats["success_rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{rate}");
    let mean = stats["average_attempts"].as_f64().unwrap();
    assert!((mean - 4.0 / 3.0).abs() < 1e-9, "{mean}");
    assert!(stats["accept_to_sent_p50_ms"].as_i64().unwrap() >= 0);
    assert!(
        stats["accept_to_sent_p95_ms"].as_i64().unwrap()
            >= stats["accept_to_sent_p50_ms"].as_i64().unwrap()
    );
    assert_eq!(stats["queue_depth"], 0);
    let outcomes: Vec<(String, u64)> = stats["provider_outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["outcome"].as_str().unwrap().to_string(),
                o["count"].as_u64().unwrap(),
            )
        })
        .collect();
    for expected in [("sent", 2), ("retryable", 1), ("permanent", 1)] {
        assert!(
            outcomes.contains(&(expected.0.to_string(), expected.1)),
            "{outcomes:?}"
        );
    }

    // The same story in Prometheus series, without a token.
    let metrics = reqwest::get(chirp.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "chirp_messages_accepted_total 3",
        "chirp_messages_sent_total 2",
        "chirp_messages_failed_total 1",
        "chirp_retries_total 1",
        "chirp_queue_depth 0",
        "chirp_provider_latency_seconds_bucket{provider=\"myoperator\",outcome=\"sent\"",
        "chirp_plugin_reloads_total{outcome=\"loaded\"} 1",
        // Three accepts, one after the other: three commits of one message.
        "chirp_commit_batch_messages_bucket{le=\"1\"} 3",
        "chirp_commit_batch_messages_count 3",
        "chirp_commit_duration_seconds_count 3",
        "chirp_http_request_duration_seconds_bucket{route=\"/api/notifications/send-message\",method=\"POST\",status=\"202\"",
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }

    // A range that ends before the messages holds nothing.
    let (_, empty) = chirp
        .get("/api/notifications/statistics?to=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(empty["total"], 0);
    assert!(empty["success_rate"].is_null());
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

#[tokio::test]
async fn sigterm_under_load_loses_nothing() {
    let w = world().await;
    let options = durable(&w).set("CHIRP_SEND_CONCURRENCY", "8");
    // Slow provider: attempts are in flight when the signal comes.
    w.mock.script(
        (0..400).map(|n| Reply::success(&format!("w{n}")).after(Duration::from_millis(40))),
    );
    let chirp = options.start();
    let load = {
        let http = chirp.http.clone();
        let url = chirp.url("/api/notifications/send-message");
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            for n in 0..400 {
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(json!({"phone": "+919876543210", "text": format!("n{n}")}).to_string())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                        accepted.push(body["id"].as_str().unwrap().to_string());
                    }
                    // Refused or cut off during shutdown: never acknowledged.
                    _ => break,
                }
            }
            accepted
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (clean, took) = tokio::task::spawn_blocking(move || chirp.terminate())
        .await
        .unwrap();
    assert!(clean, "chirp did not exit cleanly on SIGTERM");
    assert!(took < Duration::from_secs(20), "shutdown took {took:?}");
    let accepted = load.await.unwrap();
    assert!(!accepted.is_empty());

    // Every 202 ends sent, after a restart on the same store.
    let chirp = options.start();
    for id in &accepted {
        assert_eq!(chirp.wait_final(id).await["status"], "sent", "{id}");
    }
}
