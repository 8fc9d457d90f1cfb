//! svndiff versions 0, 1 (zlib) and 2 (LZ4): applying a delta to its base.
//!
//! Invariants: pure, no I/O. Every instruction is bounds-checked: a malformed delta is an
//! error naming the window and what is wrong, never a panic or a short result.

use flate2::{Decompress, FlushDecompress};

/// What is wrong with a delta.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("svndiff window {window}: {what}")]
pub struct DeltaError {
    pub window: usize,
    pub what: String,
}

fn varint(d: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for _ in 0..10 {
        let c = *d.get(*at)?;
        *at += 1;
        v = (v << 7) | u64::from(c & 0x7f);
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decodes one section of a v1/v2 window: an original-length varint, then the payload, stored
/// raw when it would not shrink.
/// The largest window section or target view accepted. Subversion writes windows of at most
/// 100 KiB (SVN_DELTA_WINDOW_SIZE); anything near this limit is a corrupt length, refused
/// before it turns into an allocation.
const MAX_WINDOW: u64 = 64 << 20;

fn section(version: u8, raw: &[u8]) -> Result<Vec<u8>, String> {
    if version == 0 {
        return Ok(raw.to_vec());
    }
    let mut at = 0;
    let orig = varint(raw, &mut at).ok_or("section length is truncated")?;
    if orig > MAX_WINDOW {
        return Err(format!("section claims {orig} bytes"));
    }
    let orig = orig as usize;
    let payload = &raw[at..];
    if payload.len() == orig {
        return Ok(payload.to_vec());
    }
    match version {
        1 => {
            let mut out = Vec::with_capacity(orig);
            Decompress::new(true)
                .decompress_vec(payload, &mut out, FlushDecompress::Finish)
                .map_err(|e| format!("zlib: {e}"))?;
            Ok(out)
        }
        _ => lz4_flex::block::decompress(payload, orig).map_err(|e| format!("lz4: {e}")),
    }
    .and_then(|out| {
        if out.len() == orig {
            Ok(out)
        } else {
            Err(format!(
                "section inflates to {} bytes, expected {orig}",
                out.len()
            ))
        }
    })
}

/// Applies the svndiff stream `delta` to `base`.
pub fn apply(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let err = |window, what: String| DeltaError { window, what };
    if delta.len() < 4 || &delta[..3] != b"SVN" || delta[3] > 2 {
        return Err(err(0, "not an svndiff stream (bad header)".into()));
    }
    let version = delta[3];
    let mut at = 4;
    let mut out = Vec::new();
    let mut window = 0;
    let mut last_view = (0u64, 0u64);
    while at < delta.len() {
        window += 1;
        let mut field = || {
            varint(delta, &mut at).ok_or_else(|| err(window, "window header is truncated".into()))
        };
        let (sv_off, sv_len, tv_len, ins_len, new_len) = (
            field()?,
            field()?,
            field()?,
            field()? as usize,
            field()? as usize,
        );
        if sv_off < last_view.0 || sv_off + sv_len < last_view.0 + last_view.1 {
            return Err(err(window, "source view slides backwards".into()));
        }
        last_view = (sv_off, sv_len);
        let end = at
            .checked_add(ins_len)
            .and_then(|e| e.checked_add(new_len))
            .filter(|&e| e <= delta.len())
            .ok_or_else(|| err(window, "window runs past the end of the delta".into()))?;
        let ins = section(version, &delta[at..at + ins_len]).map_err(|w| err(window, w))?;
        let new = section(version, &delta[at + ins_len..end]).map_err(|w| err(window, w))?;
        at = end;
        let src = base
            .get(sv_off as usize..(sv_off + sv_len) as usize)
            .ok_or_else(|| {
                err(
                    window,
                    format!(
                        "source view {sv_off}+{sv_len} lies outside the {}-byte base",
                        base.len()
                    ),
                )
            })?;
        let target = run_window(src, &ins, &new, tv_len as usize).map_err(|w| err(window, w))?;
        out.extend_from_slice(&target);
    }
    Ok(out)
}

fn run_window(src: &[u8], ins: &[u8], new: &[u8], tv_len: usize) -> Result<Vec<u8>, String> {
    let mut t = Vec::with_capacity(tv_len);
    let (mut i, mut new_at) = (0, 0usize);
    while i < ins.len() {
        let op = ins[i];
        i += 1;
        let mut len = usize::from(op & 0x3f);
        if len == 0 {
            len = usize::try_from(varint(ins, &mut i).ok_or("instruction length is truncated")?)
                .map_err(|_| "instruction length out of range")?;
        }
        if len == 0 {
            return Err("zero-length instruction".into());
        }
        if len > tv_len - t.len() {
            return Err("instruction writes past the window's target length".into());
        }
        match op >> 6 {
            0 => {
                let off = varint(ins, &mut i).ok_or("instruction offset is truncated")? as usize;
                t.extend_from_slice(
                    src.get(off..off.saturating_add(len))
                        .ok_or("source copy outside the source view")?,
                );
            }
            1 => {
                let off =
                    usize::try_from(varint(ins, &mut i).ok_or("instruction offset is truncated")?)
                        .map_err(|_| "offset out of range")?;
                if off >= t.len() {
                    return Err("target copy does not start before the current position".into());
                }
                // Overlapping copies repeat bytes, so copy one at a time.
                for k in 0..len {
                    let b = t[off + k];
                    t.push(b);
                }
            }
            2 => {
                t.extend_from_slice(
                    new.get(new_at..new_at + len)
                        .ok_or("new-data copy past the new data")?,
                );
                new_at += len;
            }
            _ => return Err("invalid instruction (both top bits set)".into()),
        }
    }
    if t.len() != tv_len {
        return Err(format!(
            "window produced {} bytes, expected {tv_len}",
            t.len()
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Subversion's notes/svndiff: "aaaabbbbcccc" to "aaaaccccdddddddd"
    /// with a source copy, a target copy that overlaps itself, and new data.
    #[test]
    fn notes_svndiff_example() {
        let ins = [0x04, 0x00, 0x04, 0x08, 0x81, 0x47, 0x08];
        let mut d = b"SVN\0".to_vec();
        d.extend_from_slice(&[0x00, 0x0c, 0x10, ins.len() as u8, 0x01]);
        d.extend_from_slice(&ins);
        d.push(b'd');
        assert_eq!(
            apply(b"aaaabbbbcccc", &d).expect("applies"),
            b"aaaaccccdddddddd"
        );
    }

    #[test]
    fn malformed_deltas_are_errors() {
        assert!(apply(b"", b"XYZ\0").is_err());
        let d = b"SVN\0\x00\x05\x03\x02\x00\x03\x00";
        assert!(apply(b"ab", d).unwrap_err().what.contains("outside"));
    }
}
