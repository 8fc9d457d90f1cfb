//! A deadline-first (EDF) executor on a thread pool, with cooperative preemption,
//! cancellation, firm deadlines and a timer thread.
//!
//! ```
//! use bitrot::sched::{Builder, Check};
//! use std::time::Duration;
//! let exec = Builder::new().workers(2).build().expect("threads start");
//! let soon = exec.now() + Duration::from_millis(50);
//! let task = exec.spawn(soon, |ctx| {
//!     let mut sum = 0u64;
//!     for i in 0..1_000u64 {
//!         if i % 100 == 0 && ctx.checkpoint() == Check::Cancelled {
//!             break;
//!         }
//!         sum += i;
//!     }
//!     sum
//! });
//! assert_eq!(task.join().expect("finishes in time"), 499_500);
//! ```
//!
//! Semantics (each has a test in `tests/it/sched.rs`):
//! - Ready tasks run earliest deadline first; equal deadlines run in submission order.
//! - A task that arrives while every worker is busy flags the worker running the latest
//!   deadline (if later than its own); that task's next [`Ctx::checkpoint`] says
//!   [`Check::Yield`]. A [`Resumable`] task that yields is requeued with its original deadline
//!   and sequence; a plain closure may treat the hint as advisory.
//! - Cancelling a queued task means it never runs; a running one sees [`Check::Cancelled`].
//! - Firm deadlines (the default): a task whose deadline passed while it was queued is not
//!   started ([`JoinError::Expired`]); a running one sees `Cancelled` at checkpoints after its
//!   deadline. [`OnMiss::RunLate`] opts out.
//! - The timer thread releases [`Executor::spawn_at`] and periodic tasks and never runs user
//!   code. Time comes from a [`Clock`]; tests use [`ManualClock`].
//! - A panicking task is reported as [`JoinError::Panicked`]; the worker survives.
//!
//! This module depends only on [`crate::logging`].

mod bound;
mod clock;
mod executor;
mod inbox;
pub mod par;
mod ready;
mod task;
mod timer;

pub use clock::{Clock, ManualClock, SystemClock};

/// Keeps a value on cache lines of its own, so that a field one thread writes often does not
/// share a line with fields other threads read (each write would take the line from them).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
pub use executor::{
    Builder, Check, Ctx, Executor, Opts, Resumable, SchedStats, Shutdown, ShutdownReport, Step,
};
pub use task::{CancelOutcome, CancelToken, JoinError, OnMiss, Task};
pub use timer::{Flow, PeriodMode, Periodic, PeriodicTask};
