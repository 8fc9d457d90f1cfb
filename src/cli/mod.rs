//! The only module that knows about argv, environment variables, stdout/stderr and exit codes.
//!
//! Each tool gets a submodule here (added by its own issue) whose `main()` parses arguments,
//! builds a validated config, calls the library and maps errors to documented exit codes.
//! What all tools share lives in this file: logging set-up from the environment.

use crate::logging::{self, Config, Level, LevelFilter, LogGuard, Overflow, Sink};
use std::path::Path;
use std::time::Duration;

/// The environment variable that sets the stderr log level (`BITROT_LOG=debug`).
pub const LOG_ENV: &str = "BITROT_LOG";

/// Parses a `BITROT_LOG` value; `None` (unset or empty) means the tool's default.
pub fn log_filter_from(value: Option<&str>, default: Level) -> anyhow::Result<LevelFilter> {
    match value.map(str::trim) {
        None | Some("") => Ok(LevelFilter::AtLeast(default)),
        Some(v) => v.parse().map_err(|e| anyhow::anyhow!("{LOG_ENV}: {e}")),
    }
}

/// How long a tool's thread waits for room in its log ring before it drops a record. The JSON
/// log is part of what the tools promise (ssh-ca's audit lines, one per certificate), so a
/// burst waits for the worker instead of losing lines; the bound keeps a stuck sink (stderr
/// on a terminal paused with Ctrl-S, a pipe nobody reads) from stopping the tool: after one
/// timed-out wait, records are dropped and counted until they fit again.
const LOG_FULL_WAIT: Duration = Duration::from_secs(2);

/// Starts the global logger for a tool: human text on stderr at the `BITROT_LOG` level
/// (default warn), and, when `json_log` is given, every record at debug and above as JSON lines
/// in that file. A full ring makes the logging thread wait (up to `LOG_FULL_WAIT`).
pub fn init_logging(json_log: Option<&Path>) -> anyhow::Result<LogGuard> {
    let env = std::env::var(LOG_ENV).ok();
    let stderr_filter = log_filter_from(env.as_deref(), Level::Warn)?;
    let mut sinks = vec![Sink::stderr_text(stderr_filter)];
    if let Some(path) = json_log {
        sinks.push(Sink::json_file(path, LevelFilter::AtLeast(Level::Debug)));
    }
    Ok(logging::init(Config {
        sinks,
        overflow: Overflow::Block {
            max_wait: LOG_FULL_WAIT,
        },
        ..Config::default()
    })?)
}
pub mod complete;
pub mod git_surgery;
pub mod git_svn_migrate;
pub mod man;
pub mod ssh_ca;

/// An error and its causes as one line, each cause once: a cause whose text the message
/// before it already quotes (errors that show their source, as most here do) is not repeated.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.is_empty() {
            text = c;
        } else if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Prints an error chain once as `TOOL: error: ...` and returns `code`; a broken pipe on
/// stdout is not an error (exit 0), as in other Unix tools.
pub fn report_error(tool: &str, e: &anyhow::Error, code: u8) -> std::process::ExitCode {
    let broken_pipe = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return std::process::ExitCode::SUCCESS;
    }
    eprintln!("{tool}: error: {}", error_text(e));
    std::process::ExitCode::from(code)
}

/// The exit status of a usage error in the two git tools: 129, as git's own commands, since
/// their exit 2 means something else (damage remains; bad input).
pub const GIT_USAGE_EXIT: u8 = 129;

/// Parses argv; `--help`/`--version` exit 0, a usage error exits with `usage_code` (for tools
/// whose exit 2 means something else than clap's "bad usage").
pub fn parse_args<C: clap::Parser>(usage_code: u8) -> Result<C, std::process::ExitCode> {
    C::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            std::process::ExitCode::from(usage_code)
        } else {
            std::process::ExitCode::SUCCESS
        }
    })
}

/// What every tool's `--help` and man pages say about the environment all of them read.
pub const ENVIRONMENT: &str = "\
Environment:
  BITROT_LOG  stderr log level: off, error, warn (the default), info, debug or trace
  NO_COLOR    when set (or with TERM=dumb), no colour on stderr";

/// A tool's text after `--help`: its exit codes, then the environment it reads (the man pages
/// turn the two blocks into EXIT STATUS and ENVIRONMENT).
pub fn after_help(exit_codes: &str) -> String {
    format!("{exit_codes}\n\n{ENVIRONMENT}")
}

/// What `--generate` prints: the top man page, every man page (each after a
/// [`man::PAGE_MARKER`] line naming its file), or the bash completion script; used by the
/// release script and the installer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    Man,
    ManPages,
    BashCompletion,
}

/// Writes the man page or completion script for the clap command `C` to `out`.
pub fn generate<C: clap::CommandFactory>(
    what: Generate,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let mut cmd = C::command();
    match what {
        Generate::Man => {
            let pages = man::pages(&mut cmd);
            out.write_all(pages[0].1.as_bytes())?;
        }
        Generate::ManPages => {
            for (file, page) in man::pages(&mut cmd) {
                writeln!(out, "{} {file}", man::PAGE_MARKER)?;
                out.write_all(page.as_bytes())?;
            }
        }
        Generate::BashCompletion => out.write_all(complete::bash_script(&mut cmd).as_bytes())?,
    }
    Ok(())
}
pub mod ssh_acme;
