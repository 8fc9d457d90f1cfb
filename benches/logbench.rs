//! Logging benchmark (L1–L5 of research/log-sched.md §6): bitrot::logging against tracing +
//! tracing-subscriber JSON + tracing-appender `non_blocking`, both writing JSON lines to a file,
//! measured in the same run.
//!
//! Each record: message "request done" and four fields (u64, &str, f64, bool). Per-call
//! latency is an `Instant` pair around the call (the bare pair is reported as `timer`). The
//! p50 ratio to tracing is given raw and net of the timer pair's p50 (`p50_ratio_net_*`).
//! Timestamps on this kind of VM move in steps of about 10 ns, so a p50 lands on 30 or 40.
//! Scenarios: paced at 100 k/s and 500 k/s (busy-wait between calls, untimed) and a burst.
//! Then a disabled call site (debug with the level at info) and the worker's drain rate.
//!
//! Run: `cargo bench --bench logbench` (`BENCH_N=100000` for a quick run).

mod common;

use bitrot::logging::{self, Config, Level, LevelFilter, Overflow, Sink};
use common::{Row, env_n, hist, loadavg, ns, pcts, print_table};
use hdrhistogram::Histogram;
use std::path::Path;
use std::time::{Duration, Instant};

struct Run {
    hist: Histogram<u64>,
    emitted: u64,
    written: u64,
    dropped: u64,
    wall: Duration,
}

/// The benchmark's record: a message and four fields (u64, &str, f64, bool).
fn emit_record(i: u64) {
    bitrot::info!(
        "request done",
        req_id = i,
        user = "alice",
        latency_ms = 12.5f64,
        ok = true
    );
}

fn timed(n: u64, pace_ns: u64, mut f: impl FnMut(u64)) -> (Histogram<u64>, Duration) {
    let mut h = hist();
    for i in 0..1000 {
        f(u64::MAX - i);
    }
    let t0 = Instant::now();
    for i in 0..n {
        if pace_ns > 0 {
            let target = t0 + Duration::from_nanos(i * pace_ns);
            while Instant::now() < target {
                std::hint::spin_loop();
            }
        }
        let a = Instant::now();
        f(i);
        h.saturating_record(ns(a.elapsed()).max(1));
    }
    (h, t0.elapsed())
}

fn lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|d| d.iter().filter(|&&b| b == b'\n').count() as u64)
        .unwrap_or(0)
}

fn bitrot_run(path: &Path, n: u64, pace_ns: u64, overflow: Overflow) -> Run {
    let _ = std::fs::remove_file(path);
    let guard = logging::init(Config {
        sinks: vec![Sink::json_file(path, LevelFilter::AtLeast(Level::Info))],
        overflow,
        install_panic_hook: false,
        ..Config::default()
    })
    .expect("logger starts");
    let (hist, wall) = timed(n, pace_ns, emit_record);
    guard.flush(Duration::from_secs(120)).expect("flush");
    let s = guard.stats();
    drop(guard);
    Run {
        hist,
        emitted: s.emitted,
        written: lines(path),
        dropped: s.dropped,
        wall,
    }
}

fn tracing_run(path: &Path, n: u64, pace_ns: u64) -> Run {
    let file = std::fs::File::create(path).expect("bench file");
    let (writer, guard) = tracing_appender::non_blocking(file);
    let errors = writer.error_counter();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .finish();
    let (hist, wall) = tracing::subscriber::with_default(subscriber, || {
        timed(n, pace_ns, |i| {
            tracing::info!(
                req_id = i,
                user = "alice",
                latency_ms = 12.5f64,
                ok = true,
                "request done"
            );
        })
    });
    drop(guard);
    Run {
        hist,
        emitted: n + 1000,
        written: lines(path),
        dropped: errors.dropped_lines() as u64,
        wall,
    }
}

fn row(name: &str, r: &Run, n: u64) -> Row {
    let mut cols = pcts(&r.hist);
    cols.push(format!("{:.2}", n as f64 / r.wall.as_secs_f64() / 1e6));
    cols.push(format!("{}/{}", r.written, r.emitted));
    cols.push(r.dropped.to_string());
    Row {
        name: name.into(),
        cols,
    }
}

fn timer_overhead() -> Histogram<u64> {
    timed(1_000_000, 0, |_| {}).0
}

/// Mean ns of a `debug!` call site while the level is info (L5).
fn disabled_call_ns(dir: &Path) -> f64 {
    let guard = logging::init(Config {
        sinks: vec![Sink::json_file(
            dir.join("disabled.jsonl"),
            LevelFilter::AtLeast(Level::Info),
        )],
        install_panic_hook: false,
        ..Config::default()
    })
    .expect("logger starts");
    let calls = 10_000_000u64;
    let t0 = Instant::now();
    for i in 0..calls {
        bitrot::debug!("not written", i = std::hint::black_box(i));
    }
    let per = ns(t0.elapsed()) as f64 / calls as f64;
    drop(guard);
    per
}

