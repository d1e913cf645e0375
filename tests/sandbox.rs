//! The sandbox against hostile components and a hostile plugins directory:
//! the real `chirp` binary, the `hostile` component (`tests/hostile`) and
//! listeners on 127.0.0.1 that count what reaches them.
//!
//! Each test is able to fail: it shows the leak or the request arriving
//! when the protection is off (a control run in the same test where the
//! operator can switch it off, or, where only code can, checked once
//! against the code without it, as each test's comment says).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{
    ChirpOptions, ChirpProcess, JWT_SECRET, MockMyOperator, build_plugin, build_plugin_variant,
    plugins_dir_with_myoperator,
};

/// A listener on 127.0.0.1 that answers every HTTP request `200` and
/// counts the requests that reach it.
struct Listener {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Listener {
    async fn start() -> Listener {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                "reached"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Listener { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A plugins directory with MyOperator and `hostile.wasm`.
fn with_hostile(dir: &std::path::Path) -> std::path::PathBuf {
    let plugins = plugins_dir_with_myoperator(dir);
    std::fs::copy(build_plugin("hostile"), plugins.join("hostile.wasm")).unwrap();
    plugins
}

/// Sends one text through `provider`; returns the message once final.
async fn send_through(chirp: &ChirpProcess, provider: &str) -> Value {
    let (status, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": "+919876543210", "text": "hi", "provider": provider}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    chirp.wait_final(answer["id"].as_str().unwrap()).await
}

fn first_attempt(message: &Value) -> &Value {
    &message["attempts"][0]
}

/// A component that calls itself `chirp` and declares `jwt-secret` and
/// `db-pass`, in `chirp.wasm`: it gets nothing (settings are addressed to
/// `CHIRP_PLUGINS__CHIRP__*`, which the operator did not set). Before,
/// settings were looked up as `<NAME>_<SETTING>` over the whole process
/// environment, and this component read `CHIRP_JWT_SECRET` and
/// `CHIRP_DB_PASS` and returned them in its failure message (checked once
/// with that lookup put back).
#[tokio::test]
async fn a_plugin_named_after_chirp_reads_none_of_chirps_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let impostor = build_plugin_variant(
        "hostile",
        &[
            ("HOSTILE_NAME", "chirp"),
            ("HOSTILE_SETTINGS", "jwt-secret,db-pass,path"),
            ("HOSTILE_MODE", "leak"),
        ],
    );
    std::fs::copy(&impostor, plugins.join("chirp.wasm")).unwrap();
    // Under another file name the same component is refused: it is known
    // by the file the operator named, and may not claim another name.
    std::fs::copy(&impostor, plugins.join("myoperator-2.wasm")).unwrap();
    let chirp = ChirpOptions::new("mem://", plugins, &mock)
        .set("CHIRP_DB_USER", "root")
        .set("CHIRP_DB_PASS", "db-password-never-to-leak")
        .set("CHIRP_MAX_ATTEMPTS", "1")
        .start();
    let row = chirp.plugin_row("myoperator-2.wasm").await.unwrap();
    assert_eq!(row["state"], "rejected", "{row:#}");

    let message = send_through(&chirp, "chirp").await;
    let said = first_attempt(&message)["error_message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(said, "jwt-secret=;db-pass=;path=", "{message:#}");
    for secret in [JWT_SECRET, "db-password-never-to-leak"] {
        assert!(!message.to_string().contains(secret), "{message:#}");
    }
}

/// Every spelling of loopback, declared by the plugin as its host: none
/// reaches the listener while private addresses are not allowed. The
/// control run allows them (what an operator can switch off), and the same
/// requests arrive.
#[tokio::test]
async fn ssrf_spellings_of_loopback_never_reach_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = with_hostile(dir.path());
    let target = Listener::start().await;
    let p = target.port;
    let hosts = format!(
        "localhost:{p},127.0.0.1:{p},[::1]:{p},[::ffff:7f00:1]:{p},[64:ff9b::7f00:1]:{p},[::7f00:1]:{p}"
    );
    let urls = [
        format!("http://localhost:{p}/name"),
        format!("http://2130706433:{p}/decimal"),
        format!("http://127.1:{p}/short"),
        format!("http://0x7f.0.0.1:{p}/hex"),
        format!("http://[::1]:{p}/ipv6"),
        format!("http://[::ffff:127.0.0.1]:{p}/mapped"),
        format!("http://[64:ff9b::127.0.0.1]:{p}/nat64"),
        format!("http://[::127.0.0.1]:{p}/compatible"),
        format!("http://api.example.com@127.0.0.1:{p}/userinfo"),
    ]
    .join("|");
    let options = |allow_private: &str| {
        ChirpOptions::new("mem://", plugins.clone(), &mock)
            .set("CHIRP_PLUGINS__HOSTILE__MODE", "fetch")
            .set("CHIRP_PLUGINS__HOSTILE__HOSTS", &hosts)
            .set("CHIRP_PLUGINS__HOSTILE__TARGET", &urls)
            .set("CHIRP_SANDBOX__HOSTILE__ALLOW_PRIVATE", allow_private)
            .set("CHIRP_SANDBOX__HOSTILE__MAX_REQUESTS", "20")
            .set("CHIRP_MAX_ATTEMPTS", "1")
    };

    let guarded = options("false").start();
    let message = send_through(&guarded, "hostile").await;
    assert_eq!(
        first_attempt(&message)["error_code"],
        "host_denied",
        "{message:#}"
    );
    assert_eq!(target.hits(), 0, "a request reached loopback: {message:#}");
    drop(guarded);

    let open = options("true").start();
    let message = send_through(&open, "hostile").await;
    assert!(
        target.hits() >= 4,
        "the control run reached loopback {} times: {message:#}",
        target.hits()
    );
}

/// `HTTP_PROXY` and `HTTPS_PROXY` in chirp's environment: a plugin's
/// request goes to the host it names (here a name that does not resolve,
/// so nowhere), never to the proxy, which would resolve names, private
/// ones included, on the plugin's behalf. With the client built without
/// `no_proxy` (checked once) the proxy received the request.
#[tokio::test]
async fn a_proxy_in_the_environment_is_never_used_for_plugin_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = with_hostile(dir.path());
    let proxy = Listener::start().await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let chirp = ChirpOptions::new("mem://", plugins, &mock)
        .set("HTTP_PROXY", &proxy_url)
        .set("HTTPS_PROXY", &proxy_url)
        .set("http_proxy", &proxy_url)
        .set("https_proxy", &proxy_url)
        .set("CHIRP_PLUGINS__HOSTILE__MODE", "fetch")
        .set(
            "CHIRP_PLUGINS__HOSTILE__TARGET",
            "http://api.example.com/through-the-proxy|https://api.example.com/too",
        )
        .set("CHIRP_MAX_ATTEMPTS", "1")
        .start();
    let message = send_through(&chirp, "hostile").await;
    assert_eq!(proxy.hits(), 0, "the proxy was used: {message:#}");
    let said = first_attempt(&message)["error_message"].as_str().unwrap();
    assert!(!said.contains("-> 200"), "{message:#}");
}

/// A call that logs 10,000 lines of 1 KB and makes 100 requests: chirp
/// writes 16 KiB of its lines (16 whole, the 17th cut) and one note, and
/// lets 8 requests out. Without the budgets (checked once) all of them
/// went through.
#[tokio::test]
async fn a_plugin_cannot_flood_the_log_or_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = with_hostile(dir.path());
    let target = Listener::start().await;
    let mut options = ChirpOptions::new("mem://", plugins, &mock)
        .set("CHIRP_PLUGINS__HOSTILE__MODE", "flood")
        .set(
            "CHIRP_PLUGINS__HOSTILE__HOSTS",
            &format!("127.0.0.1:{}", target.port),
        )
        .set(
            "CHIRP_PLUGINS__HOSTILE__TARGET",
            &format!("http://127.0.0.1:{}/again", target.port),
        )
        .set("CHIRP_SANDBOX__HOSTILE__ALLOW_PRIVATE", "true")
        .set("CHIRP_SANDBOX__HOSTILE__TIMEOUT", "20s")
        .set("CHIRP_LEASE", "60s")
        .set("CHIRP_MAX_ATTEMPTS", "1")
        .set("CHIRP_LOG", "info");
    options.capture_logs = true;
    let chirp = options.start();
    let message = send_through(&chirp, "hostile").await;
    assert_eq!(target.hits(), 8, "{message:#}");
    assert_eq!(
        first_attempt(&message)["error_code"],
        "host_denied",
        "{message:#}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = chirp.logs();
    let lines = logs.iter().filter(|l| l.contains("flood line")).count();
    let notes = logs
        .iter()
        .filter(|l| l.contains("logged more than its limit"))
        .count();
    assert_eq!((lines, notes), (17, 1), "{} log lines", logs.len());
}

/// The compile cache holds native code. A genuine cache file of another
/// build (the swapped version) put under this build's name: chirp compiles
/// the file again and says why, and the plugin that serves is the file's
/// own version. Without the integrity check (checked once) chirp loaded
/// the other build's code and served version 0.2.0-swap.
#[tokio::test]
async fn a_tampered_compile_cache_file_is_compiled_again_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let cache = dir.path().join("plugin-cache");
    let options = ChirpOptions::new("mem://", plugins.clone(), &mock);

    let first = options.start();
    let genuine = first.plugin_row("myoperator.wasm").await.unwrap();
    first.kill();
    let cached = |sha: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(sha))
            .unwrap()
    };
    let genuine_file = cached(genuine["sha256"].as_str().unwrap());

