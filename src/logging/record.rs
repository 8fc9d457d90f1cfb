//! What a log record is made of: a level, static per-call-site metadata and a few values.
//!
//! Invariant: everything that is the same for every record of a call site (level, target,
//! message, field names, file and line) lives in one `&'static Callsite`; a record carries only
//! a pointer to it, a timestamp and the values. Values are borrowed here and copied into the
//! ring by [`super::ring`]; nothing in this module allocates or formats.

use std::fmt;

/// Severity of a record, ordered from most to least verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

impl Level {
    /// All levels, most verbose first.
    pub const ALL: [Level; 5] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ];

    /// The upper-case name used in both output formats (`INFO`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level filter as written by users: `trace`, `debug`, `info`, `warn`, `error` or `off`
/// (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelFilter {
    Off,
    /// Records at this level or more severe pass.
    AtLeast(Level),
}

impl LevelFilter {
    /// The filter's encoding in the global atomic: a level's number, or 255 for off.
    pub(crate) fn as_u8(self) -> u8 {
        match self {
            LevelFilter::Off => u8::MAX,
            LevelFilter::AtLeast(l) => l as u8,
        }
    }
}

impl std::str::FromStr for LevelFilter {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        if lower == "off" {
            return Ok(LevelFilter::Off);
        }
        Level::ALL
            .into_iter()
            .find(|l| {
                l.as_str().eq_ignore_ascii_case(&lower) || (lower == "warning" && *l == Level::Warn)
            })
            .map(LevelFilter::AtLeast)
            .ok_or_else(|| ParseLevelError {
                given: s.to_string(),
            })
    }
}

/// A level filter string that names no level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {given:?}: expected one of trace, debug, info, warn, error, off")]
pub struct ParseLevelError {
    /// What was given.
    pub given: String,
}

/// Static metadata of one call site. The logging macros create one `static` per call site.
#[derive(Debug)]
pub struct Callsite {
    pub level: Level,
    /// `module_path!()` of the call site.
    pub target: &'static str,
    pub message: &'static str,
    /// Field names, in the order the values are passed.
    pub keys: &'static [&'static str],
    pub file: &'static str,
    pub line: u32,
}

/// One field value as passed to `emit`. Strings and bytes are copied into the ring (truncated
/// at `Config::max_str_bytes`); `Static` strings are passed as a pointer only; `Display` is the
/// slow path: it is formatted on the calling thread straight into the ring.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// An absent value (`None`); written as JSON `null`.
    Null,
    Static(&'static str),
    Str(&'a str),
    Bytes(&'a [u8]),
    Display(&'a dyn fmt::Display),
}

/// Conversion of a field expression into a [`Value`]; implemented for the integer, float,
/// bool and string types, byte slices, paths, and `Option` of those.
pub trait ToValue {
    fn to_value(&self) -> Value<'_>;
}

macro_rules! to_value_as {
    ($variant:ident, $as:ty: $($t:ty),*) => {$(
        impl ToValue for $t {
            #[inline(always)]
            fn to_value(&self) -> Value<'_> {
                Value::$variant(*self as $as)
            }
        }
    )*};
}
to_value_as!(U64, u64: u8, u16, u32, u64, usize);
to_value_as!(I64, i64: i8, i16, i32, i64, isize);
to_value_as!(F64, f64: f32, f64);

impl ToValue for bool {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        Value::Bool(*self)
    }
}

impl ToValue for str {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl ToValue for String {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl ToValue for [u8] {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl<const N: usize> ToValue for [u8; N] {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl ToValue for Vec<u8> {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl ToValue for std::path::Path {
    fn to_value(&self) -> Value<'_> {
        match self.to_str() {
            Some(s) => Value::Str(s),
            None => Value::Bytes(self.as_os_str().as_encoded_bytes()),
        }
    }
}

impl ToValue for std::path::PathBuf {
    fn to_value(&self) -> Value<'_> {
        self.as_path().to_value()
    }
}

impl ToValue for std::time::Duration {
    /// Durations are logged in nanoseconds.
    fn to_value(&self) -> Value<'_> {
        Value::U64(u64::try_from(self.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// Wraps anything `Display` so it can be logged: `info!("failed", err = Disp(&e))`.
/// The text is formatted on the calling thread (the slow path), so keep it off hot loops.
pub struct Disp<'a, T: fmt::Display + ?Sized>(pub &'a T);

impl<T: fmt::Display + ?Sized> ToValue for Disp<'_, T> {
    fn to_value(&self) -> Value<'_> {
        Value::Display(&self.0 as &dyn fmt::Display)
    }
}

/// Wraps a `&'static str` so it is passed by pointer, never copied.
pub struct Static(pub &'static str);

impl ToValue for Static {
    #[inline(always)]
    fn to_value(&self) -> Value<'_> {
        Value::Static(self.0)
    }
}
