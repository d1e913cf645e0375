//! Templates edited live, business events through the rules component, and
//! recipient preferences, end to end.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{ChirpProcess, World};

const PHONE: &str = "+919876543210";

/// chirp with the MyOperator and rules components, on `mem://` or, if
/// `durable`, a surrealkv directory under the world's temp dir.
async fn world(durable: bool) -> World {
    World::new(true, durable).await
}

async fn send(chirp: &ChirpProcess, body: Value) -> Value {
    let (status, answer) = chirp.post("/api/notifications/send-message", body).await;
    assert_eq!(status, 202, "{answer}");
    answer
}

async fn put(chirp: &ChirpProcess, path: &str, body: Value) -> (u16, Value) {
    chirp.put(path, body).await
}

#[tokio::test]
async fn the_ten_templates_render_their_golden_texts_with_emoji_intact() {
    let w = world(false).await;
    let chirp = w.options.start();
    let golden = [
        ("churn_risk", "❤️ We miss you! Resume for 25% OFF"),
        (
            "delivery_confirmed",
            "✓ Delivery Confirmed for 25 Nov. Thank you for choosing EarlyBird!",
        ),
        (
            "delivery_delayed",
            "⏰ Delivery ETA: 8:30 AM. Sorry for the delay!",
        ),
        (
            "delivery_reminder",
            "🥛 Your EarlyBird delivery scheduled for 25 Nov. Please keep your delivery bag outside by 6 AM.",
        ),
        ("new_product", "🆕 A2 cow milk 500ml available from 1 Dec"),
        (
            "order_confirmation",
            "Order #A-17 confirmed. Delivery on 25 Nov, total ₹240.",
        ),
        (
            "pause_confirmation",
            "⏸️ Subscription paused until 5 Dec. Deliveries resume automatically after that.",
        ),
        (
            "payment_confirmation",
            "✓ Payment received! ₹1200 for November via UPI. Thank you!",
        ),
        (
            "payment_reminder",
            "Payment due: ₹1200 for November. Please pay soon to keep your deliveries running.",
        ),
        (
            "subscription_confirmation",
            "✓ Subscription active: Toned milk 1L, starting 1 Dec. Welcome to EarlyBird!",
        ),
    ];
    let (_, list) = chirp.get("/api/notifications/templates").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 10);
    for (name, text) in golden {
        let (status, preview) = chirp
            .post(
                &format!("/api/notifications/templates/{name}/preview"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(preview["text"], text, "{name}");
        assert_eq!(preview["version"], 1);
    }

    // Hindi where it exists, English where it does not.
    let (_, hi) = chirp
        .post(
            "/api/notifications/templates/order_confirmation/preview",
            json!({"language": "hi"}),
        )
        .await;
    assert_eq!(hi["language"], "hi");
    assert_eq!(
        hi["text"],
        "ऑर्डर #A-17 की पुष्टि हो गई। डिलीवरी 25 Nov को, कुल ₹240।"
    );
    let (_, fallback) = chirp
        .post(
            "/api/notifications/templates/pause_confirmation/preview",
            json!({"language": "hi"}),
        )
        .await;
    assert_eq!(fallback["language"], "en");

    // A recipient's language preference picks the text when the request has none.
    let (status, _) = put(
        &chirp,
        &format!("/api/preferences/{PHONE}"),
        json!({"language": "hi"}),
    )
    .await;
    assert_eq!(status, 200);
    let answer = send(
        &chirp,
        json!({"phone": PHONE, "template": "delivery_confirmed", "variables": {"delivery_date": "25 Nov"}}),
    )
    .await;
    let message = chirp.wait_final(answer["id"].as_str().unwrap()).await;
    assert_eq!(
        message["text"],
        "✓ 25 Nov की डिलीवरी हो गई है। EarlyBird चुनने के लिए धन्यवाद!"
    );
    assert_eq!(
        w.mock.received()[0].body["data"]["context"]["language"],
        "hi"
    );
}

#[tokio::test]
async fn a_bad_edit_is_refused_and_the_version_before_keeps_serving() {
    let w = world(false).await;
    let chirp = w.options.start();
    let path = "/api/notifications/templates/order_confirmation";
    let (status, answer) = put(
        &chirp,
        path,
        json!({"text": {"en": "Order #{{ order_id } confirmed"}}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "text.en");
    assert!(
        answer["message"].as_str().unwrap().contains("line 1"),
        "{answer}"
    );

    let (status, answer) = put(
        &chirp,
        path,
        json!({"text": "Order {{ order_id }} for {{ customer_name }}"}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("customer_name"),
        "{answer}"
    );

    let (status, answer) = put(
        &chirp,
        path,
        json!({"whatsapp": {"template": "x", "parameters": ["nope"]}}),
    )
    .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("whatsapp.parameters")),
        "{answer}"
    );

    let (_, template) = chirp.get(path).await;
    assert_eq!(template["version"], 1);
    let (_, versions) = chirp.get(&format!("{path}/versions")).await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 1);
    let answer = send(
        &chirp,
        json!({"phone": PHONE, "template": "order_confirmation",
               "variables": {"order_id": "1", "delivery_date": "d", "total_amount": 2}}),
    )
    .await;
    let message = chirp.wait_final(answer["id"].as_str().unwrap()).await;
    assert_eq!(
        message["text"],
        "Order #1 confirmed. Delivery on d, total ₹2."
    );
}

