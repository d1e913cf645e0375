//! Who chooses a message's fallback chain: its template, an admin at send
//! time, or the rules component for an event (`chirp:plugin@0.2.2`'s
//! `routing`), always among the routes the operator approved.

use std::time::Duration;

use serde_json::{Value, json};

use super::support::{ChirpProcess, MockMyOperator, Reply, build_plugin};
use super::{DLT_TEMPLATE, sms_options};

/// `template` approved for MyOperator and for MSG91's SMS (DLT), with
/// its own `fallback` as given.
async fn approve(chirp: &ChirpProcess, template: &str, parameters: &[&str], fallback: Value) {
    let (code, body) = chirp
        .put(
            &format!("/api/notifications/templates/{template}"),
            json!({"providers": {
                "msg91-sms": {"template": DLT_TEMPLATE, "languages": ["en"], "parameters": parameters},
                "myoperator": {"template": template, "languages": ["en"], "parameters": parameters},
            }, "fallback": fallback}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
}

/// `order_confirmation` approved for both, with its own `fallback`.
async fn approve_orders(chirp: &ChirpProcess, fallback: Value) {
    let parameters = ["order_id", "delivery_date", "total_amount"];
    approve(chirp, "order_confirmation", &parameters, fallback).await;
}

/// Posts an event for the usual customer; its messages by template.
async fn event(chirp: &ChirpProcess, kind: &str, reference: &str, data: Value) -> Value {
    let (code, answer) = chirp
        .post(
            "/api/events",
            json!({"type": kind, "reference_id": reference,
                   "customer": {"phone": "+919876543210"}, "data": data}),
        )
        .await;
    assert_eq!(code, 202, "{answer}");
    answer
}

async fn message_of(chirp: &ChirpProcess, answer: &Value, template: &str) -> Value {
    let id = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["template"] == template)
        .unwrap_or_else(|| panic!("no {template} in {answer:#}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    chirp.get(&format!("/api/notifications/{id}")).await.1
}

async fn wait_active(chirp: &ChirpProcess, file: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = chirp.plugin_row(file).await;
        if row.as_ref().is_some_and(|r| r["state"] == "active") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{file}: {row:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn order(id: &str) -> Value {
    json!({"order_id": id, "delivery_date": "2998-03-01", "total_amount": 240})
}

/// EarlyBird's rules (built for 0.2.2) send orders on to SMS when
/// WhatsApp cannot reach the customer, though the template names no
/// fallback; a route the operator has not approved (the reminder has no
/// DLT template) is left out and counted; marketing stays on WhatsApp
/// though its template names SMS.
#[tokio::test(flavor = "multi_thread")]
async fn the_rules_choose_the_chain_among_the_approved_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    mock.script([Reply::status(400)]);
    let options = sms_options(dir.path(), &mock).set("CHIRP_FALLBACK_CODES", "http_400");
    std::fs::copy(
        build_plugin("rules-earlybird"),
        options.plugins_dir.join("rules-earlybird.wasm"),
    )
    .unwrap();
    let chirp = options.start();
    wait_active(&chirp, "rules-earlybird.wasm").await;
    approve_orders(&chirp, json!([])).await;
    approve(
        &chirp,
        "new_product",
        &["product", "availability_date"],
        json!(["sms:msg91-sms"]),
    )
    .await;

    let answer = event(&chirp, "order.created", "SUB-1", order("A-1")).await;
    let confirmation = message_of(&chirp, &answer, "order_confirmation").await;
    assert_eq!(confirmation["fallbacks"], json!(["sms:msg91-sms"]));
    let reminder = message_of(&chirp, &answer, "delivery_reminder").await;
    assert!(reminder.get("fallbacks").is_none(), "{reminder:#}");
    assert!(
        chirp
            .metrics()
            .await
            .contains("chirp_routes_left_out_total{template=\"delivery_reminder\"} 1")
    );
    // The chain is the one the message travels: WhatsApp cannot reach
    // the customer, SMS can.
    let id = confirmation["id"].as_str().unwrap();
    let sent = chirp
        .wait_for(id, Duration::from_secs(20), |m| m["status"] == "sent")
        .await;
    assert_eq!(sent["provider"], "msg91-sms", "{sent:#}");
    assert_eq!(sent["hops"][0]["from"], "myoperator");

    let answer = event(
        &chirp,
        "product.launched",
        "P-1",
        json!({"product": "A2 milk", "availability_date": "1 Dec"}),
    )
    .await;
    let launch = message_of(&chirp, &answer, "new_product").await;
    assert!(launch.get("fallbacks").is_none(), "{launch:#}");
}

/// An admin names the chain of one message: it replaces the template's,
/// `[]` means none, and a route the operator has not approved (no DLT
/// template), a malformed one or one on free text is refused, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_chooses_the_chain_of_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let chirp = sms_options(dir.path(), &mock).start();
    approve(&chirp, "delivery_delayed", &["eta_time"], json!([])).await;
    let send = |fallback: Value| {
        json!({"phone": "+919876543210", "template": "delivery_delayed",
               "variables": {"eta_time": "9 AM"}, "fallback": fallback})
    };
    let (code, answer) = chirp
        .post(
            "/api/notifications/send-message",
            send(json!(["sms:msg91-sms"])),
        )
        .await;
    assert_eq!(code, 202, "{answer}");
    let (_, message) = chirp
        .get(&format!(
            "/api/notifications/{}",
            answer["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(message["fallbacks"], json!(["sms:msg91-sms"]));

    for (fallback, field) in [
        (json!(["sms:unapproved"]), "fallback.0"),
        (json!(["sms:msg91-sms", "fax:msg91-sms"]), "fallback.1"),
        (json!(["sms:msg91-sms", "sms:msg91-sms"]), "fallback.1"),
        (json!(["whatsapp:myoperator"]), "fallback.0"),
        (json!(["sms:a", "sms:b", "sms:c", "sms:d"]), "fallback"),
        (json!("sms:msg91-sms"), "fallback"),
    ] {
        let (code, answer) = chirp
            .post("/api/notifications/send-message", send(fallback.clone()))
            .await;
        assert_eq!(code, 422, "{fallback}: {answer}");
        assert_eq!(answer["field"], field, "{fallback}: {answer}");
    }
    let (code, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": "+919876543210", "text": "Running late", "fallback": ["sms:msg91-sms"]}),
        )
        .await;
    assert_eq!(code, 422, "{answer}");
    assert_eq!(answer["field"], "fallback", "{answer}");
}

/// A rules component built for `chirp:plugin@0.2.1` (the checked-in
/// file, never rebuilt) keeps working now that chirp speaks 0.2.2: it
/// decides and cancels, and its messages keep their templates' chains.
#[tokio::test(flavor = "multi_thread")]
async fn rules_built_for_0_2_1_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let options = sms_options(dir.path(), &mock);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/plugins/rules-earlybird-0.2.1.wasm");
    std::fs::copy(fixture, options.plugins_dir.join("rules-earlybird.wasm")).unwrap();
    let chirp = options.start();
    wait_active(&chirp, "rules-earlybird.wasm").await;
    approve_orders(&chirp, json!(["sms:msg91-sms"])).await;

    let answer = event(&chirp, "order.created", "SUB-2", order("A-2")).await;
    let confirmation = message_of(&chirp, &answer, "order_confirmation").await;
    assert_eq!(confirmation["fallbacks"], json!(["sms:msg91-sms"]));
    let reminder = message_of(&chirp, &answer, "delivery_reminder").await;
    assert!(reminder.get("fallbacks").is_none(), "{reminder:#}");
    let paused = event(
        &chirp,
        "subscription.paused",
        "SUB-2",
        json!({"resume_date": "5 Mar"}),
    )
    .await;
    assert_eq!(paused["cancelled"], json!([reminder["id"]]), "{paused:#}");
}
