//! What the operator addressed to each plugin: its settings and its sandbox
//! policy, read once at start from two places that nothing else in chirp
//! uses.
//!
//! | where | settings | sandbox policy |
//! |---|---|---|
//! | environment | `CHIRP_PLUGINS__<PLUGIN>__<SETTING>` | `CHIRP_SANDBOX__<PLUGIN>__<KEY>` |
//! | `chirp.toml` | `[plugins.<plugin>]` | `[sandbox.<plugin>]` |
//!
//! The environment wins. Plugin and setting names are spelled in upper case
//! with `-` as `_` ([`names`]), and joined by `__`, so a variable names one
//! (plugin, setting) pair and no other: `CHIRP_PLUGINS__MYOPERATOR__API_KEY`
//! is setting `api-key` of plugin `myoperator`. Every variable under the two
//! prefixes is read and checked at start; one that names no valid pair
//! stops chirp with an error naming it. Nothing else of the process's
//! environment is kept, so no plugin, whatever it calls itself or its
//! settings, can be handed `CHIRP_JWT_SECRET`, the store's password or
//! `PATH`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ConfigError;
use crate::plugins::names;
use crate::plugins::policy;

/// The environment namespace of plugin settings.
pub const SETTINGS_PREFIX: &str = "CHIRP_PLUGINS__";
/// The environment namespace of the operator's sandbox policy.
pub const SANDBOX_PREFIX: &str = "CHIRP_SANDBOX__";
/// The old spelling of sandbox variables (`CHIRP_SANDBOX_<PLUGIN>_<KEY>`),
/// refused with the new name.
const OLD_SANDBOX_PREFIX: &str = "CHIRP_SANDBOX_";

/// Settings and sandbox policy per plugin name. Values of settings are
/// secrets (API keys): `Debug` shows names only.
#[derive(Clone, Default)]
pub struct PluginSettings {
    /// plugin -> setting -> value.
    settings: BTreeMap<String, BTreeMap<String, String>>,
    /// plugin -> sandbox key -> value.
    sandbox: BTreeMap<String, BTreeMap<String, String>>,
    /// The names (never the values) of the process's variables outside
    /// `CHIRP_`, so that a setting still given the old way
    /// (`MYOPERATOR_API_KEY`) is refused with its new name instead of being
    /// silently ignored.
    outside_names: BTreeSet<String>,
}

impl std::fmt::Debug for PluginSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: BTreeMap<&String, Vec<&String>> = self
            .settings
            .iter()
            .map(|(plugin, table)| (plugin, table.keys().collect()))
            .collect();
        f.debug_struct("PluginSettings")
            .field("settings", &settings)
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

impl PluginSettings {
    /// Reads the plugin namespaces of `env` and the `[plugins.*]` and
    /// `[sandbox.*]` tables of `chirp.toml`; the environment wins.
    pub fn new(
        env: &HashMap<String, String>,
        file: HashMap<String, HashMap<String, toml::Value>>,
        sandbox: HashMap<String, HashMap<String, toml::Value>>,
    ) -> Result<PluginSettings, ConfigError> {
        let mut read = PluginSettings {
            settings: file_tables(file, "plugins", |key| {
                let setting = key.replace('_', "-");
                names::is_valid(&setting).then_some(setting)
            })?,
            sandbox: file_tables(sandbox, "sandbox", |key| {
                policy::KEYS.contains(&key).then(|| key.to_string())
            })?,
            outside_names: BTreeSet::new(),
        };
        let mut vars: Vec<(&String, &String)> = env.iter().collect();
        vars.sort();
        for (var, value) in vars {
            if let Some(rest) = var.strip_prefix(SETTINGS_PREFIX) {
                let (plugin, setting) = split_pair(var, rest, names::from_variable)?;
                read.settings
                    .entry(plugin)
                    .or_default()
                    .insert(setting, value.clone());
            } else if let Some(rest) = var.strip_prefix(SANDBOX_PREFIX) {
                let (plugin, key) = split_pair(var, rest, |k| {
                    let key = k.to_ascii_lowercase();
                    (k.bytes().all(|b| !b.is_ascii_lowercase())
                        && policy::KEYS.contains(&key.as_str()))
                    .then_some(key)
                })?;
                read.sandbox
                    .entry(plugin)
                    .or_default()
                    .insert(key, value.clone());
            } else if let Some(rest) = var.strip_prefix(OLD_SANDBOX_PREFIX) {
                return Err(ConfigError::Plugin {
                    var: var.clone(),
                    reason: format!(
                        "sandbox variables are now {SANDBOX_PREFIX}<PLUGIN>__<KEY>{}",
                        old_sandbox_spelling(rest)
                            .map(|new| format!(": rename it {new}"))
                            .unwrap_or_default()
                    ),
                });
            } else if !var.starts_with("CHIRP_") {
                read.outside_names.insert(var.clone());
            }
        }
        Ok(read)
    }

