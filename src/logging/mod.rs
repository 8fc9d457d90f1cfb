//! Structured logging whose hot path copies a record into a per-thread ring and returns.
//!
//! ```no_run
//! use bitrot::logging::{self, Config, LevelFilter, Level, Sink};
//! let guard = logging::init(Config {
//!     sinks: vec![Sink::stderr_text(LevelFilter::AtLeast(Level::Info))],
//!     ..Config::default()
//! }).expect("logger starts");
//! let (url, n) = ("file:///srv/git/x.git", 42u64);
//! bitrot::info!("fetched objects", remote = url, count = n);
//! drop(guard); // writes everything emitted before and joins the worker
//! ```
//!
//! How a record travels: the macro checks the level (one relaxed load), then [`emit`] takes a
//! timestamp (`rdtsc` where the TSC is invariant) and copies a pointer to the call site's static
//! [`Callsite`] plus the field values into the calling thread's ring (`ring.rs`); one worker
//! thread (`worker.rs`) drains all rings, merges them by timestamp, formats JSON lines or text
//! ([`format`]) and writes each sink in batches.
//!
//! Invariants:
//! - This module depends on nothing else in the crate.
//! - The hot path never formats (except a `Disp` value), allocates, locks or makes a syscall,
//!   apart from a thread's first record and the `Block` overflow wait.
//! - After a flush with no producer running, `stats().emitted == written + dropped` exactly.
//! - Per thread, records are written in the order they were emitted.

pub(crate) mod clock;
mod codec;
mod console;
mod format;
mod logger;
mod record;
mod ring;
mod worker;

pub use codec::Field;
pub use console::{progress_bar, stderr_is_terminal};
pub use format::Format;
pub use logger::{
    Config, FlushTimeout, InitError, LogGuard, LogStats, Logger, Overflow, Sink, SinkTarget, start,
};
pub use record::{Callsite, Disp, Level, LevelFilter, ParseLevelError, Static, ToValue, Value};

use logger::Shared;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The installed global logger. The `Arc` it came from is leaked on purpose: a thread may still
/// be inside `emit` when the guard drops, so the `Shared` must outlive every reader.
static GLOBAL: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());
/// The global level filter; `u8::MAX` (off) while no logger is installed.
static GLOBAL_FILTER: AtomicU8 = AtomicU8::new(u8::MAX);
/// Serialises install and uninstall.
static INSTALL: Mutex<()> = Mutex::new(());
static PANIC_HOOK: AtomicBool = AtomicBool::new(false);
/// How long the panic hook waits for the worker.
const PANIC_FLUSH: Duration = Duration::from_secs(2);

/// Starts a logger and installs it as the global logger used by the macros.
pub fn init(cfg: Config) -> Result<LogGuard, InitError> {
    let _lock = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if !GLOBAL.load(Ordering::Acquire).is_null() {
        return Err(InitError::AlreadyInstalled);
    }
    let hook = cfg.install_panic_hook;
    let mut guard = start(cfg)?;
    guard.mark_global();
    let shared = guard.logger().shared.clone();
    let filter = shared_filter(&guard);
    GLOBAL.store(Arc::into_raw(shared).cast_mut(), Ordering::Release);
    GLOBAL_FILTER.store(filter, Ordering::Release);
    if hook {
        install_panic_hook();
    }
    Ok(guard)
}

fn shared_filter(guard: &LogGuard) -> u8 {
    Level::ALL
        .into_iter()
        .find(|l| guard.logger().enabled(*l))
        .map_or(u8::MAX, |l| l as u8)
}

/// Called by the global guard's drop: stops the macros from reaching this logger.
pub(crate) fn uninstall_global(shared: &Arc<Shared>) {
    let _lock = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if std::ptr::eq(GLOBAL.load(Ordering::Acquire), Arc::as_ptr(shared)) {
        GLOBAL_FILTER.store(u8::MAX, Ordering::Release);
        GLOBAL.store(std::ptr::null_mut(), Ordering::Release);
    }
}

/// Whether the global logger takes records at `level` (one relaxed load and a compare).
#[inline(always)]
pub fn enabled(level: Level) -> bool {
    level as u8 >= GLOBAL_FILTER.load(Ordering::Relaxed)
}

/// Sends a record to the global logger; a no-op when none is installed.
#[inline]
pub fn emit(cs: &'static Callsite, values: &[Value<'_>]) {
    let p = GLOBAL.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: a pointer stored in GLOBAL comes from a leaked Arc and is never freed.
        unsafe { &*p }.emit(cs, values);
    }
}

/// Flushes the global logger, if any.
pub fn flush_global(timeout: Duration) -> Result<(), FlushTimeout> {
    let p = GLOBAL.load(Ordering::Acquire);
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: as in `emit`.
    unsafe { &*p }.flush(timeout)
}

static PANIC_CS: Callsite = Callsite {
    level: Level::Error,
    target: "bitrot::panic",
    message: "panic",
    keys: &["message", "location", "thread"],
    file: file!(),
    line: line!(),
};

/// Logs every panic as an ERROR record and flushes the global logger before the previous
/// hook runs (which prints the usual message), so a crash leaves a complete log behind.
fn install_panic_hook() {
    if PANIC_HOOK.swap(true, Ordering::AcqRel) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".to_string());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        if enabled(Level::Error) {
            emit(
                &PANIC_CS,
                &[msg.to_value(), location.to_value(), thread.to_value()],
            );
        }
        let _ = flush_global(PANIC_FLUSH);
        previous(info);
    }));
}

/// Logs to the global logger: `bitrot::log!(Level::Info, "msg", key = value, ...)`.
#[macro_export]
macro_rules! log {
    ($lvl:expr, $msg:literal $(, $key:ident = $val:expr)* $(,)?) => {{
        if $crate::logging::enabled($lvl) {
            static CALLSITE: $crate::logging::Callsite = $crate::logging::Callsite {
                level: $lvl,
                target: module_path!(),
                message: $msg,
                keys: &[$(stringify!($key)),*],
                file: file!(),
                line: line!(),
            };
            $crate::logging::emit(&CALLSITE, &[$($crate::logging::ToValue::to_value(&$val)),*]);
        }
    }};
}

/// Logs to a given [`Logger`]: `bitrot::log_to!(logger, Level::Info, "msg", key = value)`.
#[macro_export]
macro_rules! log_to {
    ($logger:expr, $lvl:expr, $msg:literal $(, $key:ident = $val:expr)* $(,)?) => {{
        let logger: &$crate::logging::Logger = &$logger;
        if logger.enabled($lvl) {
            static CALLSITE: $crate::logging::Callsite = $crate::logging::Callsite {
                level: $lvl,
                target: module_path!(),
                message: $msg,
                keys: &[$(stringify!($key)),*],
                file: file!(),
                line: line!(),
            };
            logger.emit(&CALLSITE, &[$($crate::logging::ToValue::to_value(&$val)),*]);
        }
    }};
}

/// `trace!("msg", key = value, ...)` to the global logger.
#[macro_export]
macro_rules! trace { ($($t:tt)*) => { $crate::log!($crate::logging::Level::Trace, $($t)*) }; }
/// `debug!("msg", key = value, ...)` to the global logger.
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log!($crate::logging::Level::Debug, $($t)*) }; }
/// `info!("msg", key = value, ...)` to the global logger.
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log!($crate::logging::Level::Info, $($t)*) }; }
/// `warn!("msg", key = value, ...)` to the global logger.
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log!($crate::logging::Level::Warn, $($t)*) }; }
/// `error!("msg", key = value, ...)` to the global logger.
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log!($crate::logging::Level::Error, $($t)*) }; }
