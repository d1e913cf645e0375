//! Nothing accepted is lost: resends, restarts, kills and SIGTERM.

use super::*;

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
