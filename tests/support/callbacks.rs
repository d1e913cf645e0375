//! EarlyBird's backend as far as status callbacks go: a receiver on
//! loopback that verifies each post with the Standard Webhooks reference
//! library (the `standardwebhooks` crate), not chirp's own code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{ChirpOptions, ChirpProcess};

/// What the receiver saw.
#[derive(Default)]
pub struct Seen {
    /// Answer 503 to everything while set.
    pub down: bool,
    /// Verified posts: (webhook-id, body).
    pub verified: Vec<(String, Value)>,
    /// Posts whose signature did not verify with any secret held.
    pub refused: usize,
    /// Posts answered 503.
    pub turned_away: usize,
}

/// EarlyBird's backend, as far as callbacks go: it verifies each post
/// with the secrets it holds.
pub struct Receiver {
    pub seen: Arc<Mutex<Seen>>,
    pub secrets: Arc<Mutex<Vec<String>>>,
    pub port: u16,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let secrets: Arc<Mutex<Vec<String>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (s, k) = (seen.clone(), secrets.clone());
        let app = axum::Router::new().route(
            "/chirp",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (seen, secrets) = (s.clone(), k.clone());
                async move {
                    let mut seen = seen.lock().unwrap();
                    if seen.down {
                        seen.turned_away += 1;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let verified = secrets.lock().unwrap().iter().any(|secret| {
                        standardwebhooks::Webhook::new(secret)
                            .unwrap()
                            .verify(&body, &headers)
                            .is_ok()
                    });
                    if !verified {
                        seen.refused += 1;
                        return StatusCode::UNAUTHORIZED;
                    }
                    let id = headers["webhook-id"].to_str().unwrap().to_string();
                    seen.verified
                        .push((id, serde_json::from_slice(&body).unwrap()));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            seen,
            secrets,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/chirp", self.port)
    }

    pub fn set_down(&self, down: bool) {
        self.seen.lock().unwrap().down = down;
    }

    pub fn hold(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_string());
    }

    /// The states verified for `message`, in the order they came.
    pub fn states_of(&self, message: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .verified
            .iter()
            .filter(|(_, body)| body["data"]["message_id"] == message)
            .map(|(_, body)| body["data"]["state"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn wait_states(&self, message: &str, expected: &[&str]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let states = self.states_of(message);
            if states.len() >= expected.len() {
                assert_eq!(states, expected, "{message}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{message}: {states:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn webhook_ids(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.verified.iter().map(|(id, _)| id.clone()).collect()
    }
}

pub fn with_callbacks(options: ChirpOptions, receiver: &Receiver) -> ChirpOptions {
    options
        .set(
            "CHIRP_CALLBACK_HOSTS",
            &format!("127.0.0.1:{}", receiver.port),
        )
        .set("CHIRP_CALLBACK_ALLOW_PRIVATE", "true")
        .set("CHIRP_CALLBACK_FIRST_RETRY", "200ms")
}

pub async fn register(chirp: &ChirpProcess, body: Value) -> Value {
    let (code, endpoint) = chirp.post("/api/callbacks/endpoints", body).await;
    assert_eq!(code, 201, "{endpoint}");
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));
    endpoint
}
