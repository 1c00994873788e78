//! Naming a failed call: out of time, out of memory, or a trap with the guest's own
//! last words.
//!
//! wasmtime describes a trap with a backtrace of a dozen lines or more, which helps the
//! plugin's author and nobody else. The client gets one line: the plugin and version,
//! the call, and what the guest said as it died (a Rust panic message, a Python
//! exception), found in what it wrote to stderr during the call. The backtrace goes to
//! the plugin's log.

use wasmtime::{Store, Trap};

use crate::log::{LogLevel, LogSource};
use crate::state::GuestState;
use crate::{LoadedPlugin, PluginError};

/// Longest guest message quoted in an error; the log keeps the whole text.
const MAX_QUOTED: usize = 300;

/// The error for `err`, raised while the guest ran `during` (`init`, `keep`, ...). The
/// error, and for a trap the full backtrace, also go to the plugin's log.
pub(crate) fn classify(
    plugin: &LoadedPlugin,
    store: &Store<GuestState>,
    err: wasmtime::Error,
    during: &'static str,
) -> PluginError {
    let name = plugin.name.clone();
    let error = if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        PluginError::Timeout {
            plugin: name,
            timeout_ms: u64::try_from(plugin.limits.call_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    } else if store.data().limiter.hit() {
        PluginError::Memory {
            plugin: name,
            cap_bytes: store.data().limiter.cap(),
        }
    } else {
        let message = last_words(&store.data().stderr.tail())
            .unwrap_or_else(|| quote(&err.root_cause().to_string()));
        PluginError::Trap {
            plugin: name,
            version: plugin.version,
            during,
            message,
        }
    };
    let mut entry = error.to_string();
    if matches!(error, PluginError::Trap { .. }) {
        entry = format!("{entry}\n{err:#}");
    }
    plugin
        .log
        .push(LogLevel::Error, LogSource::Host, plugin.version, &entry);
    error
}

/// What the guest said last before it trapped: a Rust panic (`panicked at FILE:LINE:COL:`
/// and the message lines after it, up to the `note:` std adds), or else the last line it
/// wrote that is not such a note (the last line of a Python traceback is the exception).
pub(crate) fn last_words(lines: &[String]) -> Option<String> {
    let panic = lines
        .iter()
        .rposition(|l| l.contains("panicked at "))
        .map(|at| {
            let head = &lines[at];
            let from = head.find("panicked at ").unwrap_or(0);
            let mut text = head[from..].trim().to_string();
            for line in lines[at + 1..]
                .iter()
                .take_while(|l| !l.starts_with("note:"))
            {
                let line = line.trim();
                if !line.is_empty() {
                    text.push(' ');
                    text.push_str(line);
                }
            }
            text
        });
    let said = panic.or_else(|| {
        lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !l.starts_with("note:"))
            .map(str::to_string)
    })?;
    Some(quote(&said))
}

/// `text` cut to [`MAX_QUOTED`] bytes on a character boundary.
fn quote(text: &str) -> String {
    if text.len() <= MAX_QUOTED {
        return text.to_string();
    }
    let mut end = MAX_QUOTED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_rust_panic_is_its_location_and_message() {
        let out = lines(
            "earlier output\n\
             thread '<unnamed>' panicked at src/lib.rs:40:9:\n\
             field missing\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        );
        assert_eq!(
            last_words(&out).as_deref(),
            Some("panicked at src/lib.rs:40:9: field missing")
        );
    }

    #[test]
    fn a_multi_line_panic_message_is_joined_and_the_last_panic_wins() {
        let out = lines(
            "thread 'main' panicked at a.rs:1:1:\nfirst\n\
             thread 'main' panicked at b.rs:2:2:\nline one\nline two",
        );
        assert_eq!(
            last_words(&out).as_deref(),
            Some("panicked at b.rs:2:2: line one line two")
        );
    }

    #[test]
    fn otherwise_the_last_line_that_is_not_a_note() {
        let out = lines(
            "Traceback (most recent call last):\n  File \"app.py\", line 3\n\
             ValueError: bad key\n\n",
        );
        assert_eq!(last_words(&out).as_deref(), Some("ValueError: bad key"));
        assert_eq!(last_words(&[]), None);
        assert_eq!(last_words(&lines("note: nothing\n  \n")), None);
    }

    #[test]
    fn long_words_are_cut() {
        let out = vec![format!("panicked at x.rs:1:1: {}", "é".repeat(400))];
        let said = last_words(&out).expect("said");
        assert!(said.len() <= MAX_QUOTED + '…'.len_utf8(), "{}", said.len());
        assert!(said.ends_with('…'));
    }
}
