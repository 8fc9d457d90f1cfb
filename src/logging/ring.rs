//! A single-producer single-consumer byte ring, one per (thread, logger).
//!
//! Invariants:
//! - `head` is written only by the [`Producer`] (its owning thread), `tail` only by the worker.
//!   Both only grow; positions are taken modulo the power-of-two capacity.
//! - Every record occupies one contiguous, 8-byte-aligned span that starts with a `u32` length.
//!   When a record would cross the end of the buffer, the producer writes a padding marker
//!   (length with [`PAD`] set) over the rest and starts the record at offset 0.
//! - The producer publishes a record with a `Release` store of `head` after writing its bytes;
//!   the worker reads `head` with `Acquire` before reading them, and hands space back with a
//!   `Release` store of `tail` that the producer reads with `Acquire` before reusing it.
//! - The hot path (reserve, write, commit) performs no allocation, no lock and no syscall.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Set in a span's length word when the span is padding to the end of the buffer.
pub(crate) const PAD: u32 = 1 << 31;

/// Keeps the two hot counters on separate cache lines so the producer and the worker do not
/// invalidate each other's line on every record.
#[repr(align(64))]
struct Padded<T>(T);

/// The shared half of a ring: the buffer, the two positions and the producer's counters.
pub(crate) struct Ring {
    buf: Box<[UnsafeCell<u64>]>,
    cap: usize,
    head: Padded<AtomicUsize>,
    tail: Padded<AtomicUsize>,
    /// Records the producer tried to log (written or dropped).
    pub(crate) emitted: AtomicU64,
    /// Records the producer dropped because the ring was full.
    pub(crate) dropped: AtomicU64,
    /// Highest fill in bytes seen by the producer right after a commit.
    pub(crate) max_fill: AtomicUsize,
    /// Name of the producing thread, for the `thread` field.
    pub(crate) thread: String,
}

// SAFETY: the buffer is only written by the single producer in spans it has reserved and not yet
// published, and only read by the single consumer in spans published and not yet released; the
// head/tail protocol in the module docs keeps the two from touching the same bytes at once.
unsafe impl Sync for Ring {}
unsafe impl Send for Ring {}

impl Ring {
    /// A ring of at least `bytes` capacity (rounded up to a power of two, at least 4 KiB).
    pub(crate) fn new(bytes: usize, thread: String) -> Ring {
        let cap = bytes.max(4096).next_power_of_two();
        // Zeroed through the allocator (calloc: fresh pages from the kernel, untouched) rather
        // than written word by word, so a short-lived tool does not fault in the whole ring.
        let zeroed: Box<[u64]> = vec![0u64; cap / 8].into_boxed_slice();
        // SAFETY: `UnsafeCell<u64>` is `repr(transparent)` over `u64`, so the slice layouts are
        // identical, and the box's ownership moves unchanged from one type to the other.
        let buf = unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [UnsafeCell<u64>]) };
        Ring {
            buf,
            cap,
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            emitted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            max_fill: AtomicUsize::new(0),
            thread,
        }
    }

    #[inline]
    fn base(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.buf.as_ptr()).cast::<u8>()
    }

    /// Published write position (consumer side).
    pub(crate) fn head(&self) -> usize {
        self.head.0.load(Ordering::Acquire)
    }

    /// Released read position.
    #[inline]
    pub(crate) fn tail(&self) -> usize {
        self.tail.0.load(Ordering::Acquire)
    }

    /// Bytes published and not yet released.
    pub(crate) fn fill(&self) -> usize {
        self.head().wrapping_sub(self.tail())
    }

    /// Reads the span at `pos` (consumer only): `Err(len)` for padding, `Ok(bytes)` for a record.
    ///
    /// # Safety
    /// `pos` must be a span start between the consumer's tail and a head it loaded.
    pub(crate) unsafe fn span_at(&self, pos: usize) -> Result<&[u8], usize> {
        let idx = pos & (self.cap - 1);
        // SAFETY: idx is 8-aligned and inside the buffer; the span was published by `head`.
        let word = unsafe { self.base().add(idx).cast::<u32>().read() };
        if word & PAD != 0 {
            return Err((word & !PAD) as usize);
        }
        let len = word as usize;
        // SAFETY: the producer wrote `len` contiguous bytes starting at idx.
        Ok(unsafe { std::slice::from_raw_parts(self.base().add(idx), len) })
    }

    /// Hands every byte before `pos` back to the producer (consumer only).
    pub(crate) fn release(&self, pos: usize) {
        self.tail.0.store(pos, Ordering::Release);
    }
}

/// The producing thread's handle on its ring. Not `Sync`: one thread writes.
pub(crate) struct Producer {
    pub(crate) ring: std::sync::Arc<Ring>,
    /// The ring's buffer and capacity, copied here so a write does not follow `ring` for them.
    base: *mut u8,
    cap: usize,
    head: usize,
    cached_tail: usize,
    emitted: u64,
    dropped: u64,
    max_fill: usize,
    /// A blocking wait for room timed out and no record has fitted since: further records
    /// are dropped at once instead of each waiting out its own timeout.
    pub(crate) stalled: bool,
}

// SAFETY: `base` points into the buffer of the `Ring` that `ring` keeps alive, and only the
// (single) owner of the producer writes through it, whichever thread that is.
unsafe impl Send for Producer {}

