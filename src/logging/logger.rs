//! The logger: configuration, the hot-path `emit`, the guard, flushing and statistics.
//!
//! Invariants:
//! - `emit` touches only the calling thread's own ring and its own counters: no lock, no
//!   allocation and no syscall, except the first record of a thread (which registers its ring)
//!   and the `Block` overflow policy's wait (which yields and wakes the worker).
//! - Accounting: `emitted` counts every record passed to `emit` after the level check;
//!   each is either written by the worker or counted in `dropped`, so once the producers are
//!   quiet and a flush has returned, `emitted == written + dropped` exactly.
//! - A `Shared` is never freed while a logger handle or the global slot can reach it.

use super::codec;
use super::format::Format;
use super::record::{Callsite, Level, LevelFilter, Value};
use super::ring::{Producer, Ring};
use super::worker;
use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where a sink writes.
pub enum SinkTarget {
    /// stderr, shared with progress bars (see [`super::progress_bar`]).
    Stderr,
    /// A file, created if missing and appended to.
    File(PathBuf),
    /// Any writer (tests, pipes).
    Writer(Box<dyn Write + Send>),
}

/// One output of the logger: where, in which format, and which levels.
pub struct Sink {
    pub target: SinkTarget,
    pub format: Format,
    pub filter: LevelFilter,
}

impl Sink {
    /// JSON lines appended to `path`.
    pub fn json_file(path: impl Into<PathBuf>, filter: LevelFilter) -> Sink {
        Sink {
            target: SinkTarget::File(path.into()),
            format: Format::Json,
            filter,
        }
    }

    /// Human text on stderr, coloured when stderr is a terminal (and neither `NO_COLOR` nor
    /// `TERM=dumb` says otherwise).
    pub fn stderr_text(filter: LevelFilter) -> Sink {
        Sink {
            target: SinkTarget::Stderr,
            format: Format::Text {
                color: super::console::stderr_color(),
            },
            filter,
        }
    }
}

/// What to do when a thread's ring is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the new record and count it; the worker writes one "log records dropped" record
    /// with the count once it has drained that ring.
    DropNewest,
    /// Spin, then yield, for at most `max_wait`; then drop and count. Never blocks forever:
    /// once a wait has timed out, the thread's records are dropped (and counted) without
    /// waiting until one fits again, so a stuck sink costs one `max_wait` per stall, not one
    /// per record.
    Block { max_wait: Duration },
}

/// Logger configuration. `Config::default()` logs nothing until sinks are added.
pub struct Config {
    pub sinks: Vec<Sink>,
    /// Ring size per thread in bytes (rounded up to a power of two). Size it for the peak rate
    /// times the worst worker stall: 100 k records/s × 50 ms ≈ 5,000 records ≈ 0.5 MiB.
    pub ring_bytes_per_thread: usize,
    /// Longest copied string or byte-string value; longer ones are cut.
    pub max_str_bytes: usize,
    pub overflow: Overflow,
    /// How long the worker sleeps when every ring is empty.
    pub idle_sleep: Duration,
    /// Records younger than this are left for the next pass so that records of other threads
    /// with earlier timestamps can be merged in before them.
    pub merge_grace: Duration,
    /// How long dropping the guard waits for the worker to drain.
    pub shutdown_timeout: Duration,
    /// Flush the global logger from a panic hook (only for [`super::init`]).
    pub install_panic_hook: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sinks: Vec::new(),
            ring_bytes_per_thread: 1 << 20,
            max_str_bytes: 1024,
            overflow: Overflow::DropNewest,
            idle_sleep: Duration::from_millis(1),
            merge_grace: Duration::from_micros(100),
            shutdown_timeout: Duration::from_secs(5),
            install_panic_hook: true,
        }
    }
}

/// Errors from starting a logger.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot open log file {path}: {source}")]
    OpenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the logging worker thread: {0}")]
    SpawnWorker(std::io::Error),
    #[error("a global logger is already installed; drop its guard first")]
    AlreadyInstalled,
    #[error(
        "ring_bytes_per_thread must be at least {needed} bytes: room for 4 records of 8 strings of max_str_bytes"
    )]
    RingTooSmall { needed: usize },
}

/// `flush` gave up before the worker caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("log flush timed out after {0:?}")]
pub struct FlushTimeout(pub Duration);

