//! The binary layout of a record inside a ring, written on the hot path and read by the worker.
//!
//! Layout (little-endian, the span 8-byte aligned and padded to a multiple of 8):
//! `len: u32 | nvals: u32 | ts: u64 | callsite: u64 (pointer)` then per value a one-byte tag
//! and its payload: 8 bytes for numbers, 1 for bools, pointer + length for static strings,
//! `u32` length + bytes for copied strings and byte strings.
//!
//! Invariant: [`bound`] is never smaller than what [`encode`] writes for the same values, so a
//! reservation of `bound` bytes always suffices.

use super::record::{Callsite, Value};
use std::fmt::{self, Write as _};

pub(crate) const HEADER: usize = 24;

const T_U64: u8 = 1;
const T_I64: u8 = 2;
const T_F64: u8 = 3;
const T_BOOL: u8 = 4;
const T_NULL: u8 = 5;
const T_STATIC: u8 = 6;
const T_STR: u8 = 7;
const T_BYTES: u8 = 8;

/// Upper bound of the encoded size of a record, rounded up to a multiple of 8.
#[inline(always)]
pub(crate) fn bound(values: &[Value<'_>], max_str: usize) -> usize {
    let mut n = HEADER;
    for v in values {
        n += match v {
            Value::U64(_) | Value::I64(_) | Value::F64(_) => 9,
            Value::Bool(_) => 2,
            Value::Null => 1,
            Value::Static(_) => 17,
            Value::Str(s) => 5 + s.len().min(max_str),
            Value::Bytes(b) => 5 + b.len().min(max_str),
            Value::Display(_) => 5 + max_str,
        };
    }
    (n + 7) & !7
}

/// Writes the record into `out` (at least `bound` bytes) and returns the length used,
/// a multiple of 8.
#[inline(always)]
pub(crate) fn encode(
    out: &mut [u8],
    ts: u64,
    cs: &'static Callsite,
    values: &[Value<'_>],
    max_str: usize,
) -> usize {
    let mut at = HEADER;
    for v in values {
        at = encode_value(out, at, v, max_str);
    }
    let len = (at + 7) & !7;
    out[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    out[4..8].copy_from_slice(&(values.len() as u32).to_le_bytes());
    out[8..16].copy_from_slice(&ts.to_le_bytes());
    out[16..24].copy_from_slice(&(cs as *const Callsite as u64).to_le_bytes());
    len
}

#[inline(always)]
fn put(out: &mut [u8], at: usize, tag: u8, payload: &[u8]) -> usize {
    out[at] = tag;
    out[at + 1..at + 1 + payload.len()].copy_from_slice(payload);
    at + 1 + payload.len()
}

#[inline(always)]
fn encode_value(out: &mut [u8], at: usize, v: &Value<'_>, max_str: usize) -> usize {
    match *v {
        Value::U64(x) => put(out, at, T_U64, &x.to_le_bytes()),
        Value::I64(x) => put(out, at, T_I64, &x.to_le_bytes()),
        Value::F64(x) => put(out, at, T_F64, &x.to_le_bytes()),
        Value::Bool(b) => put(out, at, T_BOOL, &[u8::from(b)]),
        Value::Null => put(out, at, T_NULL, &[]),
        Value::Static(s) => {
            let at = put(out, at, T_STATIC, &(s.as_ptr() as u64).to_le_bytes());
            out[at..at + 8].copy_from_slice(&(s.len() as u64).to_le_bytes());
            at + 8
        }
        Value::Str(s) => put_len(out, at, T_STR, truncate_str(s, max_str).as_bytes()),
        Value::Bytes(b) => put_len(out, at, T_BYTES, &b[..b.len().min(max_str)]),
        Value::Display(d) => encode_display(out, at, d, max_str),
    }
}

#[inline(always)]
fn put_len(out: &mut [u8], at: usize, tag: u8, bytes: &[u8]) -> usize {
    out[at] = tag;
    out[at + 1..at + 5].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    out[at + 5..at + 5 + bytes.len()].copy_from_slice(bytes);
    at + 5 + bytes.len()
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Formats a `Display` value straight into the reserved span, cut at `max` bytes.
#[cold]
fn encode_display(out: &mut [u8], at: usize, d: &dyn fmt::Display, max: usize) -> usize {
    let mut w = SliceWriter {
        buf: &mut out[at + 5..at + 5 + max],
        len: 0,
    };
    // A full buffer reports an error to stop the formatter; what fitted is kept.
    let _ = write!(w, "{d}");
    let n = w.len;
    out[at] = T_STR;
    out[at + 1..at + 5].copy_from_slice(&(n as u32).to_le_bytes());
    at + 5 + n
}

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let piece = truncate_str(s, room);
        self.buf[self.len..self.len + piece.len()].copy_from_slice(piece.as_bytes());
        self.len += piece.len();
        if piece.len() < s.len() {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// A decoded value, borrowing the ring's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Null,
    Str(&'a str),
    Bytes(&'a [u8]),
}

/// A record as the worker sees it.
pub struct RecordView<'a> {
    pub ts: u64,
    pub callsite: &'static Callsite,
    pub(crate) body: &'a [u8],
    pub(crate) nvals: usize,
}

impl<'a> RecordView<'a> {
    /// Decodes the header of a span written by [`encode`].
    ///
    /// # Safety
    /// `span` must be exactly what `encode` wrote (the callsite word is a `&'static Callsite`).
    pub(crate) unsafe fn decode(span: &'a [u8]) -> RecordView<'a> {
        let word = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(&span[r]);
            u64::from_le_bytes(b)
        };
        let cs = word(16..24) as usize as *const Callsite;
        RecordView {
            nvals: word(4..8) as usize,
            ts: word(8..16),
            // SAFETY: written from a `&'static Callsite` by `encode`.
            callsite: unsafe { &*cs },
            body: &span[HEADER..],
        }
    }

    /// The fields in call order, paired with their names.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, Field<'a>)> + '_ {
        let mut at = 0usize;
        let keys = self.callsite.keys;
        (0..self.nvals).map(move |i| {
            let (f, next) = decode_field(self.body, at);
            at = next;
            (keys.get(i).copied().unwrap_or("?"), f)
        })
    }
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn read_u32(b: &[u8], at: usize) -> usize {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w) as usize
}

fn decode_field(b: &[u8], at: usize) -> (Field<'_>, usize) {
    let p = at + 1;
    match b[at] {
        T_U64 => (Field::U64(read_u64(b, p)), p + 8),
        T_I64 => (Field::I64(read_u64(b, p) as i64), p + 8),
        T_F64 => (Field::F64(f64::from_bits(read_u64(b, p))), p + 8),
        T_BOOL => (Field::Bool(b[p] != 0), p + 1),
        T_STATIC => {
            let (ptr, len) = (read_u64(b, p) as usize as *const u8, read_u64(b, p + 8));
            // SAFETY: written from a `&'static str` by `encode`.
            let s = unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len as usize))
            };
            (Field::Str(s), p + 16)
        }
        T_STR => {
            let len = read_u32(b, p);
            let bytes = &b[p + 4..p + 4 + len];
            // Copied from a `&str` cut at a character boundary, so it is valid UTF-8.
            let s = std::str::from_utf8(bytes).unwrap_or("<invalid utf-8>");
            (Field::Str(s), p + 4 + len)
        }
        T_BYTES => {
            let len = read_u32(b, p);
            (Field::Bytes(&b[p + 4..p + 4 + len]), p + 4 + len)
        }
        _ => (Field::Null, p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::record::Level;
    use proptest::prelude::*;

    static CS: Callsite = Callsite {
        level: Level::Info,
        target: "t",
        message: "m",
        keys: &["a", "b", "c", "d", "e", "f", "g", "h"],
        file: "f",
        line: 1,
    };

    #[derive(Debug, Clone)]
    enum V {
        U(u64),
        I(i64),
        F(f64),
        B(bool),
        S(String),
        Y(Vec<u8>),
        N,
    }

    fn arb_v() -> impl Strategy<Value = V> {
        prop_oneof![
            any::<u64>().prop_map(V::U),
            any::<i64>().prop_map(V::I),
            any::<f64>().prop_map(V::F),
            any::<bool>().prop_map(V::B),
            ".{0,40}".prop_map(V::S),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(V::Y),
            Just(V::N),
        ]
    }

    proptest! {
        /// What `encode` writes, `decode` reads back (strings cut at `max_str` on a character
        /// boundary), and never past `bound`.
        #[test]
        fn encode_decode_round_trip(vals in prop::collection::vec(arb_v(), 0..8), max_str in 1usize..32) {
            let values: Vec<Value<'_>> = vals.iter().map(|v| match v {
                V::U(x) => Value::U64(*x),
                V::I(x) => Value::I64(*x),
                V::F(x) => Value::F64(*x),
                V::B(x) => Value::Bool(*x),
                V::S(s) => Value::Str(s),
                V::Y(b) => Value::Bytes(b),
                V::N => Value::Null,
            }).collect();
            let need = bound(&values, max_str);
            let mut buf = vec![0xAAu8; need + 64];
            let len = encode(&mut buf, 7, &CS, &values, max_str);
            prop_assert!(len <= need && len.is_multiple_of(8));
            prop_assert!(buf[need..].iter().all(|&b| b == 0xAA), "wrote past the bound");
            // SAFETY: written by `encode` just above.
            let view = unsafe { RecordView::decode(&buf[..len]) };
            prop_assert_eq!(view.ts, 7);
            let fields: Vec<_> = view.fields().collect();
            prop_assert_eq!(fields.len(), vals.len());
            for ((key, got), (i, want)) in fields.into_iter().zip(vals.iter().enumerate()) {
                prop_assert_eq!(key, CS.keys[i]);
                match (got, want) {
                    (Field::U64(a), V::U(b)) => prop_assert_eq!(a, *b),
                    (Field::I64(a), V::I(b)) => prop_assert_eq!(a, *b),
                    (Field::F64(a), V::F(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                    (Field::Bool(a), V::B(b)) => prop_assert_eq!(a, *b),
                    (Field::Str(a), V::S(b)) => {
                        prop_assert!(b.starts_with(a) && a.len() <= max_str);
                        prop_assert!(a.len() == b.len() || a.len() + 4 > max_str);
                    }
                    (Field::Bytes(a), V::Y(b)) => prop_assert_eq!(a, &b[..b.len().min(max_str)]),
                    (Field::Null, V::N) => {}
                    (g, w) => prop_assert!(false, "decoded {:?} for {:?}", g, w),
                }
            }
        }
    }
}
