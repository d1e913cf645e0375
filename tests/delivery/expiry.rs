//! Expiry: a message that could not go out in time is `expired`, never
//! sent late; one that would expire before its time to be sent is refused.

use super::*;

/// `now` plus `secs`, as RFC 3339.
fn in_seconds(secs: u64) -> String {
    let at = std::time::SystemTime::now() + Duration::from_secs(secs);
    humantime::format_rfc3339_millis(at).to_string()
}

fn eta(phone: &str, expires_at: Option<String>) -> Value {
    let mut body = json!({
        "phone": phone,
        "template": "delivery_delayed",
        "variables": {"eta_time": "8:30 AM"},
    });
    if let Some(at) = expires_at {
        body["expires_at"] = json!(at);
    }
    body
}

/// The provider asks for a minute's wait; the message expires in three
/// seconds, so it is looked at again then and expires instead of going
/// out a minute late. The one attempt stays in the audit trail. (With the
/// due time not capped at the expiry, checked once, the message was still
/// queued after 30 s.)
#[tokio::test]
async fn a_message_that_cannot_go_out_in_time_expires_at_its_expiry() {
    let w = world().await;
    w.mock
        .script([Reply::status(429).header("retry-after", "60")]);
    let chirp = w.options.set("CHIRP_MAX_RETRY_AFTER", "5m").start();
    let id = accept(&chirp, eta("+919876543210", Some(in_seconds(3)))).await;
    let message = chirp
        .wait_for(&id, Duration::from_secs(30), |m| {
            m["status"] != "queued" && m["status"] != "sending"
        })
        .await;
    assert_eq!(message["status"], "expired", "{message:#}");
    assert_eq!(message["last_error"]["code"], "expired");
    assert_eq!(outcomes(&message), ["retryable"]);
    assert!(message["expires_at"].is_string());
    assert_eq!(w.mock.received().len(), 1);
    // Nothing is left to do, and it is not sent late.
    let (_, run) = chirp
        .post("/api/notifications/process-queue", json!({}))
        .await;
    assert_eq!(run["due"], 0, "{run}");
    let (_, expired) = chirp.get("/api/notifications/history?status=expired").await;
    assert_eq!(expired["items"].as_array().unwrap().len(), 1, "{expired:#}");
    let metrics = chirp.metrics().await;
    assert!(
        metrics.contains("chirp_messages_expired_total 1"),
        "{metrics}"
    );
}

/// An expiry that leaves no moment to send is a `422` on `expires_at`,
/// and nothing is stored; a template's `expire_after` counts from the
/// time to be sent.
#[tokio::test]
async fn an_expiry_before_the_send_is_refused_and_the_template_default_applies() {
    let w = world().await;
    let chirp = w.options.start();
    let mut scheduled = eta("+919876543210", Some(in_seconds(60)));
    scheduled["send_at"] = json!(in_seconds(120));
    let (code, answer) = chirp
        .post("/api/notifications/send-message", scheduled)
        .await;
    assert_eq!(code, 422, "{answer}");
    assert_eq!(answer["field"], "expires_at");
    assert_eq!(answer["code"], "expires_before_send");
    let (code, answer) = chirp
        .post(
            "/api/notifications/send-message",
            eta("+919876543210", Some("2020-01-01T00:00:00Z".into())),
        )
        .await;
    assert_eq!(code, 422, "{answer}");

    // delivery_delayed's expire_after is 2h, from its time to be sent.
    let mut later = eta("+919876543210", None);
    later["send_at"] = json!("2999-01-01T00:00:00Z");
    let id = accept(&chirp, later).await;
    let (_, message) = chirp.get(&format!("/api/notifications/{id}")).await;
    assert_eq!(
        message["expires_at"], "2999-01-01T02:00:00.000Z",
        "{message:#}"
    );
}

/// A failed message whose expiry has passed is not put back: sending it
/// now would be sending it late.
#[tokio::test]
async fn a_failed_message_past_its_expiry_is_not_resent() {
    let w = world().await;
    w.mock.script([Reply::status(401)]);
    let chirp = w.options.start();
    let id = accept(&chirp, eta("+919876543210", Some(in_seconds(2)))).await;
    assert_eq!(chirp.wait_final(&id).await["status"], "failed");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (code, answer) = chirp
        .post(&format!("/api/notifications/resend/{id}"), json!({}))
        .await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(answer["code"], "past_expiry");
    let (_, message) = chirp.get(&format!("/api/notifications/{id}")).await;
    assert_eq!(message["status"], "failed");
    assert_eq!(w.mock.received().len(), 1);
}
