//! The worker thread: drains every ring, merges records by timestamp, formats and writes them.
//!
//! Invariants:
//! - Only the worker reads rings and moves their tails.
//! - Within one pass, records are written in timestamp order across all rings. A record
//!   younger than the merge grace window is left for a later pass (unless a flush or stop asks
//!   for everything), so a thread preempted between taking its timestamp and publishing
//!   still gets its record merged in order.
//! - A flush ticket is marked done only after a pass that started after the ticket was taken
//!   has drained every ring completely and flushed every sink.
//! - The worker exits on `stop` only after such a complete pass.

use super::clock::{self, Calibration};
use super::codec::{Field, RecordView};
use super::format::{self, Format, Line};
use super::logger::{InitError, Shared, Sink, SinkTarget};
use super::record::{Callsite, Level, LevelFilter};
use super::ring::Ring;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Output buffered per sink before it is written in one call.
const BATCH_BYTES: usize = 64 * 1024;
/// How often the tick rate is re-measured.
const RECALIBRATE: Duration = Duration::from_secs(1);

pub(crate) struct Options {
    pub idle_sleep: Duration,
    pub merge_grace: Duration,
}

enum Out {
    Stderr,
    Writer(Box<dyn Write + Send>),
}

pub(crate) struct OpenSink {
    out: Out,
    format: Format,
    filter: LevelFilter,
    buf: Vec<u8>,
}

impl OpenSink {
    fn accepts(&self, level: Level) -> bool {
        match self.filter {
            LevelFilter::Off => false,
            LevelFilter::AtLeast(min) => level >= min,
        }
    }

    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // A sink that fails to write cannot report through itself; the record is lost, and
        // logging must never take the program down.
        let _ = match &mut self.out {
            Out::Stderr => super::console::write_stderr(&self.buf),
            Out::Writer(w) => w.write_all(&self.buf).and_then(|()| w.flush()),
        };
        self.buf.clear();
    }
}

/// Opens every sink (files are created and appended to) before the worker starts.
pub(crate) fn open_sinks(sinks: Vec<Sink>) -> Result<Vec<OpenSink>, InitError> {
    sinks
        .into_iter()
        .map(|s| {
            let out = match s.target {
                SinkTarget::Stderr => Out::Stderr,
                SinkTarget::Writer(w) => Out::Writer(w),
                SinkTarget::File(path) => {
                    let file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|source| InitError::OpenFile { path, source })?;
                    Out::Writer(Box::new(file))
                }
            };
            Ok(OpenSink {
                out,
                format: s.format,
                filter: s.filter,
                buf: Vec::with_capacity(BATCH_BYTES + 4096),
            })
        })
        .collect()
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    sinks: Vec<OpenSink>,
    opts: Options,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("bitrot-log".into())
        .spawn(move || Worker::new(shared, sinks, opts).run())
}

struct Cursor {
    ring: Arc<Ring>,
    /// Drops already reported with a "log records dropped" record.
    reported_drops: u64,
}

struct Worker {
    shared: Arc<Shared>,
    sinks: Vec<OpenSink>,
    opts: Options,
    rings: Vec<Cursor>,
    seen_gen: u64,
    cal: Calibration,
    calibrated_at: Instant,
    last_ns: u64,
    written: u64,
}

static DROPPED: Callsite = Callsite {
    level: Level::Warn,
    target: "bitrot::logging",
    message: "log records dropped",
    keys: &["count", "ring_thread"],
    file: file!(),
    line: line!(),
};

impl Worker {
    fn new(shared: Arc<Shared>, sinks: Vec<OpenSink>, opts: Options) -> Worker {
        Worker {
            shared,
            sinks,
            opts,
            rings: Vec::new(),
            seen_gen: u64::MAX,
            cal: Calibration::measure(Duration::from_micros(200)),
            calibrated_at: Instant::now(),
            last_ns: 0,
            written: 0,
        }
    }

    fn run(mut self) {
        let mut done = 0u64;
        loop {
            let ticket = self.shared.flush_requested.load(Ordering::Acquire);
            let stop = self.shared.stop.load(Ordering::Acquire);
            let complete = ticket > done || stop;
            self.refresh_rings();
            let n = self.pass(complete);
            self.retire_exited();
            if complete {
                self.sinks.iter_mut().for_each(OpenSink::write_out);
                done = ticket;
                *self
                    .shared
                    .flush_done
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = done;
                self.shared.flush_cv.notify_all();
                if stop {
                    return;
                }
            } else if n == 0 {
                self.sinks.iter_mut().for_each(OpenSink::write_out);
                self.maybe_recalibrate();
                std::thread::park_timeout(self.opts.idle_sleep);
            }
        }
    }

    fn maybe_recalibrate(&mut self) {
        if self.calibrated_at.elapsed() >= RECALIBRATE {
            self.cal = Calibration::measure(Duration::ZERO);
            self.calibrated_at = Instant::now();
        }
    }

    /// Picks up rings registered since the last pass.
    fn refresh_rings(&mut self) {
        let g = self.shared.registry_gen.load(Ordering::Acquire);
        if g == self.seen_gen {
            return;
        }
        self.seen_gen = g;
        let registry = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for r in registry.iter() {
            if !self.rings.iter().any(|c| Arc::ptr_eq(&c.ring, r)) {
                self.rings.push(Cursor {
                    ring: r.clone(),
                    reported_drops: 0,
                });
            }
        }
    }

