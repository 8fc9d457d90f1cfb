//! Shared test helpers: child processes for tests that need a fresh process (global logger,
//! panics), a shared in-memory writer, and JSON-line parsing.

use std::io::Write;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// Set in a child process to the name of the test it runs.
const CHILD_ENV: &str = "BITROT_IT_CHILD";

/// The role of the current process in a two-process test.
pub enum Role {
    /// We are the child: do the work whose effects the parent checks.
    Child,
    /// We are the parent: spawn the child and check.
    Parent,
}

/// Which role `test` (its full path, e.g. `logging::panic_flush`) plays in this process.
pub fn role(test: &str) -> Role {
    match std::env::var(CHILD_ENV) {
        Ok(name) if name == test => Role::Child,
        _ => Role::Parent,
    }
}

/// A command that re-runs exactly `test` of this binary in a child process, in its child role.
pub fn child(test: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env_remove("BITROT_LOG");
    cmd
}

/// Runs the child and returns its output, with stdout and stderr shown on failure.
pub fn run_child(mut cmd: Command) -> Output {
    let out = cmd.output().expect("child process starts");
    eprintln!(
        "--- child stdout ---\n{}\n--- child stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `Write` whose bytes the test can read while the logger still owns the writer.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("buffer lock").clone()).expect("output is UTF-8")
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that sleeps on every write, to make the worker fall behind.
pub struct SlowWriter {
    pub inner: SharedBuf,
    pub delay: std::time::Duration,
}

impl Write for SlowWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(self.delay);
        self.inner.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses every line as a JSON object, failing with the offending line.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not valid JSON ({e}): {l:?}")))
        .collect()
}
