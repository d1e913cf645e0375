//! Test support: the real `chirp` binary started on an ephemeral port, the
//! real MyOperator component built for `wasm32-wasip2`, and a mock
//! MyOperator API on 127.0.0.1 that records every request and answers from
//! a script.

#![allow(dead_code)]

pub mod openapi;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const API_KEY: &str = "test-token-secret";
pub const ACCOUNT_ID: &str = "company-42";
pub const PHONE_NUMBER_ID: &str = "pn-7";
/// The HS256 secret test instances of chirp run with.
pub const JWT_SECRET: &str = "test-secret-of-at-least-32-bytes!!";

/// A token for `role` (and `phone`, for users), valid for `ttl_secs`
/// (negative: already expired), signed with `secret`.
pub fn token_with(secret: &str, role: &str, phone: Option<&str>, ttl_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = json!({"sub": format!("test-{role}"), "role": role, "exp": now + ttl_secs});
    if let Some(phone) = phone {
        claims["phone"] = json!(phone);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid admin token for test instances.
pub fn admin_token() -> String {
    token_with(JWT_SECRET, "admin", None, 3600)
}

/// The cargo target directory this test binary was built in.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/delivery-xxxx -> target
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// Builds a plugin crate for `wasm32-wasip2` (once per test binary) and
/// returns the `.wasm`. Uses its own target directory: the outer `cargo
/// test` may still hold the lock on the main one.
pub fn build_plugin(package: &str) -> PathBuf {
    build_plugin_variant(package, &[])
}

/// Like [`build_plugin`], with build-time environment variables (e.g. a
/// different `MYOPERATOR_BUILD_VERSION`); each variant gets its own target
/// directory.
pub fn build_plugin_variant(package: &str, env: &[(&str, &str)]) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let key = format!("{package}{env:?}");
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(k, _)| *k == key) {
        return path.clone();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let variant: String = env.iter().map(|(k, v)| format!("-{k}-{v}")).collect();
    let plugin_target = target_dir().join(format!("plugins{variant}"));
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
        ])
        .env("CARGO_TARGET_DIR", &plugin_target)
        .envs(env.iter().copied())
        .status()
        .expect("run cargo to build the plugin");
    assert!(status.success(), "building plugin {package} failed");
    let wasm = plugin_target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(wasm.exists(), "{} missing", wasm.display());
    built.push((key, wasm.clone()));
    wasm
}

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

