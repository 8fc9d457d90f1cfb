//! Cheap timestamps for the hot path and their conversion to wall-clock time on the worker.
//!
//! On x86_64 with an invariant TSC a timestamp is one `rdtsc` (no syscall, no vDSO call);
//! elsewhere it is nanoseconds of a monotonic `Instant` since a process-wide origin.
//! Invariant: [`Calibration::to_unix_nanos`] is monotonic in its input, so records merged by
//! tick order are also in wall-clock order.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static ORIGIN: OnceLock<Origin> = OnceLock::new();

struct Origin {
    instant: Instant,
    unix_nanos: u64,
    use_tsc: bool,
    tsc: u64,
}

fn origin() -> &'static Origin {
    ORIGIN.get_or_init(|| {
        let use_tsc = invariant_tsc();
        USE_TSC.store(use_tsc, Ordering::Relaxed);
        Origin {
            instant: Instant::now(),
            unix_nanos: unix_nanos_now(),
            use_tsc,
            tsc: if use_tsc { rdtsc() } else { 0 },
        }
    })
}

fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn rdtsc() -> u64 {
    // SAFETY: rdtsc is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn rdtsc() -> u64 {
    0
}

/// CPUID 0x8000_0007 EDX bit 8: the TSC runs at a constant rate in every power state.
#[cfg(target_arch = "x86_64")]
pub(crate) fn invariant_tsc() -> bool {
    use core::arch::x86_64::__cpuid;
    // cpuid is safe on every x86_64 CPU; leaf 0x8000_0000 reports the highest extended leaf.
    let max = __cpuid(0x8000_0000).eax;
    max >= 0x8000_0007 && (__cpuid(0x8000_0007).edx & (1 << 8)) != 0
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn invariant_tsc() -> bool {
    false
}

/// Initialises the clock origin (the first call costs a CPUID; later ones nothing).
pub(crate) fn init() {
    origin();
}

/// Set once the origin is known to use the TSC, so the hot path tests one flag instead of
/// calling into the `OnceLock`.
static USE_TSC: AtomicBool = AtomicBool::new(false);

/// The current timestamp in clock ticks.
#[inline(always)]
pub(crate) fn ticks() -> u64 {
    if USE_TSC.load(Ordering::Relaxed) {
        rdtsc()
    } else {
        ticks_slow()
    }
}

/// Ticks before `init`, or where there is no usable TSC.
#[cold]
fn ticks_slow() -> u64 {
    let o = origin();
    if o.use_tsc {
        rdtsc()
    } else {
        u64::try_from(o.instant.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Converts ticks to Unix nanoseconds. Owned by the worker, which refreshes it now and then so
/// the tick rate estimate improves as the baseline grows.
pub(crate) struct Calibration {
    ns_per_tick: f64,
}

impl Calibration {
    /// Measures the tick rate over at least `min_span` since the origin.
    pub(crate) fn measure(min_span: Duration) -> Calibration {
        let o = origin();
        if !o.use_tsc {
            return Calibration { ns_per_tick: 1.0 };
        }
        let wait = min_span.saturating_sub(o.instant.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let (t, i) = (rdtsc(), o.instant.elapsed());
        let ticks = t.saturating_sub(o.tsc).max(1);
        Calibration {
            ns_per_tick: i.as_nanos() as f64 / ticks as f64,
        }
    }

    /// Unix time in nanoseconds of a timestamp taken by [`ticks`].
    pub(crate) fn to_unix_nanos(&self, ticks: u64) -> u64 {
        let o = origin();
        let since = if o.use_tsc {
            (ticks.saturating_sub(o.tsc) as f64 * self.ns_per_tick) as u64
        } else {
            ticks
        };
        o.unix_nanos + since
    }

    /// How many ticks make `d` (for the merge grace window).
    pub(crate) fn ticks_for(&self, d: Duration) -> u64 {
        (d.as_nanos() as f64 / self.ns_per_tick) as u64
    }
}

/// Writes `unix_nanos` as RFC 3339 UTC with microseconds: `2026-11-26T15:01:26.123456Z`.
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, unix_nanos: u64) {
    let secs = unix_nanos / 1_000_000_000;
    let micros = (unix_nanos % 1_000_000_000) / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(y).as_bytes());
    push2(out, b'-', m as u64);
    push2(out, b'-', d as u64);
    push2(out, b'T', rem / 3600);
    push2(out, b':', rem / 60 % 60);
    push2(out, b':', rem % 60);
    out.push(b'.');
    let frac = b.format(micros + 1_000_000);
    out.extend_from_slice(&frac.as_bytes()[1..]);
    out.push(b'Z');
}

fn push2(out: &mut Vec<u8>, sep: u8, v: u64) {
    out.push(sep);
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        let mut out = Vec::new();
        write_rfc3339(&mut out, 0);
        assert_eq!(String::from_utf8_lossy(&out), "1970-01-01T00:00:00.000000Z");
        out.clear();
        // 2000-02-29T12:34:56.789012Z (a leap day in a century leap year)
        write_rfc3339(&mut out, 951_827_696_789_012_345);
        assert_eq!(String::from_utf8_lossy(&out), "2000-02-29T12:34:56.789012Z");
    }

    #[test]
    fn ticks_convert_close_to_the_system_clock() {
        init();
        let cal = Calibration::measure(Duration::from_millis(20));
        let got = cal.to_unix_nanos(ticks()) as i128;
        let want = unix_nanos_now() as i128;
        assert!(
            (got - want).abs() < 5_000_000,
            "tick conversion off by {} ns",
            got - want
        );
    }
}
