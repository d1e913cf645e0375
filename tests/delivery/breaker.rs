//! The circuit breaker: a provider that keeps failing is left alone for a
//! while, its messages wait (nothing lost, nothing sent twice), and one
//! probe brings it back.

use super::*;

/// Three 500s in a row open the breaker for 2 s: the failing message's
/// next retry and a message accepted meanwhile wait, unattempted, until
/// one probe goes and succeeds; then the other follows. The provider sees
/// nothing while the breaker is open. (With the breaker off, checked
/// once, the retry reached the provider 22 ms after the third 500.)
#[tokio::test]
async fn a_failing_provider_is_left_alone_until_a_probe_succeeds() {
    let w = world().await;
    w.mock
        .script([Reply::status(500), Reply::status(500), Reply::status(500)]);
    let chirp = w
        .options
        .set("CHIRP_MAX_ATTEMPTS", "5")
        .set("CHIRP_BREAKER_FAILURES", "3")
        .set("CHIRP_BREAKER_OPEN_FOR", "2s")
        .start();
    let first = accept(&chirp, order_confirmation("+919876543210")).await;
    while w.mock.received().len() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The mock has answered the third call; chirp records it a moment
    // later.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let plugins = loop {
        let (_, plugins) = chirp.get("/api/plugins").await;
        if plugins["breakers"][0]["state"] == "open" || std::time::Instant::now() > deadline {
            break plugins;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(
        plugins["breakers"][0]["provider"], "myoperator",
        "{plugins:#}"
    );
    assert_eq!(plugins["breakers"][0]["state"], "open", "{plugins:#}");
    let (_, health) = chirp.get("/api/notifications/health").await;
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert_eq!(health["breakers_open"], json!(["myoperator"]));
    let second = accept(&chirp, order_confirmation("+919876543211")).await;

    for id in [&first, &second] {
        assert_eq!(chirp.wait_final(id).await["status"], "sent");
    }
    let received = w.mock.received();
    assert_eq!(received.len(), 5, "every message once more, none twice");
    let quiet = received[3].at.duration_since(received[2].at);
    assert!(quiet >= Duration::from_millis(1_900), "{quiet:?}");
    let (_, message) = chirp.get(&format!("/api/notifications/{first}")).await;
    assert_eq!(message["attempt_count"], 4, "{message:#}");
    let (_, plugins) = chirp.get("/api/plugins").await;
    assert_eq!(plugins["breakers"][0]["state"], "closed");
    let metrics = chirp.metrics().await;
    assert!(
        metrics.contains("chirp_provider_breaker_opened_total{provider=\"myoperator\"} 1"),
        "{metrics}"
    );
}
