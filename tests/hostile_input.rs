//! Hostile input, generated: property tests over the request bodies chirp
//! takes. Whatever arrives, chirp answers `2xx` or a `4xx` in its one error
//! shape, never a `5xx`, and what it accepted before stays as it was.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use support::{ChirpOptions, ChirpProcess, MockMyOperator};

/// Any JSON value, leaning towards what chirp's fields hold (phones,
/// template names, times), nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        r"\+?9?1?[0-9]{0,14}".prop_map(Value::String),
        prop_oneof![
            Just("order_confirmation"),
            Just("delivery_delayed"),
            Just("churn_risk"),
            Just("order.created"),
            Just("2026-11-25T10:00:00Z"),
            Just("Asia/Kolkata"),
            Just("hi"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// An object whose keys are mostly the endpoint's own field names.
fn body(fields: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        4 => prop::sample::select(fields).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
    ];
    prop::collection::vec((key, json_value()), 0..9).prop_map(|pairs| pairs.into_iter().collect())
}

const SEND_FIELDS: &[&str] = &[
    "phone",
    "template",
    "variables",
    "text",
    "language",
    "reference_id",
    "idempotency_key",
    "provider",
    "override_opt_out",
    "send_at",
];
const EVENT_FIELDS: &[&str] = &["type", "reference_id", "customer", "data"];
const PREFERENCE_FIELDS: &[&str] = &[
    "opt_out_all",
    "opt_out_marketing",
    "opt_out_templates",
    "language",
    "timezone",
];

/// Checks one answer: no 5xx, and errors in chirp's shape.
fn check(status: u16, answer: &Value, context: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{context}: {status} {answer}");
    if status >= 400 {
        prop_assert!(
            answer["code"].is_string()
                && answer["message"].is_string()
                && (answer["field"].is_string() || answer["field"].is_null()),
            "{context}: error outside the shape: {status} {answer}"
        );
    }
    Ok(())
}

fn run(
    runtime: &tokio::runtime::Runtime,
    chirp: &ChirpProcess,
    cases: u32,
    strategy: impl Strategy<Value = Map<String, Value>>,
    method: &str,
    path: &str,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |body| {
            let body = Value::Object(body);
            let (status, answer) = runtime.block_on(async {
                let response = chirp
                    .http
                    .request(method.parse().unwrap(), chirp.url(path))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            });
            check(status, &answer, &format!("{method} {path} {body}"))
        })
        .unwrap();
}

#[test]
fn no_body_makes_chirp_fail_or_lose_what_it_accepted() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mock, chirp) = runtime.block_on(async {
        let mock = MockMyOperator::start().await;
        let plugins = support::plugins_dir_with_rules(dir.path());
        let chirp = ChirpOptions::new("mem://", plugins, &mock)
            .set("CHIRP_PAUSE_DELIVERY", "true")
            .start();
        (mock, chirp)
    });
    let (status, first) = runtime.block_on(chirp.post(
        "/api/notifications/send-message",
        json!({"phone": "+919876543210", "text": "accepted before the storm"}),
    ));
    assert_eq!(status, 202);
    let id = first["id"].as_str().unwrap().to_string();
    let (_, before) = runtime.block_on(chirp.get(&format!("/api/notifications/{id}")));

    run(
        &runtime,
        &chirp,
        300,
        body(SEND_FIELDS),
        "POST",
        "/api/notifications/send-message",
    );
    run(
        &runtime,
        &chirp,
        200,
        body(EVENT_FIELDS),
        "POST",
        "/api/events",
    );
    run(
        &runtime,
        &chirp,
        150,
        body(PREFERENCE_FIELDS),
        "PUT",
        "/api/preferences/+919876543210",
    );
    run(
        &runtime,
        &chirp,
        100,
        body(&[
            "text",
            "enabled",
            "variables",
            "category",
            "description",
            "whatsapp",
            "sample",
        ]),
        "PUT",
        "/api/notifications/templates/delivery_delayed",
    );

    // Raw bytes: not JSON, not an object, not UTF-8.
    let mut runner = TestRunner::new(Config {
        cases: 100,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..200), |bytes| {
            let (status, answer) = runtime.block_on(chirp.post_raw(
                "/api/notifications/send-message",
                "application/json",
                bytes.clone(),
            ));
            check(status, &answer, &format!("raw {bytes:?}"))
        })
        .unwrap();

    let (_, after) = runtime.block_on(chirp.get(&format!("/api/notifications/{id}")));
    assert_eq!(before, after, "the message accepted first is unchanged");
    drop(mock);
}
