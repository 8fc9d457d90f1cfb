//! Sharing stderr between log lines and progress bars.
//!
//! Invariant: every byte the logger writes to stderr goes through [`write_stderr`], which hides
//! the progress bars of [`progress_bar`] while it writes and redraws them afterwards, so a log
//! line never lands in the middle of a bar. Bars draw only when stderr is a terminal that is
//! not `TERM=dumb` (which cannot erase a line); colour also yields to `NO_COLOR`.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::LazyLock;

static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// A progress bar of `len` steps drawn on stderr (hidden when stderr is not a terminal, or a
/// dumb one).
pub fn progress_bar(len: u64, message: &str) -> ProgressBar {
    if dumb_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = BARS.add(ProgressBar::new(len));
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}

/// Whether stderr is a terminal (decides bars).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Whether text on stderr gets colour: a terminal, `TERM` not `dumb`, and no `NO_COLOR`
/// (https://no-color.org: set and not empty).
pub fn stderr_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    stderr_is_terminal() && !no_color && !dumb_terminal()
}

fn dumb_terminal() -> bool {
    std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

/// Writes whole lines to stderr with any progress bars hidden meanwhile.
pub(crate) fn write_stderr(bytes: &[u8]) -> std::io::Result<()> {
    BARS.suspend(|| {
        let mut err = std::io::stderr().lock();
        err.write_all(bytes)?;
        err.flush()
    })
}
