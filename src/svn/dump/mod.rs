//! A streaming parser for Subversion dump files (formats 2 and 3, and svnrdump's flavour).
//!
//! Invariants: pure over `impl BufRead` (no files, no git); one record in memory at a time;
//! header values are kept verbatim (paths may start with a space); unknown headers and header
//! lines that begin with whitespace are ignored, as Subversion's own loader does; every error
//! names the revision and node path it happened in. Text checksums are checked by the caller
//! once deltas are applied (`Text-content-md5` is of the full text even in format 3).
//!
//! Strictness (at least `svnadmin load`'s, so that a dump is converted as written or refused,
//! never converted by luck): the stream starts with its format-version line; revision numbers
//! strictly increase (gaps are allowed: renumbered and incremental dumps have them); every
//! length header is a number and `Content-length` covers the sections it announces, where only
//! the blank lines that end a record may be counted in beyond what was read (svnadmin skips
//! those bytes unread; anything else there would be data dropped or a record read as data);
//! a checksum header that is not a checksum is refused. The property section is
//! read by its own structure (K/V/D lengths up to `PROPS-END`), as svnadmin reads it, because
//! hand-edited dumps in the wild carry a `Prop-content-length` that is off by a byte and load;
//! such a disagreement is a warning ([`Reader::take_warnings`]), never silent. An add or
//! replace with content and without a copy source says its kind, a delete has no content
//! (the converter checks what
//! needs the tree: kinds of existing paths, a directory given a text).

pub mod svndiff;

use std::collections::BTreeMap;
use std::io::BufRead;

/// A parse error, with where it happened.
#[derive(Debug, thiserror::Error)]
#[error("dump {at}: {what}")]
pub struct DumpError {
    pub at: String,
    pub what: String,
}

/// Node kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// Node actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Add,
    Change,
    Delete,
    Replace,
}

/// A property section: a full set, or (format 3 `Prop-delta: true`) changes where `None`
/// deletes a property.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Props {
    pub delta: bool,
    pub entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// A text section: full text, or an svndiff delta against the node's base.
#[derive(Clone, Debug, Default)]
pub struct Text {
    pub delta: bool,
    pub data: Vec<u8>,
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
}

/// One node record.
#[derive(Clone, Debug)]
pub struct Node {
    pub path: Vec<u8>,
    pub kind: Option<Kind>,
    pub action: Action,
    pub copyfrom: Option<(u64, Vec<u8>)>,
    pub props: Option<Props>,
    pub text: Option<Text>,
}

/// One record of the stream.
#[derive(Clone, Debug)]
pub enum Record {
    Version(u32),
    Uuid(String),
    Revision {
        number: u64,
        props: BTreeMap<Vec<u8>, Vec<u8>>,
    },
    Node(Node),
}

/// Reads records one at a time.
pub struct Reader<R> {
    r: R,
    rev: Option<u64>,
    node: Option<Vec<u8>>,
    /// Reading a header block (errors then name the record before it).
    in_headers: bool,
    /// The format-version record was read (it must come first).
    versioned: bool,
    warnings: Vec<DumpError>,
    done: bool,
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

impl<R: BufRead> Reader<R> {
    pub fn new(r: R) -> Reader<R> {
        Reader {
            r,
            rev: None,
            node: None,
            in_headers: false,
            versioned: false,
            warnings: Vec::new(),
            done: false,
        }
    }

    /// What the records read so far disagreed with that did not stop the parse.
    pub fn take_warnings(&mut self) -> Vec<DumpError> {
        std::mem::take(&mut self.warnings)
    }

    fn err(&self, what: impl Into<String>) -> DumpError {
        // Inside a header block the record's own name is not known yet: say what came before.
        let after = if self.in_headers {
            "the record after "
        } else {
            ""
        };
        let at = match (&self.rev, &self.node) {
            (Some(r), Some(p)) => format!("r{r}, {after}node {:?}", String::from_utf8_lossy(p)),
            (Some(r), None) if self.in_headers => format!("the record after r{r}'s header"),
            (Some(r), None) => format!("r{r}"),
            _ => "header".to_string(),
        };
        DumpError {
            at,
            what: what.into(),
        }
    }

