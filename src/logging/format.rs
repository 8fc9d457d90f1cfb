//! Formatting of decoded records into JSON lines or human text. Runs on the worker only.
//!
//! Invariant: every JSON line is one valid JSON object with `ts`, `level`, `target`, `msg`,
//! `thread` and then the record's fields; non-finite floats become `null`, byte strings become
//! lower-case hex strings, and a field whose name collides with a fixed key is prefixed `field.`.

use super::clock::write_rfc3339;
use super::codec::Field;
use super::record::Level;

/// The output format of a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// `ts LEVEL target: msg key=value ...`, optionally with ANSI colours.
    Text { color: bool },
}

/// What the formatter needs of one record.
pub(crate) struct Line<'a, I> {
    pub unix_nanos: u64,
    pub level: Level,
    pub target: &'a str,
    pub msg: &'a str,
    pub thread: &'a str,
    pub fields: I,
}

const RESERVED: [&str; 5] = ["ts", "level", "target", "msg", "thread"];

pub(crate) fn write_line<'a, I>(out: &mut Vec<u8>, format: Format, line: Line<'_, I>)
where
    I: Iterator<Item = (&'static str, Field<'a>)>,
{
    match format {
        Format::Json => write_json(out, line),
        Format::Text { color } => write_text(out, line, color),
    }
}

fn write_json<'a, I>(out: &mut Vec<u8>, line: Line<'_, I>)
where
    I: Iterator<Item = (&'static str, Field<'a>)>,
{
    out.extend_from_slice(b"{\"ts\":\"");
    write_rfc3339(out, line.unix_nanos);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(line.level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"target\":");
    json_str(out, line.target);
    out.extend_from_slice(b",\"msg\":");
    json_str(out, line.msg);
    out.extend_from_slice(b",\"thread\":");
    json_str(out, line.thread);
    for (key, value) in line.fields {
        out.push(b',');
        if RESERVED.contains(&key) {
            json_str(out, &format!("field.{key}"));
        } else {
            json_str(out, key);
        }
        out.push(b':');
        json_value(out, value);
    }
    out.extend_from_slice(b"}\n");
}

fn json_value(out: &mut Vec<u8>, v: Field<'_>) {
    let mut ib = itoa::Buffer::new();
    match v {
        Field::U64(x) => out.extend_from_slice(ib.format(x).as_bytes()),
        Field::I64(x) => out.extend_from_slice(ib.format(x).as_bytes()),
        Field::F64(x) if x.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes())
        }
        Field::F64(_) | Field::Null => out.extend_from_slice(b"null"),
        Field::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Field::Str(s) => json_str(out, s),
        Field::Bytes(b) => {
            out.push(b'"');
            hex(out, b);
            out.push(b'"');
        }
    }
}

fn hex(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        out.push(HEX[usize::from(x >> 4)]);
        out.push(HEX[usize::from(x & 15)]);
    }
}

/// Writes `s` as a JSON string, escaping quotes, backslashes and control characters.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            hex(out, &[b]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn level_color(level: Level) -> &'static str {
    match level {
        Level::Trace => "\x1b[2m",
        Level::Debug => "\x1b[34m",
        Level::Info => "\x1b[32m",
        Level::Warn => "\x1b[33m",
        Level::Error => "\x1b[1;31m",
    }
}

fn write_text<'a, I>(out: &mut Vec<u8>, line: Line<'_, I>, color: bool)
where
    I: Iterator<Item = (&'static str, Field<'a>)>,
{
    write_rfc3339(out, line.unix_nanos);
    out.push(b' ');
    if color {
        out.extend_from_slice(level_color(line.level).as_bytes());
    }
    out.extend_from_slice(format!("{:<5}", line.level.as_str()).as_bytes());
    if color {
        out.extend_from_slice(b"\x1b[0m");
    }
    out.push(b' ');
    out.extend_from_slice(line.target.as_bytes());
    out.extend_from_slice(b": ");
    text_str(out, line.msg, false);
    for (key, value) in line.fields {
        out.push(b' ');
        if color {
            out.extend_from_slice(b"\x1b[2m");
        }
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        if color {
            out.extend_from_slice(b"\x1b[0m");
        }
        text_value(out, value);
    }
    out.push(b'\n');
}

fn text_value(out: &mut Vec<u8>, v: Field<'_>) {
    match v {
        Field::Str(s) => text_str(out, s, true),
        Field::Bytes(b) => hex(out, b),
        Field::F64(x) => out.extend_from_slice(format!("{x}").as_bytes()),
        other => json_value(out, other),
    }
}

/// Human text: control characters are escaped so a record is always one terminal line; values
/// with spaces, quotes or `=` are quoted.
fn text_str(out: &mut Vec<u8>, s: &str, quote_if_needed: bool) {
    let needs_quotes = quote_if_needed
        && (s.is_empty()
            || s.bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f));
    if needs_quotes {
        json_str(out, s);
    } else if s.bytes().any(|b| b < b' ' || b == 0x7f) {
        let mut tmp = Vec::new();
        json_str(&mut tmp, s);
        out.extend_from_slice(&tmp[1..tmp.len() - 1]);
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}
