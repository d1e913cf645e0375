//! The `chirp` binary under test, started as a child process on a store
//! and plugins directory of the caller's choosing, and stopped politely
//! (SIGTERM) or not (SIGKILL).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A running chirp.
pub struct ChirpProcess {
    child: Child,
    pub base: String,
}

impl ChirpProcess {
    /// Starts chirp and waits until it listens (or says why it could not).
    pub fn start(setup: &Setup) -> Result<ChirpProcess, String> {
        let mut child = Command::new(&setup.binary)
            .env_clear()
            .env("CHIRP_LISTEN", &setup.listen)
            .env("CHIRP_DB", &setup.db)
            .env("CHIRP_PLUGINS_DIR", &setup.plugins_dir)
            .env("CHIRP_TEMPLATES_DIR", templates_dir())
            .env(
                "CHIRP_PAUSE_DELIVERY",
                if setup.paused { "true" } else { "false" },
            )
            .env("CHIRP_LOG", "warn")
            .env("CHIRP_JWT_SECRET", SECRET)
            // The mock has no per-number limit; measure chirp, not pacing.
            .env("CHIRP_PROVIDER_RATE", "1000000")
            .env("CHIRP_PLUGINS__MYOPERATOR__API_KEY", crate::API_KEY)
            .env("CHIRP_PLUGINS__MYOPERATOR__ACCOUNT_ID", crate::ACCOUNT_ID)
            .env(
                "CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID",
                crate::PHONE_NUMBER_ID,
            )
            .env("CHIRP_PLUGINS__MYOPERATOR__BASE_URL", &setup.mock_base)
            // The mock is on loopback, which plugins reach only when allowed.
            .env("CHIRP_SANDBOX__MYOPERATOR__ALLOW_PRIVATE", "true")
            .envs(setup.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", setup.binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("chirp listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => Ok(ChirpProcess { child, base }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!("chirp did not start listening (exit: {status:?})"))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmHWM:")
    }

    /// The CPU time (user and system) the process has used so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(&self.child.id().to_string())
    }

    /// Resident set size now (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL: no chance to finish anything.
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

/// A `/proc/<pid>/status` figure in KiB (`VmHWM:`, `VmRSS:`); 0 if the
/// process is gone.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of process `pid` (`self` for this one) so
/// far: fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks (100 per
/// second on Linux); each phase runs for seconds, so ticks are fine enough.
pub fn cpu_of(pid: &str) -> Duration {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")
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

/// A free port on 127.0.0.1 (for a chirp that restarts on the same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
