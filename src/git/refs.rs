//! Refs, HEADs and reflogs, read line by line so that one bad line is one finding.
//!
//! Invariant: nothing is written; a ref that cannot be parsed is reported with its file and
//! line, never guessed at.

use super::object::Oid;
use std::path::{Path, PathBuf};

/// What a ref points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Object(Oid),
    Symbolic(String),
}

/// One ref and where it was read from.
#[derive(Clone, Debug)]
pub struct Ref {
    pub name: String,
    pub target: Target,
    /// The peeled target of an annotated tag in packed-refs (`^` line), if given.
    pub peeled: Option<Oid>,
}

/// A line or file that could not be read as a ref.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub what: String,
}

/// Parses the content of a loose ref or HEAD file with git's own leniency: `ref:` may be
/// followed by any spaces, and an object id may be followed by any whitespace (CRLF, extra
/// newlines), as git reads them.
pub fn parse_ref_file(text: &[u8]) -> Result<Target, String> {
    if text.is_empty() {
        return Err("empty file".into());
    }
    if let Some(sym) = text.strip_prefix(b"ref:") {
        let s = std::str::from_utf8(sym)
            .map_err(|_| "symbolic ref is not UTF-8")?
            .trim();
        if !s.starts_with("refs/") || s.contains(char::is_whitespace) {
            return Err(format!("bad symbolic ref {s:?}"));
        }
        return Ok(Target::Symbolic(s.to_string()));
    }
    let id = text.get(..40).and_then(Oid::from_hex);
    match (id, text.get(40)) {
        (Some(id), None) => Ok(Target::Object(id)),
        (Some(id), Some(c)) if c.is_ascii_whitespace() => Ok(Target::Object(id)),
        _ => Err(format!(
            "not an object id: {:?}",
            String::from_utf8_lossy(&text[..text.len().min(60)])
        )),
    }
}

/// Loose refs under `common/refs`, sorted by name, with the files that failed to parse.
pub fn loose_refs(common: &Path) -> (Vec<Ref>, Vec<Problem>) {
    let mut refs = Vec::new();
    let mut problems = Vec::new();
    for e in walkdir::WalkDir::new(common.join("refs")).sort_by_file_name() {
        let Ok(e) = e else { continue };
        if !e.file_type().is_file() || e.path().extension().is_some_and(|x| x == "lock") {
            continue;
        }
        let name = e
            .path()
            .strip_prefix(common)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read(e.path())
            .map_err(|x| x.to_string())
            .and_then(|t| parse_ref_file(&t))
        {
            Ok(target) => refs.push(Ref {
                name,
                target,
                peeled: None,
            }),
            Err(what) => problems.push(Problem {
                path: e.path().to_path_buf(),
                line: None,
                what,
            }),
        }
    }
    (refs, problems)
}

/// The refs of `packed-refs`, line by line.
pub fn packed_refs(common: &Path) -> (Vec<Ref>, Vec<Problem>) {
    let path = common.join("packed-refs");
    let mut refs: Vec<Ref> = Vec::new();
    let mut problems = Vec::new();
    let Ok(bytes) = std::fs::read(&path) else {
        return (refs, problems);
    };
    let mut bad = |line: usize, what: String| {
        problems.push(Problem {
            path: path.clone(),
            line: Some(line),
            what,
        })
    };
    let complete = bytes.ends_with(b"\n") || bytes.is_empty();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let no = i + 1;
        if line.is_empty() && (no == n) {
            continue;
        }
        if no == n && !complete {
            bad(no, "unterminated line".into());
            continue;
        }
        if line.starts_with(b"# pack-refs with:") && no == 1 {
            continue;
        }
        if let Some(p) = line.strip_prefix(b"^") {
            match (Oid::from_hex(p), refs.last_mut()) {
                (Some(id), Some(r)) if r.peeled.is_none() => r.peeled = Some(id),
                _ => bad(no, "peel line without a ref before it".into()),
            }
            continue;
        }
        let parsed = (line.len() > 41 && line[40] == b' ')
            .then(|| Oid::from_hex(&line[..40]))
            .flatten()
            .and_then(|id| {
                let name = std::str::from_utf8(&line[41..]).ok()?;
                name.starts_with("refs/").then_some((id, name))
            });
        match parsed {
            Some((id, name)) => refs.push(Ref {
                name: name.to_string(),
                target: Target::Object(id),
                peeled: None,
            }),
            None => bad(
                no,
                format!(
                    "unexpected line {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(60)])
                ),
            ),
        }
    }
    (refs, problems)
}

/// One reflog entry's object ids.
pub struct ReflogEntry {
    pub old: Oid,
    pub new: Oid,
}

/// The entries of one reflog file, and its lines that are not reflog entries.
pub fn reflog(path: &Path) -> (Vec<ReflogEntry>, Vec<Problem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let Ok(bytes) = std::fs::read(path) else {
        return (entries, problems);
    };
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match parse_reflog_line(line) {
            Some(e) => entries.push(e),
            None => problems.push(Problem {
                path: path.to_path_buf(),
                line: Some(i + 1),
                what: format!(
                    "not a reflog entry: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(60)])
                ),
            }),
        }
    }
    (entries, problems)
}

fn parse_reflog_line(line: &[u8]) -> Option<ReflogEntry> {
    let old = Oid::from_hex(line.get(..40)?)?;
    let new = Oid::from_hex(line.get(41..81)?)?;
    if line.get(40) != Some(&b' ') || line.get(81) != Some(&b' ') {
        return None;
    }
    let rest = &line[82..];
    let gt = rest.iter().position(|&b| b == b'>')?;
    let after = std::str::from_utf8(&rest[gt + 1..]).ok()?;
    let head = after.split('\t').next()?.trim();
    let mut it = head.split(' ');
    it.next()?.parse::<i64>().ok()?;
    let tz = it.next()?;
    let tz_ok = tz.len() == 5 && (tz.starts_with('+') || tz.starts_with('-'));
    tz_ok.then_some(ReflogEntry { old, new })
}

/// Every reflog file under `logs/` of `dir`.
pub fn reflog_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir.join("logs"))
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_files() {
        let h = b"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\n";
        assert!(matches!(parse_ref_file(h), Ok(Target::Object(_))));
        assert_eq!(
            parse_ref_file(b"ref: refs/heads/main\n"),
            Ok(Target::Symbolic("refs/heads/main".into()))
        );
        assert!(parse_ref_file(b"").is_err());
        assert!(parse_ref_file(b"garbage\n").is_err());
        assert!(
            matches!(
                parse_ref_file(b"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\r\n"),
                Ok(Target::Object(_))
            ),
            "CRLF, as git reads it"
        );
        assert!(matches!(
            parse_ref_file(b"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\n\n"),
            Ok(Target::Object(_))
        ));
        assert_eq!(
            parse_ref_file(b"ref:refs/heads/x\n"),
            Ok(Target::Symbolic("refs/heads/x".into()))
        );
    }

    #[test]
    fn reflog_lines() {
        let good = b"0000000000000000000000000000000000000000 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391 A U Thor <a@b> 1700000000 +0100\tcommit: x";
        assert!(parse_reflog_line(good).is_some());
        assert!(parse_reflog_line(b"garbage").is_none());
    }
}
