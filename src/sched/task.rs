//! Tasks: the shared record of one unit of work (one allocation: header, closure and outcome)
//! and the user's handle on it.
//!
//! Invariants:
//! - A job's state moves Queued → Running → (Queued again after a yield) → Done, or
//!   Queued → Cancelled. Only the thread that wins the Queued → Running (or Queued → Cancelled)
//!   compare-and-swap touches the body, so the body needs no lock.
//! - A job is finished exactly once, by that thread, after it wrote the outcome into the body;
//!   from then on only the `Task` handle touches the body, to take the outcome.

use std::any::Any;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Ctx;
use super::executor::Inner;

/// Why a task produced no value.
#[derive(Debug)]
pub enum JoinError {
    /// Cancelled before it ran, or it observed cancellation while running.
    Cancelled,
    /// A firm task whose deadline passed before it started, or while it ran.
    Expired,
    /// The task panicked; the payload is kept.
    Panicked(Box<dyn Any + Send>),
    /// The executor shut down before the task finished.
    Shutdown,
}

impl JoinError {
    /// The panic message, when the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked(p) => p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            _ => None,
        }
    }
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("task cancelled"),
            JoinError::Expired => f.write_str("task deadline passed"),
            JoinError::Panicked(_) => write!(
                f,
                "task panicked: {}",
                self.panic_message().unwrap_or("(non-string payload)")
            ),
            JoinError::Shutdown => f.write_str("executor shut down"),
        }
    }
}

impl std::error::Error for JoinError {}

/// A shareable cancellation flag. Cancelling it cancels every task spawned with it.
#[derive(Clone, Default, Debug)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What one turn of a body achieved.
pub(crate) enum Progress {
    Done(super::executor::Outcome),
    Yield,
}

/// The type-erased work of a job.
pub(crate) trait Body: Send {
    fn run(&mut self, ctx: &Ctx<'_>) -> Progress;
    /// Records an error outcome for a job that will not run (again).
    fn fail(&mut self, err: JoinError);
    /// The `Option<Result<T, JoinError>>` where the outcome is kept, for `Task<T>` to take;
    /// null for bodies that have no `Task` (periodic runs).
    fn outcome(&mut self) -> *mut ();
    /// Drops whatever user data the body still holds (its closure, an outcome nobody will
    /// take) and says whether it holds none now, so the job's memory may be freed on any
    /// thread without running user code there. Called only once no `Task` handle is left.
    fn release_user_data(&mut self) -> bool {
        false
    }
}

pub(crate) const QUEUED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const DONE: u8 = 2;
pub(crate) const CANCELLED: u8 = 3;

/// Whether a task may run after its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMiss {
    /// Soft: always runs, even late.
    RunLate,
    /// Firm (the default): not started once its deadline has passed; while running, its
    /// checkpoints report `Cancelled` after the deadline and the join result is `Expired`.
    Firm,
}

pub(crate) struct Job<B: ?Sized = dyn Body> {
    pub(crate) seq: u64,
    /// Deadline in executor nanoseconds; changed only while queued.
    pub(crate) deadline: AtomicU64,
    pub(crate) state: AtomicU8,
    pub(crate) on_miss: OnMiss,
    cancelled: AtomicBool,
    /// A shared token, given at spawn or made on demand by `Ctx::cancel_token`.
    token: OnceLock<CancelToken>,
    /// Set when a running firm task was seen past its deadline.
    pub(crate) expired: AtomicBool,
    /// Release time in executor nanoseconds while the job waits in the timer (0 otherwise).
    pub(crate) release: AtomicU64,
    /// [`FINISHED`] plus [`WAITER`] for each thread in `wait`. `finish` sets the bit with one
    /// atomic operation and takes the lock only when someone waits. Keep the header small: a
    /// job with a small closure must stay within 120 bytes, which glibc serves from its fast
    /// bins when a worker frees it (one more word made schedbench's dispatch ~30 % slower).
    finish_state: AtomicU32,
    /// Held by waiters between counting themselves and sleeping on `done`.
    lock: Mutex<()>,
    done: Condvar,
    body: UnsafeCell<B>,
}