    /// The variable of `setting` of `plugin`:
    /// `myoperator` + `api-key` -> `CHIRP_PLUGINS__MYOPERATOR__API_KEY`.
    pub fn variable(plugin: &str, setting: &str) -> String {
        format!(
            "{SETTINGS_PREFIX}{}__{}",
            names::to_variable(plugin),
            names::to_variable(setting)
        )
    }

    /// The variable of sandbox `key` of `plugin`:
    /// `myoperator` + `allow_hosts` -> `CHIRP_SANDBOX__MYOPERATOR__ALLOW_HOSTS`.
    pub fn sandbox_variable(plugin: &str, key: &str) -> String {
        format!(
            "{SANDBOX_PREFIX}{}__{}",
            names::to_variable(plugin),
            key.to_ascii_uppercase()
        )
    }

    /// The operator's value for `setting` of `plugin`, if any.
    pub fn lookup(&self, plugin: &str, setting: &str) -> Option<String> {
        self.settings.get(plugin)?.get(setting).cloned()
    }

    /// The operator's sandbox value `key` for `plugin`, if any.
    pub fn sandbox(&self, plugin: &str, key: &str) -> Option<String> {
        self.sandbox.get(plugin)?.get(key).cloned()
    }

    /// Every plugin the operator set a sandbox policy for, with its keys.
    pub fn sandboxes(&self) -> impl Iterator<Item = (&String, &BTreeMap<String, String>)> {
        self.sandbox.iter()
    }

    /// The old variable of `setting` of `plugin` (`MYOPERATOR_API_KEY`), if
    /// the process has it and the operator set the setting nowhere else:
    /// chirp no longer reads it, and says so instead of starting without
    /// the setting. Names under `CHIRP_` are never old settings: they were
    /// chirp's own, and handing them out was the hole this closed.
    pub fn renamed(&self, plugin: &str, setting: &str) -> Option<String> {
        if self.lookup(plugin, setting).is_some() {
            return None;
        }
        let old = format!(
            "{}_{}",
            names::to_variable(plugin),
            names::to_variable(setting)
        );
        self.outside_names.contains(&old).then_some(old)
    }
}

/// Splits `PLUGIN__SECOND` (what follows a prefix) into a plugin name and
/// what `second` makes of the rest.
fn split_pair(
    var: &str,
    rest: &str,
    second: impl Fn(&str) -> Option<String>,
) -> Result<(String, String), ConfigError> {
    let parsed = rest
        .split_once("__")
        .and_then(|(plugin, tail)| Some((names::from_variable(plugin)?, second(tail)?)));
    parsed.ok_or_else(|| ConfigError::Plugin {
        var: var.to_string(),
        reason: format!(
            "expected <PLUGIN>__<NAME> after the prefix, each in upper case with _ between \
             words (plugin names are {}); e.g. CHIRP_PLUGINS__MYOPERATOR__API_KEY or \
             CHIRP_SANDBOX__MYOPERATOR__ALLOW_HOSTS (sandbox keys: {})",
            names::NAME_RULE,
            policy::KEYS.join(", ")
        ),
    })
}

/// `MYOPERATOR_ALLOW_PRIVATE` (the old spelling's tail) -> the new
/// variable, when it ends in a known key.
fn old_sandbox_spelling(rest: &str) -> Option<String> {
    policy::KEYS.iter().find_map(|key| {
        let plugin = rest.strip_suffix(&format!("_{}", key.to_ascii_uppercase()))?;
        let plugin = names::from_variable(plugin)?;
        Some(PluginSettings::sandbox_variable(&plugin, key))
    })
}

