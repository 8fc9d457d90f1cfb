//! Answering "has this deadline passed?" without reading the clock when the answer is
//! certainly no.
//!
//! A worker asks twice per job (before starting a firm job, and after it returns, to count a
//! miss) and a firm task asks at every checkpoint. Reading the system clock costs about 25 ns
//! here; the CPU's timestamp counter (TSC) costs about 9 ns. Between two clock readings the
//! counter bounds the time that passed: ticks × an upper bound on nanoseconds per tick. When
//! the last reading plus that bound is still at or before the deadline, the deadline has not
//! passed; otherwise the clock is read, and the reading becomes the new base.
//!
//! Invariants:
//! - `passed` answers false only when the clock, read at that moment, would not be past the
//!   deadline; it answers true only from a real clock reading. So a bound can cost an extra
//!   read near a deadline, never a wrong answer.
//! - The counter is read before the clock, so a reading's base never starts later than the
//!   time it reports.
//! - Bounds are used only with the system clock, on x86_64 with an invariant TSC, when the
//!   kernel itself keeps time from the TSC (its clocksource is `tsc`, which it keeps only
//!   while the counters of all CPUs agree). Otherwise every call reads the clock.
//! - The rate bound is twice the rate measured over at least 10 ms after the executor started;
//!   until then every call reads the clock. Readings are per thread and per executor.

use crate::logging::clock::{invariant_tsc, rdtsc};
use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long the rate is measured before bounds are used.
const CALIBRATION_NS: u64 = 10_000_000;
/// The bound assumes ticks run at least this many times slower than measured.
const RATE_MARGIN: f64 = 2.0;
/// Added to every bound, for counters on different CPUs a few ticks apart.
const SLACK_NS: u64 = 1_000;

#[derive(Clone, Copy)]
struct Reading {
    /// The `DeadlineBound` that took it (its address).
    owner: usize,
    /// The counter, read just before the clock.
    tsc: u64,
    /// The clock, in the executor's nanoseconds.
    ns: u64,
}

thread_local! {
    static LAST: Cell<Reading> = const { Cell::new(Reading { owner: 0, tsc: 0, ns: 0 }) };
}

/// One executor's deadline test (see the module docs).
pub(crate) struct DeadlineBound {
    enabled: bool,
    /// The counter when the executor started, for measuring the rate.
    start_tsc: u64,
    /// Upper bound on nanoseconds per tick, as `f64` bits; 0 until measured.
    max_ns_per_tick: AtomicU64,
}

impl DeadlineBound {
    /// `system_clock`: the executor reads [`std::time::Instant::now`]. Call it after the
    /// executor's time 0 was read: the counter then starts late, so the rate measured from
    /// it can only come out high (safe), even if the thread was descheduled in between.
    pub(crate) fn new(system_clock: bool) -> DeadlineBound {
        DeadlineBound {
            enabled: system_clock && tsc_keeps_time(),
            start_tsc: rdtsc(),
            max_ns_per_tick: AtomicU64::new(0),
        }
    }

    /// A bound with a known rate, for tests.
    #[cfg(test)]
    fn with_rate(max_ns_per_tick: f64) -> DeadlineBound {
        DeadlineBound {
            enabled: true,
            start_tsc: rdtsc(),
            max_ns_per_tick: AtomicU64::new(max_ns_per_tick.to_bits()),
        }
    }

    /// Whether the clock is past `deadline`; `read` reads the clock (executor nanoseconds).
    #[inline]
    pub(crate) fn passed(&self, deadline: u64, read: impl FnOnce() -> u64) -> bool {
        if !self.enabled {
            return read() > deadline;
        }
        let tsc = rdtsc();
        if self.surely_before(tsc, deadline) {
            return false;
        }
        let ns = read();
        self.record(tsc, ns);
        ns > deadline
    }

    /// True when this thread's last reading plus the time bound for the ticks since is at
    /// or before `deadline`.
    #[inline]
    fn surely_before(&self, tsc: u64, deadline: u64) -> bool {
        let rate = f64::from_bits(self.max_ns_per_tick.load(Ordering::Relaxed));
        let last = LAST.get();
        if rate == 0.0 || last.owner != self.id() {
            return false;
        }
        // A counter behind the base (another CPU's) wraps to a huge count: no bound.
        let ticks = tsc.wrapping_sub(last.tsc);
        // The float-to-integer cast saturates.
        let elapsed = (ticks as f64 * rate) as u64;
        last.ns.saturating_add(elapsed).saturating_add(SLACK_NS) <= deadline
    }

