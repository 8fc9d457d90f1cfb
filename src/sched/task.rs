//! Tasks: the shared record of one unit of work, its result slot, and the user's handle.
//!
//! Invariants:
//! - A job's state moves Queued → Running → (Queued again after a yield) → Done, or
//!   Queued → Cancelled. Only the thread that wins the Queued → Running compare-and-swap touches
//!   the body, so the body needs no lock.
//! - A result slot is filled exactly once; `join` takes it.

use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Ctx;

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
    /// Completes the job without running it (or after it stopped) with an error.
    fn fail(&mut self, err: JoinError);
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

pub(crate) struct Job {
    pub(crate) seq: u64,
    /// Deadline in executor nanoseconds; changed only while queued.
    pub(crate) deadline: AtomicU64,
    pub(crate) state: AtomicU8,
    pub(crate) on_miss: OnMiss,
    pub(crate) token: CancelToken,
    /// Set when a running firm task was seen past its deadline.
    pub(crate) expired: AtomicBool,
    /// Release time in executor nanoseconds while the job waits in the timer (0 otherwise).
    pub(crate) release: AtomicU64,
    /// Link while the job waits in the executor's inbox.
    pub(crate) next: AtomicPtr<Job>,
    body: UnsafeCell<Option<Box<dyn Body>>>,
}

// SAFETY: `body` is only accessed by the thread that won the QUEUED → RUNNING transition (or,
// for an unstarted job, the one that won QUEUED → CANCELLED), so accesses never overlap.
unsafe impl Sync for Job {}

impl Job {
    pub(crate) fn new(
        seq: u64,
        deadline: u64,
        on_miss: OnMiss,
        token: CancelToken,
        body: Box<dyn Body>,
    ) -> Job {
        Job {
            seq,
            deadline: AtomicU64::new(deadline),
            state: AtomicU8::new(QUEUED),
            on_miss,
            token,
            expired: AtomicBool::new(false),
            release: AtomicU64::new(0),
            next: AtomicPtr::new(std::ptr::null_mut()),
            body: UnsafeCell::new(Some(body)),
        }
    }

    /// Claims the job for running; true for exactly one caller per queued period.
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The body, for the thread that holds the claim.
    ///
    /// # Safety
    /// The caller must hold the claim (won `claim` or the QUEUED → CANCELLED swap).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn body(&self) -> &mut Option<Box<dyn Body>> {
        // SAFETY: exclusive by the claim protocol above.
        unsafe { &mut *self.body.get() }
    }
}

enum SlotState<T> {
    Pending,
    Ready(Result<T, JoinError>),
    Taken,
}

/// Where a task's outcome waits for `join`.
pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    cv: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Slot<T>> {
        Arc::new(Slot {
            state: Mutex::new(SlotState::Pending),
            cv: Condvar::new(),
        })
    }

    /// Fills the slot unless it is already filled; returns whether this call filled it.
    pub(crate) fn fill(&self, r: Result<T, JoinError>) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*s, SlotState::Pending) {
            return false;
        }
        *s = SlotState::Ready(r);
        self.cv.notify_all();
        true
    }

    pub(crate) fn is_filled(&self) -> bool {
        !matches!(
            *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            SlotState::Pending
        )
    }

    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Option<Result<T, JoinError>> {
        let limit = timeout.map(|t| Instant::now() + t);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if matches!(*s, SlotState::Ready(_)) {
                return match std::mem::replace(&mut *s, SlotState::Taken) {
                    SlotState::Ready(r) => Some(r),
                    _ => None,
                };
            }
            s = match limit {
                None => self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(l) => {
                    let left = l.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.cv
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

/// The outcome of [`Task::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued (or waiting for its release time) and will never run.
    Removed,
    /// It is running; its checkpoints now report `Cancelled`.
    Signalled,
    /// It had already finished.
    AlreadyFinished,
}

/// A handle on a spawned task. Dropping it detaches the task (it still runs).
pub struct Task<T> {
    pub(crate) job: Arc<Job>,
    pub(crate) slot: Arc<Slot<T>>,
    pub(crate) exec: std::sync::Weak<super::executor::Inner>,
}

impl<T> Task<T> {
    /// The task's submission sequence number (unique per executor, increasing).
    pub fn id(&self) -> u64 {
        self.job.seq
    }

    pub fn is_finished(&self) -> bool {
        self.slot.is_filled()
    }

    /// Cancels the task: a queued task never runs; a running one sees `Cancelled` at its next
    /// checkpoint and its join result is `Cancelled`.
    pub fn cancel(&self) -> CancelOutcome {
        self.job.token.cancel();
        if self
            .job
            .state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if let Some(exec) = self.exec.upgrade() {
                exec.remove(&self.job);
            }
            self.slot.fill(Err(JoinError::Cancelled));
            return CancelOutcome::Removed;
        }
        if self.job.state.load(Ordering::Acquire) == RUNNING {
            CancelOutcome::Signalled
        } else {
            CancelOutcome::AlreadyFinished
        }
    }

    /// Moves a queued task to a new deadline; false once it has started.
    pub fn set_deadline(&self, deadline: Instant) -> bool {
        match self.exec.upgrade() {
            Some(exec) => exec.requeue_with_deadline(&self.job, deadline),
            None => false,
        }
    }

    /// Waits for the task and returns its value or why there is none.
    pub fn join(self) -> Result<T, JoinError> {
        self.slot.wait(None).unwrap_or(Err(JoinError::Shutdown))
    }

    /// Waits at most `timeout`; `Err(self)` if the task has not finished by then.
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JoinError>, Task<T>> {
        match self.slot.wait(Some(timeout)) {
            Some(r) => Ok(r),
            None => Err(self),
        }
    }
}
