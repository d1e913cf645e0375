//! The `chirp` binary under test, started as a child process with a
//! cleared environment plus the caller's, waited for until it prints the
//! address it listens on, and stopped politely (SIGTERM) or not (SIGKILL).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to start chirp: its binary and its whole environment.
#[derive(Clone, Debug)]
pub struct Launch {
    pub binary: PathBuf,
    /// Every variable chirp sees; nothing of the caller's environment is
    /// passed on unless put here.
    pub env: Vec<(String, String)>,
    /// Keep chirp's log lines (stderr) for the caller to read; otherwise
    /// they go to the caller's stderr.
    pub capture_logs: bool,
    /// How long chirp may take to start listening.
    pub startup: Duration,
}

impl Launch {
    /// `binary` on any free loopback port, its log at `CHIRP_LOG` (the
    /// caller's, or `warn`), with the repository's templates.
    pub fn new(binary: &Path) -> Launch {
        Launch {
            binary: binary.to_path_buf(),
            env: Vec::new(),
            capture_logs: false,
            startup: Duration::from_secs(120),
        }
        .set("CHIRP_LISTEN", "127.0.0.1:0")
        .set(
            "CHIRP_LOG",
            &std::env::var("CHIRP_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .set(
            "CHIRP_TEMPLATES_DIR",
            &crate::templates_dir().display().to_string(),
        )
    }

    /// Sets `key` (replacing an earlier value).
    pub fn set(mut self, key: &str, value: &str) -> Launch {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets each of `pairs`.
    pub fn set_all(self, pairs: impl IntoIterator<Item = (String, String)>) -> Launch {
        pairs
            .into_iter()
            .fold(self, |launch, (k, v)| launch.set(&k, &v))
    }

    /// Removes `key`.
    pub fn unset(mut self, key: &str) -> Launch {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// The command this launch runs (`serve`).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if self.capture_logs {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        command
    }

    /// Starts chirp and waits until it listens, or says why it did not.
    pub fn start(&self) -> Result<Process, String> {
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("chirp listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        match rx.recv_timeout(self.startup) {
            Ok(base) => Ok(Process { child, base, logs }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!("chirp did not start listening (exit: {status:?})"))
            }
        }
    }

    /// Runs chirp expecting it to refuse to start; its stderr, or why that
    /// is not what happened.
    pub fn start_failure(&self) -> Result<String, String> {
        let output = self
            .command()
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if output.status.success() {
            return Err("chirp started but should not have".into());
        }
        Ok(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A running chirp; killed when dropped.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// chirp's log lines so far (with `capture_logs`).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits for the exit: whether it exited cleanly, and
    /// how long it took.
    pub fn stop(mut self) -> (bool, Duration) {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let clean = self.child.wait().is_ok_and(|status| status.success());
        (clean, started.elapsed())
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmHWM:")
    }

    /// Resident set size now (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:")
    }

    /// The CPU time (user and system) the process has used so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(&self.child.id().to_string())
    }
}

impl Drop for Process {
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

/// A free port on 127.0.0.1 (for a chirp that restarts on the same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
