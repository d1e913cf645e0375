//! The operator's commands on a store: backups of a running chirp's
//! store, restores into a new one, and imports from the old system.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// Runs `chirp ARGS` with `options`' environment on `db`, listening where
/// `base` says; its output, or why it failed.
fn run_chirp(options: &ChirpOptions, db: &str, base: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chirp"))
        .env_clear()
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .env("CHIRP_DB", db)
        .env("CHIRP_LISTEN", base.trim_start_matches("http://"))
        .env("CHIRP_LOG", "warn")
        .args(args)
        .output()
        .expect("run chirp");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "chirp {args:?}: {text}");
    text
}

/// A backup taken while messages pour in holds every message acknowledged
/// before it began: restored into a new store, chirp serves each of them.
/// A restore into a store that is not empty is refused.
#[tokio::test]
async fn a_backup_under_load_restores_every_message_acknowledged_before_it() {
    let w = world().await;
    let options = durable(&w).set("CHIRP_PAUSE_DELIVERY", "true");
    let db = format!("surrealkv://{}", w.dir.path().join("store").display());
    let chirp = Arc::new(options.start());

    // Load: one sender after another, each acknowledged id noted in order.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let load = {
        let (chirp, stop, acked) = (chirp.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"phone": "+919876543210", "text": format!("message {n}")});
                let (status, answer) = chirp.post("/api/notifications/send-message", body).await;
                assert_eq!(status, 202, "{answer}");
                acked
                    .lock()
                    .unwrap()
                    .push(answer["id"].as_str().unwrap().to_string());
            }
        })
    };
    while acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_backup: Vec<String> = acked.lock().unwrap().clone();
    let file = w.dir.path().join("backup.surql");
    let file_text = file.display().to_string();
    let report = run_chirp(&options, &db, &chirp.base, &["backup", &file_text]);
    assert!(report.contains("bytes written"), "{report}");
    while acked.lock().unwrap().len() < before_backup.len() + 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // Restored into a new store, with chirp stopped on it.
    let restored_db = format!("surrealkv://{}", w.dir.path().join("restored").display());
    run_chirp(
        &options,
        &restored_db,
        &chirp.base,
        &["restore", &file_text],
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chirp"))
        .env_clear()
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .env("CHIRP_DB", &restored_db)
        .args(["restore", &file_text])
        .output()
        .unwrap();
    assert!(!output.status.success(), "a restore over data went through");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not empty"));

    let restored = ChirpOptions::new(&restored_db, w.options.plugins_dir.clone(), &w.mock)
        .set("CHIRP_PAUSE_DELIVERY", "true")
        .start();
    for id in &before_backup {
        let (status, message) = restored.get(&format!("/api/notifications/{id}")).await;
        assert_eq!(
            status, 200,
            "{id} acknowledged before the backup is missing"
        );
        assert_eq!(message["status"], "queued");
    }
}

/// The old system's settings and template states come in through `chirp
/// import`, which says what it imported, left and skipped; a second
/// import of the same export changes nothing.
#[tokio::test]
async fn an_import_of_the_old_systems_settings_is_reported_and_idempotent() {
    let w = world().await;
    let options = durable(&w);
    let db = format!("surrealkv://{}", w.dir.path().join("store").display());
    // chirp seeds the templates on its first start.
    let (clean, _) = options.start().terminate();
    assert!(clean);

    let settings = w.dir.path().join("settings.json");
    std::fs::write(
        &settings,
        concat!(
            r#"{"_id":{"$oid":"1"},"user_id":"u1","phone":"9876543210","marketing_enabled":false}"#,
            "\n",
            r#"{"_id":{"$oid":"2"},"user_id":"u2","phone":"+14155550100","notifications_enabled":false}"#,
            "\n",
            r#"{"_id":{"$oid":"3"},"user_id":"u3"}"#,
            "\n",
        ),
    )
    .unwrap();
    let templates = w.dir.path().join("templates.json");
    std::fs::write(&templates, r#"[{"type": "churn_risk", "active": false}]"#).unwrap();
    let import = |what: &str, file: &std::path::Path| {
        run_chirp(
            &options,
            &db,
            "127.0.0.1:0",
            &["import", what, &file.display().to_string()],
        )
    };
    let first = import("settings", &settings);
    assert!(
        first.contains("2 imported, 0 unchanged, 1 skipped"),
        "{first}"
    );
    assert!(first.contains("skipped #3: no phone"), "{first}");
    let again = import("settings", &settings);
    assert!(
        again.contains("0 imported, 2 unchanged, 1 skipped"),
        "{again}"
    );
    let first = import("templates", &templates);
    assert!(first.contains("1 imported, 0 unchanged"), "{first}");
    let again = import("templates", &templates);
    assert!(again.contains("0 imported, 1 unchanged"), "{again}");

    let chirp = options.start();
    let (_, prefs) = chirp.get("/api/preferences/+919876543210").await;
    assert_eq!(prefs["opt_out_marketing"], true, "{prefs:#}");
    let (_, prefs) = chirp.get("/api/preferences/+14155550100").await;
    assert_eq!(prefs["opt_out_all"], true, "{prefs:#}");
    let (_, template) = chirp.get("/api/notifications/templates/churn_risk").await;
    assert_eq!(template["enabled"], false, "{template:#}");
}
