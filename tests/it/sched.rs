//! bitrot::sched's semantics, one test each, with time moved by hand where time matters.

use bitrot::sched::{
    Builder, CancelOutcome, Check, Ctx, Executor, Flow, JoinError, ManualClock, OnMiss, Opts,
    PeriodMode, Periodic, Resumable, Shutdown, Step,
};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const JOIN: Duration = Duration::from_secs(30);

fn manual(workers: usize) -> (Executor, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let exec = Builder::new()
        .workers(workers)
        .clock(clock.clone())
        .build()
        .expect("executor starts");
    (exec, clock)
}

/// Occupies a worker until the returned sender is dropped or sent to.
fn block_worker(exec: &Executor) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    let far = exec.now() + Duration::from_secs(3600);
    exec.spawn_with(Opts::new(far).on_miss(OnMiss::RunLate), move |_| {
        started_tx.send(()).expect("test alive");
        let _ = rx.recv();
    });
    started_rx.recv_timeout(JOIN).expect("blocker started");
    tx
}

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, s: impl Into<String>) {
    log.lock().expect("log").push(s.into());
}

/// Runs tasks with the given deadline offsets (ms) on one worker held busy until all are
/// queued, and returns the order in which they ran.
fn run_order(offsets: &[u64]) -> Vec<usize> {
    let (exec, _clock) = manual(1);
    let gate = block_worker(&exec);
    let order = Arc::new(Mutex::new(Vec::new()));
    let base = exec.now();
    let tasks: Vec<_> = offsets
        .iter()
        .enumerate()
        .map(|(i, &ms)| {
            let order = order.clone();
            exec.spawn(base + Duration::from_millis(ms), move |_| {
                order.lock().expect("order").push(i)
            })
        })
        .collect();
    drop(gate);
    tasks.into_iter().for_each(|t| t.join().expect("ran"));
    order.lock().expect("order").clone()
}

#[test]
fn ready_tasks_run_earliest_deadline_first_and_ties_in_submission_order() {
    let order = run_order(&[30, 10, 20, 10, 5, 30]);
    assert_eq!(order, [4, 1, 3, 2, 0, 5]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn completion_order_is_sorted_by_deadline_then_submission(
        offsets in prop::collection::vec(0u64..8, 1..40)
    ) {
        let mut want: Vec<usize> = (0..offsets.len()).collect();
        want.sort_by_key(|&i| (offsets[i], i));
        prop_assert_eq!(run_order(&offsets), want);
    }
}

#[test]
fn a_queued_task_moved_to_an_earlier_deadline_runs_first() {
    let (exec, _clock) = manual(1);
    let gate = block_worker(&exec);
    let order = Arc::new(Mutex::new(Vec::new()));
    let base = exec.now();
    let spawn = |name: &'static str, ms| {
        let order = order.clone();
        exec.spawn(base + Duration::from_millis(ms), move |_| {
            order.lock().expect("order").push(name)
        })
    };
    let a = spawn("a", 10);
    let b = spawn("b", 20);
    assert!(b.set_deadline(base + Duration::from_millis(5)));
    drop(gate);
    a.join().expect("a");
    b.join().expect("b");
    assert_eq!(*order.lock().expect("order"), ["b", "a"]);
}

