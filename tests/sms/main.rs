//! SMS through MSG91, and routes across providers, end to end: the real
//! `chirp` binary, the real `msg91-sms` component (and MyOperator's and
//! Meta's), one mock for every platform on loopback, and delivery reports
//! shaped as MSG91 documents them.

#[path = "../support/mod.rs"]
mod support;

mod routing;

use std::time::Duration;

use serde_json::{Value, json};
use support::callbacks::{Receiver, register, with_callbacks};
use support::{ChirpOptions, ChirpProcess, MockMyOperator, Reply, build_plugin};

const AUTHKEY: &str = "msg91-authkey";
const WEBHOOK_TOKEN: &str = "msg91-report-token";
/// The template's id on DLT, as registered.
const DLT_TEMPLATE: &str = "1207161234567890123";

/// chirp with the MyOperator and MSG91 components, MSG91 at `mock`.
fn sms_options(dir: &std::path::Path, mock: &MockMyOperator) -> ChirpOptions {
    let plugins = support::plugins_dir_with_myoperator(dir);
    std::fs::copy(build_plugin("msg91-sms"), plugins.join("msg91-sms.wasm")).unwrap();
    let mut options = ChirpOptions::new("mem://", plugins, mock);
    for (k, v) in [
        ("AUTHKEY", AUTHKEY),
        ("WEBHOOK_TOKEN", WEBHOOK_TOKEN),
        ("SENDER", "EBIRDS"),
        ("BASE_URL", &mock.base_url()),
    ] {
        options = options.set(&format!("CHIRP_PLUGINS__MSG91_SMS__{k}"), v);
    }
    options.set("CHIRP_SANDBOX__MSG91_SMS__ALLOW_PRIVATE", "true")
}

