//! Numbers and states from outside, bounded: a provider's `Retry-After`, a
//! year past 9999, an opt-out that comes after a message was scheduled,
//! settings that contradict each other, invented HTTP methods, spellings of
//! one token, a token not yet valid, a template that would never finish,
//! a provider that does not exist, an idempotency key used for another
//! request. End to end, against the `chirp` binary on loopback.
//!
//! Each test is able to fail: its comment says what happened before the
//! protection (checked once against the code without it).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{ChirpProcess, JWT_SECRET, Reply, World};

const PHONE: &str = "+919876543210";

async fn world() -> World {
    World::new(false, false).await
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn put(chirp: &ChirpProcess, path: &str, body: Value) -> (u16, Value) {
    chirp.put(path, body).await
}

/// `Retry-After` at the limits of u64 (and past them): the next attempt
/// comes within `CHIRP_MAX_RETRY_AFTER`, and the audit trail shows the
/// wait honoured. Before, such numbers overflowed, in the component
/// (seconds times 1000) and in chirp (now plus the wait): 9223372036854775
/// seconds made a due time past `i64::MAX`, which wrapped to a negative
/// instant below every claim (a message never sent again) or, in a debug
/// build, panicked the worker.
#[tokio::test]
async fn retry_after_at_the_limits_of_u64_waits_at_most_the_cap() {
    let w = world().await;
    let chirp = w
        .options
        .set("CHIRP_MAX_RETRY_AFTER", "1s")
        .set("CHIRP_MAX_ATTEMPTS", "4")
        .start();
    w.mock.script([
        Reply::status(429).header("retry-after", "18446744073709551615"),
        Reply::status(503).header("retry-after", "99999999999999999999999999"),
        Reply::status(429).header("retry-after", "9223372036854775"),
    ]);
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "text": "hello"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let message = chirp
        .wait_for(
            answer["id"].as_str().unwrap(),
            Duration::from_secs(20),
            |m| m["status"] == "sent",
        )
        .await;
    let attempts = message["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "{message:#}");
    for attempt in &attempts[..3] {
        assert_eq!(attempt["retry_after_ms"], 1000, "{message:#}");
    }
}

/// A date past 9999 in an event or a request is a 422 naming the field,
/// never a panic (humantime cannot write such a time, and the answer's
/// `not_before` panicked the handler: the connection dropped).
#[tokio::test]
async fn a_year_past_9999_is_a_422_naming_the_field() {
    let w = World::new(true, false).await;
    let chirp = w.options.start();
    for date in ["+10000-01-01", "+99999-01-01"] {
        let (status, answer) = chirp
            .post(
                "/api/events",
                json!({
                    "type": "order.created", "reference_id": format!("order-{date}"),
                    "customer": {"phone": PHONE},
                    "data": {"order_id": "A-1", "delivery_date": date, "total_amount": 240}
                }),
            )
            .await;
        assert_eq!(status, 422, "{date}: {answer}");
        assert_eq!(answer["field"], "data.delivery_date", "{answer}");
    }
    for send_at in [
        "10000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "+10000-01-01T00:00:00Z",
    ] {
        let (status, answer) = chirp
            .post(
                "/api/notifications/send-message",
                json!({"phone": PHONE, "text": "later", "send_at": send_at}),
            )
            .await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (422, Some("send_at")),
            "{answer}"
        );
    }
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "text": "much later", "send_at": "9999-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let (_, message) = chirp
        .get(&format!(
            "/api/notifications/{}",
            answer["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(message["next_attempt_at"], "9999-12-31T23:59:59.000Z");
}

/// A message scheduled, then its recipient opts out (or its template is
/// disabled): it is skipped with the reason when its time comes, and never
/// reaches the provider. Before, the decision made at intake was the only
/// one, and the message went out.
#[tokio::test]
async fn an_opt_out_after_scheduling_skips_the_message_when_it_comes_due() {
    let w = world().await;
    let chirp = w.options.start();
    let soon = humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(2)).to_string();
    let (status, scheduled) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "template": "delivery_delayed",
                   "variables": {"eta_time": "9 AM"}, "send_at": soon}),
        )
        .await;
    assert_eq!(status, 202, "{scheduled}");
    let other = "+919876543211";
    let (status, other_scheduled) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": other, "template": "payment_reminder",
                   "variables": {"amount": 1, "period": "Nov"}, "send_at": soon}),
        )
        .await;
    assert_eq!(status, 202, "{other_scheduled}");

    let (status, saved) = put(
        &chirp,
        &format!("/api/preferences/{PHONE}"),
        json!({"opt_out_all": true}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let (status, saved) = put(
        &chirp,
        "/api/notifications/templates/payment_reminder",
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");

    for (answer, code) in [
        (&scheduled, "opted_out"),
        (&other_scheduled, "template_disabled"),
    ] {
        let message = chirp
            .wait_for(
                answer["id"].as_str().unwrap(),
                Duration::from_secs(15),
                |m| matches!(m["status"].as_str(), Some("skipped" | "sent" | "failed")),
            )
            .await;
        assert_eq!(message["status"], "skipped", "{message:#}");
        assert_eq!(message["last_error"]["code"], code, "{message:#}");
        assert_eq!(message["attempts"], json!([]), "{message:#}");
    }
    assert!(w.mock.received().is_empty(), "a skipped message was sent");
}

/// Marketing that comes due outside the marketing hours is held to the
/// next start of them, in the recipient's zone, and not sent.
#[tokio::test]
async fn marketing_due_outside_its_hours_is_held_not_sent() {
    let w = world().await;
    // Hours that exclude now, wherever the clock is: the hour starting in
    // two hours, in UTC.
    let utc_now = now_secs() % 86_400;
    let start = (utc_now / 3600 + 2) % 24;
    let hours = format!("{start:02}:00-{:02}:00", (start + 1) % 24);
    let chirp = w.options.set("CHIRP_MARKETING_HOURS", &hours).start();
    let (status, saved) = put(
        &chirp,
        &format!("/api/preferences/{PHONE}"),
        json!({"timezone": "Etc/UTC"}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "template": "churn_risk"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let message = chirp
        .wait_for(
            answer["id"].as_str().unwrap(),
            Duration::from_secs(10),
            |m| m["last_error"]["code"] == "marketing_hours",
        )
        .await;
    assert_eq!(message["status"], "queued", "{message:#}");
    let due = message["next_attempt_at"].as_str().unwrap();
    assert!(
        due.ends_with(&format!("T{start:02}:00:00.000Z")),
        "{message:#}"
    );
    assert!(w.mock.received().is_empty());
}

/// A lease that cannot hold a plugin's call, or the wait for a turn at the
/// provider's rate: chirp does not start, and says which settings clash.
/// Before, it started, and a message whose call outlasted its lease was
/// taken back by another worker and sent twice.
#[tokio::test]
async fn contradictory_settings_stop_chirp_naming_the_variables() {
    let w = world().await;
    let stderr = w
        .options
        .clone()
        .set("CHIRP_LEASE", "5s")
        .set("CHIRP_SANDBOX__MYOPERATOR__TIMEOUT", "30s")
        .start_failure();
    assert!(
        stderr.contains("CHIRP_LEASE") && stderr.contains("CHIRP_SANDBOX__MYOPERATOR__TIMEOUT"),
        "{stderr}"
    );
    let stderr = w
        .options
        .set("CHIRP_SEND_CONCURRENCY", "2000")
        .set("CHIRP_PROVIDER_RATE", "10")
        .start_failure();
    assert!(
        stderr.contains("CHIRP_SEND_CONCURRENCY") && stderr.contains("CHIRP_PROVIDER_RATE"),
        "{stderr}"
    );
}

/// 300 requests with invented methods: `/metrics` gains one `other` label,
/// not 300 series. Before, each method was a label of its own.
#[tokio::test]
async fn an_invented_http_method_flood_adds_no_metric_series() {
    let w = world().await;
    let chirp = w.options.start();
    for n in 0..300 {
        let method = reqwest::Method::from_bytes(format!("X{n}").as_bytes()).unwrap();
        let response = chirp
            .http
            .request(method, chirp.url("/api/notifications/history"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let (_, metrics) = chirp.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        !metrics.contains("method=\"X"),
        "invented methods became labels"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

/// One token spelled five ways (scheme case, spaces): one bucket. Before,
/// the limit counted the raw header, and each spelling got a bucket of its
/// own.
#[tokio::test]
async fn the_rate_limit_counts_the_token_not_its_spelling() {
    let w = world().await;
    let chirp = w.options.set("CHIRP_API_RATE_LIMIT", "2").start();
    let token = support::admin_token();
    let client = reqwest::Client::new();
    let mut passed = 0;
    for header in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer  {token}"),
        format!("Bearer {token} "),
        format!("Bearer {token}\t"),
    ]
    .iter()
    .cycle()
    .take(12)
    {
        let response = client
            .get(chirp.url("/api/notifications/history"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        passed += usize::from(response.status().as_u16() == 200);
    }
    assert!(passed <= 4, "{passed} of 12 passed a limit of 2 per second");
}

/// A token whose `nbf` is an hour away is refused; one whose `nbf` has
/// passed is taken. Before, `nbf` was not read.
#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let w = world().await;
    let chirp = w.options.start();
    let client = reqwest::Client::new();
    for (nbf, expected) in [(now_secs() + 3600, 401), (now_secs() - 60, 200)] {
        let claims = json!({"sub": "ops", "role": "admin", "exp": now_secs() + 7200, "nbf": nbf});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap();
        let status = client
            .get(chirp.url("/api/notifications/history"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, expected, "nbf {nbf}");
    }
}

/// A template that would render forever is refused when saved, at its
/// line; one whose variables would make it build too much is refused
/// before it renders. Before, the first hung a worker thread for good and
/// the second built hundreds of megabytes.
#[tokio::test]
async fn a_render_that_never_ends_is_refused() {
    let w = world().await;
    let chirp = w.options.start();
    let path = "/api/notifications/templates/delivery_delayed";
    for text in [
        "ETA {{ eta_time }}\n{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        "ETA {{ eta_time }}\n{% set x = eta_time %}{% set x = x ~ x %}{{ x }}",
        "ETA {{ eta_time }}\n{{ eta_time * 99999999 }}",
    ] {
        let (status, answer) = put(&chirp, path, json!({"text": {"en": text}})).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["field"], "text.en", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("line 2"),
            "{answer}"
        );
    }
    let many = "{{ eta_time }}".repeat(200);
    let (status, saved) = put(&chirp, path, json!({"text": {"en": many}})).await;
    assert_eq!(status, 200, "{saved}");
    let (status, answer) = chirp
        .post(
            &format!("{path}/preview"),
            json!({"variables": {"eta_time": "x".repeat(2_000)}}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("render_too_large")),
        "{answer}"
    );
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "template": "delivery_delayed",
                   "variables": {"eta_time": "x".repeat(2_000)}}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("render_too_large")),
        "{answer}"
    );
}

/// A provider that names no plugin is a 422 at intake. Before, the message
/// was stored and waited forever for a plugin that would never come.
#[tokio::test]
async fn a_provider_that_names_no_plugin_is_refused() {
    let w = world().await;
    let chirp = w.options.start();
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "text": "hi", "provider": "no-such-plugin"}),
        )
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("provider")),
        "{answer}"
    );
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "text": "hi", "provider": "myoperator"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
}

