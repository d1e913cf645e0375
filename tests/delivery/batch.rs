//! A batch: each item checked and answered on its own, the good ones
//! stored together, each idempotent by its own key.

use super::*;

fn reminder(phone: &str, key: &str) -> Value {
    json!({
        "phone": phone,
        "template": "delivery_reminder",
        "variables": {"delivery_date": "25 Nov"},
        "idempotency_key": key,
    })
}

#[tokio::test]
async fn a_batch_with_good_and_bad_items_answers_each_and_sends_the_good() {
    let w = world().await;
    let chirp = w.options.start();
    let batch = json!({"messages": [
        reminder("+919876543210", "b-1"),
        reminder("not a phone", "b-2"),
        {"phone": "+919876543211", "template": "no_such_template"},
        reminder("+919876543212", "b-3"),
        // The same key as item 0, for another phone: refused, alone.
        reminder("+919876543213", "b-1"),
        "not an object",
    ]});
    let (code, answer) = chirp.post("/api/notifications/batch", batch.clone()).await;
    assert_eq!(code, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "{answer:#}");
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["index"], i, "{answer:#}");
    }
    assert_eq!(results[0]["status"], 202);
    assert_eq!(results[0]["state"], "queued");
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["error"]["field"], "messages[1].phone");
    assert_eq!(results[2]["status"], 422, "{answer:#}");
    assert_eq!(results[2]["error"]["field"], "messages[2].template");
    assert_eq!(results[3]["status"], 202);
    assert_eq!(results[4]["status"], 409, "{answer:#}");
    assert_eq!(results[4]["error"]["code"], "idempotency_key_reused");
    assert_eq!(results[5]["status"], 422);
    assert_eq!(results[5]["error"]["field"], "messages[5]");
    assert_eq!(answer["accepted"], 2, "{answer:#}");
    assert_eq!(answer["rejected"], 4, "{answer:#}");

    let sent: Vec<String> = [0, 3]
        .iter()
        .map(|&i| results[i]["id"].as_str().unwrap().to_string())
        .collect();
    for id in &sent {
        assert_eq!(chirp.wait_final(id).await["status"], "sent");
    }

    // The same batch again: the good items answer their first messages
    // and nothing more goes out.
    let (code, again) = chirp.post("/api/notifications/batch", batch).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["accepted"], 0, "{again:#}");
    assert_eq!(again["replayed"], 2, "{again:#}");
    assert_eq!(again["results"][0]["id"], results[0]["id"]);
    assert_eq!(again["results"][0]["replayed"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.mock.received().len(), 2);
}

#[tokio::test]
async fn a_batch_is_bounded_and_its_shape_checked() {
    let w = world().await;
    let chirp = w.options.start();
    let too_many: Vec<Value> = (0..1001)
        .map(|i| reminder("+919876543210", &format!("k-{i}")))
        .collect();
    for body in [
        json!({"messages": too_many}),
        json!({"messages": []}),
        json!({"messages": {"phone": "+919876543210"}}),
        json!({}),
    ] {
        let (code, answer) = chirp.post("/api/notifications/batch", body).await;
        assert_eq!(code, 422, "{answer}");
        assert_eq!(answer["field"], "messages", "{answer}");
    }
    let (code, answer) = chirp
        .post(
            "/api/notifications/batch",
            json!({"messages": [], "extra": 1}),
        )
        .await;
    assert_eq!(code, 422, "{answer}");

    // A full batch goes in whole.
    let full: Vec<Value> = (0..1000)
        .map(|i| {
            let mut m = reminder(&format!("+9198{:08}", i), &format!("full-{i}"));
            m["send_at"] = json!("2999-01-01T00:00:00Z");
            m
        })
        .collect();
    let (code, answer) = chirp
        .post("/api/notifications/batch", json!({"messages": full}))
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["accepted"], 1000);
    let (_, stats) = chirp.get("/api/notifications/statistics").await;
    assert_eq!(stats["queue_depth"], 1000, "{stats:#}");
}
