//! Taking messages back: one by id, or a reference's pending messages;
//! what is in flight or sent is named, never pretended away.

use super::*;

const LATER: &str = "2999-01-01T00:00:00Z";

fn reminder(phone: &str, reference: &str, send_at: Option<&str>) -> Value {
    let mut body = json!({
        "phone": phone,
        "template": "delivery_reminder",
        "variables": {"delivery_date": "25 Nov"},
        "reference_id": reference,
    });
    if let Some(at) = send_at {
        body["send_at"] = json!(at);
    }
    body
}

/// A list of ids, sorted.
fn sorted_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_scheduled_message_cancelled_is_never_sent() {
    let w = world().await;
    let chirp = w.options.start();
    let id = accept(&chirp, reminder("+919876543210", "SUB-1", Some(LATER))).await;

    let path = format!("/api/notifications/{id}/cancel");
    let (code, answer) = chirp.post(&path, json!({})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "cancelled");
    assert_eq!(answer["cancelled_now"], true);
    // Again: nothing more happens, and it says so.
    let (code, again) = chirp.post(&path, json!({})).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["cancelled_now"], false);

    let (_, message) = chirp.get(&format!("/api/notifications/{id}")).await;
    assert_eq!(message["status"], "cancelled", "{message:#}");
    assert_eq!(message["last_error"]["code"], "cancelled_by_admin");
    // Nothing is due, and running the queue sends nothing.
    let (_, run) = chirp
        .post("/api/notifications/process-queue", json!({}))
        .await;
    assert_eq!(run["due"], 0, "{run}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.mock.received().is_empty());

    let (code, missing) = chirp
        .post(
            "/api/notifications/01JNOSUCHMESSAGE0000000000/cancel",
            json!({}),
        )
        .await;
    assert_eq!(code, 404, "{missing}");
}

#[tokio::test]
async fn a_message_in_flight_or_sent_is_not_pretended_cancelled() {
    let w = world().await;
    // The platform takes its time over the first send.
    w.mock
        .script([Reply::success("wamid.slow").after(Duration::from_millis(1500))]);
    let chirp = w.options.start();
    let id = accept(&chirp, reminder("+919876543210", "SUB-2", None)).await;
    chirp
        .wait_for(&id, Duration::from_secs(10), |m| m["status"] == "sending")
        .await;
    let path = format!("/api/notifications/{id}/cancel");
    let (code, answer) = chirp.post(&path, json!({})).await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(answer["code"], "in_flight");
    assert_eq!(chirp.wait_final(&id).await["status"], "sent");
    let (code, answer) = chirp.post(&path, json!({})).await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(answer["code"], "already_sent");
}