/// Counters of a logger (see the accounting invariant in the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub emitted: u64,
    pub written: u64,
    pub dropped: u64,
    /// Largest fill of any ring, in bytes, seen right after a record was committed.
    pub max_ring_fill_bytes: usize,
    /// Number of rings registered so far (one per thread that logged).
    pub rings: usize,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Shared {
    id: u64,
    filter: AtomicU8,
    pub(crate) ring_bytes: usize,
    pub(crate) max_str: usize,
    overflow: Overflow,
    pub(crate) registry: Mutex<Vec<Arc<Ring>>>,
    pub(crate) registry_gen: AtomicU64,
    pub(crate) written: AtomicU64,
    /// Counters of rings whose thread exited and which the worker retired.
    pub(crate) retired_emitted: AtomicU64,
    pub(crate) retired_dropped: AtomicU64,
    /// Records that could not reach a ring (logging from a thread-local destructor, or from
    /// inside a value's `Display` while the ring was busy). Counted as emitted and dropped.
    lost: AtomicU64,
    pub(crate) flush_requested: AtomicU64,
    pub(crate) flush_done: Mutex<u64>,
    pub(crate) flush_cv: Condvar,
    pub(crate) stop: AtomicBool,
    pub(crate) worker: Mutex<Option<std::thread::Thread>>,
}

/// This thread's producers, one per logger it has logged to: the first inline (almost always
/// the only one, found without following a pointer), the others in a vector.
struct Producers {
    first: Option<(u64, Producer)>,
    more: Vec<(u64, Producer)>,
}

thread_local! {
    static PRODUCERS: RefCell<Producers> = const {
        RefCell::new(Producers { first: None, more: Vec::new() })
    };
}

/// A cheap, cloneable handle for logging to one logger instance.
#[derive(Clone)]
pub struct Logger {
    pub(crate) shared: Arc<Shared>,
}

impl Logger {
    /// Whether records at `level` pass the logger's filter (one relaxed load).
    #[inline(always)]
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 >= self.shared.filter.load(Ordering::Relaxed)
    }

    /// Copies a record into this thread's ring. Prefer the macros, which check the level first.
    #[inline]
    pub fn emit(&self, cs: &'static Callsite, values: &[Value<'_>]) {
        self.shared.emit(cs, values);
    }
}

