//! bitrot::logging as a user sees it: what lands in the sinks, accounting, flushing, panics.

use crate::harness::{self, Role, SharedBuf, SlowWriter, json_lines};
use bitrot::log_to;
use bitrot::logging::{
    self, Config, Disp, Format, Level, LevelFilter, LogGuard, Overflow, Sink, SinkTarget,
};
use std::collections::HashMap;
use std::time::Duration;

const FLUSH: Duration = Duration::from_secs(30);

fn json_to(buf: &SharedBuf, filter: LevelFilter) -> Sink {
    Sink {
        target: SinkTarget::Writer(Box::new(buf.clone())),
        format: Format::Json,
        filter,
    }
}

fn start(sinks: Vec<Sink>) -> LogGuard {
    logging::start(Config {
        sinks,
        ..Config::default()
    })
    .expect("logger starts")
}

#[test]
fn json_lines_carry_fixed_keys_and_every_value_type() {
    let buf = SharedBuf::default();
    let guard = start(vec![json_to(&buf, LevelFilter::AtLeast(Level::Trace))]);
    let log = guard.logger().clone();
    let owned = String::from("quote \" backslash \\ newline \n tab \t bell \u{7} é");
    log_to!(
        log,
        Level::Info,
        "fetched objects",
        remote = "file:///srv/x.git",
        count = 42u64,
        delta = -7i32,
        ratio = 0.25f64,
        nan = f64::NAN,
        ok = true,
        text = owned,
        raw = [0xdeu8, 0xad, 0x00],
        missing = None::<u64>,
        err = Disp(&std::io::Error::other("disk on fire")),
        msg = "a field named like a fixed key"
    );
    guard.flush(FLUSH).expect("flush");
    let lines = json_lines(&buf.text());
    assert_eq!(lines.len(), 1, "one record in, one line out");
    let r = &lines[0];
    assert!(r["ts"].as_str().expect("ts is a string").ends_with('Z'));
    assert_eq!(r["level"], "INFO");
    assert_eq!(r["target"], "it::logging");
    assert_eq!(r["msg"], "fetched objects");
    assert_eq!(r["remote"], "file:///srv/x.git");
    assert_eq!(r["count"], 42);
    assert_eq!(r["delta"], -7);
    assert_eq!(r["ratio"], 0.25);
    assert!(r["nan"].is_null(), "non-finite floats are null");
    assert_eq!(r["ok"], true);
    assert_eq!(
        r["text"],
        owned.as_str(),
        "strings round-trip through escaping"
    );
    assert_eq!(r["raw"], "dead00", "byte strings are hex");
    assert!(r["missing"].is_null());
    assert_eq!(r["err"], "disk on fire");
    assert_eq!(r["field.msg"], "a field named like a fixed key");
    drop(guard);
}

