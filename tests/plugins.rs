//! Plugins: hot swap under load, refusal of bad files, unloading, the
//! compile cache, the sandbox against hostile components, the rules
//! component, and the plugin author's tools.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{
    ChirpOptions, ChirpProcess, MockMyOperator, Reply, build_plugin, build_plugin_variant,
    plugins_dir_with_myoperator,
};

const SWAPPED_VERSION: &str = "0.2.0-swap";

fn message(n: usize) -> Value {
    json!({
        "phone": "+919876543210",
        "template": "delivery_delayed",
        "variables": {"eta_time": format!("{n} minutes")},
    })
}

async fn accept(chirp: &ChirpProcess, body: Value) -> String {
    let (status, answer) = chirp.post("/api/notifications/send-message", body).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// Waits until the plugin row of `file` satisfies `done`.
async fn wait_row(
    chirp: &ChirpProcess,
    file: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let row = chirp.plugin_row(file).await.unwrap_or(Value::Null);
        if done(&row) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "plugin {file} did not reach the expected state: {row:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A provider built for `chirp:plugin@0.1.0` by an earlier release (the
/// checked-in file, never rebuilt) loads, says so, and sends; and the
/// rules component built against 0.1.0 decides beside it.
#[tokio::test]
async fn a_plugin_built_for_the_first_release_loads_and_sends_without_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let released = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/plugins/myoperator-0.1.0.wasm");
    std::fs::copy(&released, plugins.join("myoperator.wasm")).unwrap();
    std::fs::copy(
        build_plugin("hostile-rules"),
        plugins.join("hostile-rules.wasm"),
    )
    .unwrap();
    let chirp = ChirpOptions::new("mem://", plugins, &mock).start();
    let row = wait_row(&chirp, "myoperator.wasm", Duration::from_secs(30), |row| {
        row["state"] == "active"
    })
    .await;
    assert_eq!(row["world"], "provider", "{row:#}");
    let rules = wait_row(
        &chirp,
        "hostile-rules.wasm",
        Duration::from_secs(30),
        |row| row["state"] == "active",
    )
    .await;
    assert_eq!(rules["world"], "rules", "{rules:#}");
    let id = accept(&chirp, message(1)).await;
    let sent = chirp.wait_final(&id).await;
    assert_eq!(sent["status"], "sent", "{sent:#}");
    assert_eq!(mock.received().len(), 1);
    // It reads no webhooks: the route says so.
    let (code, _) = support::read(
        reqwest::Client::new()
            .post(chirp.url("/api/webhooks/myoperator"))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn swapping_the_provider_while_messages_flow_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let swapped = build_plugin_variant(
        "myoperator",
        &[("MYOPERATOR_BUILD_VERSION", SWAPPED_VERSION)],
    );
    let chirp = ChirpOptions::new("mem://", plugins.clone(), &mock)
        .set("CHIRP_SEND_CONCURRENCY", "8")
        .start();
    // Some latency at the provider keeps calls in flight during the swap.
    mock.script(
        (0..400).map(|n| Reply::success(&format!("wamid.{n}")).after(Duration::from_millis(15))),
    );

    let flow = {
        let base = chirp.base.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let token = format!("Bearer {}", support::admin_token());
            let mut ids = Vec::new();
            for n in 0..300 {
                let response = client
                    .post(format!("{base}/api/notifications/send-message"))
                    .header("content-type", "application/json")
                    .header("authorization", &token)
                    .body(message(n).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 202);
                let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
                ids.push(body["id"].as_str().unwrap().to_string());
                tokio::time::sleep(Duration::from_millis(8)).await;
            }
            ids
        })
    };

    tokio::time::sleep(Duration::from_millis(800)).await;
    let landed = Instant::now();
    // `cp` semantics: truncate and write in place, as operators do.
    std::fs::copy(&swapped, plugins.join("myoperator.wasm")).unwrap();
    wait_row(&chirp, "myoperator.wasm", Duration::from_secs(10), |row| {
        row["version"] == SWAPPED_VERSION && row["state"] == "active"
    })
    .await;
    let switch = landed.elapsed();
    let serving_new_from = now_ms();
    assert!(switch < Duration::from_secs(2), "the swap took {switch:?}");

    let ids = flow.await.unwrap();
    let mut versions = BTreeSet::new();
    for id in &ids {
        let m = chirp.wait_final(id).await;
        assert_eq!(m["status"], "sent", "{m:#}");
        for attempt in m["attempts"].as_array().unwrap() {
            let version = attempt["provider_version"].as_str().unwrap().to_string();
            if attempt["at_ms"].as_i64().unwrap() > serving_new_from {
                assert_eq!(
                    version, SWAPPED_VERSION,
                    "an attempt after the swap used the old version"
                );
            }
            versions.insert(version);
        }
    }
    assert_eq!(
        versions,
        BTreeSet::from(["0.1.0".to_string(), SWAPPED_VERSION.to_string()]),
        "both versions should have sent some of the messages"
    );
    assert_eq!(
        mock.received().len(),
        ids.len(),
        "a message was lost or sent twice"
    );
    println!("swap applied {switch:?} after the file landed");
}

