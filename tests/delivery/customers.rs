//! A customer's rights over the API: their data exported to them, and
//! erased on an admin's request, with what is still to be sent cancelled.

use super::*;
use support::{JWT_SECRET, token_with};

const ANA: &str = "+919812345678";
const BEN: &str = "+919898989898";

/// Ana exports her own data; an admin erases her: her scheduled message is
/// cancelled and never sent, her texts and preferences are gone from every
/// answer, a second export shows only when she was erased, and Ben's data
/// is untouched.
#[tokio::test]
async fn a_customer_exports_her_data_and_an_erasure_removes_it_and_cancels_what_waits() {
    let w = world().await;
    let chirp = w.options.start();
    let sent = accept(
        &chirp,
        json!({"phone": ANA, "text": "ana's milk is coming"}),
    )
    .await;
    chirp.wait_final(&sent).await;
    let later = accept(
        &chirp,
        json!({"phone": ANA, "text": "ana's reminder", "send_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    let ben = accept(
        &chirp,
        json!({"phone": BEN, "text": "ben's milk is coming"}),
    )
    .await;
    let (status, _) = chirp
        .put(
            &format!("/api/preferences/{ANA}"),
            json!({"language": "hi", "opt_in": {"source": "app-signup", "wording": "marketing-v3"}}),
        )
        .await;
    assert_eq!(status, 200);

    // Ana's own token reads her export, and only hers.
    let ana_token = token_with(JWT_SECRET, "user", Some(ANA), 600);
    let export = |phone: &str, token: &str| {
        let request = reqwest::Client::new()
            .get(chirp.url(&format!("/api/customers/{phone}/export")))
            .bearer_auth(token);
        async move { read(request.send().await.unwrap()).await }
    };
    let (status, data) = export(ANA, &ana_token).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["messages"].as_array().unwrap().len(), 2, "{data:#}");
    assert_eq!(data["preferences"]["language"], "hi");
    assert_eq!(data["preferences"]["opt_in"]["source"], "app-signup");
    assert!(data["preferences"]["opt_in"]["at"].is_string(), "{data:#}");
    assert!(data.to_string().contains("ana's milk is coming"));
    assert!(data["messages"][1]["attempts"].as_array().is_some());
    let (status, _) = export(BEN, &ana_token).await;
    assert_eq!(status, 403);

    // The erasure.
    let response = chirp
        .http
        .delete(chirp.url(&format!("/api/customers/{ANA}")))
        .send()
        .await
        .unwrap();
    let (status, erased) = read(response).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["messages"], 2, "{erased}");
    assert_eq!(erased["cancelled"], 1, "{erased}");
    assert_eq!(erased["preferences"], true, "{erased}");
    assert!(!erased.to_string().contains(ANA));

    let (_, data) = export(ANA, &ana_token).await;
    assert_eq!(data["messages"], json!([]), "{data:#}");
    assert_eq!(data["preferences"], Value::Null);
    assert!(data["erased_at"].is_string(), "{data:#}");
    let (_, message) = chirp.get(&format!("/api/notifications/{later}")).await;
    assert_eq!(message["status"], "cancelled", "{message:#}");
    assert_eq!(message["phone"], "erased");
    assert_eq!(message["text"], "");
    let (_, history) = chirp
        .get(&format!("/api/notifications/history/{ANA}"))
        .await;
    assert_eq!(history["items"], json!([]), "{history:#}");
    let (_, ben_message) = chirp.get(&format!("/api/notifications/{ben}")).await;
    assert_eq!(ben_message["text"], "ben's milk is coming");

    // Only Ana's first message ever reached the provider.
    let to_ana = w
        .mock
        .received()
        .iter()
        .filter(|r| r.body.to_string().contains("9812345678"))
        .count();
    assert_eq!(to_ana, 1);
}