impl Shared {
    #[inline]
    pub(crate) fn emit(&self, cs: &'static Callsite, values: &[Value<'_>]) {
        let ok = PRODUCERS.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut producers) => {
                let producer = self.producer(&mut producers);
                self.write(producer, cs, values);
                true
            }
            Err(_) => false,
        });
        if ok != Ok(true) {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn producer<'p>(&self, producers: &'p mut Producers) -> &'p mut Producer {
        if producers
            .first
            .as_ref()
            .is_some_and(|(id, _)| *id == self.id)
        {
            return match producers.first.as_mut() {
                Some((_, p)) => p,
                None => unreachable!("checked just above"),
            };
        }
        self.other_producer(producers)
    }

    #[cold]
    fn other_producer<'p>(&self, producers: &'p mut Producers) -> &'p mut Producer {
        if producers.first.is_none() {
            let p = self.register();
            return &mut producers.first.insert((self.id, p)).1;
        }
        match producers.more.iter().position(|(id, _)| *id == self.id) {
            Some(i) => &mut producers.more[i].1,
            None => {
                let p = self.register();
                producers.more.push((self.id, p));
                let last = producers.more.len() - 1;
                &mut producers.more[last].1
            }
        }
    }

    /// A new ring for this thread, in the registry the worker drains.
    fn register(&self) -> Producer {
        let name = std::thread::current()
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{:?}", std::thread::current().id()));
        let ring = Arc::new(Ring::new(self.ring_bytes, name));
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ring.clone());
        self.registry_gen.fetch_add(1, Ordering::Release);
        Producer::new(ring)
    }

    #[inline(always)]
    fn write(&self, producer: &mut Producer, cs: &'static Callsite, values: &[Value<'_>]) {
        // Reading the TSC is most of a record's cost: about 8.5 of 11.5 ns on this machine.
        let ts = super::clock::ticks();
        let need = codec::bound(values, self.max_str);
        if need * 4 > producer.capacity() {
            producer.count_drop();
            return;
        }
        if let Some(span) = producer.reserve(need) {
            let len = codec::encode(span, ts, cs, values, self.max_str);
            producer.commit(len);
            producer.stalled = false;
            return;
        }
        self.write_slow(producer, ts, cs, values, need);
    }

    #[cold]
    fn write_slow(
        &self,
        producer: &mut Producer,
        ts: u64,
        cs: &'static Callsite,
        values: &[Value<'_>],
        need: usize,
    ) {
        let Overflow::Block { max_wait } = self.overflow else {
            producer.count_drop();
            return;
        };
        if producer.stalled {
            producer.count_drop();
            return;
        }
        self.wake_worker();
        let give_up = Instant::now() + max_wait;
        let mut spins = 0u32;
        loop {
            if let Some(span) = producer.reserve(need) {
                let len = codec::encode(span, ts, cs, values, self.max_str);
                producer.commit(len);
                return;
            }
            if Instant::now() >= give_up {
                producer.stalled = true;
                producer.count_drop();
                return;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    pub(crate) fn wake_worker(&self) {
        if let Some(t) = self
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            t.unpark();
        }
    }

    pub(crate) fn stats(&self) -> LogStats {
        let rings = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let lost = self.lost.load(Ordering::Relaxed);
        let mut s = LogStats {
            emitted: self.retired_emitted.load(Ordering::Acquire) + lost,
            dropped: self.retired_dropped.load(Ordering::Acquire) + lost,
            written: self.written.load(Ordering::Acquire),
            max_ring_fill_bytes: 0,
            rings: rings.len(),
        };
        for r in rings.iter() {
            s.emitted += r.emitted.load(Ordering::Acquire);
            s.dropped += r.dropped.load(Ordering::Acquire);
            s.max_ring_fill_bytes = s
                .max_ring_fill_bytes
                .max(r.max_fill.load(Ordering::Relaxed));
        }
        s
    }

    /// Asks the worker to write everything emitted before this call and waits for it.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), FlushTimeout> {
        let ticket = self.flush_requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake_worker();
        let deadline = Instant::now() + timeout;
        let mut done = self.flush_done.lock().unwrap_or_else(|p| p.into_inner());
        while *done < ticket {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(FlushTimeout(timeout));
            }
            done = self
                .flush_cv
                .wait_timeout(done, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }
}

/// Keeps a logger's worker running. Dropping it writes everything emitted before the drop
/// (waiting at most `shutdown_timeout`) and joins the worker.
#[must_use = "dropping the guard flushes and stops the logger"]
pub struct LogGuard {
    logger: Logger,
    worker: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
    global: bool,
}

impl LogGuard {
    /// A handle for logging to this logger directly (the macros use the global one).
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// Returns once every record emitted (by any thread) before the call has been written and
    /// the sinks flushed, or fails after `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushTimeout> {
        self.logger.shared.flush(timeout)
    }

    pub fn stats(&self) -> LogStats {
        self.logger.shared.stats()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let shared = &self.logger.shared;
        if self.global {
            super::uninstall_global(shared);
        }
        // The worker drains every ring completely before it exits on `stop`.
        let _ = shared.flush(self.shutdown_timeout);
        shared.stop.store(true, Ordering::Release);
        shared.wake_worker();
        if let Some(handle) = self.worker.take() {
            let _ = handle.join();
        }
    }
}

/// Starts a logger instance with its worker thread (not installed as the global logger).
pub fn start(cfg: Config) -> Result<LogGuard, InitError> {
    super::clock::init();
    let filter = cfg
        .sinks
        .iter()
        .map(|s| s.filter.as_u8())
        .min()
        .unwrap_or(u8::MAX);
    let ring_cap = cfg.ring_bytes_per_thread.max(4096).next_power_of_two();
    let needed = 4 * (codec::HEADER + 8 * (5 + cfg.max_str_bytes));
    if needed > ring_cap {
        return Err(InitError::RingTooSmall { needed });
    }
    let sinks = worker::open_sinks(cfg.sinks)?;
    let shared = Arc::new(Shared {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        filter: AtomicU8::new(filter),
        ring_bytes: cfg.ring_bytes_per_thread,
        max_str: cfg.max_str_bytes,
        overflow: cfg.overflow,
        registry: Mutex::new(Vec::new()),
        registry_gen: AtomicU64::new(0),
        written: AtomicU64::new(0),
        retired_emitted: AtomicU64::new(0),
        retired_dropped: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        flush_requested: AtomicU64::new(0),
        flush_done: Mutex::new(0),
        flush_cv: Condvar::new(),
        stop: AtomicBool::new(false),
        worker: Mutex::new(None),
    });
    let opts = worker::Options {
        idle_sleep: cfg.idle_sleep,
        merge_grace: cfg.merge_grace,
    };
    let handle = worker::spawn(shared.clone(), sinks, opts).map_err(InitError::SpawnWorker)?;
    *shared.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.thread().clone());
    Ok(LogGuard {
        logger: Logger { shared },
        worker: Some(handle),
        shutdown_timeout: cfg.shutdown_timeout,
        global: false,
    })
}

impl LogGuard {
    pub(crate) fn mark_global(&mut self) {
        self.global = true;
    }
}
