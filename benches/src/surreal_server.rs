//! A SurrealDB server (`surreal start`) on loopback, for running chirp
//! against `ws://`: built from crates.io on first use (the crate in
//! `tests/surreal-server`), started on a SurrealKV directory, killed with
//! SIGKILL and started again on the same directory and port, or frozen with
//! SIGSTOP and let go.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::Setup;

/// The root user the server is started with.
const USER: &str = "root";
const PASS: &str = "chirp-reliability";

/// Builds SurrealDB's server with cargo (its dev profile, without debug
/// info) under `target_dir`, unless it is already built and up to date;
/// returns the binary. Its own workspace and target directory, so that
/// SurrealDB's features are not unified with chirp's.
pub fn build(target_dir: &Path) -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/surreal-server/Cargo.toml");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    let status = cargo
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build of {} failed: {status}",
            manifest.display()
        ));
    }
    let binary = target_dir.join("debug").join("surreal");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!("{} was not built", binary.display()))
    }
}

/// A running SurrealDB server.
pub struct SurrealServer {
    child: Child,
    binary: PathBuf,
    store: String,
    port: u16,
    log: PathBuf,
}

impl SurrealServer {
    /// Starts `binary` on `store` (`surrealkv://DIR`) at `127.0.0.1:port`,
    /// logging to `log` (appended), and waits until it answers `/ready` (its start-up work done).
    pub fn start(
        binary: &Path,
        store: &str,
        port: u16,
        log: &Path,
    ) -> Result<SurrealServer, String> {
        let mut server = SurrealServer {
            child: spawn(binary, store, port, log)?,
            binary: binary.to_path_buf(),
            store: store.to_string(),
            port,
            log: log.to_path_buf(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// `ws://127.0.0.1:PORT`, for `CHIRP_DB`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// chirp (`binary`) on this server, signed in as its root user.
    pub fn chirp_setup(&self, binary: &Path, plugins_dir: &Path, mock_base: &str) -> Setup {
        Setup::new(binary, plugins_dir, self.url(), mock_base)
            .set("CHIRP_DB_USER", USER)
            .set("CHIRP_DB_PASS", PASS)
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        crate::process::status_kib(self.child.id(), "VmHWM:")
    }

    /// SIGKILL: the server gets no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the server stops answering but keeps its connections
    /// open, as a server that hangs or a network that drops packets
    /// would. Nothing tells chirp; only its deadline can.
    pub fn freeze(&self) -> Result<(), String> {
        self.signal("-STOP")
    }

    /// SIGCONT after [`SurrealServer::freeze`]: the server reads what
    /// waited on its connections and carries it out.
    pub fn thaw(&self) -> Result<(), String> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill {signal}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {signal} failed ({status})"))
        }
    }

    /// Starts the server again on the same store and port.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.child = spawn(&self.binary, &self.store, self.port, &self.log)?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the SurrealDB server exited ({status}); see {}",
                    self.log.display()
                ));
            }
            if ready(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the SurrealDB server did not answer within 120 s; see {}",
            self.log.display()
        ))
    }
}

impl Drop for SurrealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(binary: &Path, store: &str, port: u16, log: &Path) -> Result<Child, String> {
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))
    };
    Command::new(binary)
        .args([
            "start",
            "--no-banner",
            "--log",
            "warn",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--username",
            USER,
            "--password",
            PASS,
            store,
        ])
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

/// Whether the server at `port` answers `GET /ready` with `200`.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200")
}
