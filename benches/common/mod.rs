//! Helpers shared by the benchmark programs: histograms, tables, the machine's load.

#![allow(dead_code)]

use hdrhistogram::Histogram;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub fn hist() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 120_000_000_000, 3).expect("valid histogram bounds")
}

/// The 1-minute load average, as the kernel reports it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A count from the environment (for quick runs: `BENCH_N=100000`).
pub fn env_n(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One row of the printed table.
pub struct Row {
    pub name: String,
    pub cols: Vec<String>,
}

pub fn print_table(title: &str, header: &[&str], rows: &[Row]) {
    println!("\n## {title}\n");
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for r in rows {
        println!("| {} | {} |", r.name, r.cols.join(" | "));
    }
}

pub fn pcts(h: &Histogram<u64>) -> Vec<String> {
    [0.5, 0.9, 0.99, 0.999]
        .iter()
        .map(|q| h.value_at_quantile(*q).to_string())
        .chain([h.max().to_string()])
        .collect()
}

/// Runs `cmd` to completion; returns (seconds, peak RSS in MiB, exit code).
// The child is reaped by wait4 (which also reports its peak RSS), not by Child::wait.
#[allow(clippy::zombie_processes)]
pub fn measure(cmd: &mut std::process::Command) -> (f64, f64, i32) {
    let t0 = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("command starts");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting on our own child's pid with valid pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let secs = t0.elapsed().as_secs_f64();
    (
        secs,
        ru.ru_maxrss as f64 / 1024.0,
        libc::WEXITSTATUS(status),
    )
}