/// An idempotency key used again for another request (another phone,
/// template, variables or text) is a 409 naming the key, not the first
/// message. Before, the second request was answered with the first
/// message's id, as if it had been stored and sent.
#[tokio::test]
async fn a_key_reused_for_another_request_is_a_409_naming_the_key() {
    let w = world().await;
    let chirp = w.options.start();
    let body = json!({"phone": PHONE, "text": "first", "idempotency_key": "k-1"});
    let (status, first) = chirp
        .post("/api/notifications/send-message", body.clone())
        .await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = chirp.post("/api/notifications/send-message", body).await;
    assert_eq!(
        (status, &again["id"]),
        (202, &first["id"]),
        "a retry is a replay"
    );
    for other in [
        json!({"phone": PHONE, "text": "second", "idempotency_key": "k-1"}),
        json!({"phone": "+919876543211", "text": "first", "idempotency_key": "k-1"}),
        json!({"phone": PHONE, "template": "delivery_delayed",
               "variables": {"eta_time": "9"}, "idempotency_key": "k-1"}),
    ] {
        let (status, answer) = chirp.post("/api/notifications/send-message", other).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["code"], "idempotency_key_reused");
        assert_eq!(answer["field"], "idempotency_key");
        assert!(
            answer["message"].as_str().unwrap().contains("k-1"),
            "{answer}"
        );
        assert!(!answer.to_string().contains(first["id"].as_str().unwrap()));
    }
}
