//! Test support: the real `chirp` binary started on an ephemeral port, the
//! real MyOperator component built for `wasm32-wasip2`, and a mock
//! MyOperator API on 127.0.0.1 that records every request and answers from
//! a script.

// Each test crate uses some of this module.
#![allow(dead_code, unused_imports)]

pub mod callbacks;
pub mod openapi;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chirp_harness::Launch;
pub use chirp_harness::events::{EARLYBIRD_EVENTS, earlybird_event_data};
pub use chirp_harness::mock::scripted::{MockMyOperator, Received, Reply};
use serde_json::Value;

pub const API_KEY: &str = "test-token-secret";
pub const ACCOUNT_ID: &str = "company-42";
pub const PHONE_NUMBER_ID: &str = "pn-7";
/// The HS256 secret test instances of chirp run with.
pub const JWT_SECRET: &str = "test-secret-of-at-least-32-bytes!!";

/// A token for `role` (and `phone`, for users), valid for `ttl_secs`
/// (negative: already expired), signed with `secret`.
pub fn token_with(secret: &str, role: &str, phone: Option<&str>, ttl_secs: i64) -> String {
    chirp_harness::token::token(secret, &format!("test-{role}"), role, phone, ttl_secs)
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

/// How a test chirp is set up.
#[derive(Clone)]
pub struct ChirpOptions {
    pub db: String,
    pub plugins_dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Keep chirp's log lines (stderr) for the test to read.
    pub capture_logs: bool,
}

/// A running `chirp` process and an admin's HTTP client for it; killed
/// when dropped.
pub struct ChirpProcess {
    process: chirp_harness::Process,
    pub base: String,
    pub http: reqwest::Client,
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
        let erasure_key = plugins_dir.with_file_name("erasure.key");
        let mut env = vec![
            ("CHIRP_PLUGIN_CACHE_DIR".into(), cache.display().to_string()),
            (
                "CHIRP_ERASURE_KEY".into(),
                erasure_key.display().to_string(),
            ),
            ("CHIRP_JWT_SECRET".into(), JWT_SECRET.into()),
            ("CHIRP_RETRY_BACKOFF".into(), "50ms".into()),
            // Tests run at any hour: marketing may go out at all of
            // them, unless a test about marketing hours sets its own.
            ("CHIRP_MARKETING_HOURS".into(), "00:00-00:00".into()),
            // Most tests send free text to phones that never wrote; the
            // window has tests of its own (tests/webhooks.rs).
            ("CHIRP_FREE_TEXT_NEEDS_WINDOW".into(), "false".into()),
        ];
        env.extend(chirp_harness::myoperator_env(
            &mock.base_url(),
            API_KEY,
            ACCOUNT_ID,
            PHONE_NUMBER_ID,
        ));
        ChirpOptions {
            db: db.into(),
            plugins_dir,
            env,
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

    /// The launch of the test build of chirp with these options.
    fn launch(&self) -> Launch {
        let mut launch = Launch::new(Path::new(env!("CARGO_BIN_EXE_chirp")))
            .set("CHIRP_DB", &self.db)
            .set("CHIRP_PLUGINS_DIR", &self.plugins_dir.display().to_string())
            .set_all(self.env.clone());
        launch.capture_logs = self.capture_logs;
        launch.startup = Duration::from_secs(60);
        launch
    }

    /// Starts chirp and waits until it listens.
    pub fn start(&self) -> ChirpProcess {
        let process = self.launch().start().unwrap_or_else(|e| panic!("{e}"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", admin_token()).parse().unwrap(),
        );
        ChirpProcess {
            base: process.base.clone(),
            process,
            // Requests are an admin's unless a test says otherwise.
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    /// Runs chirp expecting it to refuse to start; returns its stderr.
    pub fn start_failure(&self) -> String {
        self.launch()
            .start_failure()
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl ChirpProcess {
    /// chirp's log lines so far (with `capture_logs`).
    pub fn logs(&self) -> Vec<String> {
        self.process.logs()
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

    /// The Prometheus text of `/metrics` (public).
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
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
        self.process.pid()
    }

    /// SIGTERM, then waits for the process to exit; returns whether it
    /// exited cleanly and how long it took.
    pub fn terminate(self) -> (bool, Duration) {
        self.process.stop()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(self) {
        self.process.kill()
    }
}

/// The status and JSON body of `response` (the text, if not JSON).
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