    let swapped = build_plugin_variant("myoperator", &[("MYOPERATOR_BUILD_VERSION", "0.2.0-swap")]);
    let other_dir = dir.path().join("other-plugins");
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::copy(&swapped, other_dir.join("myoperator.wasm")).unwrap();
    let mut other = ChirpOptions::new("mem://", other_dir, &mock);
    other.env = options.env.clone();
    let second = other.start();
    let other_row = second.plugin_row("myoperator.wasm").await.unwrap();
    second.kill();
    std::fs::copy(cached(other_row["sha256"].as_str().unwrap()), &genuine_file).unwrap();

    let mut options = options;
    options.capture_logs = true;
    let third = options.start();
    let row = third.plugin_row("myoperator.wasm").await.unwrap();
    assert_eq!(row["origin"], "compiled", "{row:#}");
    assert_eq!(row["version"], "0.1.0", "{row:#}");
    assert!(
        third
            .logs()
            .iter()
            .any(|l| l.contains("failed its integrity check")),
        "no log line said why"
    );
}

/// What a plugins directory can hold besides plugins: a FIFO (reading it
/// blocked chirp's start for good before: checked once), a symlink out of
/// the directory, a file over the size cap, a file named after no valid
/// plugin. Each is refused with a reason, and MyOperator serves.
#[tokio::test]
async fn a_hostile_plugins_directory_cannot_block_or_feed_chirp() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let fifo = plugins.join("fifo.wasm");
    let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let outside = dir.path().join("outside.wasm");
    std::fs::copy(build_plugin("hostile"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, plugins.join("hostile.wasm")).unwrap();
    std::fs::write(plugins.join("big.wasm"), vec![0u8; 2 * 1024 * 1024]).unwrap();
    std::fs::copy(build_plugin("hostile"), plugins.join("Not A Name.wasm")).unwrap();

    let chirp = ChirpOptions::new("mem://", plugins, &mock)
        .set("CHIRP_PLUGIN_MAX_MB", "1")
        .start();
    for (file, reason) in [
        ("fifo.wasm", "not a regular file"),
        ("hostile.wasm", "leads out of the plugins directory"),
        ("big.wasm", "over the cap"),
        ("Not A Name.wasm", "named after its plugin"),
    ] {
        let row = chirp.plugin_row(file).await.unwrap();
        assert_eq!(row["state"], "rejected", "{row:#}");
        assert!(
            row["error"].as_str().unwrap().contains(reason),
            "{file}: {row:#}"
        );
    }
    assert_eq!(
        chirp.plugin_row("myoperator.wasm").await.unwrap()["state"],
        "active"
    );
}

/// A setting still given the old way stops chirp with its new name, rather
/// than chirp starting without it.
#[tokio::test]
async fn an_old_plugin_variable_stops_chirp_with_its_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let stderr = ChirpOptions::new("mem://", plugins.clone(), &mock)
        .unset("CHIRP_PLUGINS__MYOPERATOR__API_KEY")
        .set("MYOPERATOR_API_KEY", "old-style")
        .start_failure();
    assert!(
        stderr.contains("MYOPERATOR_API_KEY is no longer read")
            && stderr.contains("CHIRP_PLUGINS__MYOPERATOR__API_KEY"),
        "{stderr}"
    );
    let stderr = ChirpOptions::new("mem://", plugins, &mock)
        .set("CHIRP_SANDBOX_MYOPERATOR_ALLOW_PRIVATE", "true")
        .start_failure();
    assert!(
        stderr.contains("CHIRP_SANDBOX__MYOPERATOR__ALLOW_PRIVATE"),
        "{stderr}"
    );
}

