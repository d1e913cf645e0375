//! End-to-end: the `chirp` binary, the real MyOperator component and a mock
//! MyOperator API, all on loopback. A message goes in through the REST API
//! and comes out as an HTTP request to the mock; the audit trail shows every
//! attempt.

#[path = "../support/mod.rs"]
mod support;

mod backup;
mod batch;
mod breaker;
mod callbacks;
mod cancel;
mod customers;
mod durability;
mod expiry;
mod lanes;
mod process;
mod reading;
mod sending;
mod upgrade;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ACCOUNT_ID, API_KEY, ChirpOptions, PHONE_NUMBER_ID, Reply, World, read};

async fn world() -> World {
    World::new(false, false).await
}

/// chirp on a durable `surrealkv://` store in the world's directory, so a
/// test can stop it and start it again on the same data.
fn durable(w: &World) -> ChirpOptions {
    let db = format!("surrealkv://{}", w.dir.path().join("store").display());
    ChirpOptions::new(&db, w.options.plugins_dir.clone(), &w.mock)
}

fn order_confirmation(phone: &str) -> Value {
    json!({
        "phone": phone,
        "template": "order_confirmation",
        "variables": {"order_id": "A-17", "delivery_date": "25 Nov", "total_amount": 240},
        "reference_id": "order-A-17"
    })
}

/// Sends `body`, expecting a new message; returns its id.
async fn accept(chirp: &support::ChirpProcess, body: Value) -> String {
    let (id, status) = accept_any(chirp, body).await;
    assert_eq!(status, "queued");
    id
}

/// Sends `body`, new or replayed; returns the id and the status answered.
async fn accept_any(chirp: &support::ChirpProcess, body: Value) -> (String, String) {
    let (status, answer) = chirp.post("/api/notifications/send-message", body).await;
    assert_eq!(status, 202, "{answer}");
    (
        answer["id"].as_str().unwrap().into(),
        answer["status"].as_str().unwrap().into(),
    )
}

fn outcomes(message: &Value) -> Vec<String> {
    message["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect()
}