/// delivery_delayed approved on DLT for MSG91, beside WhatsApp.
async fn approve_for_sms(chirp: &ChirpProcess) {
    let (code, body) = chirp
        .put(
            "/api/notifications/templates/delivery_delayed",
            json!({"providers": {
                "msg91-sms": {"template": DLT_TEMPLATE, "languages": ["en"], "parameters": ["eta_time"]},
                "myoperator": {"template": "delivery_delayed", "languages": ["en"], "parameters": ["eta_time"]},
            }}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
}

async fn send_sms(chirp: &ChirpProcess, eta: &str) -> String {
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": "+919876543210", "template": "delivery_delayed",
                   "variables": {"eta_time": eta}, "provider": "msg91-sms"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

async fn report(chirp: &ChirpProcess, token: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/webhooks/msg91-sms?token={token}");
    chirp
        .post_raw(&path, "application/json", body.to_string().into_bytes())
        .await
}

/// The request MSG91 documents, its request id kept as the platform's
/// id, and its delivery report (version 3) moving the message to
/// `delivered`; a report without the operator's token changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_sms_goes_as_its_dlt_template_and_its_report_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    mock.script([Reply::msg91_success("3365646f4a4b313233343536")]);
    let chirp = sms_options(dir.path(), &mock).start();
    approve_for_sms(&chirp).await;

    let id = send_sms(&chirp, "8:30 AM").await;
    let sent = chirp.wait_final(&id).await;
    assert_eq!(sent["status"], "sent", "{sent:#}");
    assert_eq!(sent["provider"], "msg91-sms");
    assert_eq!(sent["provider_message_id"], "3365646f4a4b313233343536");
    let request = &mock.received()[0];
    assert_eq!(request.path, "/api/v5/flow/");
    assert_eq!(request.headers["authkey"], AUTHKEY);
    assert_eq!(
        request.body,
        json!({
            "template_id": DLT_TEMPLATE,
            "short_url": "0",
            "sender": "EBIRDS",
            "recipients": [{"mobiles": "919876543210", "var1": "8:30 AM"}],
        })
    );

    let delivered = json!({
        "date": "2026-12-06 10:06:20", "number": "919876543210", "senderId": "EBIRDS",
        "requestId": "3365646f4a4b313233343536", "status": "1", "desc": "DELIVERED",
        "userId": "27XXXX", "campaignName": "API", "credit": "1",
    });
    for wrong in ["", "not-the-token"] {
        let (code, body) = report(&chirp, wrong, delivered.clone()).await;
        assert_eq!(code, 401, "{body}");
    }
    let (code, body) = report(&chirp, WEBHOOK_TOKEN, delivered).await;
    assert_eq!((code, body["events"].as_u64()), (200, Some(1)), "{body}");
    let message = chirp
        .wait_for(&id, Duration::from_secs(10), |m| {
            m["delivery"]["status"] == "delivered"
        })
        .await;
    // 10:06:20 in India.
    assert_eq!(
        message["delivery"]["delivered_at"], "2026-12-06T04:36:20.000Z",
        "{message:#}"
    );
}

/// A variable longer than DLT allows is never sent changed unless the
/// template says to cut it: the attempt fails for good, naming the limit,
/// and MSG91 hears nothing; MSG91's refusals keep its code.
#[tokio::test(flavor = "multi_thread")]
async fn what_dlt_or_msg91_refuses_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    mock.script([Reply::msg91_error(200, "202")]);
    let chirp = sms_options(dir.path(), &mock).start();
    approve_for_sms(&chirp).await;

    let long = send_sms(&chirp, "between 8:30 and 9:15 in the morning").await;
    let failed = chirp.wait_final(&long).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["last_error"]["code"], "dlt_variable_too_long");
    assert!(mock.received().is_empty());

    let refused = send_sms(&chirp, "8:30 AM").await;
    let failed = chirp.wait_final(&refused).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["last_error"]["code"], "msg91_202");
    assert_eq!(mock.received().len(), 1);

    // The template may say to cut instead: the variable goes as its
    // first 30 characters, which the registered template holds.
    let (code, body) = chirp
        .put(
            "/api/notifications/templates/delivery_delayed",
            json!({"providers": {"msg91-sms": {"template": DLT_TEMPLATE, "languages": ["en"],
                                               "parameters": ["eta_time"], "truncate_to": 30}}}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let cut = send_sms(&chirp, "between 8:30 and 9:15 in the morning").await;
    assert_eq!(chirp.wait_final(&cut).await["status"], "sent");
    assert_eq!(
        mock.received()[1].body["recipients"][0]["var1"],
        "between 8:30 and 9:15 in the m"
    );
}

/// delivery_delayed approved for both, falling back from WhatsApp to SMS.
async fn with_sms_fallback(chirp: &ChirpProcess) {
    approve_for_sms(chirp).await;
    let (code, body) = chirp
        .put(
            "/api/notifications/templates/delivery_delayed",
            json!({"fallback": ["sms:msg91-sms"]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["fallback"], json!(["sms:msg91-sms"]));
}

async fn send_whatsapp(chirp: &ChirpProcess) -> String {
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": "+919876543210", "template": "delivery_delayed",
                   "variables": {"eta_time": "8:30 AM"}}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// WhatsApp says the customer cannot be reached (here MyOperator's `400`,
/// named unreachable by `CHIRP_FALLBACK_CODES`): the message moves to SMS
/// once, as MSG91's template; its timeline shows the hop, and so do its
/// status callbacks.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_on_whatsapp_goes_out_by_sms() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    mock.script([Reply::status(400)]);
    let receiver = Receiver::start().await;
    let chirp = with_callbacks(sms_options(dir.path(), &mock), &receiver)
        .set("CHIRP_FALLBACK_CODES", "131026,http_400")
        .start();
    let endpoint = register(&chirp, json!({"url": receiver.url()})).await;
    receiver.hold(endpoint["secret"].as_str().unwrap());
    with_sms_fallback(&chirp).await;

    let id = send_whatsapp(&chirp).await;
    assert!(
        chirp.get(&format!("/api/notifications/{id}")).await.1["fallbacks"]
            == json!(["sms:msg91-sms"])
    );
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    assert_eq!(message["provider"], "msg91-sms");
    assert_eq!(message["hops"][0]["from"], "myoperator");
    assert_eq!(message["hops"][0]["to"], "msg91-sms");
    assert_eq!(message["hops"][0]["reason"]["code"], "http_400");
    assert!(message.get("fallbacks").is_none(), "{message:#}");
    let kinds: Vec<&str> = message["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["attempt", "hop", "attempt"], "{message:#}");
    let received = mock.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].path, "/chat/messages");
    assert_eq!(received[1].path, "/api/v5/flow/");
    assert_eq!(received[1].body["template_id"], DLT_TEMPLATE);
    assert_eq!(received[1].body["recipients"][0]["var1"], "8:30 AM");
    assert!(
        chirp
            .metrics()
            .await
            .contains("chirp_fallbacks_total{from=\"myoperator\",to=\"msg91-sms\"} 1")
    );
    // The caller's backend hears of the hop between accepted and sent.
    receiver
        .wait_states(&id, &["accepted", "fallback", "sent"])
        .await;
}

/// WhatsApp's retries run out: the message moves to SMS with a fresh
/// budget. A failure that is neither (the provider's credentials) fails
/// the message where it is: SMS would not help.
#[tokio::test(flavor = "multi_thread")]
async fn retries_run_out_then_sms_but_not_for_any_permanent_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    mock.script([Reply::status(500), Reply::status(500), Reply::status(500)]);
    let chirp = sms_options(dir.path(), &mock).start();
    with_sms_fallback(&chirp).await;

    let id = send_whatsapp(&chirp).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    assert_eq!(message["provider"], "msg91-sms");
    assert_eq!(message["hops"][0]["reason"]["code"], "http_500");
    assert_eq!(message["attempt_count"], 4);

    mock.script([Reply::status(401)]);
    let id = send_whatsapp(&chirp).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "failed", "{message:#}");
    assert_eq!(message["provider"], "myoperator");
    assert!(message.get("hops").is_none(), "{message:#}");
    assert_eq!(mock.received().len(), 5);
}

