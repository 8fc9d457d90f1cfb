//! The timer thread and periodic tasks.
//!
//! Invariants:
//! - The timer thread never runs user code: at a release time it only moves a job into the
//!   ready queue (or completes a cancelled one).
//! - It sleeps until the earliest release and is woken when an earlier release is inserted,
//!   on shutdown, and whenever a manual clock is advanced.
//! - Runs of one periodic task never overlap: the next release is computed only when a run
//!   ends. Fixed-rate releases stay on the grid `first + k·period` (no drift); releases missed
//!   during an overrun are coalesced into one immediate run and counted as skipped.

use super::executor::{Ctx, Executor, Inner, Outcome, error_for};
use super::task::{Body, CancelToken, JoinError, OnMiss, Progress, Slot};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) enum TimerItem {
    Job(Arc<super::task::Job>),
    Periodic(Arc<PeriodicState>),
}

#[derive(Default)]
pub(crate) struct Timers {
    /// Keyed by (release in executor ns, sequence).
    pub(crate) map: BTreeMap<(u64, u64), TimerItem>,
    stop: bool,
    /// Set by `cancel_timers`: nothing added later will ever be released, so it is completed
    /// with `Shutdown` at once instead of waiting (and its join hanging) for ever.
    closed: bool,
}

pub(crate) fn spawn(inner: Arc<Inner>, name: &str) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("{name}-timer"))
        .spawn(move || {
            tighten_timer_slack();
            inner.timer_main();
        })
}

/// Linux gives threads 50 µs of timer slack by default; the timer thread wants 1 ns.
fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

