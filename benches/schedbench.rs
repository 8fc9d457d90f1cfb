//! Scheduler benchmark (S1, S2, S4, S5, S7 of research/log-sched.md §6): bitrot::sched against
//! rayon's `ThreadPool::spawn` and a crossbeam-channel FIFO pool, 2 workers each, in one run.
//!
//! - dispatch: N no-op tasks submitted back to back from one thread; ns per task end to end,
//!   and the process's CPU time per task (all threads, spinning included).
//! - spawn→start: one task in flight, hot (back to back) and idle (200 µs gap, workers park).
//! - preemption: both workers run resumable tasks that checkpoint every q; an urgent task is
//!   submitted; submit→start of the urgent task.
//! - timer: `spawn_at(now + 1 ms)` lateness, against `thread::sleep(1 ms)`.
//! - miss ratio: Poisson arrivals, exponential service (mean 1 ms, spinning), deadlines
//!   U[2, 20] ms, load 0.8 and 1.2, against a FIFO pool (run late, and drop-expired).
//!
//! Run: `cargo bench --bench schedbench` (`BENCH_N=200000` for a quicker run;
//! `BENCH_ONLY=dispatch` for the first table alone; `BENCH_POOL=bitrot|rayon|crossbeam` for one
//! pool alone, to profile it).

mod common;

use bitrot::sched::{Builder, Check, Ctx, Executor, OnMiss, Opts, Resumable, Step};
use common::{Row, env_n, hist, loadavg, ns, pcts, print_table};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WORKERS: usize = 2;
type Job = Box<dyn FnOnce() + Send>;

/// The simplest fast FIFO pool: an unbounded crossbeam channel drained by `WORKERS` threads.
struct FifoPool {
    tx: Option<crossbeam_channel::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl FifoPool {
    fn new() -> FifoPool {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let threads = (0..WORKERS)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || rx.iter().for_each(|job| job()))
            })
            .collect();
        FifoPool {
            tx: Some(tx),
            threads,
        }
    }
    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.tx
            .as_ref()
            .expect("pool open")
            .send(Box::new(f))
            .expect("workers alive");
    }
}

impl Drop for FifoPool {
    fn drop(&mut self) {
        self.tx = None;
        self.threads
            .drain(..)
            .for_each(|t| t.join().expect("worker"));
    }
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("rayon pool")
}

fn bitrot_pool() -> Executor {
    Builder::new().workers(WORKERS).build().expect("executor")
}

/// A pool under test, as a spawn function.
type Spawn<'a> = &'a dyn Fn(Box<dyn FnOnce() + Send>);

