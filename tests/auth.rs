//! Access control: the role matrix over every route, and the tokens that
//! must be refused.

mod support;

use serde_json::{Value, json};
use support::{
    ChirpOptions, ChirpProcess, JWT_SECRET, MockMyOperator, plugins_dir_with_myoperator, token_with,
};

const OWN: &str = "+919876543210";
const OTHER: &str = "+919812345678";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Admin,
    UserOwn,
    NoToken,
    Expired,
    OtherSecret,
    AlgNone,
    UserWithoutPhone,
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn token(who: Who) -> Option<String> {
    match who {
        Who::Admin => Some(token_with(JWT_SECRET, "admin", None, 600)),
        Who::UserOwn => Some(token_with(JWT_SECRET, "user", Some(OWN), 600)),
        Who::NoToken => None,
        Who::Expired => Some(token_with(JWT_SECRET, "admin", None, -600)),
        Who::OtherSecret => Some(token_with(
            "another-secret-of-at-least-32-bytes!",
            "admin",
            None,
            600,
        )),
        Who::UserWithoutPhone => Some(token_with(JWT_SECRET, "user", None, 600)),
        Who::AlgNone => {
            let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = base64url(
                json!({"sub": "x", "role": "admin", "exp": 4_000_000_000u64})
                    .to_string()
                    .as_bytes(),
            );
            Some(format!("{header}.{payload}."))
        }
    }
}

