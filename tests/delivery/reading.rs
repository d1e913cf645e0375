//! What callers read back: refusals that name their field, history,
//! statistics.

use super::*;

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
    // Four attempts, all through MyOperator, timed.
    let latency = &stats["provider_latency"][0];
    assert_eq!(latency["provider"], "myoperator", "{stats:#}");
    assert_eq!(latency["attempts"], 4, "{stats:#}");
    assert!(latency["p95_ms"].as_i64().unwrap() >= latency["p50_ms"].as_i64().unwrap());
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
    let metrics = chirp.metrics().await;
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
