//! `ssh-keygen -V` validity intervals: `[start:]end` with the same syntax and meaning.
//!
//! start: `always`, `-INTERVAL` / `+INTERVAL` (relative to now), `YYYYMMDD[HHMM[SS]][Z]`
//! (local time unless `Z`), or `0xHEX` seconds; end: `forever`, `+INTERVAL` / `-INTERVAL`, the
//! same absolute forms. A single time means "from now until then", except that a single
//! `+INTERVAL` starts where ssh-keygen starts it: a minute back, on the minute
//! (`((now - 59) / 60) * 60`, for clocks slightly behind). INTERVAL is a sequence of numbers
//! with units `s m h d w` (none = seconds), e.g. `52w1d`.
//! Invariant: parsing is pure; `now` is an input.

use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// `valid_after` of an "always" certificate.
pub const ALWAYS: u64 = 0;
/// `valid_before` of a "forever" certificate.
pub const FOREVER: u64 = u64::MAX;

/// A certificate's validity in Unix seconds: valid iff `after <= t < before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub after: u64,
    pub before: u64,
}

impl Validity {
    /// Seconds covered, saturating for "forever".
    pub fn span(&self) -> u64 {
        self.before.saturating_sub(self.after)
    }
}

/// What is wrong with a validity string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    #[error(
        "invalid validity {spec:?}: {part:?} is not a time (use always, forever, +1h, -5m, 20260101, 202601011200Z or 0x…)"
    )]
    BadTime { spec: String, part: String },
    #[error(
        "invalid validity {spec:?}: the interval {part:?} has a bad unit or number (units: s m h d w)"
    )]
    BadInterval { spec: String, part: String },
    #[error(
        "invalid validity {spec:?}: it ends ({before}) before it starts ({after}), so the certificate would never be valid"
    )]
    Empty {
        spec: String,
        after: u64,
        before: u64,
    },
}

/// Parses `spec` relative to `now` (Unix seconds).
pub fn parse(spec: &str, now: u64) -> Result<Validity, ValidityError> {
    let (from, to) = match spec.split_once(':') {
        Some((f, t)) => (f, t),
        None => ("", spec),
    };
    let after = if from.is_empty() && to.starts_with('+') {
        (now.saturating_sub(59) / 60) * 60
    } else if from.is_empty() {
        now
    } else {
        parse_time(spec, from, now, true)?
    };
    let before = parse_time(spec, to, now, false)?;
    if before <= after {
        return Err(ValidityError::Empty {
            spec: spec.into(),
            after,
            before,
        });
    }
    Ok(Validity { after, before })
}

fn parse_time(spec: &str, s: &str, now: u64, is_start: bool) -> Result<u64, ValidityError> {
    let bad = || ValidityError::BadTime {
        spec: spec.into(),
        part: s.into(),
    };
    match s {
        "always" if is_start => return Ok(ALWAYS),
        "forever" if !is_start => return Ok(FOREVER),
        _ => {}
    }
    if let Some(rest) = s.strip_prefix('+') {
        return Ok(now.saturating_add(interval(spec, rest)?));
    }
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(now.saturating_sub(interval(spec, rest)?));
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_err(|_| bad());
    }
    absolute(s).ok_or_else(bad)
}

/// `52w1d` → seconds.
pub fn interval(spec: &str, s: &str) -> Result<u64, ValidityError> {
    let bad = || ValidityError::BadInterval {
        spec: spec.into(),
        part: s.into(),
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        total = total.saturating_add(digits.parse::<u64>().map_err(|_| bad())?);
    }
    Ok(total)
}

/// `YYYYMMDD[HHMM[SS]][Z]`, local time unless suffixed `Z`.
fn absolute(s: &str) -> Option<u64> {
    let (digits, utc) = match s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        Some(d) => (d, true),
        None => (s, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| digits.get(a..b)?.parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(i32::try_from(n(0, 4)?).ok()?, n(4, 6)?, n(6, 8)?)?;
    let (h, m, sec) = match digits.len() {
        8 => (0, 0, 0),
        12 => (n(8, 10)?, n(10, 12)?, 0),
        14 => (n(8, 10)?, n(10, 12)?, n(12, 14)?),
        _ => return None,
    };
    let naive: NaiveDateTime = date.and_hms_opt(h, m, sec)?;
    let ts = if utc {
        Utc.from_utc_datetime(&naive).timestamp()
    } else {
        Local.from_local_datetime(&naive).earliest()?.timestamp()
    };
    u64::try_from(ts).ok()
}

/// Formats a validity bound the way `ssh-keygen -L` does (local time, `forever`/`always`).
pub fn display_bound(t: u64, is_start: bool) -> String {
    match (t, is_start) {
        (ALWAYS, true) => "always".into(),
        (FOREVER, false) => "forever".into(),
        _ => i64::try_from(t)
            .ok()
            .and_then(|t| Local.timestamp_opt(t, 0).single())
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_else(|| format!("0x{t:x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn relative_and_named_bounds() {
        assert_eq!(
            parse("-5m:+8h", NOW).unwrap(),
            Validity {
                after: NOW - 300,
                before: NOW + 8 * 3600
            }
        );
        assert_eq!(
            parse("always:forever", NOW).unwrap(),
            Validity {
                after: 0,
                before: u64::MAX
            }
        );
        assert_eq!(
            parse("+52w1d", NOW).unwrap(),
            Validity {
                after: (NOW - 59) / 60 * 60,
                before: NOW + 52 * 604_800 + 86_400
            }
        );
        // ssh-keygen's backdate for a lone +INTERVAL: between 59 s and 118 s, on the minute.
        for now in [NOW, NOW + 1, NOW + 59, NOW + 60] {
            let after = parse("+1h", now).unwrap().after;
            assert_eq!(after % 60, 0);
            assert!((59..119).contains(&(now - after)), "{now}: {after}");
        }
        assert_eq!(parse("-1m:forever", NOW).unwrap().before, FOREVER);
        assert_eq!(
            parse("0x10:0x20", NOW).unwrap(),
            Validity {
                after: 16,
                before: 32
            }
        );
        assert_eq!(parse("+90", NOW).unwrap().before, NOW + 90);
    }

    #[test]
    fn absolute_utc_dates() {
        let v = parse("20260101Z:20270101120000Z", NOW).unwrap();
        assert_eq!(v.after, 1_767_225_600);
        assert_eq!(v.before, 1_798_761_600 + 12 * 3600);
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = parse("-5x:+1h", NOW).unwrap_err();
        assert!(e.to_string().contains("\"5x\""), "{e}");
        let e = parse("+1h:-1h", NOW).unwrap_err();
        assert!(matches!(e, ValidityError::Empty { .. }), "{e}");
        assert!(parse("tomorrow", NOW).is_err());
        assert!(parse("forever:+1h", NOW).is_err(), "forever is not a start");
        assert!(parse("2026130Z", NOW).is_err());
    }
}