/// chirp is SIGKILLed while the SMS attempt of a message that fell back
/// is in flight. After the restart the message ends `sent` by SMS, with
/// one hop: WhatsApp was asked once, and SMS again only because its
/// attempt was in flight at the kill.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_in_the_middle_of_a_fallback_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    mock.script([
        Reply::status(400),
        Reply::msg91_success("never-seen").after(Duration::from_secs(30)),
    ]);
    let mut options = sms_options(dir.path(), &mock)
        .set("CHIRP_FALLBACK_CODES", "http_400")
        .set("CHIRP_LEASE", "2s");
    options.db = format!("surrealkv://{}", dir.path().join("store").display());
    let chirp = options.start();
    with_sms_fallback(&chirp).await;
    let id = send_whatsapp(&chirp).await;
    while mock.received().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    chirp.kill();

    let chirp = options.start();
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    assert_eq!(message["provider"], "msg91-sms");
    assert_eq!(message["hops"].as_array().unwrap().len(), 1);
    let paths: Vec<String> = mock.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/chat/messages", "/api/v5/flow/", "/api/v5/flow/"]);
}

/// MyOperator keeps failing and its breaker opens: a message whose next
/// route is WhatsApp on another account (Meta) moves there at once,
/// without another attempt at MyOperator.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_breaker_moves_messages_to_the_standby_account() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    mock.script([Reply::status(500), Reply::status(500)]);
    let options = sms_options(dir.path(), &mock)
        .set("CHIRP_MAX_ATTEMPTS", "5")
        .set("CHIRP_BREAKER_FAILURES", "2")
        .set("CHIRP_BREAKER_OPEN_FOR", "60s");
    let chirp = with_meta(options, &mock).start();
    let (code, body) = chirp
        .put(
            "/api/notifications/templates/delivery_delayed",
            json!({
                "providers": {
                    "myoperator": {"template": "delivery_delayed", "languages": ["en"], "parameters": ["eta_time"]},
                    "meta-whatsapp": {"template": "eta_update_v2", "languages": ["en_US"], "parameters": ["eta_time"]},
                },
                "fallback": ["whatsapp:meta-whatsapp"],
            }),
        )
        .await;
    assert_eq!(code, 200, "{body}");

    let id = send_whatsapp(&chirp).await;
    let message = chirp.wait_final(&id).await;
    assert_eq!(message["status"], "sent", "{message:#}");
    assert_eq!(message["provider"], "meta-whatsapp");
    assert_eq!(message["hops"][0]["reason"]["code"], "breaker_open");
    assert_eq!(message["provider_template"]["name"], "eta_update_v2");
    let paths: Vec<String> = mock.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/chat/messages",
            "/chat/messages",
            format!("/v21.0/{META_NUMBER}/messages").as_str()
        ]
    );
}