async fn mock_send(
    State(state): State<Arc<Mutex<MockState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut s = state.lock().unwrap();
        s.served += 1;
        s.received.push(Received {
            path: "/chat/messages".into(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: Instant::now(),
        });
        let n = s.served;
        s.script
            .pop_front()
            .unwrap_or_else(|| Reply::success(&format!("wamid.{n}")))
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

/// How a test chirp is set up.
#[derive(Clone)]
pub struct ChirpOptions {
    pub db: String,
    pub plugins_dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Keep chirp's log lines (stderr) for the test to read.
    pub capture_logs: bool,
}

/// A running `chirp` process; killed when dropped.
pub struct ChirpProcess {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
}

/// A fresh plugins directory holding the MyOperator component.
pub fn plugins_dir_with_myoperator(dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(build_plugin("myoperator"), plugins.join("myoperator.wasm")).unwrap();
    plugins
}

/// A fresh plugins directory holding the MyOperator and rules components.
pub fn plugins_dir_with_rules(dir: &Path) -> PathBuf {
    let plugins = plugins_dir_with_myoperator(dir);
    std::fs::copy(
        build_plugin("rules-earlybird"),
        plugins.join("rules-earlybird.wasm"),
    )
    .unwrap();
    plugins
}

/// What most tests start from: a temporary directory, a mock MyOperator,
/// and the options of a chirp that sends to it.
pub struct World {
    pub dir: tempfile::TempDir,
    pub mock: MockMyOperator,
    pub options: ChirpOptions,
}

impl World {
    /// With the rules component too if `rules`; on a `surrealkv://` store in
    /// the directory if `durable` (so a test can restart chirp on it), else
    /// `mem://`.
    pub async fn new(rules: bool, durable: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mock = MockMyOperator::start().await;
        let plugins = if rules {
            plugins_dir_with_rules(dir.path())
        } else {
            plugins_dir_with_myoperator(dir.path())
        };
        let db = if durable {
            format!("surrealkv://{}", dir.path().join("store").display())
        } else {
            "mem://".to_string()
        };
        let options = ChirpOptions::new(&db, plugins, &mock);
        World { dir, mock, options }
    }
}

impl ChirpOptions {
    /// chirp on `db`, sending through the MyOperator component to `mock`,
    /// with short backoffs so that retries happen within a test.
    pub fn new(db: &str, plugins_dir: PathBuf, mock: &MockMyOperator) -> ChirpOptions {
        let cache = plugins_dir.with_file_name("plugin-cache");
        ChirpOptions {
            db: db.into(),
            plugins_dir,
            env: vec![
                ("CHIRP_PLUGIN_CACHE_DIR".into(), cache.display().to_string()),
                ("CHIRP_JWT_SECRET".into(), JWT_SECRET.into()),
                // The mock listens on loopback, which plugins may reach only
                // when the operator allows it.
                (
                    "CHIRP_SANDBOX__MYOPERATOR__ALLOW_PRIVATE".into(),
                    "true".into(),
                ),
                ("CHIRP_RETRY_BACKOFF".into(), "50ms".into()),
                // Tests run at any hour: marketing may go out at all of
                // them, unless a test about marketing hours sets its own.
                ("CHIRP_MARKETING_HOURS".into(), "00:00-00:00".into()),
                ("CHIRP_PLUGINS__MYOPERATOR__API_KEY".into(), API_KEY.into()),
                (
                    "CHIRP_PLUGINS__MYOPERATOR__ACCOUNT_ID".into(),
                    ACCOUNT_ID.into(),
                ),
                (
                    "CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID".into(),
                    PHONE_NUMBER_ID.into(),
                ),
                (
                    "CHIRP_PLUGINS__MYOPERATOR__BASE_URL".into(),
                    mock.base_url(),
                ),
            ],
            capture_logs: false,
        }
    }

    pub fn set(mut self, key: &str, value: &str) -> ChirpOptions {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn unset(mut self, key: &str) -> ChirpOptions {
        self.env.retain(|(k, _)| k != key);
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chirp"));
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        cmd.env_clear()
            .env("CHIRP_LISTEN", "127.0.0.1:0")
            .env("CHIRP_DB", &self.db)
            .env("CHIRP_PLUGINS_DIR", &self.plugins_dir)
            .env("CHIRP_TEMPLATES_DIR", templates)
            .env(
                "CHIRP_LOG",
                std::env::var("CHIRP_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }

    /// Starts chirp and waits until it listens.
    pub fn start(&self) -> ChirpProcess {
        let mut command = self.command();
        if self.capture_logs {
            command.stderr(Stdio::piped());
        }
        let mut child = command.spawn().expect("start chirp");
        let logs = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("chirp listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("chirp did not start listening (exit: {status:?})");
            }
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", admin_token()).parse().unwrap(),
        );
        ChirpProcess {
            child,
            base,
            logs,
            // Requests are an admin's unless a test says otherwise.
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    /// Runs chirp expecting it to refuse to start; returns its stderr.
    pub fn start_failure(&self) -> String {
        let output = self
            .command()
            .stderr(Stdio::piped())
            .output()
            .expect("run chirp");
        assert!(
            !output.status.success(),
            "chirp started but should not have"
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

impl ChirpProcess {
    /// chirp's log lines so far (with `capture_logs`).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        read(self.post_raw_response(path, content_type, body).await).await
    }

    /// As [`Self::post_raw`], for a test that looks at the headers too;
    /// [`read`] gives the status and body.
    pub async fn post_raw_response(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The plugin row of `GET /api/plugins` for `file_name`, if any.
    pub async fn plugin_row(&self, file_name: &str) -> Option<Value> {
        let (status, list) = self.get("/api/plugins").await;
        assert_eq!(status, 200, "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["file"].as_str().is_some_and(|f| f.ends_with(file_name)))
            .cloned()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    /// Polls a message until `done` holds for it or `timeout` passes.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, message) = self.get(&format!("/api/notifications/{id}")).await;
            assert_eq!(status, 200, "{message}");
            if done(&message) {
                return message;
            }
            if Instant::now() > deadline {
                panic!("message {id} did not reach the expected state: {message:#}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the message is `sent` or `failed`.
    pub async fn wait_final(&self, id: &str) -> Value {
        self.wait_for(id, Duration::from_secs(30), |m| {
            matches!(m["status"].as_str(), Some("sent" | "failed"))
        })
        .await
    }

    /// The chirp binary's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the process to exit; returns whether it
    /// exited cleanly and how long it took.
    pub fn terminate(mut self) -> (bool, Duration) {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait for chirp");
        (status.success(), started.elapsed())
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChirpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status and JSON body of `response` (the text, if not JSON).
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Event data with every field any EarlyBird event needs.
pub fn earlybird_event_data(delivery_date: &str) -> Value {
    json!({
        "order_id": "A-1", "delivery_date": delivery_date, "total_amount": 240,
        "product": "Toned milk 1L", "start_date": "1 Dec", "amount": 1200, "month": "November",
        "payment_method": "UPI", "resume_date": "5 Dec", "eta_time": "8:30 AM",
        "availability_date": "1 Dec", "period": "November"
    })
}

/// Each EarlyBird event type and the templates it must lead to.
pub const EARLYBIRD_EVENTS: [(&str, &[&str]); 9] = [
    (
        "order.created",
        &["order_confirmation", "delivery_reminder"],
    ),
    ("subscription.created", &["subscription_confirmation"]),
    ("delivery.confirmed", &["delivery_confirmed"]),
    ("payment.recorded", &["payment_confirmation"]),
    ("subscription.paused", &["pause_confirmation"]),
    ("delivery.delayed", &["delivery_delayed"]),
    ("product.launched", &["new_product"]),
    ("payment.due", &["payment_reminder"]),
    ("customer.churn_risk", &["churn_risk"]),
];