// SAFETY: `body` is only accessed by the thread that holds the claim (won QUEUED → RUNNING or
// QUEUED → CANCELLED) until `finish`, and after `finish` only by the single `Task` handle.
unsafe impl<B: ?Sized + Send> Sync for Job<B> {}

impl<B: Body> Job<B> {
    pub(crate) fn new(
        seq: u64,
        deadline: u64,
        on_miss: OnMiss,
        token: Option<CancelToken>,
        body: B,
    ) -> Job<B> {
        let cell = OnceLock::new();
        if let Some(t) = token {
            let _ = cell.set(t);
        }
        Job {
            seq,
            deadline: AtomicU64::new(deadline),
            state: AtomicU8::new(QUEUED),
            on_miss,
            cancelled: AtomicBool::new(false),
            token: cell,
            expired: AtomicBool::new(false),
            release: AtomicU64::new(0),
            finish_state: AtomicU32::new(0),
            lock: Mutex::new(()),
            done: Condvar::new(),
            body: UnsafeCell::new(body),
        }
    }
}

impl Job {
    /// Claims the job for running; true for exactly one caller per queued period.
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Claims a queued job so that it never runs; true if this call did it.
    pub(crate) fn claim_cancel(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The body, through the only reference to the job (no `Task`, no queue holds it).
    pub(crate) fn body_mut(&mut self) -> &mut dyn Body {
        self.body.get_mut()
    }

    /// The body, for the thread that holds the claim.
    ///
    /// # Safety
    /// The caller must hold the claim and must not have called `finish`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn body(&self) -> &mut dyn Body {
        // SAFETY: exclusive by the claim protocol in the module docs.
        unsafe { &mut *self.body.get() }
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || self.token.get().is_some_and(CancelToken::is_cancelled)
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some(t) = self.token.get() {
            t.cancel();
        }
    }

    pub(crate) fn cancel_token(&self) -> CancelToken {
        let t = self.token.get_or_init(CancelToken::new).clone();
        if self.cancelled.load(Ordering::Acquire) {
            t.cancel();
        }
        t
    }

    /// Marks the outcome as written and wakes the joiners. The caller gives up the claim.
    pub(crate) fn finish(&self) {
        // One read-modify-write orders this against every waiter's count: either a waiter
        // counted itself first (and we wake it) or it sees the bit and does not sleep.
        let before = self.finish_state.fetch_or(FINISHED, Ordering::AcqRel);
        if before & !FINISHED != 0 {
            // A counted waiter holds the lock until it sleeps, so the wake-up cannot be lost.
            drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()));
            self.done.notify_all();
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finish_state.load(Ordering::Acquire) & FINISHED != 0
    }

    /// Waits until finished; false on timeout.
    fn wait(&self, timeout: Option<Duration>) -> bool {
        if self.is_finished() {
            return true;
        }
        let limit = timeout.map(|t| Instant::now() + t);
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut finished = self.finish_state.fetch_add(WAITER, Ordering::AcqRel) & FINISHED != 0;
        while !finished {
            let left = match limit {
                None => None,
                Some(l) => match l.saturating_duration_since(Instant::now()) {
                    d if d.is_zero() => break,
                    d => Some(d),
                },
            };
            guard = match left {
                None => self.done.wait(guard).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    self.done
                        .wait_timeout(guard, d)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            finished = self.is_finished();
        }
        self.finish_state.fetch_sub(WAITER, Ordering::Relaxed);
        drop(guard);
        finished
    }
}

/// `Job::finish_state`: the outcome is written.
const FINISHED: u32 = 1;
/// `Job::finish_state`: one thread waits.
const WAITER: u32 = 2;

enum SlotState<T> {
    Pending,
    Ready(Result<T, JoinError>),
    Taken,
}

/// Where a task's outcome waits for `join`.
pub(crate) struct Slot<T> {
    state: Mutex<(SlotState<T>, Waiters)>,
    cv: Condvar,
}