const META_NUMBER: &str = "106540352242922";
const META_SECRET: &str = "meta-app-secret";

/// `options` with the Meta component loaded beside the others, sending to
/// `mock`.
fn with_meta(mut options: ChirpOptions, mock: &MockMyOperator) -> ChirpOptions {
    std::fs::copy(
        build_plugin("meta-whatsapp"),
        options.plugins_dir.join("meta-whatsapp.wasm"),
    )
    .unwrap();
    for (k, v) in [
        ("ACCESS_TOKEN", "meta-access-token"),
        ("PHONE_NUMBER_ID", META_NUMBER),
        ("APP_SECRET", META_SECRET),
        ("VERIFY_TOKEN", "meta-verify-token"),
        ("BASE_URL", &mock.base_url()),
    ] {
        options = options.set(&format!("CHIRP_PLUGINS__META_WHATSAPP__{k}"), v);
    }
    options.set("CHIRP_SANDBOX__META_WHATSAPP__ALLOW_PRIVATE", "true")
}

/// A `delivered` for `wamid`, as Meta posts it, signed.
async fn meta_delivered(chirp: &ChirpProcess, wamid: &str) {
    use hmac::{Hmac, Mac};
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": META_NUMBER},
            "statuses": [{"id": wamid, "status": "delivered", "timestamp": "1750000050",
                          "recipient_id": "919876543210"}],
        }}]}],
    })
    .to_string();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(META_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = reqwest::Client::new()
        .post(chirp.url("/api/webhooks/meta-whatsapp"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", format!("sha256={signature}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Sent on WhatsApp (Meta, which reports receipts) and not `delivered`
/// within the template's 2 s: the message moves to SMS. One `delivered`
/// in time keeps it on WhatsApp; one sent through MyOperator, which
/// reports no receipts, is never moved.
#[tokio::test(flavor = "multi_thread")]
async fn no_delivery_in_the_window_moves_to_sms_and_a_delivery_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let chirp = with_meta(sms_options(dir.path(), &mock), &mock)
        .set("CHIRP_PROVIDER", "meta-whatsapp")
        .start();
    let approved = |name: &str, language: &str| json!({"template": name, "languages": [language], "parameters": ["eta_time"]});
    let (code, body) = chirp
        .put(
            "/api/notifications/templates/delivery_delayed",
            json!({
                "providers": {
                    "meta-whatsapp": approved("eta_update_v2", "en_US"),
                    "myoperator": approved("delivery_delayed", "en"),
                    "msg91-sms": approved(DLT_TEMPLATE, "en"),
                },
                "fallback": ["sms:msg91-sms"],
                "deliver_within": "2s",
            }),
        )
        .await;
    assert_eq!(code, 200, "{body}");

    let silent = send_whatsapp(&chirp).await;
    let delivered = send_whatsapp(&chirp).await;
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": "+919876543210", "template": "delivery_delayed",
                   "variables": {"eta_time": "9 AM"}, "provider": "myoperator"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let no_receipts = answer["id"].as_str().unwrap().to_string();
    for id in [&silent, &delivered, &no_receipts] {
        assert_eq!(chirp.wait_final(id).await["status"], "sent");
    }
    let (_, message) = chirp.get(&format!("/api/notifications/{delivered}")).await;
    meta_delivered(&chirp, message["provider_message_id"].as_str().unwrap()).await;

    let moved = chirp
        .wait_for(&silent, Duration::from_secs(20), |m| {
            m["provider"] == "msg91-sms" && m["status"] == "sent"
        })
        .await;
    assert_eq!(moved["hops"][0]["from"], "meta-whatsapp", "{moved:#}");
    assert_eq!(moved["hops"][0]["reason"]["code"], "not_delivered");
    // Past every window: the other two stayed where they were.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in [&delivered, &no_receipts] {
        let (_, message) = chirp.get(&format!("/api/notifications/{id}")).await;
        assert_eq!(message["status"], "sent", "{message:#}");
        assert!(message.get("hops").is_none(), "{message:#}");
    }
    let flows = mock
        .received()
        .iter()
        .filter(|r| r.path == "/api/v5/flow/")
        .count();
    assert_eq!(flows, 1);
}
