//! Plugin and setting names, and how they are spelled in file names and
//! environment variables.
//!
//! The operator grants: a plugin is known by the name of the file the
//! operator put in the plugins directory, and its settings are whatever the
//! operator addressed to that name. A name is words of lower case letters
//! and digits joined by single `-` (`rules-earlybird`, `api-key`), so that
//! its spelling in a variable (upper case, `-` as `_`, plugin and setting
//! joined by `__`) reads back one way only: no two (plugin, setting) pairs
//! share a variable, and no name can reach outside its plugin's namespace.

use std::path::Path;

/// The longest plugin or setting name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid plugin or setting name.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// What a valid name looks like, for error messages.
pub const NAME_RULE: &str =
    "1-64 lower case letters and digits, in words joined by single -, e.g. rules-earlybird";

/// A name as a segment of a variable: `rules-earlybird` -> `RULES_EARLYBIRD`.
pub fn to_variable(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// A variable segment back to the name it spells, if it spells a valid one:
/// `RULES_EARLYBIRD` -> `rules-earlybird`; `rules_earlybird` or
/// `RULES__EARLYBIRD` -> `None`.
pub fn from_variable(segment: &str) -> Option<String> {
    let spelled = segment
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let name = segment.to_ascii_lowercase().replace('_', "-");
    (spelled && is_valid(&name)).then_some(name)
}

/// The plugin a file in the plugins directory must hold: its file stem,
/// with `_` read as `-` (cargo writes `rules_earlybird.wasm` for the crate
/// `rules-earlybird`). `None` if the stem spells no valid name.
pub fn of_file(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let name = stem.replace('_', "-");
    is_valid(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_words_of_lower_case_letters_and_digits() {
        for good in ["a", "myoperator", "rules-earlybird", "msg91-sms", "x-1-y"] {
            assert!(is_valid(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "A",
            "a_b",
            "a.b",
            "a b",
            "ä",
            &"a".repeat(65),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_variable_segment_reads_back_to_one_name_only() {
        for name in ["myoperator", "rules-earlybird", "phone-number-id", "a1-2b"] {
            assert_eq!(from_variable(&to_variable(name)).as_deref(), Some(name));
        }
        for bad in ["", "_A", "A_", "A__B", "a_b", "A-B", "A B"] {
            assert_eq!(from_variable(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_file_holds_the_plugin_it_is_named_after() {
        assert_eq!(
            of_file(Path::new("/p/rules_earlybird.wasm")).as_deref(),
            Some("rules-earlybird")
        );
        assert_eq!(
            of_file(Path::new("myoperator.wasm")).as_deref(),
            Some("myoperator")
        );
        for bad in ["My Plugin.wasm", "a__b.wasm", ".wasm", "CHIRP.wasm"] {
            assert_eq!(of_file(Path::new(bad)), None, "{bad}");
        }
    }
}
