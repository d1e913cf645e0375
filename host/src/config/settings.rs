//! The operator's settings as written: `CHIRP_*` variables over the keys of
//! `chirp.toml`, read one setting at a time by its variable's name, with
//! every error naming that variable. Each read is remembered, so that a key
//! of the file that no section asked for is refused instead of ignored.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::value::{self, ValueError};

/// What each section of [`super::Config`] is read from.
pub(super) struct Settings {
    env: HashMap<String, String>,
    /// `chirp.toml`'s top-level keys (`lease`, `db`, ...), values as text.
    file: BTreeMap<String, String>,
    /// The file keys asked for so far.
    asked: RefCell<BTreeSet<String>>,
}

impl Settings {
    pub(super) fn new(env: HashMap<String, String>, file: BTreeMap<String, String>) -> Settings {
        Settings {
            env,
            file,
            asked: RefCell::default(),
        }
    }

    /// The variable map, for the plugin namespaces.
    pub(super) fn env(&self) -> &HashMap<String, String> {
        &self.env
    }

    /// `var`'s text: the variable, else its key in the file
    /// (`CHIRP_LEASE` -> `lease`).
    pub(super) fn text(&self, var: &'static str) -> Option<String> {
        let key = file_key(var);
        let from_file = self.file.get(&key).cloned();
        self.asked.borrow_mut().insert(key);
        self.env.get(var).cloned().or(from_file)
    }

    /// `var` read by `parse`, or `default` when it is not set.
    pub(super) fn read<T>(
        &self,
        var: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<T, ConfigError> {
        match self.text(var) {
            None => Ok(default),
            Some(text) => parse(&text).map_err(|reason| ConfigError::Invalid {
                var,
                value: text,
                reason: reason.to_string(),
            }),
        }
    }

    pub(super) fn boolean(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.read(var, default, value::boolean)
    }

    pub(super) fn whole_number(
        &self,
        var: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        self.read(var, default, |text| value::whole_number(text, range))
    }

    pub(super) fn duration(
        &self,
        var: &'static str,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        self.read(var, default, |text| value::duration(text, range))
    }

    pub(super) fn path(&self, var: &'static str, default: &str) -> PathBuf {
        PathBuf::from(self.text(var).unwrap_or_else(|| default.into()))
    }

    /// A set text that is not empty.
    pub(super) fn non_empty(&self, var: &'static str) -> Option<String> {
        self.text(var).filter(|text| !text.is_empty())
    }

    /// Refuses a key of the file that no section read.
    pub(super) fn refuse_unknown_keys(&self) -> Result<(), ConfigError> {
        let asked = self.asked.borrow();
        match self.file.keys().find(|key| !asked.contains(*key)) {
            None => Ok(()),
            Some(key) => Err(ConfigError::UnknownKey {
                key: key.clone(),
                known: asked.iter().cloned().collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// `CHIRP_STORE_TIMEOUT` -> `store_timeout`.
fn file_key(var: &str) -> String {
    var.strip_prefix("CHIRP_")
        .unwrap_or(var)
        .to_ascii_lowercase()
}

/// A TOML value as the text an environment variable would hold; arrays
/// become comma-separated lists.
pub(super) fn as_text(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        toml::Value::Array(items) => items.into_iter().map(as_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
