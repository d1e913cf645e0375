//! A mock MyOperator API on 127.0.0.1 for end-to-end tests: an axum
//! server that records every request it receives and answers from a
//! script of replies (then with success), each after an optional delay.
//! It also answers Meta's Graph API send (`POST /{version}/{number}/messages`,
//! success in Meta's shape) and MSG91's flow API (`POST /api/v5/flow/`,
//! success in MSG91's shape), so one mock serves every provider.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer of the mock.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn success(message_id: &str) -> Reply {
        Reply::json(
            200,
            json!({"status": "success", "data": {"message_id": message_id}}),
        )
    }

    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// The Graph API's success, with the platform's id `message_id`.
    pub fn meta_success(message_id: &str) -> Reply {
        Reply::json(
            200,
            json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "919876543210", "wa_id": "919876543210"}],
                "messages": [{"id": message_id}],
            }),
        )
    }

    /// A Graph API error object with `code`.
    pub fn meta_error(status: u16, code: i64) -> Reply {
        Reply::json(
            status,
            json!({"error": {
                "message": format!("(#{code}) error"),
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": "details"},
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"
            }}),
        )
    }

    /// MSG91's success, with the request id `request_id`.
    pub fn msg91_success(request_id: &str) -> Reply {
        Reply::json(200, json!({"message": request_id, "type": "success"}))
    }

    /// MSG91's error object with `code` (MSG91 answers some with `200`).
    pub fn msg91_error(status: u16, code: &str) -> Reply {
        Reply::json(
            status,
            json!({"type": "error", "message": format!("error {code}"), "code": code}),
        )
    }

    pub fn status(status: u16) -> Reply {
        Reply::json(
            status,
            json!({"status": "error", "message": format!("HTTP {status}")}),
        )
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
struct MockState {
    script: VecDeque<Reply>,
    received: Vec<Received>,
    served: u64,
}

/// A mock MyOperator API. Answers from its script, then with success.
#[derive(Clone)]
pub struct MockMyOperator {
    pub addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
}

impl MockMyOperator {
    pub async fn start() -> MockMyOperator {
        let state = Arc::new(Mutex::new(MockState::default()));
        let app = Router::new()
            .route("/chat/messages", post(mock_send))
            .route("/{version}/{number}/messages", post(mock_send))
            .route("/api/v5/flow/", post(mock_send))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockMyOperator { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

/// Any provider's send: MyOperator's, Meta's or MSG91's, told apart by
/// the path, each answered with its own success when the script is empty.
async fn mock_send(
    State(state): State<Arc<Mutex<MockState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let success = match path.as_str() {
        "/chat/messages" => Reply::success,
        "/api/v5/flow/" => Reply::msg91_success,
        _ => Reply::meta_success,
    };
    answer(&state, path, headers, body, success).await
}

/// Records the request and answers with the script's next reply, or
/// `success` with the id `wamid.<n>`.
async fn answer(
    state: &Mutex<MockState>,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    success: fn(&str) -> Reply,
) -> Response {
    let reply = {
        let mut s = state.lock().unwrap();
        s.served += 1;
        s.received.push(Received {
            path,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: Instant::now(),
        });
        let n = s.served;
        s.script
            .pop_front()
            .unwrap_or_else(|| success(&format!("wamid.{n}")))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    for (k, v) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    response
}