    /// Reads one header block; `None` at a clean end of stream.
    fn headers(&mut self) -> Result<Option<Headers>, DumpError> {
        self.in_headers = true;
        let r = self.header_block();
        self.in_headers = false;
        r
    }

    fn header_block(&mut self) -> Result<Option<Headers>, DumpError> {
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self
                .r
                .read_until(b'\n', &mut line)
                .map_err(|e| self.err(format!("read failed: {e}")))?;
            if n == 0 {
                if out.is_empty() {
                    return Ok(None);
                }
                return Err(self.err("stream ends inside a header block"));
            }
            if !line.ends_with(b"\n") {
                return Err(self.err("stream ends in the middle of a header line (truncated dump)"));
            }
            line.pop();
            if line.is_empty() {
                if out.is_empty() {
                    continue;
                }
                return Ok(Some(out));
            }
            if line[0] == b' ' || line[0] == b'\t' {
                continue;
            }
            let sep = line.windows(2).position(|w| w == b": ").ok_or_else(|| {
                self.err(format!(
                    "malformed header line {:?}",
                    String::from_utf8_lossy(&line)
                ))
            })?;
            out.push((line[..sep].to_vec(), line[sep + 2..].to_vec()));
        }
    }

    /// Reads `n` bytes, growing the buffer as they arrive (a corrupt length must not become a
    /// huge allocation up front).
    fn read_exact(&mut self, n: u64, what: &str) -> Result<Vec<u8>, DumpError> {
        let mut buf = Vec::with_capacity(n.min(1 << 20) as usize);
        let got = std::io::Read::read_to_end(&mut std::io::Read::take(&mut self.r, n), &mut buf)
            .map_err(|e| self.err(format!("{what}: {e}")))?;
        if got as u64 != n {
            return Err(self.err(format!(
                "{what}: {n} bytes announced, the stream ends after {got} (truncated dump)"
            )));
        }
        Ok(buf)
    }