/// How many threads wait on the slot's condvar; `fill` skips the wake-up (a syscall) when
/// nobody waits, which is the common case for detached tasks.
type Waiters = usize;

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Slot<T>> {
        Arc::new(Slot {
            state: Mutex::new((SlotState::Pending, 0)),
            cv: Condvar::new(),
        })
    }

    /// Fills the slot unless it is already filled; returns whether this call filled it.
    pub(crate) fn fill(&self, r: Result<T, JoinError>) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(s.0, SlotState::Pending) {
            return false;
        }
        s.0 = SlotState::Ready(r);
        if s.1 > 0 {
            self.cv.notify_all();
        }
        true
    }

    pub(crate) fn is_filled(&self) -> bool {
        !matches!(
            self.state.lock().unwrap_or_else(|p| p.into_inner()).0,
            SlotState::Pending
        )
    }

    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Option<Result<T, JoinError>> {
        let limit = timeout.map(|t| Instant::now() + t);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if matches!(s.0, SlotState::Ready(_)) {
                return match std::mem::replace(&mut s.0, SlotState::Taken) {
                    SlotState::Ready(r) => Some(r),
                    _ => None,
                };
            }
            let left = match limit {
                None => None,
                Some(l) => match l.saturating_duration_since(Instant::now()) {
                    d if d.is_zero() => return None,
                    d => Some(d),
                },
            };
            s.1 += 1;
            s = match left {
                None => self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    self.cv
                        .wait_timeout(s, d)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            s.1 -= 1;
        }
    }
}

/// The outcome of [`Task::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued (or waiting for its release time) and will never run.
    Removed,
    /// It was running when cancelled; its checkpoints now report `Cancelled` (it may have
    /// finished since).
    Signalled,
    /// It had already finished.
    AlreadyFinished,
}

/// A handle on a spawned task. Dropping it detaches the task (it still runs).
pub struct Task<T> {
    pub(crate) job: Arc<Job>,
    /// The executor's id (see `Inner::find`).
    pub(crate) exec: u64,
    pub(crate) _out: PhantomData<fn() -> T>,
}

impl<T> Task<T> {
    /// The task's submission sequence number (unique per executor, increasing).
    pub fn id(&self) -> u64 {
        self.job.seq
    }

    pub fn is_finished(&self) -> bool {
        self.job.is_finished()
    }

    /// Cancels the task: a queued task never runs; a running one sees `Cancelled` at its next
    /// checkpoint and its join result is `Cancelled`.
    pub fn cancel(&self) -> CancelOutcome {
        // Whether it runs is read before the flag is set: a running task that sees the flag
        // at once may finish before a read after it, and it was still signalled.
        let was_running = self.job.state.load(Ordering::Acquire) == RUNNING;
        self.job.cancel();
        match Inner::find(self.exec) {
            Some(exec) if exec.cancel_queued(&self.job) => CancelOutcome::Removed,
            _ if was_running || self.job.state.load(Ordering::Acquire) == RUNNING => {
                CancelOutcome::Signalled
            }
            _ => CancelOutcome::AlreadyFinished,
        }
    }

    /// Moves a queued task to a new deadline; false once it has started.
    pub fn set_deadline(&self, deadline: Instant) -> bool {
        match Inner::find(self.exec) {
            Some(exec) => exec.requeue_with_deadline(&self.job, deadline),
            None => false,
        }
    }

    /// Waits for the task and returns its value or why there is none.
    pub fn join(self) -> Result<T, JoinError> {
        self.job.wait(None);
        self.take()
    }

    /// Waits at most `timeout`; `Err(self)` if the task has not finished by then.
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JoinError>, Task<T>> {
        if self.job.wait(Some(timeout)) {
            Ok(self.take())
        } else {
            Err(self)
        }
    }

    fn take(&self) -> Result<T, JoinError> {
        // SAFETY: the job is finished, so nobody else touches the body; the body was built
        // for this `Task<T>` by `Executor::task`, so its outcome has this type.
        let out = unsafe {
            &mut *self
                .job
                .body()
                .outcome()
                .cast::<Option<Result<T, JoinError>>>()
        };
        out.take().unwrap_or(Err(JoinError::Shutdown))
    }
}
