//! Log priorities for journald. Under systemd, stderr is a stream to the journal (`JOURNAL_STREAM`
//! names it as `device:inode`), and journald reads an sd-daemon prefix `<N>` at the start of each
//! line as the line's syslog priority (`SyslogLevelPrefix=yes`, the default). Without it every line
//! lands at the unit's default priority (info), and `journalctl -u fieldtune -p warning` shows
//! nothing. [`PriorityPrefix`] puts the level's number in front of every line of a log event
//! (error 3, warn 4, info 6, debug and trace 7), so `-p warning` shows exactly the warnings and
//! errors; [`prefix_lines`] does the same for the fatal error the binary prints.
//!
//! The prefix is written only when stderr *is* the stream `JOURNAL_STREAM` names, as sd-daemon(3)
//! asks: a child started from the service with stderr redirected to a file inherits the variable
//! but not the stream, and its lines stay plain.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The syslog priority of a log level (`<3>` err, `<4>` warning, `<6>` info, `<7>` debug).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether stderr is the journal stream systemd gave this process (`JOURNAL_STREAM=dev:ino`
/// matches stderr's device and inode).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    stderr_id().is_some_and(|id| id == (dev, ino))
}

/// Device and inode of this process's stderr.
#[cfg(target_os = "linux")]
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(target_os = "linux"))]
fn stderr_id() -> Option<(u64, u64)> {
    None
}

/// `<N>` in front of every line of `text`.
pub fn prefix_lines(priority: u8, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.split_inclusive('\n') {
        out.push_str(&format!("<{priority}>"));
        out.push_str(line);
    }
    out
}

/// Wraps an event formatter: its output, with `<N>` in front of every line.
pub struct PriorityPrefix<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for PriorityPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&prefix_lines(priority(*event.metadata().level()), &line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_errors_sort_above_info_for_journalctl_p_warning() {
        // `journalctl -p warning` keeps priorities 0..=4.
        let shown = |level| priority(level) <= 4;
        assert!(shown(Level::ERROR) && shown(Level::WARN));
        assert!(!shown(Level::INFO) && !shown(Level::DEBUG) && !shown(Level::TRACE));
        assert_eq!(prefix_lines(3, "a\n  b\n"), "<3>a\n<3>  b\n");
        assert_eq!(prefix_lines(4, "no newline"), "<4>no newline");
    }
}
