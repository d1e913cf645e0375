//! How a setting's text is read: one way for every boolean, whole number,
//! duration and list, whether it comes from a `CHIRP_*` variable, from
//! `chirp.toml` or from a plugin's sandbox policy. The callers name the
//! setting in their errors; these functions only say what is wrong.

use std::ops::RangeInclusive;
use std::time::Duration;

/// The longest duration any setting takes: anything longer is a mistake,
/// and would overflow the times chirp computes from it.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a setting's text cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// Not one of the boolean spellings.
    #[error("expected true or false")]
    NotABoolean,
    /// Not a whole number in the range.
    #[error("expected a whole number from {min} to {max}")]
    NotAWholeNumber {
        /// The smallest taken.
        min: u64,
        /// The largest taken.
        max: u64,
    },
    /// Not a duration humantime reads.
    #[error("{0}; expected e.g. 30s, 5m, 250ms")]
    NotADuration(humantime::DurationError),
    #[error("expected between {} and {}", humantime::format_duration(*.min), humantime::format_duration(*.max))]
    /// A duration outside the range.
    DurationOutOfRange {
        /// The shortest taken.
        min: Duration,
        /// The longest taken.
        max: Duration,
    },
    /// Not of the shape the setting takes, which this names.
    #[error("expected {0}")]
    Expected(&'static str),
}

/// `true`, `1`, `yes` or `false`, `0`, `no`.
pub fn boolean(text: &str) -> Result<bool, ValueError> {
    match text.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ValueError::NotABoolean),
    }
}

/// A whole number within `range`.
pub fn whole_number(text: &str, range: RangeInclusive<u64>) -> Result<u64, ValueError> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or(ValueError::NotAWholeNumber {
            min: *range.start(),
            max: *range.end(),
        })
}

/// A humantime duration (`30s`, `5m`, `250ms`) within `range`.
pub fn duration(text: &str, range: RangeInclusive<Duration>) -> Result<Duration, ValueError> {
    let parsed = humantime::parse_duration(text.trim()).map_err(ValueError::NotADuration)?;
    if range.contains(&parsed) {
        Ok(parsed)
    } else {
        Err(ValueError::DurationOutOfRange {
            min: *range.start(),
            max: *range.end(),
        })
    }
}

/// Any duration a setting may take: up to [`MAX_DURATION`].
pub const ANY_DURATION: RangeInclusive<Duration> = Duration::ZERO..=MAX_DURATION;

/// A comma-separated list, each entry trimmed, empty entries dropped.
pub fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(String::from)
        .collect()
}

/// A comma-separated list of durations within `range`; never empty (an
/// empty text is one entry that is not a duration).
pub fn durations(text: &str, range: RangeInclusive<Duration>) -> Result<Vec<Duration>, ValueError> {
    text.split(',')
        .map(|part| duration(part, range.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reads_its_spellings_and_refuses_the_rest() {
        assert_eq!(boolean(" yes "), Ok(true));
        assert_eq!(boolean("0"), Ok(false));
        assert_eq!(boolean("maybe"), Err(ValueError::NotABoolean));
        assert_eq!(whole_number("7", 1..=9), Ok(7));
        assert!(whole_number("0", 1..=9).is_err());
        assert!(whole_number("-1", 0..=9).is_err());
        assert_eq!(
            duration("250ms", ANY_DURATION),
            Ok(Duration::from_millis(250))
        );
        assert!(duration("400years", ANY_DURATION).is_err());
        assert!(duration("soon", ANY_DURATION).is_err());
        assert_eq!(list(" a, ,b "), ["a", "b"]);
        assert_eq!(
            durations("5m,10m", ANY_DURATION),
            Ok(vec![Duration::from_secs(300), Duration::from_secs(600)])
        );
        assert!(durations("5m,", ANY_DURATION).is_err());
    }
}
