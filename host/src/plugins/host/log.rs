//! `log.log`: a plugin's lines in chirp's structured log, tagged with the
//! plugin's name, bounded per call and unable to forge lines of their own.
//!
//! A plugin that logs in a loop would otherwise fill the disk or the log
//! pipeline: each call keeps at most `log_max_lines` lines and
//! `log_max_bytes` bytes (a line is cut at the byte budget), and the first
//! line over either gets one note saying the rest was dropped. Control
//! characters (newlines among them) are escaped, so a plugin cannot write
//! what looks like a line of chirp's own.

use std::fmt::Write as _;

use super::{HostState, Outbound};
use crate::plugins::bindings::{Level, log};

/// What one call has logged so far.
#[derive(Debug, Default)]
pub(super) struct LogMeter {
    lines: usize,
    bytes: usize,
    /// The note about dropped lines was written.
    noted: bool,
}

impl LogMeter {
    /// What may be logged of `message` under `max_lines` and `max_bytes`:
    /// the message (escaped, maybe cut), or `None` once the budget is spent.
    /// The second value says whether this is the first refusal or cut, so
    /// that the caller writes the note once.
    fn admit(
        &mut self,
        message: &str,
        max_lines: usize,
        max_bytes: usize,
    ) -> (Option<String>, bool) {
        if self.lines >= max_lines || self.bytes >= max_bytes {
            let first = !self.noted;
            self.noted = true;
            return (None, first);
        }
        let room = max_bytes - self.bytes;
        let mut kept = String::new();
        let mut cut = false;
        for c in message.chars() {
            let before = kept.len();
            if c.is_control() {
                let _ = write!(kept, "{}", c.escape_default());
            } else {
                kept.push(c);
            }
            if kept.len() > room {
                kept.truncate(before);
                cut = true;
                break;
            }
        }
        self.lines += 1;
        self.bytes += kept.len();
        let first = cut && !self.noted;
        self.noted |= cut;
        (Some(kept), first)
    }
}

impl log::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let limits = &self.grant.limits;
        let (kept, note) = self
            .log
            .admit(&message, limits.log_max_lines, limits.log_max_bytes);
        let plugin = self.grant.plugin.as_str();
        // What a plugin says while being self-tested against the stub is
        // about the stub's answers, not about real sends: keep it quiet.
        let level = match self.outbound {
            Outbound::SelfTest => Level::Debug,
            Outbound::Network(_) => level,
        };
        if let Some(message) = kept {
            match level {
                Level::Trace => tracing::trace!(plugin, "{message}"),
                Level::Debug => tracing::debug!(plugin, "{message}"),
                Level::Info => tracing::info!(plugin, "{message}"),
                Level::Warn => tracing::warn!(plugin, "{message}"),
                Level::Error => tracing::error!(plugin, "{message}"),
            }
        }
        if note {
            tracing::warn!(
                plugin,
                max_lines = limits.log_max_lines,
                max_bytes = limits.log_max_bytes,
                "the plugin logged more than its limit in one call; the rest of this call's log is dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_keeps_its_budget_of_lines_and_bytes_and_notes_the_excess_once() {
        let mut meter = LogMeter::default();
        // Without the meter every one of these lines would be written.
        let mut written = 0;
        let mut notes = 0;
        for _ in 0..10_000 {
            let (kept, note) = meter.admit("0123456789", 5, 1024);
            written += usize::from(kept.is_some());
            notes += usize::from(note);
        }
        assert_eq!((written, notes), (5, 1));

        let mut meter = LogMeter::default();
        let (kept, note) = meter.admit(&"x".repeat(100), 5, 30);
        assert_eq!((kept.unwrap().len(), note), (30, true));
        let (kept, note) = meter.admit("more", 5, 30);
        assert_eq!((kept, note), (None, false), "the note is written once");
    }

    #[test]
    fn a_plugin_cannot_forge_a_line_of_chirps_own() {
        let mut meter = LogMeter::default();
        let (kept, _) = meter.admit(
            "ok\n2026-12-06T00:00:00Z ERROR chirp: store latched\r",
            5,
            1024,
        );
        let kept = kept.unwrap();
        assert!(!kept.contains('\n') && !kept.contains('\r'), "{kept}");
        assert!(kept.contains("\\n"), "{kept}");
    }
}