    fn record(&mut self, h: Headers) -> Result<Record, DumpError> {
        let get = |k: &[u8]| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_slice());
        if let Some(v) = get(b"SVN-fs-dump-format-version") {
            // Another one later is a concatenated dump (`cat a.dump b.dump`), which
            // svnadmin loads as one.
            let v = num(v)
                .filter(|v| (1..=3).contains(v))
                .ok_or_else(|| self.err("unsupported dump format version"))?;
            self.versioned = true;
            return Ok(Record::Version(v as u32));
        }
        if !self.versioned {
            return Err(self.err(
                "the stream does not start with an SVN-fs-dump-format-version line \
                 (not a dump, or its beginning is missing)",
            ));
        }
        if let Some(v) = get(b"Revision-number") {
            let n = num(v).ok_or_else(|| self.err("bad Revision-number"))?;
            if let Some(last) = self.rev.filter(|&last| n <= last) {
                self.node = None;
                return Err(self.err(format!(
                    "Revision-number {n} follows r{last}: revision numbers must increase"
                )));
            }
            self.rev = Some(n);
            self.node = None;
            let (props, _) = self.bodies(&h)?;
            let props = props
                .map(|p| {
                    p.entries
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v?)))
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Record::Revision { number: n, props });
        }
        if let Some(path) = get(b"Node-path") {
            self.node = Some(path.to_vec());
            return self.node_record(&h).map(Record::Node);
        }
        if let Some(u) = get(b"UUID") {
            return Ok(Record::Uuid(String::from_utf8_lossy(u).into_owned()));
        }
        Err(self.err("record is neither a revision nor a node"))
    }

    fn node_record(&mut self, h: &Headers) -> Result<Node, DumpError> {
        let get = |k: &[u8]| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_slice());
        let path = get(b"Node-path").unwrap_or_default().to_vec();
        let kind = match get(b"Node-kind") {
            None => None,
            Some(b"file") => Some(Kind::File),
            Some(b"dir") => Some(Kind::Dir),
            Some(k) => {
                return Err(self.err(format!(
                    "unknown Node-kind {:?}",
                    String::from_utf8_lossy(k)
                )));
            }
        };
        let action = match get(b"Node-action") {
            Some(b"add") => Action::Add,
            Some(b"change") => Action::Change,
            Some(b"delete") => Action::Delete,
            Some(b"replace") => Action::Replace,
            a => {
                return Err(self.err(format!(
                    "bad or missing Node-action {:?}",
                    a.map(String::from_utf8_lossy)
                )));
            }
        };
        let copyfrom = match (get(b"Node-copyfrom-rev"), get(b"Node-copyfrom-path")) {
            (Some(r), Some(p)) => Some((
                num(r).ok_or_else(|| self.err("bad Node-copyfrom-rev"))?,
                p.to_vec(),
            )),
            (None, None) => None,
            _ => {
                return Err(self.err("Node-copyfrom-rev and Node-copyfrom-path must come together"));
            }
        };
        let content =
            get(b"Prop-content-length").is_some() || get(b"Text-content-length").is_some();
        if kind.is_none()
            && copyfrom.is_none()
            && content
            && matches!(action, Action::Add | Action::Replace)
        {
            return Err(self.err("an add without a copy source has no Node-kind"));
        }
        if action == Action::Delete && content {
            // svnadmin deletes and then fails to set the content on the deleted path.
            return Err(self.err("a delete node has a property or text section"));
        }
        let (mut props, text) = self.bodies(h)?;
        if let Some(p) = props.as_mut() {
            p.delta = get(b"Prop-delta") == Some(b"true");
        }
        let text = text.map(|data| -> Result<Text, DumpError> {
            Ok(Text {
                delta: get(b"Text-delta") == Some(b"true"),
                data,
                md5: get(b"Text-content-md5")
                    .map(|v| hex::<16>(v).ok_or_else(|| self.err("bad Text-content-md5")))
                    .transpose()?,
                sha1: get(b"Text-content-sha1")
                    .map(|v| hex::<20>(v).ok_or_else(|| self.err("bad Text-content-sha1")))
                    .transpose()?,
            })
        });
        Ok(Node {
            path,
            kind,
            action,
            copyfrom,
            props,
            text: text.transpose()?,
        })
    }

    /// Reads the property and text sections the headers announce and checks every length
    /// header against what was read.
    fn bodies(&mut self, h: &Headers) -> Result<(Option<Props>, Option<Vec<u8>>), DumpError> {
        let len = |k: &[u8]| -> Result<Option<u64>, DumpError> {
            match h.iter().find(|(n, _)| n == k) {
                None => Ok(None),
                Some((_, v)) => num(v).map(Some).ok_or_else(|| {
                    self.err(format!(
                        "bad {} {:?}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    ))
                }),
            }
        };
        let (plen, tlen) = (len(b"Prop-content-length")?, len(b"Text-content-length")?);
        let clen = len(b"Content-length")?;
        // svnadmin refuses this too ("Sum of subblock sizes larger than total block content
        // length"); a section read longer than announced is checked below.
        let declared = plen.unwrap_or(0).checked_add(tlen.unwrap_or(0));
        if let (Some(c), Some(sum)) = (clen, declared)
            && c < sum
        {
            return Err(self.err(format!(
                "Content-length {c} is less than Prop-content-length {} + Text-content-length {}",
                plen.unwrap_or(0),
                tlen.unwrap_or(0)
            )));
        }
        let (props, prop_bytes) = match plen {
            Some(n) => {
                let (p, read) = self.props(n, tlen.is_some_and(|t| t > 0))?;
                if read != n {
                    let w = self.err(format!(
                        "Prop-content-length {n}, but the property section is {read} bytes \
                         (read by its structure, as svnadmin reads it)"
                    ));
                    self.warnings.push(w);
                }
                (Some(p), read)
            }
            None => (None, 0),
        };
        let text = match tlen {
            Some(n) => Some(self.read_exact(n, "text section")?),
            None => None,
        };
        let read = prop_bytes + text.as_ref().map_or(0, |t| t.len() as u64);
        if let Some(c) = clen
            && c > read
        {
            self.skip_counted(c - read, plen.is_none())?;
        }
        Ok((props, text))
    }

    /// Consumes `n` bytes a `Content-length` counts beyond the sections read. svnadmin skips
    /// them unread, which loses nothing only when they are the blank lines that end a record
    /// or, where `Prop-content-length` is missing, an empty property section; anything else
    /// there is data that would be dropped or a record that would be read as data.
    fn skip_counted(&mut self, n: u64, props_unannounced: bool) -> Result<(), DumpError> {
        let mut skipped = Vec::new();
        let got = std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut self.r, n.min(1 << 20)),
            &mut skipped,
        )
        .map_err(|e| self.err(format!("read failed: {e}")))?;
        let rest = match skipped.strip_prefix(&b"PROPS-END\n"[..]) {
            Some(rest) if props_unannounced => rest,
            _ => &skipped[..],
        };
        if got as u64 != n || rest.iter().any(|&b| b != b'\n') {
            return Err(self.err(format!(
                "Content-length counts {n} bytes beyond the sections its length headers \
                 announce, and they are not the blank lines that end a record"
            )));
        }
        Ok(())
    }

    fn line(&mut self, what: &str) -> Result<Vec<u8>, DumpError> {
        let mut l = Vec::new();
        self.r
            .read_until(b'\n', &mut l)
            .map_err(|e| self.err(format!("{what}: {e}")))?;
        if l.pop() != Some(b'\n') {
            return Err(self.err(format!("{what}: stream ends early (truncated dump)")));
        }
        Ok(l)
    }

    /// A `K n` / `V n` / `D n` value: n bytes and a newline.
    fn value(&mut self, line: &[u8], tag: &[u8]) -> Result<Vec<u8>, DumpError> {
        let n = line.strip_prefix(tag).and_then(num).ok_or_else(|| {
            self.err(format!(
                "property section: unexpected line {:?}",
                String::from_utf8_lossy(line)
            ))
        })?;
        let n = n
            .checked_add(1)
            .ok_or_else(|| self.err("property section: length out of range"))?;
        let mut v = self.read_exact(n, "property value")?;
        if v.pop() != Some(b'\n') {
            return Err(self.err("property section: value is not followed by a newline"));
        }
        Ok(v)
    }

    /// The property section, read by its own structure (K/V/D lengths up to `PROPS-END`),
    /// and how many bytes it took.
    /// A `declared` length that falls between two entries is refused where it changes what
    /// svnadmin reads: it stops there and reads what follows as the text (or skips it, which
    /// loses nothing only when all that is left is the `PROPS-END` line and no text follows).
    fn props(&mut self, declared: u64, text_follows: bool) -> Result<(Props, u64), DumpError> {
        let mut p = Props::default();
        let mut read = 0u64;
        loop {
            // (A peek shorter than the line, at the end of the read buffer, refuses: rare.)
            let only_end_left = !text_follows
                && self
                    .r
                    .fill_buf()
                    .is_ok_and(|b| b.starts_with(b"PROPS-END\n"));
            if read == declared && !only_end_left {
                return Err(self.err(format!(
                    "Prop-content-length {declared} ends the property section before its PROPS-END"
                )));
            }
            let l = self.line("property section")?;
            read += l.len() as u64 + 1;
            if l == b"PROPS-END" {
                return Ok((p, read));
            }
            if l.starts_with(b"D ") {
                let k = self.value(&l, b"D ")?;
                read += k.len() as u64 + 1;
                p.entries.insert(k, None);
                continue;
            }
            let k = self.value(&l, b"K ")?;
            let vl = self.line("property section")?;
            let v = self.value(&vl, b"V ")?;
            read += k.len() as u64 + vl.len() as u64 + v.len() as u64 + 3;
            p.entries.insert(k, Some(v));
        }
    }
}