#[tokio::test]
async fn a_corrupt_file_or_a_wrong_world_never_replaces_the_working_provider() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let chirp = ChirpOptions::new("mem://", plugins.clone(), &mock).start();
    let original = std::fs::read(plugins.join("myoperator.wasm")).unwrap();

    std::fs::write(
        plugins.join("myoperator.wasm"),
        b"\0asm\x0d\0\x01\0 this is not a component",
    )
    .unwrap();
    let row = wait_row(&chirp, "myoperator.wasm", Duration::from_secs(10), |r| {
        r["state"] == "rejected"
    })
    .await;
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .contains("not a valid component"),
        "{row:#}"
    );
    assert_eq!(row["serving"]["version"], "0.1.0");
    let id = accept(&chirp, message(1)).await;
    let m = chirp.wait_final(&id).await;
    assert_eq!(m["status"], "sent");
    assert_eq!(m["attempts"][0]["provider_version"], "0.1.0");

    // A rules component copied over the provider's file.
    std::fs::copy(
        build_plugin("rules-earlybird"),
        plugins.join("myoperator.wasm"),
    )
    .unwrap();
    let row = wait_row(&chirp, "myoperator.wasm", Duration::from_secs(10), |r| {
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("rules-earlybird"))
    })
    .await;
    assert_eq!(row["state"], "rejected");
    assert_eq!(row["serving"]["name"], "myoperator");
    let id = accept(&chirp, message(2)).await;
    assert_eq!(chirp.wait_final(&id).await["status"], "sent");

    // A stray corrupt file is refused on its own.
    std::fs::write(plugins.join("stray.wasm"), b"garbage").unwrap();
    let row = wait_row(&chirp, "stray.wasm", Duration::from_secs(10), |r| {
        r["state"] == "rejected"
    })
    .await;
    assert!(row["serving"].is_null());

    // Putting the good file back makes it active again.
    std::fs::write(plugins.join("myoperator.wasm"), &original).unwrap();
    wait_row(&chirp, "myoperator.wasm", Duration::from_secs(10), |r| {
        r["state"] == "active"
    })
    .await;
    let (status, health) = chirp.get("/api/notifications/health").await;
    assert_eq!(
        (status, health["provider_loaded"].as_bool()),
        (200, Some(true))
    );
}

