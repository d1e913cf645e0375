//! The queue's lanes: a marketing blast waiting for the provider's pacing
//! never holds back a transactional message.

use super::*;

/// 100 marketing messages are due before an order's confirmation, and
/// the provider takes 5 a second (20 s for the blast). The confirmation
/// goes out among the first few, not after the blast. (With every
/// message in one lane, checked once, it went out behind 92 of them.)
#[tokio::test]
async fn a_marketing_blast_does_not_hold_back_a_transactional_message() {
    let w = world().await;
    let chirp = w.options.set("CHIRP_PROVIDER_RATE", "5").start();
    let blast: Vec<Value> = (0..100)
        .map(|n| {
            json!({"phone": format!("+9198765{n:05}"), "template": "new_product",
                   "variables": {"product": "A2 ghee", "availability_date": "1 Dec"}})
        })
        .collect();
    let (code, answer) = chirp
        .post("/api/notifications/batch", json!({"messages": blast}))
        .await;
    assert_eq!(code, 200, "{answer}");
    // The blast has started to go out.
    for _ in 0..100 {
        if !w.mock.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = accept(&chirp, order_confirmation("+919876500999")).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    let received = w.mock.received();
    let position = received
        .iter()
        .position(|r| r.body["myop_ref_id"] == json!(id))
        .expect("the confirmation reached the provider");
    assert!(
        position < 30,
        "the confirmation went out {}th of {}",
        position + 1,
        received.len()
    );
}