/// Parses `K/V/D ... PROPS-END` into entries (`D` keys map to `None`).
pub fn parse_props(raw: &[u8]) -> Result<Props, String> {
    let mut p = Props::default();
    let mut at = 0;
    let line = |at: &mut usize| -> Result<&[u8], String> {
        let rest = raw.get(*at..).ok_or("truncated")?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        *at += nl + 1;
        Ok(&rest[..nl])
    };
    let body = |at: &mut usize, n: usize| -> Result<Vec<u8>, String> {
        let v = raw
            .get(*at..*at + n)
            .ok_or("value runs past the section")?
            .to_vec();
        if raw.get(*at + n) != Some(&b'\n') {
            return Err("value is not followed by a newline".into());
        }
        *at += n + 1;
        Ok(v)
    };
    loop {
        let l = line(&mut at)?;
        if l == b"PROPS-END" {
            return Ok(p);
        }
        let (tag, n) = l.split_first().ok_or("empty line")?;
        let n = num(n.strip_prefix(b" ").ok_or("bad length line")?).ok_or("bad length")? as usize;
        let key = body(&mut at, n)?;
        match tag {
            b'K' => {
                let vl = line(&mut at)?;
                let vn = num(vl.strip_prefix(b"V ").ok_or("K without V")?)
                    .ok_or("bad value length")? as usize;
                let v = body(&mut at, vn)?;
                p.entries.insert(key, Some(v));
            }
            b'D' => {
                p.entries.insert(key, None);
            }
            _ => {
                return Err(format!(
                    "unknown property line {:?}",
                    String::from_utf8_lossy(l)
                ));
            }
        }
    }
}

