//! Loose objects: `objects/xx/yyyy…` files, each a zlib stream of `"<kind> <len>\0" + data`.
//!
//! Invariant: `verify` reads a file and never changes it. An object is good only when the file
//! inflates completely with nothing after the stream, the header parses, the length matches,
//! and the bytes hash to the file's name.

use super::object::{Kind, Oid, hash_object};
use flate2::{Decompress, FlushDecompress, Status};
use std::path::{Path, PathBuf};

/// A good object read from disk.
#[derive(Debug)]
pub struct Object {
    pub kind: Kind,
    pub data: Vec<u8>,
}

/// Inflates a whole zlib stream; returns the output and how many input bytes it used.
pub fn inflate(input: &[u8], size_hint: usize) -> Result<(Vec<u8>, usize), String> {
    let mut d = Decompress::new(true);
    let mut out = Vec::with_capacity(size_hint.max(64));
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
        }
        let used = d.total_in() as usize;
        let status = d
            .decompress_vec(&input[used..], &mut out, FlushDecompress::Finish)
            .map_err(|e| format!("zlib: {e}"))?;
        match status {
            Status::StreamEnd => return Ok((out, d.total_in() as usize)),
            Status::Ok => {}
            Status::BufError if d.total_in() as usize >= input.len() => {
                return Err("zlib stream is truncated".into());
            }
            Status::BufError => {}
        }
    }
}

/// Parses `"<kind> <len>\0"` at the start of an inflated loose object.
fn split_header(raw: &[u8]) -> Result<(Kind, &[u8]), String> {
    let nul = raw
        .iter()
        .position(|&b| b == 0)
        .ok_or("no object header (no NUL byte)")?;
    let header = &raw[..nul];
    let sp = header
        .iter()
        .position(|&b| b == b' ')
        .ok_or("malformed object header")?;
    let kind = Kind::from_name(&header[..sp]).ok_or_else(|| {
        format!(
            "unknown object type {:?}",
            String::from_utf8_lossy(&header[..sp])
        )
    })?;
    let digits = &header[sp + 1..];
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err("malformed object length (git accepts only plain decimal digits)".into());
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("malformed object length")?;
    let data = &raw[nul + 1..];
    if data.len() != len {
        return Err(format!(
            "header says {len} bytes, object has {}",
            data.len()
        ));
    }
    Ok((kind, data))
}

/// Decodes the bytes of a loose object file, checking them against `expected`.
pub fn decode(file: &[u8], expected: Oid) -> Result<Object, String> {
    if file.is_empty() {
        return Err("object file is empty".into());
    }
    let (raw, used) = inflate(file, file.len() * 3)?;
    if used < file.len() {
        return Err(format!(
            "garbage after the zlib stream ({} bytes)",
            file.len() - used
        ));
    }
    let (kind, data) = split_header(&raw)?;
    let id = hash_object(kind, data);
    if id != expected {
        return Err(format!("content hashes to {id}, not to its file name"));
    }
    Ok(Object {
        kind,
        data: data.to_vec(),
    })
}

/// Reads and checks one loose object file.
pub fn read(path: &Path, expected: Oid) -> Result<Object, String> {
    let file = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    decode(&file, expected)
}

/// The path of `oid` as a loose object under `objects`.
pub fn path_of(objects: &Path, oid: Oid) -> PathBuf {
    let hex = oid.to_hex();
    objects.join(&hex[..2]).join(&hex[2..])
}

/// The files under `objects/[0-9a-f]{2}/`, and the directories that could not be listed.
#[derive(Debug, Default)]
pub struct Listing {
    /// Each file with the id its name spells (`None` when the name is not 38 hex digits,
    /// which is garbage rather than an object).
    pub files: Vec<(PathBuf, Option<Oid>)>,
    /// Fan-out directories that could not be read: their objects are unknown, not absent.
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
}

/// Lists the loose objects under `objects`. Only `objects` itself failing to list is an
/// error; one unreadable fan-out directory is recorded and the others are still listed.
pub fn list(objects: &Path) -> std::io::Result<Listing> {
    let mut out = Listing::default();
    let rd = match std::fs::read_dir(objects) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for dir in rd {
        let dir = dir?;
        let name = dir.file_name();
        let name = name.to_string_lossy();
        if name.len() != 2 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let entries = match std::fs::read_dir(dir.path()) {
            Ok(rd) => rd,
            Err(e) => {
                out.unreadable.push((dir.path(), e));
                continue;
            }
        };
        for f in entries {
            let f = match f {
                Ok(f) => f,
                Err(e) => {
                    out.unreadable.push((dir.path(), e));
                    break;
                }
            };
            let fname = f.file_name();
            let full = format!("{name}{}", fname.to_string_lossy());
            out.files.push((f.path(), Oid::from_hex(full.as_bytes())));
        }
    }
    out.files.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::ZlibEncoder};
    use std::io::Write;

    fn loose_bytes(kind: &str, data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        write!(e, "{kind} {}\0", data.len()).expect("write");
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn good_object_decodes() {
        let f = loose_bytes("blob", b"hello\n");
        let id = hash_object(Kind::Blob, b"hello\n");
        let o = decode(&f, id).expect("good");
        assert_eq!(o.data, b"hello\n");
    }

    #[test]
    fn damage_is_named() {
        let id = hash_object(Kind::Blob, b"hello\n");
        let mut f = loose_bytes("blob", b"hello\n");
        assert!(decode(&[], id).unwrap_err().contains("empty"));
        assert!(decode(&f, Oid::ZERO).unwrap_err().contains("hashes to"));
        let mut g = f.clone();
        g.extend_from_slice(&[0; 30]);
        assert!(decode(&g, id).unwrap_err().contains("garbage"));
        f.truncate(f.len() - 3);
        assert!(decode(&f, id).is_err());
    }
}
