//! What reaches the provider, and what each of its answers leads to.

use super::*;

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