fn num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim_end().parse().ok()
}

fn hex<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    let s = std::str::from_utf8(v).ok()?.trim_end();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Record, DumpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match self.headers() {
            Ok(None) => None,
            Ok(Some(h)) => Some(self.record(h)),
            Err(e) => Some(Err(e)),
        };
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn props_with_deletes() {
        let p = parse_props(b"K 3\nfoo\nV 3\nbar\nD 3\nbaz\nPROPS-END\n").expect("parses");
        assert_eq!(p.entries.get(&b"foo"[..]), Some(&Some(b"bar".to_vec())));
        assert_eq!(p.entries.get(&b"baz"[..]), Some(&None));
        assert!(parse_props(b"K 3\nfoo\nV 9\nbar\nPROPS-END\n").is_err());
    }

    #[test]
    fn truncated_dump_names_the_revision() {
        let d = b"SVN-fs-dump-format-version: 2\n\nRevision-number: 1\nProp-content-length: 100\nContent-length: 100\n\nK 1\n";
        let errs: Vec<_> = Reader::new(&d[..]).filter_map(Result::err).collect();
        assert!(errs[0].to_string().contains("r1"), "{}", errs[0]);
        let cut = b"SVN-fs-dump-format-version: 2\n\nRevision-number: 1\nProp-content-length: 10\nContent-length: 10\n\nPROPS-END\n\nNode-path: a\nNode-kind: dir\nNode-action: add\n\nNode-path: b\nNode-ki";
        let errs: Vec<_> = Reader::new(&cut[..]).filter_map(Result::err).collect();
        assert!(
            errs[0]
                .to_string()
                .contains("r1, the record after node \"a\""),
            "a cut inside a header names the record before it: {}",
            errs[0]
        );
    }
}
