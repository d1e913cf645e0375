//! What `chirp-bench` and `chirp-reliability` share beyond
//! `chirp_harness` (the chirp process, the mocks, tokens): how they start
//! chirp, the load generator and a SurrealDB server to run it against; and
//! the in-process scenarios of `chirp-bench` (the store alone, the drain
//! through the component against native, the retention job, the upgrade,
//! webhook receipts); scenario 14 (batch accept) through a chirp process.

pub mod batch_accept;
pub mod lanes;
pub mod load;
pub mod native_provider;
pub mod process;
pub mod retention_contention;
pub mod retention_cost;
pub mod sandbox_drain;
pub mod store_path;
pub mod surreal_server;
pub mod upgrade_cost;
pub mod webhook_apply;

use std::collections::HashMap;
use std::path::Path;

use chirp::config::PluginSettings;
use chirp::plugins::{Plugins, Setup};

/// The MyOperator credentials the benchmark configures, whichever way the
/// provider runs (inside chirp, the component in this process, native).
pub const API_KEY: &str = "bench-token";
pub const ACCOUNT_ID: &str = "bench-company";
pub const PHONE_NUMBER_ID: &str = "bench-number";

/// The MyOperator component at `plugin`, loaded in this process as chirp
/// loads it, sending to the mock at `mock_base` (a loopback address the
/// sandbox is told to allow), with room for `concurrency` calls at once.
pub async fn load_component(
    plugin: &Path,
    mock_base: &str,
    work: &Path,
    concurrency: usize,
) -> Plugins {
    let env: HashMap<String, String> = [
        ("CHIRP_PLUGINS__MYOPERATOR__API_KEY", API_KEY),
        ("CHIRP_PLUGINS__MYOPERATOR__ACCOUNT_ID", ACCOUNT_ID),
        (
            "CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID",
            PHONE_NUMBER_ID,
        ),
        ("CHIRP_PLUGINS__MYOPERATOR__BASE_URL", mock_base),
        ("CHIRP_SANDBOX__MYOPERATOR__ALLOW_PRIVATE", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings =
        PluginSettings::new(&env, HashMap::new(), HashMap::new()).expect("plugin settings");
    let plugins = Plugins::new(Setup {
        concurrency,
        ..Setup::new(settings, &work.join("sandbox-cache"))
    })
    .expect("engine");
    plugins.sync_file(plugin).await.expect("load plugin");
    plugins
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The median, smallest and largest of `values` (at least one), written
/// `median (smallest-largest)` with `decimals` decimals.
pub fn spread(values: impl IntoIterator<Item = f64>, decimals: usize) -> String {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    let (median, smallest, largest) = (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    );
    format!("{median:.decimals$} ({smallest:.decimals$}-{largest:.decimals$})")
}