    /// One merge pass; returns how many records it wrote. With `complete`, everything published
    /// is written; otherwise records younger than the grace window wait.
    fn pass(&mut self, complete: bool) -> usize {
        let cutoff = if complete {
            u64::MAX
        } else {
            clock::ticks().saturating_sub(self.cal.ticks_for(self.opts.merge_grace))
        };
        let heads: Vec<usize> = self.rings.iter().map(|c| c.ring.head()).collect();
        let mut pos: Vec<usize> = self.rings.iter().map(|c| c.ring.tail()).collect();
        let mut n = 0;
        while let Some(i) = self.earliest(&heads, &mut pos, cutoff) {
            let ring = self.rings[i].ring.clone();
            // SAFETY: pos[i] is a record start below the head we loaded (see `earliest`).
            let span = unsafe { ring.span_at(pos[i]) }.expect("earliest skips padding");
            let next = pos[i] + span.len();
            // SAFETY: the span was written by `codec::encode`.
            let view = unsafe { RecordView::decode(span) };
            self.format(&view, &ring.thread);
            ring.release(next);
            pos[i] = next;
            n += 1;
        }
        self.shared.written.store(self.written, Ordering::Release);
        self.report_drops();
        n
    }

    /// The ring whose next record has the smallest timestamp at or below `cutoff`, skipping
    /// (and releasing) padding.
    fn earliest(&self, heads: &[usize], pos: &mut [usize], cutoff: u64) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, c) in self.rings.iter().enumerate() {
            while pos[i] < heads[i] {
                // SAFETY: pos[i] is between the tail and a loaded head.
                match unsafe { c.ring.span_at(pos[i]) } {
                    Err(pad) => {
                        pos[i] += pad;
                        c.ring.release(pos[i]);
                    }
                    Ok(span) => {
                        // SAFETY: a record written by `codec::encode`.
                        let ts = unsafe { RecordView::decode(span) }.ts;
                        if ts <= cutoff && best.is_none_or(|(b, _)| ts < b) {
                            best = Some((ts, i));
                        }
                        break;
                    }
                }
            }
        }
        best.map(|(_, i)| i)
    }

    fn unix_nanos(&mut self, ts: u64) -> u64 {
        // Re-calibration may move the estimate slightly; never let time run backwards.
        self.last_ns = self.last_ns.max(self.cal.to_unix_nanos(ts));
        self.last_ns
    }

    fn format(&mut self, view: &RecordView<'_>, thread: &str) {
        let cs = view.callsite;
        let ns = self.unix_nanos(view.ts);
        for sink in self.sinks.iter_mut().filter(|s| s.accepts(cs.level)) {
            let line = Line {
                unix_nanos: ns,
                level: cs.level,
                target: cs.target,
                msg: cs.message,
                thread,
                fields: view.fields(),
            };
            format::write_line(&mut sink.buf, sink.format, line);
            if sink.buf.len() >= BATCH_BYTES {
                sink.write_out();
            }
        }
        self.written += 1;
    }

    /// Writes one "log records dropped" record per ring whose drop count grew.
    fn report_drops(&mut self) {
        for i in 0..self.rings.len() {
            let dropped = self.rings[i].ring.dropped.load(Ordering::Acquire);
            let new = dropped - self.rings[i].reported_drops;
            if new == 0 {
                continue;
            }
            self.rings[i].reported_drops = dropped;
            let ns = self.unix_nanos(clock::ticks());
            let thread = self.rings[i].ring.thread.clone();
            for sink in self.sinks.iter_mut().filter(|s| s.accepts(DROPPED.level)) {
                let fields = [
                    (DROPPED.keys[0], Field::U64(new)),
                    (DROPPED.keys[1], Field::Str(&thread)),
                ];
                let line = Line {
                    unix_nanos: ns,
                    level: DROPPED.level,
                    target: DROPPED.target,
                    msg: DROPPED.message,
                    thread: "bitrot-log",
                    fields: fields.into_iter(),
                };
                format::write_line(&mut sink.buf, sink.format, line);
            }
        }
    }

    /// Forgets rings whose thread has exited and which are drained, folding their counters
    /// into the logger's totals.
    fn retire_exited(&mut self) {
        let shared = &self.shared;
        self.rings.retain(|c| {
            // Two owners left: this cursor and the registry; the thread's handle is gone.
            let exited = Arc::strong_count(&c.ring) == 2 && c.ring.fill() == 0;
            if exited && c.reported_drops == c.ring.dropped.load(Ordering::Acquire) {
                let mut reg = shared.registry.lock().unwrap_or_else(|p| p.into_inner());
                reg.retain(|r| !Arc::ptr_eq(r, &c.ring));
                shared
                    .retired_emitted
                    .fetch_add(c.ring.emitted.load(Ordering::Acquire), Ordering::AcqRel);
                shared
                    .retired_dropped
                    .fetch_add(c.ring.dropped.load(Ordering::Acquire), Ordering::AcqRel);
                return false;
            }
            true
        });
    }
}