impl Producer {
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    pub(crate) fn new(ring: std::sync::Arc<Ring>) -> Producer {
        Producer {
            base: ring.base(),
            cap: ring.cap,
            ring,
            head: 0,
            cached_tail: 0,
            emitted: 0,
            dropped: 0,
            max_fill: 0,
            stalled: false,
        }
    }

    /// Reserves `n` contiguous bytes (`n` a multiple of 8, at most a quarter of the capacity)
    /// and returns the span; `None` when the ring has no room.
    #[inline]
    pub(crate) fn reserve(&mut self, n: usize) -> Option<&mut [u8]> {
        let cap = self.cap;
        let idx = self.head & (cap - 1);
        let to_end = cap - idx;
        let need = if to_end < n { to_end + n } else { n };
        if self.head + need - self.cached_tail > cap {
            self.cached_tail = self.ring.tail();
            if self.head + need - self.cached_tail > cap {
                return None;
            }
        }
        let base = self.base;
        if to_end < n {
            // SAFETY: [idx, cap) is free (checked above) and 8-aligned; only we write it.
            unsafe { base.add(idx).cast::<u32>().write(PAD | to_end as u32) };
            self.head += to_end;
        }
        let start = self.head & (cap - 1);
        // SAFETY: [start, start + n) is free, inside the buffer, and not visible to the consumer
        // until `commit` publishes it.
        Some(unsafe { std::slice::from_raw_parts_mut(base.add(start), n) })
    }

    /// Publishes the `len` bytes (a multiple of 8) written at the start of the last reservation.
    #[inline]
    pub(crate) fn commit(&mut self, len: usize) {
        // Counted before the record is published, so a worker that sees the record also sees it
        // counted and `written <= emitted` holds at every instant.
        self.emitted += 1;
        self.ring.emitted.store(self.emitted, Ordering::Relaxed);
        self.head += len;
        self.ring.head.0.store(self.head, Ordering::Release);
        let fill = self.head - self.cached_tail;
        if fill > self.max_fill {
            self.max_fill = fill;
            self.ring.max_fill.store(fill, Ordering::Relaxed);
        }
    }

    /// Counts a record that was not written.
    pub(crate) fn count_drop(&mut self) {
        self.emitted += 1;
        self.dropped += 1;
        self.ring.dropped.store(self.dropped, Ordering::Relaxed);
        self.ring.emitted.store(self.emitted, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::sync::Arc;

    /// Drains every published span, returning the records' first data bytes; releases them.
    fn drain(ring: &Ring) -> Vec<u8> {
        let (mut pos, head) = (ring.tail(), ring.head());
        let mut out = Vec::new();
        while pos < head {
            // SAFETY: pos walks span starts between the tail and the loaded head.
            match unsafe { ring.span_at(pos) } {
                Err(pad) => pos += pad,
                Ok(span) => {
                    out.push(span[8]);
                    pos += span.len();
                }
            }
        }
        ring.release(pos);
        out
    }

    proptest! {
        /// Against a queue model: every committed record comes out once, in order; a reserve
        /// fails only when the ring is really too full.
        #[test]
        fn ring_behaves_like_a_bounded_fifo(ops in prop::collection::vec((1usize..40, any::<bool>()), 1..400)) {
            let ring = Arc::new(Ring::new(4096, "t".into()));
            let mut p = Producer::new(ring.clone());
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut tag = 0u8;
            for (words, consume) in ops {
                let n = words * 8 + 16;
                if let Some(span) = p.reserve(n) {
                    span[0..4].copy_from_slice(&(n as u32).to_le_bytes());
                    span[8] = tag;
                    p.commit(n);
                    model.push_back(tag);
                    tag = tag.wrapping_add(1);
                } else {
                    p.count_drop();
                    // A refusal needs the record plus at most its own size of padding to not fit.
                    prop_assert!(ring.fill() + 2 * n > ring.cap, "refused with room to spare");
                }
                if consume {
                    let got = drain(&ring);
                    let want: Vec<u8> = model.drain(..).collect();
                    prop_assert_eq!(got, want);
                }
            }
            let got = drain(&ring);
            let want: Vec<u8> = model.drain(..).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn spsc_across_threads_delivers_everything_in_order() {
        let ring = Arc::new(Ring::new(4096, "t".into()));
        let consumer_ring = ring.clone();
        const N: u32 = 200_000;
        let consumer = std::thread::spawn(move || {
            let mut next = 0u32;
            while next < N {
                let (mut pos, head) = (consumer_ring.tail(), consumer_ring.head());
                while pos < head {
                    // SAFETY: as in `drain`.
                    match unsafe { consumer_ring.span_at(pos) } {
                        Err(pad) => pos += pad,
                        Ok(span) => {
                            let v = u32::from_le_bytes(span[8..12].try_into().expect("4 bytes"));
                            assert_eq!(v, next, "records out of order or torn");
                            next += 1;
                            pos += span.len();
                        }
                    }
                }
                consumer_ring.release(pos);
            }
        });
        let mut p = Producer::new(ring);
        for v in 0..N {
            let n = 16 + 8 * (v as usize % 5);
            loop {
                if let Some(span) = p.reserve(n) {
                    span[0..4].copy_from_slice(&(n as u32).to_le_bytes());
                    span[8..12].copy_from_slice(&v.to_le_bytes());
                    p.commit(n);
                    break;
                }
                std::thread::yield_now();
            }
        }
        consumer.join().expect("consumer saw every record in order");
    }
}