async fn call(
    chirp: &ChirpProcess,
    who: Who,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), chirp.url(path));
    if let Some(token) = token(who) {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Which callers a route admits.
#[derive(Debug, Clone, Copy)]
enum Access {
    Public,
    /// Any authenticated caller.
    AnyUser,
    /// Admins, and users for their own phone only.
    OwnPhone,
    Admin,
}

/// What an admitted caller gets from each route of the matrix, in the
/// state the test sets up: acceptance is `202`; resending or cancelling
/// the caller's message, which was sent, is `409`; everything else `200`.
fn allowed_status(method: &str, path: &str) -> u16 {
    match (method, path) {
        ("POST", "/api/notifications/send-message" | "/api/events") => 202,
        ("POST", resend) if resend.starts_with("/api/notifications/resend/") => 409,
        ("POST", cancel)
            if cancel.ends_with("/cancel") && cancel != "/api/notifications/cancel" =>
        {
            409
        }
        // Public, the same for every caller: the plugin checks the request,
        // and this one reads no webhooks.
        (_, webhook) if webhook.starts_with("/api/webhooks/") => 404,
        ("POST", "/api/callbacks/endpoints") => 201,
        ("DELETE", removed) if removed.starts_with("/api/callbacks/endpoints/") => 204,
        ("POST", replay) if replay.ends_with("/replay") => 202,
        _ => 200,
    }
}

#[tokio::test]
async fn every_route_admits_exactly_its_roles() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = support::plugins_dir_with_rules(dir.path());
    let chirp = ChirpOptions::new("mem://", plugins, &mock)
        .set("CHIRP_CALLBACK_HOSTS", "127.0.0.1:9")
        .set("CHIRP_CALLBACK_ALLOW_PRIVATE", "true")
        .start();
    // Callback endpoints (nothing listens there: callbacks stay pending),
    // one to keep and one the matrix removes.
    let mut endpoints = Vec::new();
    for _ in 0..2 {
        let (status, endpoint) = chirp
            .post(
                "/api/callbacks/endpoints",
                json!({"url": "http://127.0.0.1:9/hook"}),
            )
            .await;
        assert_eq!(status, 201, "{endpoint}");
        endpoints.push(endpoint["id"].as_str().unwrap().to_string());
    }
    let (keep, doomed) = (endpoints[0].clone(), endpoints[1].clone());
    let (_, own) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": OWN, "text": "mine"}),
        )
        .await;
    let (_, other) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": OTHER, "text": "theirs"}),
        )
        .await;
    let own_id = own["id"].as_str().unwrap().to_string();
    let other_id = other["id"].as_str().unwrap().to_string();
    chirp.wait_final(&own_id).await;
    let (_, log) = chirp
        .get(&format!("/api/callbacks?message_id={own_id}"))
        .await;
    let callback_id = log["callbacks"][0]["id"].as_str().unwrap().to_string();

    let text = json!({"phone": OWN, "text": "hi"});
    let template = json!({"text": {"en": "⏰ Delivery ETA: {{ eta_time }}"}});
    let event = json!({"type": "payment.due", "reference_id": "r", "customer": {"phone": OWN}, "data": {"amount": 1, "period": "x"}});
    let prefs = json!({"language": "en"});
    // (method, path, body, access, is this the caller's own phone?)
    let routes: Vec<(&str, String, Option<Value>, Access, bool)> = vec![
        (
            "GET",
            "/api/notifications/health".into(),
            None,
            Access::Public,
            true,
        ),
        ("GET", "/ready".into(), None, Access::Public, true),
        (
            "GET",
            "/api/webhooks/myoperator".into(),
            None,
            Access::Public,
            true,
        ),
        (
            "POST",
            "/api/webhooks/myoperator".into(),
            Some(json!({})),
            Access::Public,
            true,
        ),
        ("GET", "/metrics".into(), None, Access::Public, true),
        (
            "GET",
            "/api/openapi.json".into(),
            None,
            Access::Public,
            true,
        ),
        (
            "POST",
            "/api/notifications/send-message".into(),
            Some(text),
            Access::Admin,
            true,
        ),
        (
            "POST",
            format!("/api/notifications/resend/{own_id}"),
            Some(json!({})),
            Access::Admin,
            true,
        ),
        (
            "POST",
            "/api/notifications/batch".into(),
            Some(json!({"messages": [{"phone": OWN, "text": "in a batch"}]})),
            Access::Admin,
            true,
        ),
        (
            "POST",
            format!("/api/notifications/{own_id}/cancel"),
            Some(json!({})),
            Access::Admin,
            true,
        ),
        (
            "POST",
            "/api/notifications/cancel".into(),
            Some(json!({"reference_id": "r"})),
            Access::Admin,
            true,
        ),
        (
            "POST",
            "/api/notifications/process-queue".into(),
            Some(json!({})),
            Access::Admin,
            true,
        ),
        (
            "GET",
            "/api/notifications/templates".into(),
            None,
            Access::AnyUser,
            true,
        ),
        (
            "GET",
            "/api/notifications/templates/delivery_delayed".into(),
            None,
            Access::AnyUser,
            true,
        ),
        (
            "GET",
            "/api/notifications/templates/delivery_delayed/versions".into(),
            None,
            Access::AnyUser,
            true,
        ),
        (
            "POST",
            "/api/notifications/templates/delivery_delayed/preview".into(),
            Some(json!({})),
            Access::AnyUser,
            true,
        ),
        (
            "PUT",
            "/api/notifications/templates/delivery_delayed".into(),
            Some(template),
            Access::Admin,
            true,
        ),
        (
            "POST",
            "/api/notifications/templates/delivery_delayed/rollback/1".into(),
            Some(json!({})),
            Access::Admin,
            true,
        ),
        (
            "GET",
            "/api/notifications/statistics".into(),
            None,
            Access::AnyUser,
            true,
        ),
        ("GET", "/api/plugins".into(), None, Access::Admin, true),
        (
            "POST",
            "/api/plugins/reload".into(),
            Some(json!({})),
            Access::Admin,
            true,
        ),
        (
            "POST",
            "/api/events".into(),
            Some(event),
            Access::Admin,
            true,
        ),
        (
            "GET",
            format!("/api/notifications/{own_id}"),
            None,
            Access::OwnPhone,
            true,
        ),
        (
            "GET",
            format!("/api/notifications/{other_id}"),
            None,
            Access::OwnPhone,
            false,
        ),
        (
            "GET",
            format!(
                "/api/notifications/history?phone={}",
                OWN.replace('+', "%2B")
            ),
            None,
            Access::OwnPhone,
            true,
        ),
        (
            "GET",
            format!(
                "/api/notifications/history?phone={}",
                OTHER.replace('+', "%2B")
            ),
            None,
            Access::OwnPhone,
            false,
        ),
        (
            "GET",
            format!("/api/notifications/history/{OWN}"),
            None,
            Access::OwnPhone,
            true,
        ),
        (
            "GET",
            format!("/api/notifications/history/{OTHER}"),
            None,
            Access::OwnPhone,
            false,
        ),
        (
            "GET",
            format!("/api/preferences/{OWN}"),
            None,
            Access::OwnPhone,
            true,
        ),
        (
            "GET",
            format!("/api/preferences/{OTHER}"),
            None,
            Access::OwnPhone,
            false,
        ),
        (
            "PUT",
            format!("/api/preferences/{OWN}"),
            Some(prefs.clone()),
            Access::OwnPhone,
            true,
        ),
        (
            "PUT",
            format!("/api/preferences/{OTHER}"),
            Some(prefs),
            Access::OwnPhone,
            false,
        ),
    ];
    // A customer the matrix may erase (the others' data is read after).
    let gone = "+919000000001";
    let routes: Vec<(&str, String, Option<Value>, Access, bool)> = routes
        .into_iter()
        .chain([
            (
                "GET",
                format!("/api/customers/{OWN}/export"),
                None,
                Access::OwnPhone,
                true,
            ),
            (
                "GET",
                format!("/api/customers/{OTHER}/export"),
                None,
                Access::OwnPhone,
                false,
            ),
            (
                "DELETE",
                format!("/api/customers/{gone}"),
                None,
                Access::Admin,
                false,
            ),
            ("GET", "/api/backup".into(), None, Access::Admin, true),
            (
                "GET",
                "/api/receipts/unmatched".into(),
                None,
                Access::Admin,
                true,
            ),
            (
                "GET",
                "/api/settings/provider".into(),
                None,
                Access::Admin,
                true,
            ),
            (
                "PUT",
                "/api/settings/provider".into(),
                Some(json!({"provider": "myoperator"})),
                Access::Admin,
                true,
            ),
            (
                "GET",
                "/api/callbacks/endpoints".into(),
                None,
                Access::Admin,
                true,
            ),
            (
                "POST",
                "/api/callbacks/endpoints".into(),
                Some(json!({"url": "http://127.0.0.1:9/other"})),
                Access::Admin,
                true,
            ),
            (
                "POST",
                format!("/api/callbacks/endpoints/{keep}/rotate-secret"),
                Some(json!({})),
                Access::Admin,
                true,
            ),
            (
                "DELETE",
                format!("/api/callbacks/endpoints/{doomed}"),
                None,
                Access::Admin,
                true,
            ),
            ("GET", "/api/callbacks".into(), None, Access::Admin, true),
            (
                "GET",
                format!("/api/callbacks/{callback_id}"),
                None,
                Access::Admin,
                true,
            ),
            (
                "POST",
                format!("/api/callbacks/{callback_id}/replay"),
                Some(json!({})),
                Access::Admin,
                true,
            ),
        ])
        .collect();
    let (status, document) = chirp.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let document = support::openapi::Document { json: document };
    document
        .validate_against_meta_schema()
        .expect("the document is valid OpenAPI 3.1");
    // The matrix covers every documented operation, and every route in it
    // is documented.
    for (method, template) in document.operations() {
        assert!(
            routes.iter().any(|(m, path, ..)| *m == method
                && document.template_of(m, path).as_deref() == Some(template.as_str())),
            "{method} {template} is documented but not in the matrix"
        );
    }
    let callers = [
        Who::Admin,
        Who::UserOwn,
        Who::NoToken,
        Who::Expired,
        Who::OtherSecret,
        Who::AlgNone,
        Who::UserWithoutPhone,
    ];
    for (method, path, body, access, own_phone) in &routes {
        for who in callers {
            let (status, answer) = call(&chirp, who, method, path, body.as_ref()).await;
            let expected = match (access, who) {
                (Access::Public, _) => "allowed",
                (
                    _,
                    Who::NoToken
                    | Who::Expired
                    | Who::OtherSecret
                    | Who::AlgNone
                    | Who::UserWithoutPhone,
                ) => "401",
                (_, Who::Admin) => "allowed",
                (Access::AnyUser, Who::UserOwn) => "allowed",
                (Access::OwnPhone, Who::UserOwn) if *own_phone => "allowed",
                (Access::OwnPhone | Access::Admin, Who::UserOwn) => "403",
            };
            let context = format!("{method} {path} as {who:?}: {status} {answer}");
            if let Err(problem) = document.check_answer(method, path, status, &answer) {
                panic!("{context}: {problem}");
            }
            match expected {
                "allowed" => assert_eq!(status, allowed_status(method, path), "{context}"),
                "401" => {
                    assert_eq!(status, 401, "{context}");
                    assert_eq!(answer["code"], "unauthorized", "{context}");
                }
                _ => {
                    assert_eq!(status, 403, "{context}");
                    assert_eq!(answer["code"], "forbidden", "{context}");
                }
            }
        }
    }

    // A user's unfiltered history holds only their own messages.
    let (status, page) = call(
        &chirp,
        Who::UserOwn,
        "GET",
        "/api/notifications/history",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let phones: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["phone"].as_str().unwrap())
        .collect();
    assert!(
        !phones.is_empty() && phones.iter().all(|p| *p == OWN),
        "{phones:?}"
    );
}