impl Inner {
    fn timer_main(&self) {
        let mut t = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if t.stop {
                return;
            }
            let now = self.now_ns();
            let mut due = Vec::new();
            while let Some(entry) = t.map.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                drop(t);
                due.into_iter().for_each(|item| self.release(item));
                t = self.timers.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let next = t.map.first_key_value().map(|(k, _)| k.0);
            let wait = next.and_then(|n| self.clock.real_wait(self.instant(n)));
            t = match (next, wait) {
                (Some(_), Some(d)) => {
                    self.timer_cv
                        .wait_timeout(t, d)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                _ => self.timer_cv.wait(t).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn release(&self, item: TimerItem) {
        match item {
            TimerItem::Job(job) => self.submit(job),
            TimerItem::Periodic(p) => p.release(self),
        }
    }

    pub(crate) fn add_timer(&self, at: u64, seq: u64, item: TimerItem) {
        let mut t = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        if t.closed {
            drop(t);
            return self.shut(item);
        }
        let earliest = t.map.first_key_value().is_none_or(|(k, _)| (at, seq) < *k);
        t.map.insert((at, seq), item);
        if earliest {
            self.timer_cv.notify_one();
        }
    }

    pub(crate) fn wake_timer(&self) {
        let _t = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        self.timer_cv.notify_all();
    }

    /// Completes everything still waiting for its release with `Shutdown`; returns how many.
    pub(crate) fn cancel_timers(&self) -> usize {
        let items = {
            let mut t = self.timers.lock().unwrap_or_else(|p| p.into_inner());
            t.closed = true;
            std::mem::take(&mut t.map)
        };
        let n = items.len();
        items.into_values().for_each(|item| self.shut(item));
        n
    }

    /// Completes a timer item that will never be released with `Shutdown`.
    fn shut(&self, item: TimerItem) {
        match item {
            TimerItem::Job(job) => {
                self.fail_unstarted(&job, JoinError::Shutdown);
            }
            TimerItem::Periodic(p) => p.finish(Err(JoinError::Shutdown)),
        }
    }

    pub(crate) fn stop_timer(&self) {
        self.timers.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.timer_cv.notify_all();
    }
}

/// When a periodic task is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodMode {
    /// At `first + k·period`; an overrun coalesces the missed releases into one.
    FixedRate,
    /// `period` after the previous run ends.
    FixedDelay,
}

/// The schedule of a periodic task.
#[derive(Clone, Copy, Debug)]
pub struct Periodic {
    pub first_release: Instant,
    pub period: Duration,
    /// Each run's deadline is its release plus this.
    pub relative_deadline: Duration,
    pub mode: PeriodMode,
    pub on_miss: OnMiss,
}

impl Periodic {
    /// Fixed-rate from `first` every `period`, each run due within its period, firm.
    pub fn every(first: Instant, period: Duration) -> Periodic {
        Periodic {
            first_release: first,
            period,
            relative_deadline: period,
            mode: PeriodMode::FixedRate,
            on_miss: OnMiss::Firm,
        }
    }
}

/// Whether a periodic task wants more runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

type PeriodicFn = Box<dyn FnMut(&Ctx<'_>) -> Flow + Send>;

pub(crate) struct PeriodicState {
    seq: u64,
    period: u64,
    relative_deadline: u64,
    mode: PeriodMode,
    on_miss: OnMiss,
    f: Mutex<PeriodicFn>,
    token: CancelToken,
    /// Release time of the pending or running instance (executor ns).
    current_release: AtomicU64,
    runs: AtomicU64,
    skipped: AtomicU64,
    expired: AtomicU64,
    outcome: Arc<Slot<()>>,
    exec: Weak<Inner>,
}

impl PeriodicState {
    /// Turns the release at `current_release` into a job in the ready queue.
    fn release(self: &Arc<Self>, inner: &Inner) {
        if self.token.is_cancelled() {
            self.finish(Err(JoinError::Cancelled));
            return;
        }
        let at = self.current_release.load(Ordering::Acquire);
        let body = PeriodicRun {
            state: self.clone(),
        };
        let job = inner.new_job_raw(
            at.saturating_add(self.relative_deadline),
            self.on_miss,
            Some(self.token.clone()),
            body,
        );
        inner.submit(job);
    }

    fn finish(&self, r: Result<(), JoinError>) {
        self.outcome.fill(r);
    }

    /// Schedules the release after the run released at `current_release` ended at `now`.
    fn schedule_next(self: &Arc<Self>, inner: &Inner) {
        let now = inner.now_ns();
        let prev = self.current_release.load(Ordering::Acquire);
        let next = match self.mode {
            PeriodMode::FixedDelay => now.saturating_add(self.period),
            PeriodMode::FixedRate => {
                let missed = now.saturating_sub(prev) / self.period.max(1);
                if missed == 0 {
                    prev + self.period
                } else {
                    self.skipped.fetch_add(missed - 1, Ordering::Relaxed);
                    prev + missed * self.period
                }
            }
        };
        self.current_release.store(next, Ordering::Release);
        if next <= now {
            self.release(inner);
        } else {
            inner.add_timer(next, self.seq, TimerItem::Periodic(self.clone()));
            // `cancel` may have looked for the previous release between the store above and
            // the insert; whoever removes the entry finishes the task, exactly once.
            if self.token.is_cancelled() {
                let removed = inner
                    .timers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .map
                    .remove(&(next, self.seq));
                if removed.is_some() {
                    self.finish(Err(JoinError::Cancelled));
                }
            }
        }
    }
}

/// One run of a periodic task.
struct PeriodicRun {
    state: Arc<PeriodicState>,
}

impl Body for PeriodicRun {
    fn run(&mut self, ctx: &Ctx<'_>) -> Progress {
        let s = &self.state;
        let r = {
            let mut f = s.f.lock().unwrap_or_else(|p| p.into_inner());
            catch_unwind(AssertUnwindSafe(|| f(ctx)))
        };
        s.runs.fetch_add(1, Ordering::Relaxed);
        let outcome = ctx.outcome();
        match (r, error_for(outcome)) {
            (Err(p), _) => {
                crate::warn!("periodic task panicked, no further runs", task = s.seq);
                s.finish(Err(JoinError::Panicked(p)));
                return Progress::Done(Outcome::Panicked);
            }
            (Ok(_), Some(JoinError::Expired)) => {
                s.expired.fetch_add(1, Ordering::Relaxed);
                s.schedule_next(ctx.inner);
            }
            (Ok(_), Some(err)) => s.finish(Err(err)),
            (Ok(Flow::Stop), None) => s.finish(Ok(())),
            (Ok(Flow::Continue), None) => s.schedule_next(ctx.inner),
        }
        Progress::Done(outcome)
    }

    fn fail(&mut self, err: JoinError) {
        let s = &self.state;
        match err {
            JoinError::Expired => {
                s.expired.fetch_add(1, Ordering::Relaxed);
                if let Some(inner) = s.exec.upgrade() {
                    s.schedule_next(&inner);
                }
            }
            other => s.finish(Err(other)),
        }
    }

    fn outcome(&mut self) -> *mut () {
        std::ptr::null_mut()
    }
}

/// A handle on a periodic task.
pub struct PeriodicTask {
    state: Arc<PeriodicState>,
}

impl PeriodicTask {
    /// Stops all future releases; a running instance sees `Cancelled` at its checkpoints.
    pub fn cancel(&self) {
        let s = &self.state;
        s.token.cancel();
        if let Some(inner) = s.exec.upgrade() {
            let key = (s.current_release.load(Ordering::Acquire), s.seq);
            let removed = inner
                .timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .map
                .remove(&key);
            if removed.is_some() {
                s.finish(Err(JoinError::Cancelled));
            }
        }
    }

    /// Completed runs.
    pub fn runs(&self) -> u64 {
        self.state.runs.load(Ordering::Relaxed)
    }

    /// Releases coalesced away by fixed-rate overruns.
    pub fn skipped(&self) -> u64 {
        self.state.skipped.load(Ordering::Relaxed)
    }

    /// Firm runs that were not started (or were cut) because their deadline passed.
    pub fn expired(&self) -> u64 {
        self.state.expired.load(Ordering::Relaxed)
    }

    pub fn is_finished(&self) -> bool {
        self.state.outcome.is_filled()
    }

    /// Waits until the task stops: `Ok` after `Flow::Stop`, else why it stopped.
    pub fn join(self) -> Result<(), JoinError> {
        self.state
            .outcome
            .wait(None)
            .unwrap_or(Err(JoinError::Shutdown))
    }
}

impl Executor {
    /// Runs `f` on the schedule `spec` until it returns `Flow::Stop`, is cancelled or panics.
    pub fn spawn_periodic<F>(&self, spec: Periodic, f: F) -> PeriodicTask
    where
        F: FnMut(&Ctx<'_>) -> Flow + Send + 'static,
    {
        let inner = &self.inner;
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let state = Arc::new(PeriodicState {
            seq: inner.new_periodic_seq(),
            period: ns(spec.period).max(1),
            relative_deadline: ns(spec.relative_deadline),
            mode: spec.mode,
            on_miss: spec.on_miss,
            f: Mutex::new(Box::new(f)),
            token: CancelToken::new(),
            current_release: AtomicU64::new(inner.ns(spec.first_release)),
            runs: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            outcome: Slot::new(),
            exec: Arc::downgrade(inner),
        });
        let at = state.current_release.load(Ordering::Acquire);
        if at <= inner.now_ns() {
            state.release(inner);
        } else {
            inner.add_timer(at, state.seq, TimerItem::Periodic(state.clone()));
        }
        PeriodicTask { state }
    }
}
