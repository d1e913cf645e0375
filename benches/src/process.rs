//! The `chirp` binary under test as benchmarks and the reliability suite
//! start it (through `chirp_harness`): on a store and plugins directory of
//! the caller's choosing, sending to a mock MyOperator, unpaced.

use std::path::{Path, PathBuf};

use chirp_harness::Launch;
pub use chirp_harness::process::{Process as ChirpProcess, cpu_of, free_port, status_kib};

/// The HS256 secret benchmark and reliability runs give chirp.
pub const SECRET: &str = "chirp-bench-secret-of-32-bytes-or-more";

/// How to start chirp.
#[derive(Clone)]
pub struct Setup {
    pub binary: PathBuf,
    pub plugins_dir: PathBuf,
    /// `surrealkv://...` or `mem://`.
    pub db: String,
    pub mock_base: String,
    /// `127.0.0.1:0` for any port; a fixed one to survive restarts.
    pub listen: String,
    pub paused: bool,
    /// More environment, e.g. `CHIRP_LEASE`.
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// chirp's environment is cleared, but the store's settings
    /// (`CHIRP_STORE_MEMTABLE_MB`, `CHIRP_STORE_CACHE_MB`,
    /// `CHIRP_STORE_COMMITTERS`) are passed on from the caller's, so runs
    /// can compare them.
    pub fn new(binary: &Path, plugins_dir: &Path, db: String, mock_base: &str) -> Setup {
        let env = [
            "CHIRP_STORE_MEMTABLE_MB",
            "CHIRP_STORE_CACHE_MB",
            "CHIRP_STORE_COMMITTERS",
        ]
        .into_iter()
        .filter_map(|key| Some((key.to_string(), std::env::var(key).ok()?)))
        .collect();
        Setup {
            binary: binary.to_path_buf(),
            plugins_dir: plugins_dir.to_path_buf(),
            db,
            mock_base: mock_base.to_string(),
            listen: "127.0.0.1:0".into(),
            paused: false,
            env,
        }
    }

    pub fn set(mut self, key: &str, value: &str) -> Setup {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }
}

impl Setup {
    /// Starts chirp with this setup and waits until it listens (or says
    /// why it could not).
    pub fn start(&self) -> Result<ChirpProcess, String> {
        Launch::new(&self.binary)
            .set("CHIRP_LISTEN", &self.listen)
            .set("CHIRP_DB", &self.db)
            .set("CHIRP_PLUGINS_DIR", &self.plugins_dir.display().to_string())
            .set(
                "CHIRP_ERASURE_KEY",
                &self
                    .plugins_dir
                    .with_file_name("erasure.key")
                    .display()
                    .to_string(),
            )
            .set(
                "CHIRP_PAUSE_DELIVERY",
                if self.paused { "true" } else { "false" },
            )
            .set("CHIRP_LOG", "warn")
            .set("CHIRP_JWT_SECRET", SECRET)
            // The mock has no per-number limit; measure chirp, not pacing.
            .set("CHIRP_PROVIDER_RATE", "1000000")
            .set_all(chirp_harness::myoperator_env(
                &self.mock_base,
                crate::API_KEY,
                crate::ACCOUNT_ID,
                crate::PHONE_NUMBER_ID,
            ))
            .set_all(self.env.clone())
            .start()
    }
}

/// An admin's token for chirp runs started with [`SECRET`], valid for a day.
pub fn admin_token(subject: &str) -> String {
    chirp_harness::token::token(SECRET, subject, "admin", None, 24 * 3600)
}

/// Bytes under `path`.
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs `program` with `args`, its output thrown away; whether it
/// succeeded.
pub fn quietly(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
