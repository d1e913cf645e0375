//! Reading and checking the configuration.

use super::*;
use crate::store::EmbeddedMemory;

/// A variable map for a test.
pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_follow_the_seed() {
    let config = Config::from_parts(
        RawConfig::default(),
        env(&[("CHIRP_INSECURE_NO_AUTH", "true")]),
    )
    .unwrap();
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.store.url, "surrealkv://data/chirp");
    assert_eq!(config.delivery.max_attempts, 3);
    assert_eq!(
        config.delivery.retry_backoff,
        [300, 600, 900].map(Duration::from_secs).to_vec()
    );
    assert_eq!(config.delivery.shutdown_grace, Duration::from_secs(15));
    assert_eq!(config.store.memory, EmbeddedMemory::default());
    assert_eq!(config.store.committers.get(), 2);
    assert_eq!(config.store.server.timeout, Duration::from_secs(5));
    assert_eq!(config.store.server.credentials, None);
    let config = Config::from_parts(
        RawConfig::default(),
        env(&[
            ("CHIRP_INSECURE_NO_AUTH", "true"),
            ("CHIRP_SHUTDOWN_GRACE", "90s"),
            ("CHIRP_STORE_MEMTABLE_MB", "32"),
            ("CHIRP_STORE_CACHE_MB", "8"),
            ("CHIRP_STORE_COMMITTERS", "3"),
            ("CHIRP_STORE_TIMEOUT", "2s"),
            ("CHIRP_DB_USER", "root"),
            ("CHIRP_DB_PASS", "hunter2-db"),
            ("CHIRP_PLUGINS__MYOPERATOR__API_KEY", "hunter2-api"),
        ]),
    )
    .unwrap();
    assert_eq!(config.delivery.shutdown_grace, Duration::from_secs(90));
    assert_eq!(config.store.server.timeout, Duration::from_secs(2));
    assert_eq!(
        config.store.server.credentials,
        Some(("root".into(), "hunter2-db".into()))
    );
    assert!(
        !format!("{config:?}").contains("hunter2"),
        "a secret shows in the configuration's Debug output"
    );
    assert_eq!(config.store.committers.get(), 3);
    assert_eq!(
        config.store.memory,
        EmbeddedMemory {
            memtable: 32 << 20,
            block_cache: 8 << 20
        }
    );
}

