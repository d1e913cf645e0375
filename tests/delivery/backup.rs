//! Backups of a running chirp's store, and restores into a new one.

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