/// The public health page names loaded plugins and their versions, and
/// nothing an attacker could use: no file paths, hashes or hosts.
#[tokio::test]
async fn public_pages_reveal_no_paths_hashes_or_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let chirp = ChirpOptions::new("mem://", plugins.clone(), &mock).start();
    let row = chirp.plugin_row("myoperator.wasm").await.unwrap();
    let anonymous = reqwest::Client::new();
    for path in ["/api/notifications/health", "/ready", "/metrics"] {
        let body = anonymous
            .get(chirp.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for secret in [
            plugins.display().to_string(),
            row["sha256"].as_str().unwrap().to_string(),
            mock.addr.to_string(),
        ] {
            assert!(!body.contains(&secret), "{path} shows {secret}: {body}");
        }
    }
}

/// A rules component that answers what no honest one would: 10,000
/// decisions for one event, an error of 1 MiB, a skip of a template chirp
/// does not have (named in 1 MiB), a hold until `u64::MAX` ms. chirp
/// stores none of it and answers in a few hundred bytes; an honest event
/// still goes through. Without the bound on decisions (checked once) the
/// flood was accepted: 10,000 messages in one transaction.
#[tokio::test]
async fn a_hostile_rules_component_cannot_make_chirp_store_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    std::fs::copy(
        build_plugin("hostile-rules"),
        plugins.join("hostile-rules.wasm"),
    )
    .unwrap();
    let chirp = ChirpOptions::new("mem://", plugins, &mock)
        .set("CHIRP_RULES", "hostile-rules")
        .set("CHIRP_PAUSE_DELIVERY", "true")
        .start();
    let event = |kind: &str| {
        json!({"type": kind, "reference_id": format!("ref-{kind}"),
               "customer": {"phone": "+919876543210"}, "data": {}})
    };
    for (kind, status, code) in [
        ("flood", 503, "rules_unavailable"),
        ("long-error", 422, "invalid_event"),
        ("unknown-skip", 503, "rules_unavailable"),
        ("far-future", 422, "time_out_of_range"),
    ] {
        let (got, answer) = chirp.post("/api/events", event(kind)).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{kind}"
        );
        assert!(
            answer.to_string().len() < 2048,
            "{kind}: {} bytes",
            answer.to_string().len()
        );
    }
    let (status, answer) = chirp.post("/api/events", event("ok")).await;
    assert_eq!(status, 202, "{answer}");
    let (_, page) = chirp.get("/api/notifications/history?limit=500").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
}