#[tokio::test]
async fn chirp_refuses_to_start_without_a_secret_unless_told_it_is_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let options = ChirpOptions::new("mem://", plugins, &mock).unset("CHIRP_JWT_SECRET");
    let stderr = options.start_failure();
    assert!(stderr.contains("CHIRP_JWT_SECRET"), "{stderr}");

    let chirp = options.set("CHIRP_INSECURE_NO_AUTH", "true").start();
    let (status, _) = call(&chirp, Who::NoToken, "GET", "/api/plugins", None).await;
    assert_eq!(status, 200, "development mode admits everyone");
}

#[tokio::test]
async fn every_documented_example_is_accepted_and_answered_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = support::plugins_dir_with_rules(dir.path());
    let chirp = ChirpOptions::new("mem://", plugins, &mock)
        .set("CHIRP_CALLBACK_HOSTS", "backend.earlybird.example")
        .start();
    let (_, document) = chirp.get("/api/openapi.json").await;
    let document = support::openapi::Document { json: document };
    let mut tried = Vec::new();
    for (method, template) in document.operations() {
        let operation = &document.json["paths"][&template][method.to_lowercase()];
        let Some(example) = operation["requestBody"]["content"]["application/json"]
            .get("example")
            .cloned()
        else {
            continue;
        };
        let path = template
            .replace("{name}", "order_confirmation")
            .replace("{phone}", OWN);
        let (status, answer) = call(&chirp, Who::Admin, &method, &path, Some(&example)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} with its example: {status} {answer}"
        );
        document
            .check_answer(&method, &path, status, &answer)
            .unwrap();
        tried.push(template);
    }
    assert!(tried.len() >= 5, "examples tried: {tried:?}");

    // The docs page is served, lists the operations and loads no script.
    let page = reqwest::get(chirp.url("/api/docs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("send-message") && page.contains("Example body"));
    assert!(!page.contains("<script"), "{page}");
}

#[tokio::test]
async fn logs_mask_phone_numbers_and_never_show_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let mut options = ChirpOptions::new("mem://", plugins, &mock).set("CHIRP_LOG", "debug");
    options.capture_logs = true;
    let chirp = options.start();
    let (_, accepted) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": OWN, "text": "hello"}),
        )
        .await;
    chirp.wait_final(accepted["id"].as_str().unwrap()).await;
    let (status, _) = chirp.get(&format!("/api/preferences/{OWN}")).await;
    assert_eq!(status, 200);
    let (status, _) = chirp
        .get(&format!("/api/notifications/history/{OWN}"))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = chirp.logs().join("\n");
    assert!(
        logs.contains("+91******3210"),
        "attempts name the masked recipient"
    );
    assert!(
        logs.contains("/api/preferences/{phone}"),
        "requests are logged by route"
    );
    for secret in [OWN, "9876543210", JWT_SECRET, support::API_KEY] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}