#[test]
fn environment_wins_over_the_file() {
    let raw: RawConfig = toml::from_str(
        "max_attempts = \"5\"\n[plugins.myoperator]\napi-key = \"from-file\"\naccount-id = \"acc\"\n\
         [sandbox.myoperator]\nallow_hosts = [\"a.example\", \"b.example\"]\nallow_private = true\n",
    )
    .unwrap();
    let config = Config::from_parts(
        raw,
        env(&[
            ("CHIRP_MAX_ATTEMPTS", "4"),
            ("CHIRP_PLUGINS__MYOPERATOR__API_KEY", "from-env"),
            (
                "CHIRP_JWT_SECRET",
                "a-secret-that-is-at-least-32-bytes-long",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(config.delivery.max_attempts, 4);
    let settings = &config.plugins.settings;
    assert_eq!(
        settings.lookup("myoperator", "api-key").as_deref(),
        Some("from-env")
    );
    assert_eq!(
        settings.lookup("myoperator", "account-id").as_deref(),
        Some("acc")
    );
    assert_eq!(settings.lookup("other", "api-key"), None);
    assert_eq!(
        settings.sandbox("myoperator", "allow_hosts").as_deref(),
        Some("a.example,b.example")
    );
    assert_eq!(
        settings.sandbox("myoperator", "allow_private").as_deref(),
        Some("true")
    );
}

#[test]
fn bad_values_name_their_variable() {
    for (var, value) in [
        ("CHIRP_MAX_ATTEMPTS", "zero"),
        ("CHIRP_RETRY_BACKOFF", "5m,soon"),
        ("CHIRP_LISTEN", "8080"),
        ("CHIRP_DB", "rocksdb://x"),
        ("CHIRP_SHUTDOWN_GRACE", "a while"),
        ("CHIRP_STORE_MEMTABLE_MB", "1"),
        ("CHIRP_STORE_CACHE_MB", "lots"),
        ("CHIRP_STORE_COMMITTERS", "0"),
        ("CHIRP_STORE_TIMEOUT", "0s"),
        ("CHIRP_STORE_TIMEOUT", "never"),
        ("CHIRP_MAX_RETRY_AFTER", "soon"),
        ("CHIRP_RETRY_BACKOFF", "5m,400years"),
        ("CHIRP_LEASE", "10000years"),
    ] {
        let err = Config::from_parts(
            RawConfig::default(),
            env(&[(var, value), ("CHIRP_INSECURE_NO_AUTH", "true")]),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with(var), "{err}");
    }
}

#[test]
fn settings_that_cannot_hold_together_are_refused_naming_their_variables() {
    let base = [("CHIRP_INSECURE_NO_AUTH", "true")];
    let refused = |pairs: &[(&str, &str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(pairs);
        Config::from_parts(RawConfig::default(), env(&all))
    };
    // A plugin whose calls may outlast the lease.
    let err = refused(&[
        ("CHIRP_LEASE", "5s"),
        ("CHIRP_SANDBOX__MYOPERATOR__TIMEOUT", "30s"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("CHIRP_LEASE") && text.contains("CHIRP_SANDBOX__MYOPERATOR__TIMEOUT"),
        "{text}"
    );
    // Workers that wait their turn at the provider longer than a lease.
    let err = refused(&[
        ("CHIRP_SEND_CONCURRENCY", "1000"),
        ("CHIRP_PROVIDER_RATE", "1"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("CHIRP_SEND_CONCURRENCY") && text.contains("CHIRP_PROVIDER_RATE"),
        "{text}"
    );
    // The same, each within reach of the other, start.
    assert!(
        refused(&[
            ("CHIRP_LEASE", "60s"),
            ("CHIRP_SANDBOX__MYOPERATOR__TIMEOUT", "30s")
        ])
        .is_ok()
    );
    assert!(
        refused(&[
            ("CHIRP_SEND_CONCURRENCY", "64"),
            ("CHIRP_PROVIDER_RATE", "5")
        ])
        .is_ok()
    );
    assert!(refused(&[("CHIRP_LEASE", "2s")]).is_ok());
    assert!(refused(&[("CHIRP_MARKETING_HOURS", "9-21")]).is_err());
}

#[test]
fn chirp_refuses_to_start_without_a_jwt_secret() {
    let err = Config::from_parts(RawConfig::default(), HashMap::new()).unwrap_err();
    assert!(err.to_string().starts_with("CHIRP_JWT_SECRET"), "{err}");
    let err = Config::from_parts(RawConfig::default(), env(&[("CHIRP_JWT_SECRET", "short")]))
        .unwrap_err();
    assert!(
        !err.to_string().contains("short"),
        "the secret leaked: {err}"
    );
}

#[test]
fn the_file_takes_numbers_as_numbers_and_refuses_keys_that_are_no_setting() {
    let secret = [(
        "CHIRP_JWT_SECRET",
        "a-secret-that-is-at-least-32-bytes-long",
    )];
    let raw: RawConfig = toml::from_str("max_attempts = 5\npause_delivery = true\n").unwrap();
    let config = Config::from_parts(raw, env(&secret)).unwrap();
    assert_eq!(config.delivery.max_attempts, 5);
    assert!(config.delivery.pause);
    // A misspelt key would otherwise leave its setting at the default.
    let raw: RawConfig = toml::from_str("max_attemps = 5\n").unwrap();
    let err = Config::from_parts(raw, env(&secret)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("max_attemps") && text.contains("max_attempts"),
        "{text}"
    );
}

#[test]
fn every_boolean_is_read_one_way() {
    for var in ["CHIRP_PAUSE_DELIVERY", "CHIRP_INSECURE_NO_AUTH"] {
        let err = Config::from_parts(
            RawConfig::default(),
            env(&[
                (var, "maybe"),
                (
                    "CHIRP_JWT_SECRET",
                    "a-secret-that-is-at-least-32-bytes-long",
                ),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with(var), "{err}");
    }
}
