//! Status callbacks as EarlyBird's backend receives them: verified with the
//! Standard Webhooks reference library (not chirp's code), each change
//! once, in order per message, through a receiver that is down for a while
//! and through a chirp that is killed.

use super::*;
use support::callbacks::{Receiver, register, with_callbacks};

#[tokio::test]
async fn every_change_arrives_signed_once_and_in_order_after_the_receiver_comes_back() {
    let w = world().await;
    let receiver = Receiver::start().await;
    w.mock
        .script([Reply::success("wamid.1"), Reply::status(401)]);
    let chirp = with_callbacks(w.options.clone(), &receiver).start();
    let endpoint = register(&chirp, json!({"url": receiver.url()})).await;
    receiver.hold(endpoint["secret"].as_str().unwrap());
    receiver.set_down(true);

    let sent = accept(&chirp, order_confirmation("+919876543210")).await;
    assert_eq!(chirp.wait_final(&sent).await["status"], "sent");
    let failed = accept(&chirp, order_confirmation("+919876543211")).await;
    assert_eq!(chirp.wait_final(&failed).await["status"], "failed");
    let mut later = order_confirmation("+919876543212");
    later["send_at"] = json!("2999-01-01T00:00:00Z");
    let cancelled = accept(&chirp, later).await;
    let (code, answer) = chirp
        .post(&format!("/api/notifications/{cancelled}/cancel"), json!({}))
        .await;
    assert_eq!(code, 200, "{answer}");

    // Down for a while: every post is turned away and retried. (With the
    // sender posting every due callback instead of only the first of its
    // message, checked once, the cancellation overtook the acceptance.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while receiver.seen.lock().unwrap().turned_away < 6 {
        assert!(std::time::Instant::now() < deadline, "no retries seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.set_down(false);
    receiver.wait_states(&sent, &["accepted", "sent"]).await;
    receiver.wait_states(&failed, &["accepted", "failed"]).await;
    receiver
        .wait_states(&cancelled, &["accepted", "cancelled"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = receiver.webhook_ids();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(unique.len(), 6, "each change once: {ids:?}");
    assert_eq!(receiver.seen.lock().unwrap().refused, 0);

    // What the receiver got says what happened.
    let seen = receiver.seen.lock().unwrap().verified.clone();
    let failure = seen
        .iter()
        .find(|(_, b)| b["data"]["message_id"] == failed && b["data"]["state"] == "failed")
        .map(|(_, b)| b.clone())
        .unwrap();
    assert_eq!(failure["type"], "message.failed");
    assert_eq!(failure["data"]["reference_id"], "order-A-17");
    assert_eq!(failure["data"]["error_code"], "http_401", "{failure}");

    // The admin's log: each post, its status and latency.
    let (code, log) = chirp
        .get(&format!("/api/callbacks?message_id={sent}"))
        .await;
    assert_eq!(code, 200, "{log}");
    let first = &log["callbacks"][0];
    assert_eq!(first["state"], "accepted", "{log:#}");
    assert_eq!(first["outcome"], "delivered");
    assert!(first["attempts"].as_u64().unwrap() >= 2, "{log:#}");
    let (code, one) = chirp
        .get(&format!("/api/callbacks/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(code, 200, "{one}");
    let posts = one["posts"].as_array().unwrap();
    assert_eq!(posts.first().unwrap()["status"], 503, "{one:#}");
    assert_eq!(posts.last().unwrap()["status"], 204, "{one:#}");

    // A replay posts it again under the same webhook-id.
    let (code, replayed) = chirp
        .post(
            &format!("/api/callbacks/{}/replay", first["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(code, 202, "{replayed}");
    let webhook_id = first["webhook_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while receiver
        .webhook_ids()
        .iter()
        .filter(|id| **id == webhook_id)
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "no replay");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, stats) = chirp.get("/api/notifications/statistics").await;
    assert_eq!(stats["callbacks"]["pending"], 0, "{stats:#}");
    assert_eq!(stats["callbacks"]["delivered"], 6, "{stats:#}");
    let metrics = chirp.metrics().await;
    assert!(
        metrics.contains("chirp_callbacks_total{outcome=\"retry\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("chirp_messages_cancelled_total{by=\"admin\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn callbacks_pending_when_chirp_is_killed_are_posted_after_the_restart() {
    let w = world().await;
    let receiver = Receiver::start().await;
    let options = with_callbacks(durable(&w), &receiver);
    let chirp = options.start();
    let endpoint = register(&chirp, json!({"url": receiver.url()})).await;
    receiver.hold(endpoint["secret"].as_str().unwrap());
    receiver.set_down(true);
    let ids = [
        accept(&chirp, order_confirmation("+919876543210")).await,
        accept(&chirp, order_confirmation("+919876543211")).await,
    ];
    for id in &ids {
        assert_eq!(chirp.wait_final(id).await["status"], "sent");
    }
    chirp.kill();

    receiver.set_down(false);
    let _chirp = options.start();
    for id in &ids {
        receiver.wait_states(id, &["accepted", "sent"]).await;
    }
}

#[tokio::test]
async fn a_rotated_secret_and_the_old_one_both_verify_for_the_overlap() {
    let w = world().await;
    let receiver = Receiver::start().await;
    let chirp = with_callbacks(w.options.clone(), &receiver).start();
    let endpoint = register(
        &chirp,
        json!({"url": receiver.url(), "scope": "named", "description": "backend"}),
    )
    .await;
    let id = endpoint["id"].as_str().unwrap();
    let old = endpoint["secret"].as_str().unwrap().to_string();
    let (code, rotated) = chirp
        .post(
            &format!("/api/callbacks/endpoints/{id}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(code, 200, "{rotated}");
    assert_eq!(rotated["secrets_in_force"], 2);
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    // A receiver still holding only the old secret verifies...
    receiver.hold(&old);
    let mut named = order_confirmation("+919876543210");
    named["callback_endpoint"] = json!(id);
    let first = accept(&chirp, named.clone()).await;
    receiver.wait_states(&first, &["accepted", "sent"]).await;
    // ... and so does one holding only the new one.
    receiver.secrets.lock().unwrap().clear();
    receiver.hold(&new);
    named["phone"] = json!("+919876543211");
    let second = accept(&chirp, named).await;
    receiver.wait_states(&second, &["accepted", "sent"]).await;
    // A message that names no endpoint does not reach a `named` one.
    let quiet = accept(&chirp, order_confirmation("+919876543212")).await;
    assert_eq!(chirp.wait_final(&quiet).await["status"], "sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.states_of(&quiet).is_empty());
    assert_eq!(receiver.seen.lock().unwrap().refused, 0);

    let (code, list) = chirp.get("/api/callbacks/endpoints").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list[0]["scope"], "named");
    assert!(list[0].get("secret").is_none(), "{list}");
}

#[tokio::test]
async fn only_the_operators_hosts_can_be_registered() {
    let w = world().await;
    let receiver = Receiver::start().await;
    let chirp = w
        .options
        .clone()
        .set(
            "CHIRP_CALLBACK_HOSTS",
            &format!("127.0.0.1:{}, hooks.example.com", receiver.port),
        )
        .start();
    // Without the check (checked once) the first was registered, 201.
    for (url, why) in [
        ("https://evil.example.com/x", "not among the hosts"),
        // Allowed host, but plain http and a private address while the
        // operator did not allow private ones.
        (receiver.url().as_str(), "scheme http"),
        ("https://127.0.0.1:1/x", "not among the hosts"),
        ("https://user:pw@hooks.example.com/x", "user info"),
        ("ftp://hooks.example.com/x", "scheme ftp"),
        ("not a url", "invalid URL"),
    ] {
        let (code, answer) = chirp
            .post("/api/callbacks/endpoints", json!({"url": url}))
            .await;
        assert_eq!(code, 422, "{url}: {answer}");
        assert_eq!(answer["field"], "url");
        assert!(
            answer["message"].as_str().unwrap().contains(why),
            "{url}: {answer}"
        );
    }
    let (code, answer) = chirp
        .post(
            "/api/callbacks/endpoints",
            json!({"url": "https://hooks.example.com/x", "secret": "not-a-secret"}),
        )
        .await;
    assert_eq!(code, 422, "{answer}");
    assert_eq!(answer["field"], "secret");
    let (code, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": "+919876543210", "text": "hi", "callback_endpoint": "nope"}),
        )
        .await;
    assert_eq!(code, 422, "{answer}");
    assert_eq!(answer["field"], "callback_endpoint");
}

/// More callbacks than the sender reads in one pass all arrive: the ones
/// done with are not read again. (Before `due_at >= 0` in
/// `Store::due_callbacks`, the first 200 delivered were, and the rest
/// never left.)
#[tokio::test]
async fn more_callbacks_than_one_pass_all_arrive() {
    let w = world().await;
    let receiver = Receiver::start().await;
    let chirp = with_callbacks(w.options.clone(), &receiver).start();
    let endpoint = register(&chirp, json!({"url": receiver.url()})).await;
    receiver.hold(endpoint["secret"].as_str().unwrap());
    let messages: Vec<Value> = (0..450)
        .map(|n| {
            json!({"phone": format!("+9198{n:08}"), "text": "later",
                   "send_at": "2999-01-01T00:00:00Z"})
        })
        .collect();
    let (code, answer) = chirp
        .post("/api/notifications/batch", json!({"messages": messages}))
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["accepted"], 450);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.webhook_ids().len() < 450 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 450 callbacks",
            receiver.webhook_ids().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