/// `[table.<plugin>]` sections with their keys checked by `key` (which
/// returns the key's canonical spelling) and values as strings.
fn file_tables(
    tables: HashMap<String, HashMap<String, toml::Value>>,
    table: &str,
    key: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, ConfigError> {
    let mut read = BTreeMap::new();
    for (plugin, entries) in tables {
        let at = |k: &str| format!("[{table}.{plugin}] {k}");
        if !names::is_valid(&plugin) {
            return Err(ConfigError::Plugin {
                var: format!("[{table}.{plugin}]"),
                reason: format!("plugin names are {}", names::NAME_RULE),
            });
        }
        let mut values = BTreeMap::new();
        for (k, value) in entries {
            let canonical = key(&k).ok_or_else(|| ConfigError::Plugin {
                var: at(&k),
                reason: if table == "sandbox" {
                    format!("sandbox keys are {}", policy::KEYS.join(", "))
                } else {
                    format!("setting names are {}", names::NAME_RULE)
                },
            })?;
            if values
                .insert(canonical, super::settings::as_text(value))
                .is_some()
            {
                return Err(ConfigError::Plugin {
                    var: at(&k),
                    reason: "given twice (with - and with _)".into(),
                });
            }
        }
        read.insert(plugin, values);
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::super::tests::env;
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<PluginSettings, ConfigError> {
        PluginSettings::new(&env(pairs), HashMap::new(), HashMap::new())
    }

    #[test]
    fn variables_name_one_plugin_and_one_setting() {
        assert_eq!(
            PluginSettings::variable("myoperator", "phone-number-id"),
            "CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID"
        );
        let s = read(&[
            ("CHIRP_PLUGINS__MYOPERATOR__API_KEY", "k1"),
            ("CHIRP_PLUGINS__MYOPERATOR_API__KEY", "k2"),
            ("CHIRP_SANDBOX__RULES_EARLYBIRD__MEMORY_MIB", "16"),
        ])
        .unwrap();
        // `myoperator` + `api-key` and `myoperator-api` + `key` are two
        // pairs with two variables; with one `_` between plugin and setting
        // they were one variable, and each plugin read the other's key.
        assert_eq!(s.lookup("myoperator", "api-key").as_deref(), Some("k1"));
        assert_eq!(s.lookup("myoperator-api", "key").as_deref(), Some("k2"));
        assert_eq!(s.lookup("myoperator", "key"), None);
        assert_eq!(
            s.sandbox("rules-earlybird", "memory_mib").as_deref(),
            Some("16")
        );
    }

    #[test]
    fn no_plugin_reaches_chirps_own_variables_or_the_process_environment() {
        let s = read(&[
            (
                "CHIRP_JWT_SECRET",
                "a-secret-that-is-at-least-32-bytes-long",
            ),
            ("CHIRP_DB_PASS", "hunter2"),
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
        ])
        .unwrap();
        for (plugin, setting) in [
            ("chirp", "jwt-secret"),
            ("chirp", "db-pass"),
            ("path", ""),
            ("home", ""),
        ] {
            assert_eq!(s.lookup(plugin, setting), None, "{plugin} {setting}");
            assert_eq!(s.renamed(plugin, setting), None, "{plugin} {setting}");
        }
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_variable_that_names_no_pair_stops_chirp_with_its_name() {
        for var in [
            "CHIRP_PLUGINS__MYOPERATOR",
            "CHIRP_PLUGINS__MYOPERATOR__",
            "CHIRP_PLUGINS__MYOPERATOR__API__KEY",
            "CHIRP_PLUGINS___X__Y",
            "CHIRP_PLUGINS__myoperator__API_KEY",
            "CHIRP_SANDBOX__MYOPERATOR__MEMORY",
            "CHIRP_SANDBOX__MYOPERATOR__memory_mib",
        ] {
            let err = read(&[(var, "x")]).unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn old_spellings_are_refused_with_their_new_names() {
        let err = read(&[("CHIRP_SANDBOX_MYOPERATOR_ALLOW_PRIVATE", "true")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("CHIRP_SANDBOX__MYOPERATOR__ALLOW_PRIVATE"),
            "{err}"
        );
        let s = read(&[("MYOPERATOR_API_KEY", "k")]).unwrap();
        assert_eq!(
            s.renamed("myoperator", "api-key").as_deref(),
            Some("MYOPERATOR_API_KEY")
        );
        let s = read(&[
            ("MYOPERATOR_API_KEY", "old"),
            ("CHIRP_PLUGINS__MYOPERATOR__API_KEY", "new"),
        ])
        .unwrap();
        assert_eq!(s.renamed("myoperator", "api-key"), None);
    }

    #[test]
    fn the_file_is_read_and_the_environment_wins() {
        let raw: HashMap<String, HashMap<String, toml::Value>> = toml::from_str(
            "[myoperator]\napi-key = \"from-file\"\naccount_id = \"acc\"\nretries = 3\n",
        )
        .unwrap();
        let sandbox: HashMap<String, HashMap<String, toml::Value>> =
            toml::from_str("[myoperator]\nallow_hosts = [\"a.example\", \"b.example\"]\n").unwrap();
        let s = PluginSettings::new(
            &env(&[("CHIRP_PLUGINS__MYOPERATOR__API_KEY", "from-env")]),
            raw,
            sandbox,
        )
        .unwrap();
        assert_eq!(
            s.lookup("myoperator", "api-key").as_deref(),
            Some("from-env")
        );
        assert_eq!(s.lookup("myoperator", "account-id").as_deref(), Some("acc"));
        assert_eq!(s.lookup("myoperator", "retries").as_deref(), Some("3"));
        assert_eq!(
            s.sandbox("myoperator", "allow_hosts").as_deref(),
            Some("a.example,b.example")
        );
        for (text, table) in [
            ("[Bad]\nx = 1\n", "plugins"),
            ("[ok]\n\"a key\" = 1\n", "plugins"),
            ("[ok]\napi-key = 1\napi_key = 2\n", "plugins"),
            ("[ok]\nmemory = 1\n", "sandbox"),
        ] {
            let tables: HashMap<String, HashMap<String, toml::Value>> =
                toml::from_str(text).unwrap();
            let result = if table == "plugins" {
                PluginSettings::new(&HashMap::new(), tables, HashMap::new())
            } else {
                PluginSettings::new(&HashMap::new(), HashMap::new(), tables)
            };
            assert!(result.is_err(), "{text}");
        }
    }
}
