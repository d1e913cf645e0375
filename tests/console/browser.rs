//! A real browser for the console's tests: Debian's Chromium, headless,
//! driven through its ChromeDriver by `fantoccini`. The browser is
//! installed from Debian's packages when it is missing (the tests need
//! it, so they install it), and started with a fresh profile that makes
//! no connection of its own.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Chromium and its driver from Debian's packages if either is
/// missing (as root, or through `sudo -n`).
fn ensure_installed() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists() {
            return;
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let run = |args: &[&str]| {
            let mut command = if root {
                Command::new(args[0])
            } else {
                let mut c = Command::new("sudo");
                c.arg("-n").arg(args[0]);
                c
            };
            command
                .args(&args[1..])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        let installed = run(&[
            "apt-get",
            "install",
            "-y",
            "-q",
            "chromium",
            "chromium-driver",
        ]) || (run(&["apt-get", "update", "-q"])
            && run(&[
                "apt-get",
                "install",
                "-y",
                "-q",
                "chromium",
                "chromium-driver",
            ]));
        assert!(
            installed,
            "the console's tests need Debian's chromium and chromium-driver; \
             installing them failed (run as root, or with password-less sudo)"
        );
    });
}

/// A headless Chromium session, and the driver serving it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    /// Where screenshots go.
    pub shots: PathBuf,
}

impl Browser {
    pub async fn start() -> Browser {
        ensure_installed();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = chirp_harness::process::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            driver,
            _profile: profile,
            shots,
        }
    }

    /// Saves a screenshot of the page as `name.png`.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Every URL the page loaded (the document and its resources).
    pub async fn loaded_urls(&self) -> Vec<String> {
        let urls = self
            .client
            .execute(
                "return performance.getEntries().map(e => e.name).filter(n => n.includes(':'))",
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(urls).unwrap()
    }

    /// The text of the first element `css` selects (looked up again if
    /// the page changed under it).
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await,
                Err(e) => Err(e),
            };
            match found {
                Ok(text) => return text,
                Err(e) if Instant::now() >= deadline => panic!("{css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Clicks the first element `css` selects.
    pub async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Waits until the page's text contains `wanted`, reloading `url`
    /// between looks if given.
    pub async fn wait_text(&self, css: &str, wanted: &str, reload: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text(css).await;
            if text.contains(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{wanted:?} never appeared in {css}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some(url) = reload {
                self.client.goto(url).await.unwrap();
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