#[test]
fn timestamps_are_the_emit_time_in_utc() {
    let buf = SharedBuf::default();
    let guard = start(vec![json_to(&buf, LevelFilter::AtLeast(Level::Info))]);
    let before = std::time::SystemTime::now();
    log_to!(guard.logger(), Level::Info, "now");
    let after = std::time::SystemTime::now();
    // The worker formats later; the timestamp must still be the emit time.
    std::thread::sleep(Duration::from_millis(30));
    guard.flush(FLUSH).expect("flush");
    let line = &json_lines(&buf.text())[0];
    let ts = line["ts"].as_str().expect("ts");
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_micros() as i128
    };
    let got = parse_rfc3339_micros(ts);
    assert!(
        got >= secs(before) - 2_000 && got <= secs(after) + 2_000,
        "ts {ts} is not between emit bounds"
    );
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.ffffffZ` (test-side, via days count).
fn parse_rfc3339_micros(ts: &str) -> i128 {
    let n = |a: usize, b: usize| ts[a..b].parse::<i128>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let days = {
        // days from civil (Hinnant), independent of the code under test's direction
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    };
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    secs * 1_000_000 + n(20, 26)
}

#[test]
fn each_sink_filters_its_own_levels() {
    let (warn_buf, debug_buf) = (SharedBuf::default(), SharedBuf::default());
    let guard = start(vec![
        json_to(&warn_buf, LevelFilter::AtLeast(Level::Warn)),
        json_to(&debug_buf, LevelFilter::AtLeast(Level::Debug)),
    ]);
    let log = guard.logger();
    assert!(!log.enabled(Level::Trace), "no sink wants trace");
    log_to!(log, Level::Trace, "t");
    log_to!(log, Level::Debug, "d");
    log_to!(log, Level::Info, "i");
    log_to!(log, Level::Error, "e");
    guard.flush(FLUSH).expect("flush");
    let msgs = |b: &SharedBuf| -> Vec<String> {
        json_lines(&b.text())
            .iter()
            .map(|l| l["msg"].as_str().expect("msg").to_string())
            .collect()
    };
    assert_eq!(msgs(&warn_buf), ["e"]);
    assert_eq!(msgs(&debug_buf), ["d", "i", "e"]);
    let s = guard.stats();
    assert_eq!(s.emitted, 3, "trace was filtered before emit");
}

#[test]
fn disabled_call_sites_do_not_evaluate_their_arguments() {
    let buf = SharedBuf::default();
    let guard = start(vec![json_to(&buf, LevelFilter::AtLeast(Level::Info))]);
    let mut evaluated = 0;
    let mut costly = || {
        evaluated += 1;
        1u64
    };
    log_to!(guard.logger(), Level::Debug, "skipped", v = costly());
    assert_eq!(evaluated, 0);
}

#[test]
fn long_strings_are_cut_at_a_character_boundary() {
    let buf = SharedBuf::default();
    let guard = logging::start(Config {
        sinks: vec![json_to(&buf, LevelFilter::AtLeast(Level::Info))],
        max_str_bytes: 16,
        ring_bytes_per_thread: 64 * 1024,
        ..Config::default()
    })
    .expect("logger starts");
    let s = "ééééééééééééééé"; // 30 bytes of two-byte characters
    log_to!(guard.logger(), Level::Info, "long", s = s);
    guard.flush(FLUSH).expect("flush");
    assert_eq!(json_lines(&buf.text())[0]["s"], "éééééééé");
}

#[test]
fn a_ring_too_small_for_the_string_limit_is_refused_before_any_file_is_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.jsonl");
    let err = logging::start(Config {
        sinks: vec![Sink::json_file(&path, LevelFilter::AtLeast(Level::Info))],
        ring_bytes_per_thread: 4096,
        max_str_bytes: 4096,
        ..Config::default()
    })
    .err()
    .expect("refused");
    assert!(err.to_string().contains("ring_bytes_per_thread"), "{err}");
    assert!(!path.exists(), "a refused config changes nothing");
}

#[test]
fn an_unopenable_log_file_is_named_in_the_error() {
    let err = logging::start(Config {
        sinks: vec![Sink::json_file(
            "/nonexistent-dir/x.jsonl",
            LevelFilter::AtLeast(Level::Info),
        )],
        ..Config::default()
    })
    .err()
    .expect("refused");
    assert!(
        err.to_string().contains("/nonexistent-dir/x.jsonl"),
        "{err}"
    );
}

/// Emits `per_thread` records from each of `threads` threads, each with its thread number and
/// a per-thread sequence number.
fn hammer(guard: &LogGuard, threads: u64, per_thread: u64) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = guard.logger().clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    log_to!(
                        log,
                        Level::Info,
                        "rec",
                        t = t,
                        i = i,
                        user = "alice",
                        ok = true
                    );
                }
            });
        }
    });
}

/// Per thread, the `i` fields must be strictly increasing (FIFO per thread) and timestamps
/// non-decreasing. Returns how many user records each thread got written.
fn check_per_thread_order(lines: &[serde_json::Value]) -> HashMap<u64, u64> {
    let mut last: HashMap<u64, (i64, String)> = HashMap::new();
    let mut counts = HashMap::new();
    for l in lines.iter().filter(|l| l["msg"] == "rec") {
        let t = l["t"].as_u64().expect("t");
        let i = l["i"].as_i64().expect("i");
        let ts = l["ts"].as_str().expect("ts").to_string();
        if let Some((pi, pts)) = last.get(&t) {
            assert!(i > *pi, "thread {t}: record {i} written after {pi}");
            assert!(
                ts >= *pts,
                "thread {t}: timestamp went back from {pts} to {ts}"
            );
        }
        last.insert(t, (i, ts));
        *counts.entry(t).or_insert(0) += 1;
    }
    counts
}

#[test]
fn drop_mode_accounts_for_every_record_and_reports_drops_in_band() {
    let buf = SharedBuf::default();
    let slow = SlowWriter {
        inner: buf.clone(),
        delay: Duration::from_millis(2),
    };
    let guard = logging::start(Config {
        sinks: vec![Sink {
            target: SinkTarget::Writer(Box::new(slow)),
            format: Format::Json,
            filter: LevelFilter::AtLeast(Level::Info),
        }],
        ring_bytes_per_thread: 64 * 1024,
        max_str_bytes: 256,
        overflow: Overflow::DropNewest,
        ..Config::default()
    })
    .expect("logger starts");
    hammer(&guard, 4, 50_000);
    guard.flush(FLUSH).expect("flush");
    let s = guard.stats();
    assert_eq!(s.emitted, 200_000);
    assert!(
        s.dropped > 0,
        "a stalled worker with 64 KiB rings must drop: {s:?}"
    );
    assert_eq!(s.emitted, s.written + s.dropped, "accounting: {s:?}");
    let lines = json_lines(&buf.text());
    let written: u64 = check_per_thread_order(&lines).values().sum();
    assert_eq!(written, s.written, "written counts the lines in the sink");
    let reported: u64 = lines
        .iter()
        .filter(|l| l["msg"] == "log records dropped")
        .map(|l| l["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        reported, s.dropped,
        "drop records add up to the dropped count"
    );
    assert!(s.max_ring_fill_bytes <= 64 * 1024);
}

#[test]
fn block_mode_loses_nothing_and_keeps_per_thread_order() {
    let buf = SharedBuf::default();
    let slow = SlowWriter {
        inner: buf.clone(),
        delay: Duration::from_micros(500),
    };
    let guard = logging::start(Config {
        sinks: vec![Sink {
            target: SinkTarget::Writer(Box::new(slow)),
            format: Format::Json,
            filter: LevelFilter::AtLeast(Level::Info),
        }],
        ring_bytes_per_thread: 64 * 1024,
        max_str_bytes: 256,
        overflow: Overflow::Block {
            max_wait: Duration::from_secs(60),
        },
        ..Config::default()
    })
    .expect("logger starts");
    hammer(&guard, 3, 40_000);
    guard.flush(FLUSH).expect("flush");
    let s = guard.stats();
    assert_eq!((s.emitted, s.written, s.dropped), (120_000, 120_000, 0));
    let counts = check_per_thread_order(&json_lines(&buf.text()));
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [40_000; 3]);
}

#[test]
fn flush_returns_only_after_the_file_holds_everything_emitted_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.jsonl");
    let guard = start(vec![Sink::json_file(
        &path,
        LevelFilter::AtLeast(Level::Info),
    )]);
    for round in 1..=5u64 {
        for i in 0..1000u64 {
            log_to!(guard.logger(), Level::Info, "r", round = round, i = i);
        }
        guard.flush(FLUSH).expect("flush");
        let text = std::fs::read_to_string(&path).expect("log file");
        assert_eq!(
            text.lines().count() as u64,
            round * 1000,
            "after flush {round}"
        );
    }
}

#[test]
fn dropping_the_guard_writes_everything_emitted_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.jsonl");
    let guard = logging::start(Config {
        sinks: vec![Sink::json_file(&path, LevelFilter::AtLeast(Level::Info))],
        // Blocking, so that a worker starved by the other tests cannot turn this into drops.
        overflow: Overflow::Block {
            max_wait: Duration::from_secs(60),
        },
        ..Config::default()
    })
    .expect("logger starts");
    hammer(&guard, 2, 20_000);
    drop(guard);
    let text = std::fs::read_to_string(&path).expect("log file");
    assert_eq!(text.lines().count(), 40_000);
}

#[test]
fn rings_of_exited_threads_are_retired_without_losing_counts() {
    let buf = SharedBuf::default();
    let guard = start(vec![json_to(&buf, LevelFilter::AtLeast(Level::Info))]);
    for _ in 0..8 {
        let log = guard.logger().clone();
        std::thread::spawn(move || log_to!(log, Level::Info, "short-lived thread"))
            .join()
            .expect("thread");
    }
    guard.flush(FLUSH).expect("flush");
    // A second flush gives the worker a pass after the threads' exits to retire their rings.
    guard.flush(FLUSH).expect("flush");
    let s = guard.stats();
    assert_eq!((s.emitted, s.written, s.dropped), (8, 8, 0));
    assert_eq!(s.rings, 0, "every thread exited, so no ring is live: {s:?}");
    assert_eq!(json_lines(&buf.text()).len(), 8);
}

#[test]
fn text_format_is_one_line_per_record_without_colour_when_asked() {
    let buf = SharedBuf::default();
    let guard = start(vec![Sink {
        target: SinkTarget::Writer(Box::new(buf.clone())),
        format: Format::Text { color: false },
        filter: LevelFilter::AtLeast(Level::Info),
    }]);
    log_to!(
        guard.logger(),
        Level::Warn,
        "disk slow",
        path = "/srv/a b",
        ms = 12u64,
        evil = "x\ny"
    );
    guard.flush(FLUSH).expect("flush");
    let text = buf.text();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(!text.contains('\x1b'), "no escape codes: {text:?}");
    assert!(
        text.contains(r#"WARN  it::logging: disk slow path="/srv/a b" ms=12 evil="x\ny""#),
        "{text:?}"
    );
}

// ---- the global logger, each in its own process ----

#[test]
fn panic_hook_flushes_the_global_logger_in_a_child_process() {
    const NAME: &str = "logging::panic_hook_flushes_the_global_logger_in_a_child_process";
    let dir_var = "BITROT_IT_LOGDIR";
    match harness::role(NAME) {
        Role::Child => {
            let path =
                std::path::PathBuf::from(std::env::var(dir_var).expect("dir")).join("x.jsonl");
            let _guard = logging::init(Config {
                sinks: vec![Sink::json_file(&path, LevelFilter::AtLeast(Level::Info))],
                ..Config::default()
            })
            .expect("global logger");
            for i in 0..5_000u64 {
                bitrot::info!("before the crash", i = i);
            }
            // The guard is never dropped: the hook alone must get the records out.
            std::mem::forget(_guard);
            panic!("boom at the end");
        }
        Role::Parent => {
            let dir = tempfile::tempdir().expect("tempdir");
            let out = harness::run_child({
                let mut c = harness::child(NAME);
                c.env(dir_var, dir.path());
                c
            });
            assert!(!out.status.success(), "the child panics");
            let text = std::fs::read_to_string(dir.path().join("x.jsonl")).expect("log file");
            let lines = json_lines(&text);
            let before = lines
                .iter()
                .filter(|l| l["msg"] == "before the crash")
                .count();
            assert_eq!(
                before, 5_000,
                "every record emitted before the panic is in the file"
            );
            let panic = lines
                .iter()
                .find(|l| l["msg"] == "panic")
                .expect("a panic record");
            assert_eq!(panic["level"], "ERROR");
            assert_eq!(panic["message"], "boom at the end");
            assert!(
                panic["location"]
                    .as_str()
                    .expect("location")
                    .contains("logging.rs")
            );
        }
    }
}

#[test]
fn global_macros_follow_bitrot_log_through_the_cli_setup() {
    const NAME: &str = "logging::global_macros_follow_bitrot_log_through_the_cli_setup";
    match harness::role(NAME) {
        Role::Child => {
            let guard = bitrot::cli::init_logging(None).expect("logging set up");
            let mut evaluated = false;
            bitrot::debug!(
                "debug line",
                n = {
                    evaluated = true;
                    1u64
                }
            );
            bitrot::warn!("warn line", path = "/srv/git");
            drop(guard);
            bitrot::error!("after the guard is gone");
            println!("debug-evaluated={evaluated}");
        }
        Role::Parent => {
            let run = |level: &str| {
                let mut c = harness::child(NAME);
                c.env("BITROT_LOG", level);
                let out = harness::run_child(c);
                assert!(out.status.success());
                (
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            };
            let (out, err) = run("debug");
            assert!(err.contains("DEBUG it::logging: debug line n=1"), "{err}");
            assert!(
                err.contains("WARN  it::logging: warn line path=/srv/git"),
                "{err}"
            );
            assert!(out.contains("debug-evaluated=true"));
            assert!(!err.contains("after the guard"), "no logger, no output");
            let (out, err) = run("warn");
            assert!(!err.contains("debug line"), "{err}");
            assert!(err.contains("warn line"), "{err}");
            assert!(
                out.contains("debug-evaluated=false"),
                "disabled sites are not evaluated"
            );
        }
    }
}

#[test]
fn a_bad_bitrot_log_value_is_named_in_the_error() {
    let err = bitrot::cli::log_filter_from(Some("loud"), Level::Warn).expect_err("refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("BITROT_LOG") && msg.contains("loud"), "{msg}");
    assert_eq!(
        bitrot::cli::log_filter_from(Some(" Debug "), Level::Warn).expect("parses"),
        LevelFilter::AtLeast(Level::Debug)
    );
    assert_eq!(
        bitrot::cli::log_filter_from(None, Level::Warn).expect("default"),
        LevelFilter::AtLeast(Level::Warn)
    );
}

#[test]
fn log_lines_do_not_tear_a_progress_bar_on_a_terminal() {
    const NAME: &str = "logging::log_lines_do_not_tear_a_progress_bar_on_a_terminal";
    match harness::role(NAME) {
        Role::Child => {
            let guard = bitrot::cli::init_logging(None).expect("logging set up");
            assert!(logging::stderr_is_terminal(), "the parent runs us on a pty");
            let bar = logging::progress_bar(200, "verifying");
            for i in 0..200u64 {
                bar.inc(1);
                if i % 10 == 0 {
                    bitrot::warn!("checked object", i = i);
                    guard.flush(FLUSH).expect("flush");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            bar.finish();
        }
        Role::Parent => {
            // `script` gives the child a pseudo-terminal and copies everything it draws.
            let exe = std::env::current_exe().expect("test binary");
            let inner = format!(
                "{} {NAME} --exact --nocapture --test-threads=1",
                exe.display()
            );
            let out = harness::run_child({
                let mut c = std::process::Command::new("script");
                c.args(["-qefc", &inner, "/dev/null"])
                    .env("BITROT_IT_CHILD", NAME)
                    .env("BITROT_LOG", "warn")
                    .env("TERM", "xterm-256color");
                c
            });
            assert!(out.status.success(), "child under script succeeds");
            let screen = String::from_utf8_lossy(&out.stdout);
            assert!(
                screen.contains("verifying"),
                "the bar was drawn: {screen:?}"
            );
            for i in (0..200).step_by(10) {
                let level_at = find_log_line(&screen, i)
                    .unwrap_or_else(|| panic!("log line {i} missing or garbled: {screen:?}"));
                // The line is `<27-char timestamp> <colour>WARN ...`; check what precedes it.
                let start = level_at - 28;
                assert!(screen[start..].starts_with("20"), "timestamp at line start");
                let before = &screen[..start];
                assert!(
                    before.is_empty()
                        || before.ends_with('\n')
                        || before.ends_with('\r')
                        || before.ends_with('K')
                        || before.ends_with('J'),
                    "log line {i} starts mid-line (torn bar): {:?}",
                    &before[before.len().saturating_sub(60)..]
                );
            }
        }
    }
}

/// Where the coloured level of the warn line for object `i` starts in the raw terminal bytes.
fn find_log_line(screen: &str, i: u64) -> Option<usize> {
    let line = format!("\x1b[33mWARN \x1b[0m it::logging: checked object \x1b[2mi=\x1b[0m{i}");
    screen.match_indices(&line).map(|(at, _)| at).find(|&at| {
        let next = screen[at + line.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_digit())
    })
}

mod accounting {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// Whatever the ring size, overflow policy, worker speed and number of producers:
        /// after a flush every emitted record is either a line in the sink or counted dropped.
        #[test]
        fn emitted_equals_written_plus_dropped(
            threads in 1u64..4,
            per_thread in 0u64..4000,
            ring_kib in 64usize..256,
            block in any::<bool>(),
            delay_us in 0u64..300,
        ) {
            let buf = SharedBuf::default();
            let slow = SlowWriter { inner: buf.clone(), delay: Duration::from_micros(delay_us) };
            let overflow = if block {
                Overflow::Block { max_wait: Duration::from_millis(1) }
            } else {
                Overflow::DropNewest
            };
            let guard = logging::start(Config {
                sinks: vec![Sink {
                    target: SinkTarget::Writer(Box::new(slow)),
                    format: Format::Json,
                    filter: LevelFilter::AtLeast(Level::Info),
                }],
                ring_bytes_per_thread: ring_kib * 1024,
                max_str_bytes: 256,
                overflow,
                ..Config::default()
            })
            .expect("logger starts");
            hammer(&guard, threads, per_thread);
            guard.flush(FLUSH).expect("flush");
            let s = guard.stats();
            prop_assert_eq!(s.emitted, threads * per_thread);
            prop_assert_eq!(s.emitted, s.written + s.dropped);
            let lines = json_lines(&buf.text());
            let user: u64 = check_per_thread_order(&lines).values().sum();
            prop_assert_eq!(user, s.written);
        }
    }
}

/// A writer that blocks until released, like stderr on a terminal paused with Ctrl-S.
#[derive(Clone, Default)]
struct GatedWriter {
    inner: SharedBuf,
    open: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl GatedWriter {
    fn release(&self) {
        *self.open.0.lock().expect("gate") = true;
        self.open.1.notify_all();
    }
}

impl std::io::Write for GatedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut open = self.open.0.lock().expect("gate");
        while !*open {
            open = self.open.1.wait(open).expect("gate");
        }
        drop(open);
        self.inner.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stuck_sink_costs_a_blocking_thread_one_wait_not_one_per_record() {
    let gate = GatedWriter::default();
    let guard = logging::start(Config {
        sinks: vec![Sink {
            target: SinkTarget::Writer(Box::new(gate.clone())),
            format: Format::Json,
            filter: LevelFilter::AtLeast(Level::Info),
        }],
        ring_bytes_per_thread: 64 * 1024,
        max_str_bytes: 256,
        overflow: Overflow::Block {
            max_wait: Duration::from_millis(100),
        },
        ..Config::default()
    })
    .expect("logger starts");
    let t0 = std::time::Instant::now();
    for i in 0..2000u64 {
        log_to!(
            guard.logger(),
            Level::Info,
            "while stuck",
            i = i,
            pad = "x".repeat(64)
        );
    }
    let stuck = t0.elapsed();
    assert!(
        stuck < Duration::from_secs(3),
        "2000 records with the sink stuck took {stuck:?}: each full-ring record waited again"
    );
    gate.release();
    guard.flush(FLUSH).expect("flush");
    let before = guard.stats();
    assert!(before.dropped > 0, "the ring overflowed: {before:?}");
    for i in 0..10u64 {
        log_to!(guard.logger(), Level::Info, "after", i = i);
    }
    guard.flush(FLUSH).expect("flush");
    let after = guard.stats();
    assert_eq!(after.emitted, before.emitted + 10);
    assert_eq!(
        after.written,
        before.written + 10,
        "once records fit again none is dropped"
    );
    assert_eq!(after.emitted, after.written + after.dropped);
}

#[test]
fn one_thread_logging_to_three_loggers_keeps_each_record_in_its_own_sink() {
    let bufs: Vec<SharedBuf> = (0..3).map(|_| SharedBuf::default()).collect();
    let guards: Vec<LogGuard> = bufs
        .iter()
        .map(|b| start(vec![json_to(b, LevelFilter::AtLeast(Level::Info))]))
        .collect();
    for round in 0..50u64 {
        // Last logger first: the thread's first producer is then not the first logger's.
        for (i, g) in guards.iter().enumerate().rev() {
            log_to!(
                g.logger(),
                Level::Info,
                "r",
                logger = i as u64,
                round = round
            );
        }
    }
    for (i, (g, b)) in guards.iter().zip(&bufs).enumerate() {
        g.flush(FLUSH).expect("flush");
        let lines = json_lines(&b.text());
        assert_eq!(lines.len(), 50, "logger {i} got its 50 records");
        assert!(
            lines.iter().all(|l| l["logger"] == i as u64),
            "logger {i} got only its own records"
        );
        let s = g.stats();
        assert_eq!((s.emitted, s.written, s.dropped), (50, 50, 0));
    }
}

/// On a terminal the tools colour their log lines on stderr, unless `NO_COLOR` is set (and
/// not empty) or `TERM` is `dumb`. Run through script(1) for a real pseudo-terminal.
#[test]
fn log_colour_on_a_terminal_yields_to_no_color_and_dumb_terminals() {
    let repo = tempfile::tempdir().expect("tmp");
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .arg(repo.path())
        .status()
        .expect("git init");
    assert!(git.success());
    let bin = env!("CARGO_BIN_EXE_git-surgery");
    let run = |env: &str| {
        let cmd = format!(
            "env {env} BITROT_LOG=info {bin} -C {} scan >/dev/null",
            repo.path().display()
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("TERM", "xterm-256color")
            .output()
            .expect("script");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = run("");
    assert!(coloured.contains("scan finished"), "{coloured:?}");
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets colour: {coloured:?}"
    );
    // Colour is an SGR sequence (ESC [ ... m); a progress bar's line erase is not colour.
    let has_colour = |t: &str| {
        t.split('\u{1b}').skip(1).any(|rest| {
            rest.strip_prefix('[').is_some_and(|r| {
                let end = r.find(|c: char| !(c.is_ascii_digit() || c == ';'));
                end.is_some_and(|i| r[i..].starts_with('m'))
            })
        })
    };
    assert!(
        has_colour(&coloured),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = run("NO_COLOR=1");
    assert!(plain.contains("scan finished"), "{plain:?}");
    assert!(!has_colour(&plain), "NO_COLOR: no colour: {plain:?}");
    let dumb = run("TERM=dumb");
    assert!(dumb.contains("scan finished"), "{dumb:?}");
    assert!(
        !dumb.contains('\u{1b}'),
        "TERM=dumb: no escapes at all: {dumb:?}"
    );
    // An empty NO_COLOR means nothing (no-color.org).
    assert!(has_colour(&run("NO_COLOR=")));
}