#[tokio::test]
async fn a_references_pending_messages_are_cancelled_by_template_or_all() {
    let w = world().await;
    let chirp = w.options.start();
    let phone = "+919876543210";
    let sent = accept(&chirp, reminder(phone, "SUB-3", None)).await;
    assert_eq!(chirp.wait_final(&sent).await["status"], "sent");
    let reminders = [
        accept(&chirp, reminder(phone, "SUB-3", Some(LATER))).await,
        accept(
            &chirp,
            reminder(phone, "SUB-3", Some("2998-01-01T00:00:00Z")),
        )
        .await,
    ];
    let mut order = order_confirmation(phone);
    order["reference_id"] = json!("SUB-3");
    order["send_at"] = json!(LATER);
    let order = accept(&chirp, order).await;
    let other = accept(&chirp, reminder(phone, "SUB-4", Some(LATER))).await;

    let (code, answer) = chirp
        .post(
            "/api/notifications/cancel",
            json!({"reference_id": "SUB-3", "templates": ["delivery_reminder"], "reason": "subscription paused"}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    let cancelled = sorted_ids(&answer["cancelled"]);
    let mut expected = reminders.to_vec();
    expected.sort();
    assert_eq!(cancelled, expected, "{answer}");
    assert_eq!(answer["finished"], 1, "{answer}");
    assert_eq!(answer["in_flight"], json!([]));
    assert_eq!(answer["more"], false);
    let (_, message) = chirp
        .get(&format!("/api/notifications/{}", reminders[0]))
        .await;
    assert_eq!(
        message["last_error"]["message"], "cancelled by test-admin: subscription paused",
        "{message:#}"
    );
    for id in [&order, &other] {
        let (_, m) = chirp.get(&format!("/api/notifications/{id}")).await;
        assert_eq!(m["status"], "queued", "{m:#}");
    }

    // Without templates: the rest of the reference; the other reference
    // keeps its message.
    let (code, answer) = chirp
        .post(
            "/api/notifications/cancel",
            json!({"reference_id": "SUB-3"}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["cancelled"], json!([order]), "{answer}");
    assert_eq!(answer["finished"], 3, "{answer}");
    let (_, m) = chirp.get(&format!("/api/notifications/{other}")).await;
    assert_eq!(m["status"], "queued");

    // Bad input is named.
    for (body, field) in [
        (json!({}), "reference_id"),
        (json!({"reference_id": ""}), "reference_id"),
        (
            json!({"reference_id": "SUB-3", "templates": []}),
            "templates",
        ),
        (json!({"reference_id": "SUB-3", "reason": " "}), "reason"),
        (json!({"reference_id": "SUB-3", "surprise": 1}), "surprise"),
    ] {
        let (code, answer) = chirp.post("/api/notifications/cancel", body).await;
        assert_eq!(code, 422, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
}

#[tokio::test]
async fn a_paused_subscription_cancels_its_waiting_reminders() {
    let w = World::new(true, false).await;
    let chirp = w.options.start();
    let customer = json!({"phone": "+919876543210", "name": "Asha"});
    let event = |kind: &str, reference: &str, data: Value| json!({"type": kind, "reference_id": reference, "customer": customer, "data": data});
    // A delivery of subscription SUB-9 (its reminder waits for the
    // evening before), another reminder of SUB-9 sent directly, and a
    // delivery of another subscription.
    let mut reminders = Vec::new();
    for (reference, order) in [("SUB-9", "A-1"), ("SUB-10", "B-1")] {
        let (code, answer) = chirp
            .post(
                "/api/events",
                event(
                    "order.created",
                    reference,
                    json!({"order_id": order, "delivery_date": "2998-03-01", "total_amount": 240}),
                ),
            )
            .await;
        assert_eq!(code, 202, "{answer}");
        let reminder = answer["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["template"] == "delivery_reminder")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        reminders.push(reminder);
    }
    reminders.insert(
        1,
        accept(&chirp, reminder("+919876543210", "SUB-9", Some(LATER))).await,
    );
    let sub9 = &reminders[..2];

    let (code, paused) = chirp
        .post(
            "/api/events",
            event(
                "subscription.paused",
                "SUB-9",
                json!({"resume_date": "5 Mar"}),
            ),
        )
        .await;
    assert_eq!(code, 202, "{paused}");
    let cancelled = sorted_ids(&paused["cancelled"]);
    let mut expected: Vec<String> = sub9.to_vec();
    expected.sort();
    assert_eq!(cancelled, expected, "{paused:#}");

    // Recorded on both: the reminder names the event, the pause
    // confirmation names what it cancelled.
    let (_, reminder) = chirp
        .get(&format!("/api/notifications/{}", expected[0]))
        .await;
    assert_eq!(reminder["status"], "cancelled", "{reminder:#}");
    assert_eq!(reminder["last_error"]["code"], "cancelled_by_event");
    let why = reminder["last_error"]["message"].as_str().unwrap();
    assert!(
        why.contains("subscription.paused of SUB-9") && why.contains("subscription paused"),
        "{why}"
    );
    let confirmation = paused["messages"][0]["id"].as_str().unwrap();
    let (_, confirmation) = chirp
        .get(&format!("/api/notifications/{confirmation}"))
        .await;
    assert_eq!(
        confirmation["cancelled_messages"],
        json!(expected),
        "{confirmation:#}"
    );
    // The other subscription's reminder waits on.
    let (_, other) = chirp
        .get(&format!("/api/notifications/{}", reminders[2]))
        .await;
    assert_eq!(other["status"], "queued", "{other:#}");
}