#[tokio::test]
async fn a_removed_provider_is_unloaded_and_its_messages_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let chirp = ChirpOptions::new("mem://", plugins.clone(), &mock).start();
    let original = std::fs::read(plugins.join("myoperator.wasm")).unwrap();

    std::fs::remove_file(plugins.join("myoperator.wasm")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while chirp.plugin_row("myoperator.wasm").await.is_some() {
        assert!(Instant::now() < deadline, "the plugin was not unloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = accept(&chirp, message(1)).await;
    let m = chirp
        .wait_for(&id, Duration::from_secs(10), |m| {
            m["last_error"]["code"] == "provider_not_loaded"
        })
        .await;
    assert_eq!(m["status"], "queued", "{m:#}");
    assert_eq!(
        m["attempts"],
        json!([]),
        "waiting for a provider is not an attempt"
    );

    // Loading the provider again releases the message at once.
    std::fs::write(plugins.join("myoperator.wasm"), &original).unwrap();
    let m = chirp
        .wait_for(&id, Duration::from_secs(10), |m| m["status"] == "sent")
        .await;
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unchanged_file_is_not_reloaded_and_a_restart_uses_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    let options = ChirpOptions::new("mem://", plugins.clone(), &mock);
    let chirp = options.start();
    let first = chirp.plugin_row("myoperator.wasm").await.unwrap();
    assert_eq!(first["origin"], "compiled");

    // Same bytes written again: events fire, nothing is reloaded.
    let bytes = std::fs::read(plugins.join("myoperator.wasm")).unwrap();
    std::fs::write(plugins.join("myoperator.wasm"), &bytes).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, reload) = chirp.post("/api/plugins/reload", json!({})).await;
    assert_eq!(status, 200, "{reload}");
    let again = chirp.plugin_row("myoperator.wasm").await.unwrap();
    assert_eq!(again["loaded_at"], first["loaded_at"]);
    chirp.kill();

    let chirp = options.start();
    let restarted = chirp.plugin_row("myoperator.wasm").await.unwrap();
    assert_eq!(restarted["origin"], "cache", "{restarted:#}");
    assert_eq!(restarted["sha256"], first["sha256"]);
}

#[tokio::test]
async fn hostile_plugins_cost_one_retryable_attempt_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockMyOperator::start().await;
    let plugins = plugins_dir_with_myoperator(dir.path());
    std::fs::copy(build_plugin("hostile"), plugins.join("hostile.wasm")).unwrap();
    for (mode, code) in [
        ("loop", "plugin_timeout"),
        ("memory", "plugin_trap"),
        ("trap", "plugin_trap"),
        ("forbidden", "host_denied"),
        ("garbage", "plugin_garbage"),
    ] {
        let chirp = ChirpOptions::new("mem://", plugins.clone(), &mock)
            .set("CHIRP_PLUGINS__HOSTILE__MODE", mode)
            .set("CHIRP_MAX_ATTEMPTS", "1")
            .set("CHIRP_SANDBOX__HOSTILE__TIMEOUT", "1s")
            .set("CHIRP_SANDBOX__HOSTILE__MEMORY_MIB", "32")
            .start();
        let row = chirp.plugin_row("hostile.wasm").await.unwrap();
        assert_eq!(row["state"], "active", "{row:#}");

        let mut body = message(1);
        body["provider"] = json!("hostile");
        let id = accept(&chirp, body).await;
        let m = chirp.wait_final(&id).await;
        assert_eq!(m["status"], "failed", "{mode}: {m:#}");
        let attempts = m["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{mode}: {m:#}");
        assert_eq!(attempts[0]["outcome"], "retryable", "{mode}: {m:#}");
        assert_eq!(attempts[0]["error_code"], code, "{mode}: {m:#}");
        assert_eq!(attempts[0]["provider_version"], "6.6.6");

        // The host is healthy and the other plugin unaffected.
        let (status, _) = chirp.get("/api/notifications/health").await;
        assert_eq!(status, 200, "{mode}");
        let id = accept(&chirp, message(2)).await;
        assert_eq!(chirp.wait_final(&id).await["status"], "sent", "{mode}");
    }
    // Nothing the hostile plugin did reached the network.
    assert!(
        mock.received()
            .iter()
            .all(|r| r.body["customer_number"] == "9876543210")
    );
}

/// Runs the chirp binary with `args`; returns (success, stdout, stderr).
fn chirp_tool(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chirp"))
        .args(args)
        .env_clear()
        .env("CHIRP_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn plugin_check_reports_what_a_component_is() {
    let wasm = build_plugin("myoperator");
    let file = wasm.to_str().unwrap();
    let (ok, out, err) = chirp_tool(
        &["plugin", "check", file],
        &[("CHIRP_PLUGINS__MYOPERATOR__API_KEY", "k")],
    );
    assert!(ok, "{out}{err}");
    for expected in [
        "world:     Provider",
        "name:      myoperator",
        "version:   0.1.0",
        "api-key",
        "CHIRP_PLUGINS__MYOPERATOR__ACCOUNT_ID",
        "NOT SET",
        "hosts:     publicapi.myoperator.co",
        "self-test: passed",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    let rules = build_plugin("rules-earlybird");
    let (ok, out, err) = chirp_tool(&["plugin", "check", rules.to_str().unwrap()], &[]);
    assert!(ok && out.contains("world:     Rules"), "{out}{err}");

    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.wasm");
    std::fs::write(&corrupt, b"not wasm").unwrap();
    let (ok, _, err) = chirp_tool(&["plugin", "check", corrupt.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("not a valid component"), "{err}");
}

#[tokio::test]
async fn plugin_send_delivers_one_message_to_the_given_url() {
    let mock = MockMyOperator::start().await;
    let wasm = build_plugin("myoperator");
    let base = mock.base_url();
    let env = [
        ("CHIRP_PLUGINS__MYOPERATOR__API_KEY", "k"),
        ("CHIRP_PLUGINS__MYOPERATOR__ACCOUNT_ID", "a"),
        ("CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID", "p"),
    ];
    // The mock runs on this runtime: run the tool on a blocking thread.
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        let args = [
            "plugin",
            "send",
            wasm.to_str().unwrap(),
            "--to",
            "+919876543210",
            "--text",
            "hello from the kit",
            "--url",
            &base,
        ];
        chirp_tool(&args, &env)
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("myoperator 0.1.0: sent"), "{out}");
    let received = mock.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].body["data"]["context"]["body"],
        "hello from the kit"
    );
}