/// Records per second the worker drains with the producer stopped (L4): the worker sleeps
/// while 1 M records are queued, then one flush wakes it and is timed.
fn drain_rate(dir: &Path, n: u64) -> f64 {
    let path = dir.join("drain.jsonl");
    let _ = std::fs::remove_file(&path);
    let guard = logging::init(Config {
        sinks: vec![Sink::json_file(&path, LevelFilter::AtLeast(Level::Info))],
        ring_bytes_per_thread: (n as usize * 96).next_power_of_two(),
        idle_sleep: Duration::from_secs(3600),
        install_panic_hook: false,
        ..Config::default()
    })
    .expect("logger starts");
    std::thread::sleep(Duration::from_millis(50)); // the worker's first pass finds nothing
    (0..n).for_each(emit_record);
    let t0 = Instant::now();
    guard.flush(Duration::from_secs(300)).expect("flush");
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(guard.stats().dropped, 0, "the ring held every record");
    drop(guard);
    assert_eq!(lines(&path), n);
    n as f64 / secs
}

fn main() {
    let n = env_n("BENCH_N", 1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.jsonl");
    println!(
        "# logbench: {n} records of 4 fields, JSON lines to a file; loadavg at start {}",
        loadavg()
    );
    let timer = timer_overhead();
    let timer_p50 = timer.value_at_quantile(0.5);
    let header = [
        "logger",
        "p50 ns",
        "p90",
        "p99",
        "p99.9",
        "max",
        "M rec/s",
        "written/emitted",
        "dropped",
    ];
    let mut result = Vec::new();
    for (label, pace) in [("100k", 10_000u64), ("500k", 2_000), ("burst", 0)] {
        let b = bitrot_run(&path, n, pace, Overflow::DropNewest);
        let bb = bitrot_run(
            &path,
            n,
            pace,
            Overflow::Block {
                max_wait: Duration::from_secs(10),
            },
        );
        let t = tracing_run(&path, n, pace);
        let rows = [
            row("bitrot drop", &b, n),
            row("bitrot block", &bb, n),
            row("tracing non_blocking", &t, n),
        ];
        print_table(&format!("{label} (loadavg {})", loadavg()), &header, &rows);
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
        result.push(format!("bitrot_p50_{label}={}", q(&b.hist, 0.5)));
        result.push(format!("bitrot_p99_{label}={}", q(&b.hist, 0.99)));
        result.push(format!("bitrot_p999_{label}={}", q(&b.hist, 0.999)));
        result.push(format!("tracing_p50_{label}={}", q(&t.hist, 0.5)));
        result.push(format!(
            "p50_ratio_{label}={:.1}",
            q(&t.hist, 0.5) as f64 / q(&b.hist, 0.5).max(1) as f64
        ));
        // The same ratio with the bare timer pair's p50 taken off both sides: the raw ratio
        // counts the timer's ~20 ns in our figure as much as in tracing's.
        let net = |h: &Histogram<u64>| q(h, 0.5).saturating_sub(timer_p50).max(1) as f64;
        result.push(format!(
            "p50_ratio_net_{label}={:.1}",
            net(&t.hist) / net(&b.hist)
        ));
        result.push(format!(
            "bitrot_drop_pct_{label}={:.3}",
            100.0 * b.dropped as f64 / b.emitted as f64
        ));
        result.push(format!("bitrot_block_drops_{label}={}", bb.dropped));
    }
    let disabled = disabled_call_ns(dir.path());
    let drain = drain_rate(dir.path(), n);
    print_table(
        "other",
        &["what", "value"],
        &[
            Row {
                name: "timer pair p50 ns (included above)".into(),
                cols: vec![timer.value_at_quantile(0.5).to_string()],
            },
            Row {
                name: "disabled call site, mean ns".into(),
                cols: vec![format!("{disabled:.2}")],
            },
            Row {
                name: "worker drain, M rec/s".into(),
                cols: vec![format!("{:.2}", drain / 1e6)],
            },
        ],
    );
    result.push(format!("timer_p50={}", timer.value_at_quantile(0.5)));
    result.push(format!("disabled_ns={disabled:.2}"));
    result.push(format!("drain_ns_per_rec={:.0}", 1e9 / drain));
    result.push(format!("loadavg={}", loadavg()));
    println!("\nRESULT {}", result.join(" "));
}