fn with_pools(mut f: impl FnMut(&str, Spawn<'_>)) {
    // BENCH_POOL=bitrot|rayon|crossbeam measures one pool alone (for profiling).
    let only = std::env::var("BENCH_POOL").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if wanted("bitrot") {
        let exec = bitrot_pool();
        let far = exec.now() + Duration::from_secs(3600);
        f("bitrot::sched", &|job| {
            exec.spawn(far, move |_| job());
        });
    }
    if wanted("rayon") {
        let pool = rayon_pool();
        f("rayon spawn", &|job| pool.spawn(job));
    }
    if wanted("crossbeam") {
        let pool = FifoPool::new();
        f("crossbeam FIFO pool", &|job| pool.spawn(job));
    }
}

/// Submits `n` no-op tasks and waits for them all: (submit ns/task, end-to-end ns/task,
/// process CPU ns/task). CPU time counts every thread's work, spinning included; it moves less
/// than wall time when other work on the machine takes cores away.
fn dispatch(n: u64, spawn: Spawn<'_>) -> (f64, f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = process_cpu_ns();
    let t0 = Instant::now();
    for _ in 0..n {
        let d = done.clone();
        spawn(Box::new(move || {
            d.fetch_add(1, Ordering::Relaxed);
        }));
    }
    let submitted = t0.elapsed();
    while done.load(Ordering::Acquire) < n {
        std::thread::yield_now();
    }
    let total = t0.elapsed();
    let cpu = process_cpu_ns().saturating_sub(cpu0);
    let per = |ns: u64| ns as f64 / n as f64;
    (per(ns(submitted)), per(ns(total)), per(cpu))
}

/// User plus system CPU time of the whole process, in nanoseconds.
fn process_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn spawn_to_start(n: u64, gap: Duration, spawn: Spawn<'_>) -> Histogram<u64> {
    let mut h = hist();
    let origin = Instant::now();
    for i in 0..n + 100 {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let started = Arc::new(AtomicU64::new(0));
        let s = started.clone();
        let t0 = ns(origin.elapsed());
        spawn(Box::new(move || {
            s.store(ns(origin.elapsed()).max(1), Ordering::Release)
        }));
        let mut at;
        loop {
            at = started.load(Ordering::Acquire);
            if at != 0 {
                break;
            }
            std::hint::spin_loop();
        }
        if i >= 100 {
            h.saturating_record(at.saturating_sub(t0).max(1));
        }
    }
    h
}

/// Spins in slices of `q`, checkpointing between slices, until `stop`.
struct Spinner {
    q: Duration,
    stop: Arc<AtomicBool>,
}

impl Resumable for Spinner {
    type Output = ();
    fn step(&mut self, ctx: &Ctx<'_>) -> Step<()> {
        loop {
            let t = Instant::now();
            while t.elapsed() < self.q {
                std::hint::spin_loop();
            }
            if self.stop.load(Ordering::Relaxed) {
                return Step::Done(());
            }
            match ctx.checkpoint() {
                Check::Yield => return Step::Yield,
                Check::Cancelled => return Step::Done(()),
                Check::Continue => {}
            }
        }
    }
}

fn preemption(q: Duration, trials: u64) -> Histogram<u64> {
    let exec = bitrot_pool();
    let stop = Arc::new(AtomicBool::new(false));
    let far = exec.now() + Duration::from_secs(3600);
    let spinners: Vec<_> = (0..WORKERS)
        .map(|i| {
            let opts = Opts::new(far + Duration::from_secs(i as u64)).on_miss(OnMiss::RunLate);
            exec.spawn_resumable(
                opts,
                Spinner {
                    q,
                    stop: stop.clone(),
                },
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    let mut h = hist();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..trials {
        rng = splitmix(rng);
        std::thread::sleep(q.mul_f64(1.0 + (rng % 1000) as f64 / 1000.0));
        let t0 = Instant::now();
        let task = exec.spawn(exec.now() + Duration::from_secs(1), move |_| t0.elapsed());
        h.saturating_record(ns(task.join().expect("urgent ran")).max(1));
    }
    stop.store(true, Ordering::Relaxed);
    spinners
        .into_iter()
        .for_each(|t| t.join().expect("spinner"));
    h
}

fn timer_lateness(n: u64) -> (Histogram<u64>, Histogram<u64>) {
    let exec = bitrot_pool();
    let mut sched = hist();
    for _ in 0..n {
        let release = exec.now() + Duration::from_millis(1);
        let t = exec.spawn_at(
            release,
            Opts::new(release + Duration::from_secs(1)),
            move |_| Instant::now().saturating_duration_since(release),
        );
        sched.saturating_record(ns(t.join().expect("ran")).max(1));
    }
    let mut sleep = hist();
    for _ in 0..n {
        let due = Instant::now() + Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(1));
        sleep.saturating_record(ns(Instant::now().saturating_duration_since(due)).max(1));
    }
    (sched, sleep)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Workload {
    /// (arrival offset, service time, relative deadline)
    jobs: Vec<(Duration, Duration, Duration)>,
}

/// Poisson arrivals at load `rho` on `WORKERS`, exponential service with mean 1 ms, relative
/// deadlines uniform in [2, 20] ms (the simulation's model).
fn workload(n: u64, rho: f64, seed: u64) -> Workload {
    let mut s = seed;
    let mut unif = || {
        s = splitmix(s);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let lambda = rho * WORKERS as f64; // per ms
    let mut t = 0.0;
    let jobs = (0..n)
        .map(|_| {
            t += -unif().ln() / lambda;
            let c = -unif().ln();
            let d = 2.0 + 18.0 * unif();
            let ms = |x: f64| Duration::from_secs_f64(x / 1000.0);
            (ms(t), ms(c), ms(d))
        })
        .collect();
    Workload { jobs }
}

fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Replays `w`, submitting each job at its arrival time with an absolute deadline.
fn replay(w: &Workload, mut submit: impl FnMut(Instant, Duration)) {
    let t0 = Instant::now();
    for &(arrival, c, d) in &w.jobs {
        let at = t0 + arrival;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        submit(Instant::now() + d, c);
    }
}

/// A job that spins for its service time, checkpointing every 0.1 ms.
struct Work {
    left: Duration,
    deadline: Instant,
    misses: Arc<AtomicU64>,
}

impl Resumable for Work {
    type Output = ();
    fn step(&mut self, ctx: &Ctx<'_>) -> Step<()> {
        let slice = Duration::from_micros(100);
        while !self.left.is_zero() {
            let s = self.left.min(slice);
            spin_for(s);
            self.left -= s;
            match ctx.checkpoint() {
                Check::Continue => {}
                Check::Yield => return Step::Yield,
                Check::Cancelled => return Step::Done(()),
            }
        }
        if Instant::now() > self.deadline {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        Step::Done(())
    }
}

/// Misses: tasks not started or cut at their deadline (join error), plus tasks that finished
/// late.
fn miss_ratio_bitrot(w: &Workload) -> f64 {
    let exec = bitrot_pool();
    let late = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(w.jobs.len());
    replay(w, |deadline, c| {
        let job = Work {
            left: c,
            deadline,
            misses: late.clone(),
        };
        tasks.push(exec.spawn_resumable(Opts::new(deadline), job));
    });
    let failed = tasks
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    let missed = failed as u64 + late.load(Ordering::Acquire);
    100.0 * missed as f64 / w.jobs.len() as f64
}

fn miss_ratio_fifo(w: &Workload, drop_expired: bool) -> f64 {
    let pool = FifoPool::new();
    let misses = Arc::new(AtomicU64::new(0));
    replay(w, |deadline, c| {
        let misses = misses.clone();
        pool.spawn(move || {
            if drop_expired && Instant::now() > deadline {
                misses.fetch_add(1, Ordering::Relaxed);
                return;
            }
            spin_for(c);
            if Instant::now() > deadline {
                misses.fetch_add(1, Ordering::Relaxed);
            }
        });
    });
    drop(pool);
    100.0 * misses.load(Ordering::Acquire) as f64 / w.jobs.len() as f64
}

fn main() {
    let n = env_n("BENCH_N", 1_000_000);
    let load_n = env_n("BENCH_LOAD_N", 10_000);
    println!(
        "# schedbench: {WORKERS} workers per pool; loadavg at start {}",
        loadavg()
    );
    let mut result = Vec::new();

    let mut rows = Vec::new();
    with_pools(|name, spawn| {
        let (submit, total, cpu) = dispatch(n, spawn);
        rows.push(Row {
            name: name.into(),
            cols: vec![
                format!("{submit:.0}"),
                format!("{total:.0}"),
                format!("{cpu:.0}"),
            ],
        });
        result.push(format!(
            "dispatch_ns_{k}={total:.0} dispatch_cpu_ns_{k}={cpu:.0}",
            k = key(name)
        ));
    });
    print_table(
        &format!("dispatch, {n} no-op tasks (loadavg {})", loadavg()),
        &[
            "pool",
            "submit ns/task",
            "end-to-end ns/task",
            "CPU ns/task",
        ],
        &rows,
    );
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "dispatch") {
        println!("\nRESULT {}", result.join(" "));
        return;
    }

    let header = ["pool", "p50 ns", "p90", "p99", "p99.9", "max"];
    for (label, gap, count) in [
        ("hot", Duration::ZERO, n / 10),
        ("idle", Duration::from_micros(200), 5_000),
    ] {
        let mut rows = Vec::new();
        with_pools(|name, spawn| {
            let h = spawn_to_start(count, gap, spawn);
            rows.push(Row {
                name: name.into(),
                cols: pcts(&h),
            });
            result.push(format!(
                "start_{label}_p50_{}={}",
                key(name),
                h.value_at_quantile(0.5)
            ));
        });
        print_table(
            &format!(
                "spawn→start, {label}, {count} tasks (loadavg {})",
                loadavg()
            ),
            &header,
            &rows,
        );
    }

    let mut rows = Vec::new();
    for q in [Duration::from_micros(50), Duration::from_millis(1)] {
        let h = preemption(
            q,
            if q < Duration::from_millis(1) {
                2000
            } else {
                500
            },
        );
        rows.push(Row {
            name: format!("bitrot q={q:?}"),
            cols: pcts(&h),
        });
        result.push(format!(
            "preempt_p99_q{}us={}",
            q.as_micros(),
            h.value_at_quantile(0.99)
        ));
    }
    print_table(
        &format!(
            "preemption: submit→start of an urgent task, both workers busy (loadavg {})",
            loadavg()
        ),
        &header,
        &rows,
    );

    let (sched, sleep) = timer_lateness(2000);
    print_table(
        &format!("timer lateness, 2000 × 1 ms (loadavg {})", loadavg()),
        &header,
        &[
            Row {
                name: "bitrot spawn_at".into(),
                cols: pcts(&sched),
            },
            Row {
                name: "thread::sleep".into(),
                cols: pcts(&sleep),
            },
        ],
    );
    result.push(format!("timer_p50_bitrot={}", sched.value_at_quantile(0.5)));
    result.push(format!("timer_p50_sleep={}", sleep.value_at_quantile(0.5)));

    let mut rows = Vec::new();
    for (rho, sim) in [
        (0.8, "FIFO 6.95, FIFO+exp 4.78, EDF coop+firm 1.02"),
        (1.2, "FIFO 99.89, FIFO+exp 22.87, EDF coop+firm 17.70"),
    ] {
        let w = workload(load_n, rho, 42);
        let b = miss_ratio_bitrot(&w);
        let f = miss_ratio_fifo(&w, false);
        let fe = miss_ratio_fifo(&w, true);
        rows.push(Row {
            name: format!("rho={rho}"),
            cols: vec![
                format!("{b:.2}"),
                format!("{f:.2}"),
                format!("{fe:.2}"),
                sim.into(),
            ],
        });
        let r = format!("{rho}").replace('.', "");
        result.push(format!("miss_pct_rho{r}_bitrot={b:.2} miss_pct_rho{r}_fifo={f:.2} miss_pct_rho{r}_fifo_exp={fe:.2}"));
    }
    print_table(
        &format!(
            "deadline-miss %, {load_n} tasks per point (loadavg {})",
            loadavg()
        ),
        &[
            "load",
            "bitrot EDF coop+firm",
            "FIFO",
            "FIFO+drop-expired",
            "simulated (§4.4)",
        ],
        &rows,
    );
    result.push(format!("loadavg={}", loadavg()));
    println!("\nRESULT {}", result.join(" "));
}

fn key(name: &str) -> &'static str {
    match name {
        "bitrot::sched" => "bitrot",
        "rayon spawn" => "rayon",
        _ => "crossbeam",
    }
}