#[test]
fn a_cancelled_queued_task_never_runs() {
    let (exec, _clock) = manual(1);
    let gate = block_worker(&exec);
    let ran = Arc::new(AtomicUsize::new(0));
    let far = exec.now() + Duration::from_secs(60);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let ran = ran.clone();
            exec.spawn(far, move |_| ran.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    for t in &tasks {
        assert_eq!(t.cancel(), CancelOutcome::Removed);
    }
    assert_eq!(
        exec.stats().queued,
        0,
        "cancelled tasks leave the queue at once"
    );
    drop(gate);
    for t in tasks {
        assert!(matches!(t.join(), Err(JoinError::Cancelled)));
    }
    exec.shutdown(Shutdown::Drain { timeout: JOIN });
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(exec.stats().cancelled, 100);
}

#[test]
fn a_running_task_sees_cancelled_at_its_next_checkpoint() {
    let (exec, _clock) = manual(1);
    let (started_tx, started_rx) = mpsc::channel();
    let far = exec.now() + Duration::from_secs(60);
    let task = exec.spawn(far, move |ctx| {
        started_tx.send(()).expect("test alive");
        let mut spins = 0u64;
        while ctx.checkpoint() != Check::Cancelled {
            spins += 1;
            std::hint::spin_loop();
        }
        spins
    });
    started_rx.recv_timeout(JOIN).expect("started");
    assert_eq!(task.cancel(), CancelOutcome::Signalled);
    assert!(matches!(task.join(), Err(JoinError::Cancelled)));
}

#[test]
fn a_firm_task_whose_deadline_passed_in_the_queue_is_not_started() {
    let (exec, clock) = manual(1);
    let gate = block_worker(&exec);
    let ran = Arc::new(AtomicUsize::new(0));
    let soon = exec.now() + Duration::from_millis(10);
    let (r1, r2) = (ran.clone(), ran.clone());
    let firm = exec.spawn(soon, move |_| r1.fetch_add(1, Ordering::SeqCst));
    let late_ok = exec.spawn_with(Opts::new(soon).on_miss(OnMiss::RunLate), move |_| {
        r2.fetch_add(1, Ordering::SeqCst)
    });
    clock.advance(Duration::from_millis(20));
    drop(gate);
    assert!(matches!(firm.join(), Err(JoinError::Expired)));
    assert!(late_ok.join().is_ok(), "run-late tasks still run");
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let s = exec.stats();
    assert_eq!((s.expired, s.deadline_misses), (1, 1));
}

#[test]
fn a_running_firm_task_is_cut_at_its_deadline_and_reports_expired() {
    let (exec, clock) = manual(1);
    let (started_tx, started_rx) = mpsc::channel();
    let task = exec.spawn(exec.now() + Duration::from_millis(10), move |ctx| {
        started_tx.send(()).expect("test alive");
        while ctx.checkpoint() == Check::Continue {
            std::hint::spin_loop();
        }
    });
    started_rx.recv_timeout(JOIN).expect("started");
    clock.advance(Duration::from_millis(11));
    assert!(matches!(task.join(), Err(JoinError::Expired)));
}

/// Spins through checkpoints until told to finish; yields when the checkpoint says so.
struct Spinner {
    name: &'static str,
    log: Log,
    stop: Arc<std::sync::atomic::AtomicBool>,
    started: Option<mpsc::Sender<()>>,
    resumed: bool,
}

impl Resumable for Spinner {
    type Output = &'static str;
    fn step(&mut self, ctx: &Ctx<'_>) -> Step<&'static str> {
        if let Some(tx) = self.started.take() {
            tx.send(()).expect("test alive");
        } else if !self.resumed {
            self.resumed = true;
            note(&self.log, format!("{} resumed", self.name));
        }
        loop {
            match ctx.checkpoint() {
                Check::Yield => {
                    note(&self.log, format!("{} yielded", self.name));
                    return Step::Yield;
                }
                Check::Cancelled => return Step::Done(self.name),
                Check::Continue if self.stop.load(Ordering::SeqCst) => {
                    return Step::Done(self.name);
                }
                Check::Continue => std::thread::yield_now(),
            }
        }
    }
}

#[test]
fn an_urgent_arrival_preempts_only_the_latest_deadline_which_resumes_in_its_old_place() {
    let (exec, _clock) = manual(2);
    let log: Log = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = exec.now();
    let spinner = |name, secs| {
        let (tx, rx) = mpsc::channel();
        let t = exec.spawn_resumable(
            Opts::new(base + Duration::from_secs(secs)),
            Spinner {
                name,
                log: log.clone(),
                stop: stop.clone(),
                started: Some(tx),
                resumed: false,
            },
        );
        rx.recv_timeout(JOIN).expect("spinner started");
        t
    };
    let a = spinner("a", 10);
    let b = spinner("b", 20);
    // The urgent task holds its worker until `c` (same deadline as `b`, submitted later) is
    // queued, so the order of `b` and `c` afterwards shows that `b` kept its sequence.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let urgent = {
        let log = log.clone();
        exec.spawn(base + Duration::from_secs(1), move |_| {
            note(&log, "urgent ran");
            let _ = go_rx.recv();
        })
    };
    let wait_for = |what: &str| {
        let t0 = Instant::now();
        while !log.lock().expect("log").iter().any(|l| l == what) {
            assert!(
                t0.elapsed() < JOIN,
                "never saw {what:?}: {:?}",
                log.lock().expect("log")
            );
            std::thread::yield_now();
        }
    };
    wait_for("urgent ran");
    let c = {
        let log = log.clone();
        exec.spawn(base + Duration::from_secs(20), move |_| note(&log, "c ran"))
    };
    drop(go_tx);
    urgent.join().expect("urgent");
    wait_for("b resumed");
    stop.store(true, Ordering::SeqCst);
    assert_eq!(a.join().expect("a"), "a");
    assert_eq!(b.join().expect("b"), "b");
    c.join().expect("c");
    let log = log.lock().expect("log").clone();
    assert_eq!(
        log.iter()
            .filter(|l| l.ends_with("yielded"))
            .collect::<Vec<_>>(),
        ["b yielded"],
        "one arrival preempts exactly one worker, the latest deadline: {log:?}"
    );
    let pos = |s: &str| log.iter().position(|l| l == s).expect(s);
    assert!(pos("b yielded") < pos("urgent ran"));
    assert!(
        pos("b resumed") < pos("c ran"),
        "b keeps its original sequence: {log:?}"
    );
    assert_eq!(exec.stats().yields, 1);
}

#[test]
fn no_preemption_while_a_worker_is_idle() {
    let (exec, _clock) = manual(3);
    let log: Log = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let base = exec.now();
    let b = exec.spawn_resumable(
        Opts::new(base + Duration::from_secs(20)),
        Spinner {
            name: "b",
            log: log.clone(),
            stop: stop.clone(),
            started: Some(tx),
            resumed: false,
        },
    );
    rx.recv_timeout(JOIN).expect("started");
    exec.spawn(base + Duration::from_secs(1), |_| ())
        .join()
        .expect("urgent ran on an idle worker");
    stop.store(true, Ordering::SeqCst);
    b.join().expect("b");
    assert_eq!(exec.stats().yields, 0, "{:?}", log.lock().expect("log"));
}

#[test]
fn a_panicking_task_reports_the_panic_and_the_worker_survives() {
    let (exec, _clock) = manual(1);
    let far = exec.now() + Duration::from_secs(60);
    let bad = exec.spawn(far, |_| -> u32 { panic!("task exploded") });
    let err = bad.join().expect_err("panicked");
    assert_eq!(err.panic_message(), Some("task exploded"));
    assert_eq!(exec.spawn(far, |_| 7).join().expect("worker alive"), 7);
    assert_eq!(exec.stats().panicked, 1);
}

#[test]
fn spawn_at_runs_only_once_the_clock_reaches_the_release() {
    let (exec, clock) = manual(1);
    let release = exec.now() + Duration::from_secs(5);
    let task = exec.spawn_at(
        release,
        Opts::new(release + Duration::from_secs(1)),
        |ctx| ctx.deadline(),
    );
    let task = task
        .join_timeout(Duration::from_millis(50))
        .expect_err("not yet released");
    clock.advance(Duration::from_secs(4));
    let task = task
        .join_timeout(Duration::from_millis(50))
        .expect_err("still not released");
    clock.advance(Duration::from_secs(1));
    let deadline = task.join().expect("released and ran");
    assert_eq!(deadline, release + Duration::from_secs(1));
}

#[test]
fn the_timer_wakes_for_an_earlier_release_inserted_while_it_sleeps() {
    let exec = Builder::new().workers(1).build().expect("executor starts");
    let now = exec.now();
    let _late = exec.spawn_at(
        now + Duration::from_secs(600),
        Opts::new(now + Duration::from_secs(601)),
        |_| (),
    );
    std::thread::sleep(Duration::from_millis(20)); // let the timer thread go to sleep on it
    let soon = exec.spawn_at(
        now + Duration::from_millis(30),
        Opts::new(now + Duration::from_secs(60)),
        |_| (),
    );
    soon.join_timeout(JOIN)
        .map_err(|_| "the timer slept through an earlier release")
        .expect("released")
        .expect("ran");
}

#[test]
fn a_cancelled_timer_task_never_runs() {
    let (exec, clock) = manual(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let t0 = exec.now();
    let task = exec.spawn_at(
        t0 + Duration::from_secs(1),
        Opts::new(t0 + Duration::from_secs(2)),
        move |_| r.fetch_add(1, Ordering::SeqCst),
    );
    assert_eq!(task.cancel(), CancelOutcome::Removed);
    clock.advance(Duration::from_secs(3));
    assert!(matches!(task.join(), Err(JoinError::Cancelled)));
    exec.shutdown(Shutdown::Drain { timeout: JOIN });
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// Advances `clock` by `step` until `done()` or `JOIN` of real time passes.
fn advance_until(clock: &ManualClock, step: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < JOIN, "condition never reached");
        clock.advance(step);
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn fixed_rate_releases_stay_on_the_grid_and_overruns_are_coalesced() {
    let (exec, clock) = manual(1);
    let t0 = exec.now();
    let period = Duration::from_millis(100);
    let releases = Arc::new(Mutex::new(Vec::new()));
    let (rel, c) = (releases.clone(), clock.clone());
    let task = exec.spawn_periodic(Periodic::every(t0 + period, period), move |ctx| {
        // release = deadline - relative deadline (= period)
        let r = ctx.deadline() - period - t0;
        let mut v = rel.lock().expect("releases");
        v.push(r.as_millis() as u64);
        if v.len() == 2 {
            c.advance(Duration::from_millis(350)); // this run overruns by three releases
        }
        if v.len() == 6 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    let rel = releases.clone();
    advance_until(&clock, Duration::from_millis(2), || {
        rel.lock().expect("r").len() >= 6
    });
    let skipped = task.skipped();
    task.join().expect("stopped by Flow::Stop");
    let got = releases.lock().expect("releases").clone();
    // Run 2 (released at 200) ends at 550 or a little later: releases 300, 400, 500 were
    // missed; they coalesce into one immediate run on the grid, so two are skipped.
    assert_eq!(got[..2], [100, 200]);
    assert!(
        got.iter().all(|r| r % 100 == 0),
        "no drift off the grid: {got:?}"
    );
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "runs never overlap: {got:?}"
    );
    assert_eq!(got[2], 500, "the latest missed release runs: {got:?}");
    assert_eq!(skipped, 2);
    // The sixth run's join can return before its worker counts it: wait for the count.
    let limit = Instant::now() + JOIN;
    while exec.stats().completed < 6 && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = exec.stats();
    assert_eq!(
        (s.submitted, s.completed),
        (6, 6),
        "each run is one submitted job; the periodic task itself is not"
    );
}

#[test]
fn fixed_delay_releases_follow_the_end_of_the_previous_run() {
    let (exec, clock) = manual(1);
    let t0 = exec.now();
    let period = Duration::from_millis(10);
    let releases = Arc::new(Mutex::new(Vec::new()));
    let (rel, c) = (releases.clone(), clock.clone());
    let spec = Periodic {
        mode: PeriodMode::FixedDelay,
        ..Periodic::every(t0 + period, period)
    };
    let task = exec.spawn_periodic(spec, move |ctx| {
        let r = (ctx.deadline() - period - t0).as_millis() as u64;
        let mut v = rel.lock().expect("releases");
        v.push(r);
        c.advance(Duration::from_millis(3)); // each run takes 3 ms
        if v.len() == 3 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    let rel = releases.clone();
    advance_until(&clock, Duration::from_millis(1), || {
        rel.lock().expect("r").len() >= 3
    });
    task.join().expect("stopped");
    let got = releases.lock().expect("releases").clone();
    for w in got.windows(2) {
        assert!(
            w[1] >= w[0] + 13,
            "next release is 10 ms after a 3 ms run ended: {got:?}"
        );
    }
}

#[test]
fn a_cancelled_periodic_task_stops_and_a_panicking_one_reports_it() {
    let (exec, clock) = manual(1);
    let t0 = exec.now();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let task = exec.spawn_periodic(Periodic::every(t0, Duration::from_millis(10)), move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        Flow::Continue
    });
    let r = runs.clone();
    advance_until(&clock, Duration::from_millis(10), || {
        r.load(Ordering::SeqCst) >= 3
    });
    task.cancel();
    let after_cancel = runs.load(Ordering::SeqCst);
    clock.advance(Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(20));
    assert!(matches!(task.join(), Err(JoinError::Cancelled)));
    assert!(
        runs.load(Ordering::SeqCst) <= after_cancel + 1,
        "at most the run in flight"
    );

    let boom = exec.spawn_periodic(
        Periodic::every(exec.now(), Duration::from_millis(10)),
        |_| panic!("periodic exploded"),
    );
    let err = boom.join().expect_err("panicked");
    assert_eq!(err.panic_message(), Some("periodic exploded"));
}

#[test]
fn drain_runs_the_queue_and_cancel_all_removes_it() {
    let (exec, _clock) = manual(2);
    let far = exec.now() + Duration::from_secs(60);
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let d = done.clone();
            exec.spawn(far, move |_| d.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    let report = exec.shutdown(Shutdown::Drain { timeout: JOIN });
    assert!(report.drained);
    assert_eq!(report.cancelled_queued, 0);
    assert_eq!(done.load(Ordering::SeqCst), 50);
    assert!(tasks.into_iter().all(|t| t.join().is_ok()));
    let late = exec.spawn(far, |_| ());
    assert!(
        matches!(late.join(), Err(JoinError::Shutdown)),
        "no work after shutdown"
    );

    let (exec, _clock) = manual(1);
    let (started_tx, started_rx) = mpsc::channel();
    let running = exec.spawn(far, move |ctx| {
        started_tx.send(()).expect("test alive");
        while ctx.checkpoint() != Check::Cancelled {
            std::thread::yield_now();
        }
    });
    started_rx.recv_timeout(JOIN).expect("started");
    let queued: Vec<_> = (0..10).map(|_| exec.spawn(far, |_| ())).collect();
    let timer = exec.spawn_at(far, Opts::new(far), |_| ());
    let report = exec.shutdown(Shutdown::CancelAll);
    assert_eq!(
        (
            report.cancelled_queued,
            report.signalled_running,
            report.cancelled_timers
        ),
        (10, 1, 1)
    );
    assert!(matches!(running.join(), Err(JoinError::Shutdown)));
    assert!(
        queued
            .into_iter()
            .all(|t| matches!(t.join(), Err(JoinError::Shutdown)))
    );
    assert!(matches!(timer.join(), Err(JoinError::Shutdown)));
    // A timer set after the shutdown would never fire: it is completed at once.
    let late = exec.spawn_at(far, Opts::new(far), |_| ());
    assert!(matches!(
        late.join_timeout(Duration::from_secs(5)),
        Ok(Err(JoinError::Shutdown))
    ));
}

#[test]
fn drain_gives_up_after_its_timeout_and_cancels_the_rest() {
    let exec = Builder::new().workers(1).build().expect("executor starts");
    let far = exec.now() + Duration::from_secs(600);
    let stubborn = exec.spawn(far, |ctx| {
        while ctx.checkpoint() != Check::Cancelled {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let report = exec.shutdown(Shutdown::Drain {
        timeout: Duration::from_millis(50),
    });
    assert!(!report.drained);
    assert!(matches!(stubborn.join(), Err(JoinError::Shutdown)));
}

#[test]
fn many_submitters_every_task_runs_exactly_once_and_the_counts_add_up() {
    let exec = Builder::new().workers(2).build().expect("executor starts");
    let hits = Arc::new((0..8000).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let cancels: Vec<(usize, CancelOutcome)> = std::thread::scope(|s| {
        let submitters: Vec<_> = (0..4usize)
            .map(|t| {
                let (exec, hits) = (exec.clone(), hits.clone());
                s.spawn(move || {
                    let far = exec.now() + Duration::from_secs(600);
                    let tasks: Vec<_> = (0..2000)
                        .map(|i| {
                            let (hits, k) = (hits.clone(), t * 2000 + i);
                            exec.spawn(far + Duration::from_nanos((k % 7) as u64), move |_| {
                                hits[k].fetch_add(1, Ordering::SeqCst)
                            })
                        })
                        .collect();
                    let mut outcomes = Vec::new();
                    for (i, task) in tasks.into_iter().enumerate() {
                        if i % 10 == 0 {
                            outcomes.push((t * 2000 + i, task.cancel()));
                        } else {
                            task.join().expect("ran");
                        }
                    }
                    outcomes
                })
            })
            .collect();
        submitters
            .into_iter()
            .flat_map(|h| h.join().expect("submitter"))
            .collect()
    });
    for (k, outcome) in &cancels {
        if *outcome == CancelOutcome::Removed {
            assert_eq!(
                hits[*k].load(Ordering::SeqCst),
                0,
                "task {k} was removed yet ran"
            );
        }
    }
    let report = exec.shutdown(Shutdown::Drain { timeout: JOIN });
    assert!(report.drained);
    assert!(
        hits.iter().all(|h| h.load(Ordering::SeqCst) <= 1),
        "no task ran twice"
    );
    let ran = hits
        .iter()
        .filter(|h| h.load(Ordering::SeqCst) == 1)
        .count() as u64;
    let s = report.stats;
    assert_eq!(s.submitted, 8000);
    assert_eq!(s.completed + s.cancelled, 8000, "{s:?}");
    // A task cancelled while it ran has run (its hit is counted) but ends Cancelled, so the
    // completed count is at most the tasks that ran and at least those never cancelled.
    assert!(
        s.completed <= ran && s.completed >= 7200,
        "{s:?}, ran {ran}"
    );
    assert!(s.cancelled <= 800, "{s:?}");
}

/// Yields once, after being told that shutdown has begun, then finishes.
struct YieldOnceLate {
    started: Option<mpsc::Sender<()>>,
    go: mpsc::Receiver<()>,
    yielded: bool,
}

impl Resumable for YieldOnceLate {
    type Output = &'static str;
    fn step(&mut self, _ctx: &Ctx<'_>) -> Step<&'static str> {
        if let Some(tx) = self.started.take() {
            tx.send(()).expect("test alive");
        }
        if !self.yielded {
            self.yielded = true;
            self.go.recv().expect("test alive");
            return Step::Yield;
        }
        Step::Done("finished")
    }
}

#[test]
fn a_task_that_yields_during_a_draining_shutdown_still_runs_to_the_end() {
    // Two workers: the second runs the probes while the first holds the yielding task.
    let exec = Arc::new(Builder::new().workers(2).build().expect("executor starts"));
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let job = YieldOnceLate {
        started: Some(started_tx),
        go: go_rx,
        yielded: false,
    };
    let task = exec.spawn_resumable(Opts::new(exec.now() + Duration::from_secs(60)), job);
    started_rx.recv().expect("task started");
    let e = exec.clone();
    let shut = std::thread::spawn(move || {
        e.shutdown(Shutdown::Drain {
            timeout: Duration::from_secs(30),
        })
    });
    // Shutdown has begun once new work is refused.
    while exec
        .spawn(exec.now() + Duration::from_secs(60), |_| ())
        .join()
        .is_ok()
    {
        std::thread::yield_now();
    }
    go_tx.send(()).expect("task alive");
    assert_eq!(
        task.join()
            .expect("a task admitted before shutdown is drained, not dropped"),
        "finished"
    );
    assert!(shut.join().expect("shutdown thread").drained);
}

#[test]
fn cancelling_while_another_thread_moves_the_deadline_leaves_nothing_queued() {
    let (exec, _clock) = manual(1);
    let gate = block_worker(&exec);
    for _round in 0..10 {
        let base = exec.now() + Duration::from_secs(60);
        let tasks: Arc<Vec<_>> = Arc::new((0..1000).map(|_| exec.spawn(base, |_| ())).collect());
        // Both threads meet before each task, so the two calls on it really race.
        let step = Arc::new(AtomicUsize::new(0));
        let (movers, mover_step) = (tasks.clone(), step.clone());
        let mover = std::thread::spawn(move || {
            for (i, t) in movers.iter().enumerate() {
                while mover_step.load(Ordering::Acquire) < 2 * i + 1 {
                    std::hint::spin_loop();
                }
                t.set_deadline(base + Duration::from_millis(i as u64 + 1));
                mover_step.fetch_add(1, Ordering::AcqRel);
            }
        });
        for (i, t) in tasks.iter().enumerate() {
            step.fetch_add(1, Ordering::AcqRel);
            assert_ne!(t.cancel(), CancelOutcome::AlreadyFinished);
            while step.load(Ordering::Acquire) < 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
        mover.join().expect("mover");
        assert_eq!(
            exec.stats().queued,
            0,
            "every cancelled task left the queue, whichever deadline it had by then"
        );
    }
    drop(gate);
}

#[test]
fn a_task_handle_outlives_its_executor_and_another_executor_is_not_touched() {
    let (exec, _clock) = manual(1);
    let gate = block_worker(&exec);
    let far = exec.now() + Duration::from_secs(60);
    let queued = exec.spawn(far, |_| ());
    let (other, _other_clock) = manual(1);
    let other_gate = block_worker(&other);
    let neighbour = other.spawn(other.now() + Duration::from_secs(60), |_| ());
    // Dropping the last handle cancels the queue, then waits for the blocked worker; the
    // gate opens only once the queued task has been failed, so it cannot run first.
    let dropper = std::thread::spawn(move || drop(exec));
    let limit = Instant::now() + JOIN;
    while !queued.is_finished() && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(gate);
    dropper.join().expect("executor dropped");
    // The executor is gone: its queued task ended with Shutdown, and the handle can still
    // be asked, without reaching any other executor.
    assert!(queued.is_finished());
    assert!(!queued.set_deadline(far + Duration::from_secs(1)));
    assert_eq!(queued.cancel(), CancelOutcome::AlreadyFinished);
    assert!(matches!(queued.join(), Err(JoinError::Shutdown)));
    assert!(
        !neighbour.is_finished(),
        "the other executor's task is still queued"
    );
    assert_eq!(neighbour.cancel(), CancelOutcome::Removed);
    assert_eq!(
        other.stats().queued,
        0,
        "the cancel reached the neighbour's own executor and took the task off its queue"
    );
    drop(other_gate);
    assert!(matches!(neighbour.join(), Err(JoinError::Cancelled)));
}

/// Counts its drops.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn results_of_detached_tasks_are_freed_once_the_pool_goes_idle() {
    let exec = Builder::new().workers(2).build().expect("executor starts");
    let (ran, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let far = exec.now() + Duration::from_secs(600);
    for _ in 0..5000 {
        let (ran, dropped) = (ran.clone(), dropped.clone());
        // Detached: the handle is dropped at once, so the worker holds the last reference.
        drop(exec.spawn(far, move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
            Dropped(dropped)
        }));
    }
    let limit = Instant::now() + JOIN;
    while dropped.load(Ordering::SeqCst) < 5000 && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 5000);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        5000,
        "every result is freed without another spawn or a shutdown"
    );
}

/// Work-conserving: while one worker runs a task that waits for a later one, the other
/// worker takes the later one, also when it was parked and the first worker was only
/// searching when the later task arrived (the submitter then counts on the searcher).
#[test]
fn a_free_worker_takes_a_task_that_a_busy_one_waits_for() {
    let exec = Builder::new().workers(2).build().expect("executor starts");
    for round in 0..300 {
        // Let both workers park, then run one short task: the worker that ran it is
        // searching for more (counted idle, not parked) when the next two arrive.
        std::thread::sleep(Duration::from_micros(300));
        let far = exec.now() + Duration::from_secs(600);
        exec.spawn(far, |_| ()).join().expect("short task ran");
        let (tx, rx) = mpsc::channel::<()>();
        let waiter = exec.spawn(far, move |_| {
            rx.recv_timeout(Duration::from_secs(5)).is_ok()
        });
        let sender = exec.spawn(far + Duration::from_secs(1), move |_| tx.send(()).is_ok());
        assert!(
            waiter.join().expect("waiter ran"),
            "round {round}: the task it waited for never ran on the free worker"
        );
        assert!(sender.join().expect("sender ran"));
    }
}