    /// Makes (`tsc`, `ns`) this thread's base, and measures the rate once enough time passed.
    fn record(&self, tsc: u64, ns: u64) {
        LAST.set(Reading {
            owner: self.id(),
            tsc,
            ns,
        });
        if self.max_ns_per_tick.load(Ordering::Relaxed) == 0 && ns >= CALIBRATION_NS {
            // `start_tsc` was read after time 0 and `tsc` before `ns`: both make the ticks
            // fewer than the nanoseconds they span, so the measured rate can only err high.
            let ticks = tsc.saturating_sub(self.start_tsc).max(1);
            let rate = ns as f64 / ticks as f64 * RATE_MARGIN;
            self.max_ns_per_tick
                .store(rate.to_bits(), Ordering::Relaxed);
        }
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

/// Whether the kernel keeps time from the TSC on this machine (checked once per process).
fn tsc_keeps_time() -> bool {
    static TSC: OnceLock<bool> = OnceLock::new();
    *TSC.get_or_init(|| {
        let source = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        );
        cfg!(target_arch = "x86_64") && invariant_tsc() && source.is_ok_and(|s| s.trim() == "tsc")
    })
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A clock in nanoseconds since `origin` that counts its reads.
    fn counting(origin: Instant, reads: &Cell<u32>) -> impl Fn() -> u64 + '_ {
        move || {
            reads.set(reads.get() + 1);
            origin.elapsed().as_nanos() as u64
        }
    }

    #[test]
    fn a_far_deadline_is_answered_from_the_counter_after_one_reading() {
        let origin = Instant::now();
        let bound = DeadlineBound::with_rate(1.0);
        let reads = Cell::new(0);
        let clock = counting(origin, &reads);
        let far = 3_600_000_000_000;
        for _ in 0..1000 {
            assert!(!bound.passed(far, &clock));
        }
        assert_eq!(reads.get(), 1, "only the first call reads the clock");
    }

    #[test]
    fn a_deadline_in_the_past_is_always_read_and_reported() {
        let origin = Instant::now();
        let bound = DeadlineBound::with_rate(1.0);
        let reads = Cell::new(0);
        let clock = counting(origin, &reads);
        std::thread::sleep(Duration::from_millis(1));
        for _ in 0..100 {
            assert!(bound.passed(0, &clock));
        }
        assert_eq!(reads.get(), 100);
    }

    #[test]
    fn two_executors_on_one_thread_do_not_share_readings() {
        let origin = Instant::now();
        let (a, b) = (DeadlineBound::with_rate(1.0), DeadlineBound::with_rate(1.0));
        let reads = Cell::new(0);
        let clock = counting(origin, &reads);
        let far = 3_600_000_000_000;
        assert!(!a.passed(far, &clock));
        assert!(!b.passed(far, &clock), "b reads for itself");
        assert!(!a.passed(far, &clock), "a's reading was replaced by b's");
        assert_eq!(reads.get(), 3);
    }

    /// Against the real clock, with the measured rate: an answer of "not passed" is never
    /// given for a deadline the clock had already passed before the call, and "passed" never
    /// for one the clock had not reached after it.
    #[test]
    fn answers_agree_with_the_clock_around_the_deadline() {
        let origin = Instant::now();
        let bound = DeadlineBound::with_rate(0.0);
        let reads = Cell::new(0);
        let clock = counting(origin, &reads);
        std::thread::sleep(Duration::from_millis(11));
        // The first reading after 10 ms measures the rate.
        assert!(bound.passed(0, &clock));
        let rate = f64::from_bits(bound.max_ns_per_tick.load(Ordering::Relaxed));
        assert!(rate > 0.0, "rate measured");

        let mut from_counter = 0;
        for i in 0..200_000u64 {
            let before = clock();
            // Deadlines from 20 µs behind to 20 µs ahead of the clock.
            let deadline = (before + (i % 41) * 1_000).saturating_sub(20_000);
            let reads_before = reads.get();
            let passed = bound.passed(deadline, &clock);
            let read = reads.get() > reads_before;
            let after = clock();
            if passed {
                assert!(
                    after > deadline,
                    "passed, but the clock reads {after} ≤ {deadline}"
                );
            } else {
                assert!(before <= deadline, "not passed, but {before} > {deadline}");
            }
            if !read {
                from_counter += 1;
            }
        }
        assert!(from_counter > 0, "some answers came from the counter");
    }
}
