//! Time as an input: the executor reads time only through a [`Clock`], so tests can move time
//! by hand with [`ManualClock`] instead of sleeping.
//!
//! Invariant: `now()` never goes backwards. A manual clock wakes every subscribed waiter
//! when it is advanced, so timers due at the new time are released without real waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of monotonic time for the executor.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    /// How long a timer thread may sleep in real time to reach `until`; `None` means "until
    /// woken" (the manual clock wakes its subscribers when advanced).
    fn real_wait(&self, until: Instant) -> Option<Duration>;
    /// Registers a function to call whenever time jumps (manual clocks only).
    fn subscribe(&self, _wake: Arc<dyn Fn() + Send + Sync>) {}
    /// True only for a clock whose `now` is [`Instant::now`]: the executor may then bound the
    /// time between two reads with the CPU's timestamp counter instead of reading again.
    fn is_instant_now(&self) -> bool {
        false
    }
}

/// The real monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn real_wait(&self, until: Instant) -> Option<Duration> {
        Some(until.saturating_duration_since(Instant::now()))
    }

    fn is_instant_now(&self) -> bool {
        true
    }
}

/// A clock that moves only when [`ManualClock::advance`] is called.
pub struct ManualClock {
    base: Instant,
    offset_ns: AtomicU64,
    wakers: Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: Instant::now(),
            offset_ns: AtomicU64::new(0),
            wakers: Mutex::new(Vec::new()),
        })
    }

    /// Moves time forward by `d` and wakes the executors that use this clock.
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(ns, Ordering::AcqRel);
        let wakers = self
            .wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for w in wakers {
            w();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_ns.load(Ordering::Acquire))
    }

    fn real_wait(&self, _until: Instant) -> Option<Duration> {
        None
    }

    fn subscribe(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wake);
    }
}