#[tokio::test]
async fn edits_are_versions_that_survive_a_restart_and_roll_back() {
    let w = world(true).await;
    let chirp = w.options.start();
    let path = "/api/notifications/templates/delivery_delayed";
    let (status, saved) = put(
        &chirp,
        path,
        json!({"text": {"en": "⏰ Running late: {{ eta_time }}", "hi": "⏰ देरी: {{ eta_time }}"}}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 2);
    let answer = send(
        &chirp,
        json!({"phone": PHONE, "template": "delivery_delayed", "variables": {"eta_time": "9"}}),
    )
    .await;
    let message = chirp.wait_final(answer["id"].as_str().unwrap()).await;
    assert_eq!(message["text"], "⏰ Running late: 9");
    assert_eq!(message["template_version"], 2);
    chirp.kill();

    // The files do not overwrite the edit on restart.
    let chirp = w.options.start();
    let (_, template) = chirp.get(path).await;
    assert_eq!(template["version"], 2);
    assert_eq!(template["text"]["en"], "⏰ Running late: {{ eta_time }}");
    let (_, versions) = chirp.get(&format!("{path}/versions")).await;
    let numbers: Vec<u64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);

    let (status, rolled) = chirp.post(&format!("{path}/rollback/1"), json!({})).await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["version"], 3);
    assert_eq!(
        rolled["text"]["en"],
        "⏰ Delivery ETA: {{ eta_time }}. Sorry for the delay!"
    );
    let answer = send(
        &chirp,
        json!({"phone": PHONE, "template": "delivery_delayed", "variables": {"eta_time": "9"}}),
    )
    .await;
    let message = chirp.wait_final(answer["id"].as_str().unwrap()).await;
    assert_eq!(message["text"], "⏰ Delivery ETA: 9. Sorry for the delay!");
    assert_eq!(message["template_version"], 3);
    let (status, _) = chirp.post(&format!("{path}/rollback/99"), json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_disabled_template_is_recorded_as_skipped_and_never_sent() {
    let w = world(false).await;
    let chirp = w.options.start();
    let (status, _) = put(
        &chirp,
        "/api/notifications/templates/new_product",
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200);
    let answer = send(
        &chirp,
        json!({"phone": PHONE, "template": "new_product", "variables": {"product": "Ghee", "availability_date": "1 Dec"}}),
    )
    .await;
    assert_eq!(answer["status"], "skipped");
    assert!(
        answer["reason"].as_str().unwrap().contains("disabled"),
        "{answer}"
    );
    let (_, message) = chirp
        .get(&format!(
            "/api/notifications/{}",
            answer["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(message["status"], "skipped");
    assert_eq!(message["last_error"]["code"], "template_disabled");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.mock.received().is_empty());
}

fn event(kind: &str, reference: &str, data: Value) -> Value {
    json!({"type": kind, "reference_id": reference, "customer": {"phone": PHONE, "name": "Asha"}, "data": data})
}

fn templates_of(answer: &Value) -> Vec<String> {
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["template"].as_str().unwrap().to_string())
        .collect()
}

/// A time zone where it is night right now, so marketing must wait.
fn night_timezone() -> (String, i64) {
    let hour = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24) as i64;
    // Etc/GMT-N is UTC+N. Aim for 23:00 local.
    let mut offset = 23 - hour;
    if offset > 14 {
        offset -= 24;
    }
    if offset < -12 {
        offset += 24;
    }
    let name = match offset {
        0 => "Etc/GMT".to_string(),
        n if n > 0 => format!("Etc/GMT-{n}"),
        n => format!("Etc/GMT+{}", -n),
    };
    (name, offset)
}

#[tokio::test]
async fn every_event_type_becomes_its_messages_and_duplicates_are_absorbed() {
    let w = world(false).await;
    let chirp = w.options.start();
    let data = support::earlybird_event_data("tomorrow");
    let expected = support::EARLYBIRD_EVENTS;
    let mut ids = Vec::new();
    let mut marketing = Vec::new();
    for (kind, templates) in &expected {
        let (status, answer) = chirp
            .post(
                "/api/events",
                event(kind, &format!("ref-{kind}"), data.clone()),
            )
            .await;
        assert_eq!(status, 202, "{kind}: {answer}");
        assert_eq!(templates_of(&answer), *templates, "{kind}");
        assert_eq!(answer["replayed"], false);
        for m in answer["messages"].as_array().unwrap() {
            let id = m["id"].as_str().unwrap().to_string();
            if matches!(*kind, "product.launched" | "customer.churn_risk") {
                marketing.push(id);
            } else {
                ids.push(id);
            }
        }
    }
    for id in &ids {
        let message = chirp.wait_final(id).await;
        assert_eq!(message["status"], "sent", "{message:#}");
    }
    for id in &marketing {
        let (_, message) = chirp.get(&format!("/api/notifications/{id}")).await;
        assert!(
            matches!(
                message["status"].as_str(),
                Some("queued" | "sending" | "sent")
            ),
            "{message:#}"
        );
    }

    // The same event again: the same ids, nothing new stored or sent.
    let sent_before = w.mock.received().len();
    let (status, again) = chirp
        .post(
            "/api/events",
            event("payment.recorded", "ref-payment.recorded", data.clone()),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(again["replayed"], true);
    let (_, first) = chirp
        .get("/api/notifications/history?reference_id=ref-payment.recorded")
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert_eq!(again["messages"][0]["id"], first["items"][0]["id"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.mock.received().len(), sent_before);
}

#[tokio::test]
async fn opt_outs_and_quiet_hours_hold_for_events_and_direct_sends() {
    let w = world(false).await;
    let chirp = w.options.start();
    let prefs = format!("/api/preferences/{PHONE}");
    let (status, saved) = put(&chirp, &prefs, json!({"opt_out_marketing": true})).await;
    assert_eq!(status, 200, "{saved}");
    let (_, read) = chirp.get(&prefs).await;
    assert_eq!(read["opt_out_marketing"], true);

    // Through the rules: churn risk is skipped with a reason, and recorded.
    let (status, answer) = chirp
        .post(
            "/api/events",
            event("customer.churn_risk", "churn-1", json!({})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["skipped"][0]["template"], "churn_risk");
    assert!(
        answer["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("marketing")
    );
    assert_eq!(answer["messages"][0]["status"], "skipped");

    // Directly: skipped too, and the override flag is refused for marketing.
    let answer = send(&chirp, json!({"phone": PHONE, "template": "churn_risk"})).await;
    assert_eq!(answer["status"], "skipped");
    let (status, refused) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "template": "churn_risk", "override_opt_out": true}),
        )
        .await;
    assert_eq!(
        (status, refused["field"].as_str()),
        (422, Some("override_opt_out")),
        "{refused}"
    );

    // Opted out of everything: transactional messages need the override.
    put(&chirp, &prefs, json!({"opt_out_all": true})).await;
    let body =
        json!({"phone": PHONE, "template": "delivery_delayed", "variables": {"eta_time": "9"}});
    assert_eq!(send(&chirp, body.clone()).await["status"], "skipped");
    let mut forced = body.clone();
    forced["override_opt_out"] = json!(true);
    let answer = send(&chirp, forced).await;
    assert_eq!(
        chirp.wait_final(answer["id"].as_str().unwrap()).await["status"],
        "sent"
    );
    assert_eq!(
        w.mock.received().len(),
        1,
        "only the overridden message may reach the provider"
    );

    // Quiet hours: marketing at night in the recipient's zone waits for 09:00.
    put(&chirp, &prefs, json!({})).await;
    let (timezone, offset) = night_timezone();
    let mut night = event("customer.churn_risk", "churn-2", json!({}));
    night["customer"]["timezone"] = json!(timezone);
    let (status, answer) = chirp.post("/api/events", night).await;
    assert_eq!(status, 202, "{answer}");
    let message = &answer["messages"][0];
    assert_eq!(message["status"], "queued");
    let not_before = humantime::parse_rfc3339(message["not_before"].as_str().unwrap()).unwrap();
    let wait = not_before.duration_since(SystemTime::now()).unwrap();
    assert!(
        wait > Duration::from_secs(9 * 3600),
        "held {wait:?} (zone offset {offset})"
    );
    let local_hour = (not_before.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 / 3600
        + offset)
        .rem_euclid(24);
    assert_eq!(local_hour, 9);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.mock.received().len(), 1);
}

#[tokio::test]
async fn bad_events_are_refused_naming_the_field_and_store_nothing() {
    let w = world(false).await;
    let chirp = w.options.start();
    let cases = [
        (
            event("order.cancelled", "r", json!({})),
            "type",
            "unknown_event_type",
        ),
        (
            event(
                "order.created",
                "r",
                json!({"delivery_date": "d", "total_amount": 1}),
            ),
            "data.order_id",
            "invalid_event",
        ),
        (
            json!({"type": "payment.due", "reference_id": "r", "customer": {"phone": "12345"}, "data": {}}),
            "customer.phone",
            "invalid_phone",
        ),
        (
            json!({"type": "payment.due", "customer": {"phone": PHONE}}),
            "reference_id",
            "missing_field",
        ),
        (
            json!({"type": "payment.due", "reference_id": "r"}),
            "customer",
            "missing_field",
        ),
        (
            json!({"type": "payment.due", "reference_id": "r", "customer": {"phone": PHONE, "age": 3}, "data": {}}),
            "customer.age",
            "unknown_field",
        ),
    ];
    for (body, field, code) in cases {
        let (status, answer) = chirp.post("/api/events", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["field"], field, "{body} -> {answer}");
        assert_eq!(answer["code"], code, "{body} -> {answer}");
    }
    let (_, history) = chirp.get("/api/notifications/history").await;
    assert_eq!(history["items"], json!([]));
}

#[tokio::test]
async fn a_scheduled_message_waits_across_a_restart_and_goes_out_on_time() {
    let w = world(true).await;
    let chirp = w.options.start();
    let due = SystemTime::now() + Duration::from_secs(3);
    let send_at = humantime::format_rfc3339_millis(due).to_string();
    let answer = send(
        &chirp,
        json!({"phone": PHONE, "text": "your milk is coming", "send_at": send_at}),
    )
    .await;
    let id = answer["id"].as_str().unwrap().to_string();
    chirp.kill();
    assert!(w.mock.received().is_empty());

    let chirp = w.options.start();
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent");
    let received = w.mock.received();
    assert_eq!(received.len(), 1);
    assert!(SystemTime::now() >= due);
    let sent_at = humantime::parse_rfc3339(message["sent_at"].as_str().unwrap()).unwrap();
    assert!(sent_at >= due, "sent before it was due");
    drop(w.dir);
}