mod rules {
    //! The rules component, called through the host's plugin runtime.

    use super::*;
    use chirp::config::PluginSettings;
    use chirp::plugins::bindings::{Decision, Event, Profile};
    use chirp::plugins::{Plugins, Setup};

    const IST_23_00: u64 = 1_795_541_400_000; // 2026-11-24T23:00:00+05:30
    const IST_09_00_NEXT: u64 = 1_795_577_400_000; // 2026-11-25T09:00:00+05:30
    const IST_12_00: u64 = 1_795_501_800_000; // 2026-11-24T12:00:00+05:30

    async fn rules_plugins(dir: &Path) -> Plugins {
        let plugins =
            Plugins::new(Setup::new(PluginSettings::default(), &dir.join("cache"))).unwrap();
        plugins
            .sync_file(&build_plugin("rules-earlybird"))
            .await
            .unwrap();
        plugins
    }

    fn event(kind: &str, payload: Value, opt_outs: &[&str], now_ms: u64) -> Event {
        Event {
            kind: kind.into(),
            reference_id: "ref-1".into(),
            payload: payload.to_string(),
            recipient: Profile {
                phone: "+919876543210".into(),
                name: Some("Asha".into()),
                language: None,
                timezone: None,
                opt_outs: opt_outs.iter().map(|s| s.to_string()).collect(),
            },
            now_ms,
        }
    }

    async fn decide(plugins: &Plugins, event: &Event) -> Result<Vec<Decision>, String> {
        let (_, answer) = plugins.decide("rules-earlybird", event).await.unwrap();
        answer.unwrap().map(|a| a.decisions)
    }

    fn sends(decisions: &[Decision]) -> Vec<(String, Option<u64>)> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Send(s) => Some((s.template.clone(), s.not_before_ms)),
                Decision::Skip(_) => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn each_earlybird_event_gives_its_templates() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = rules_plugins(dir.path()).await;
        let data = support::earlybird_event_data("20 Nov");
        let expected = support::EARLYBIRD_EVENTS;
        for (kind, templates) in expected {
            let decisions = decide(&plugins, &event(kind, data.clone(), &[], IST_12_00))
                .await
                .unwrap();
            let got: Vec<String> = sends(&decisions).into_iter().map(|(t, _)| t).collect();
            assert_eq!(got, templates, "{kind}");
        }
        let err = decide(&plugins, &event("order.created", json!({}), &[], IST_12_00))
            .await
            .unwrap_err();
        assert!(err.contains("data.order_id"), "{err}");
    }

    #[tokio::test]
    async fn opted_out_recipients_get_no_churn_risk_and_night_marketing_waits() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = rules_plugins(dir.path()).await;
        let decisions = decide(
            &plugins,
            &event("customer.churn_risk", json!({}), &["marketing"], IST_12_00),
        )
        .await
        .unwrap();
        assert!(sends(&decisions).is_empty());
        assert!(matches!(&decisions[..], [Decision::Skip(s)] if s.reason.contains("marketing")));

        let decisions = decide(
            &plugins,
            &event("customer.churn_risk", json!({}), &[], IST_23_00),
        )
        .await
        .unwrap();
        assert_eq!(
            sends(&decisions),
            [("churn_risk".to_string(), Some(IST_09_00_NEXT))]
        );
    }
}
