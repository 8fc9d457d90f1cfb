//! Merge tickets: `svn:mergeinfo` values (`/source/path:RANGES` lines, RANGES being `N`, `N-M`,
//! each with an optional `*`: non-inheritable, a partial merge, never a merge parent), and the
//! two older tools' tickets read the same way: svnmerge.py's `svnmerge-integrated`
//! (whitespace-separated `/path:RANGES`) and SVK's `svk:merge` (`UUID:/path:REV` lines: every
//! revision of that path up to REV, in the repository with that UUID).

use std::collections::BTreeMap;

/// Inheritable merged revisions per source path (without the leading `/`).
pub type Mergeinfo = BTreeMap<Vec<u8>, Vec<(u64, u64)>>;

/// Parses a mergeinfo value; lines that do not parse are skipped (and reported by the caller
/// as ignored), ranges marked `*` are left out.
pub fn parse(v: &[u8]) -> Mergeinfo {
    let mut out = Mergeinfo::new();
    for line in v.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().rposition(|&b| b == b':') else {
            continue;
        };
        let path = line[..colon]
            .strip_prefix(b"/")
            .unwrap_or(&line[..colon])
            .to_vec();
        let Ok(ranges) = std::str::from_utf8(&line[colon + 1..]) else {
            continue;
        };
        let mut list = Vec::new();
        for r in ranges
            .split(',')
            .map(str::trim)
            .filter(|r| !r.ends_with('*') && !r.is_empty())
        {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>())
                && a <= b
            {
                list.push((a, b));
            }
        }
        if !list.is_empty() {
            out.entry(path).or_default().extend(list);
        }
    }
    out
}

/// An `svnmerge-integrated` value.
pub fn parse_svnmerge(v: &[u8]) -> Mergeinfo {
    let lines: Vec<u8> = v
        .iter()
        .map(|&b| if b.is_ascii_whitespace() { b'\n' } else { b })
        .collect();
    parse(&lines)
}

/// An `svk:merge` value: the tickets of repository `uuid` (others name a mirror's depot and
/// are returned apart, for the report).
pub fn parse_svk(v: &[u8], uuid: &str) -> (Mergeinfo, Vec<String>) {
    let (mut out, mut foreign) = (Mergeinfo::new(), Vec::new());
    for line in v.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = String::from_utf8_lossy(line);
        let Some((depot, rest)) = text.split_once(':') else {
            continue;
        };
        let Some((path, rev)) = rest.rsplit_once(':') else {
            continue;
        };
        let Ok(rev) = rev.trim().parse::<u64>() else {
            continue;
        };
        if depot != uuid {
            foreign.push(text.into_owned());
            continue;
        }
        let path = path.strip_prefix('/').unwrap_or(path).as_bytes().to_vec();
        out.entry(path).or_default().push((1, rev));
    }
    (out, foreign)
}

/// Whether `rev` lies in one of `ranges`.
pub fn covers(ranges: &[(u64, u64)], rev: u64) -> bool {
    ranges.iter().any(|&(a, b)| a <= rev && rev <= b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_non_inheritable() {
        let m = parse(b"/branches/f:3-5,7\n/branches/g:4*\n");
        assert_eq!(m.get(&b"branches/f"[..]), Some(&vec![(3, 5), (7, 7)]));
        assert!(
            !m.contains_key(&b"branches/g"[..]),
            "non-inheritable ranges are not merges"
        );
        assert!(covers(&m[&b"branches/f"[..]], 4) && !covers(&m[&b"branches/f"[..]], 6));
    }

    #[test]
    fn svnmerge_and_svk_tickets() {
        let m = parse_svnmerge(b"/branches/a:1-6 /branches/b:3,5-7");
        assert_eq!(m.get(&b"branches/a"[..]), Some(&vec![(1, 6)]));
        assert_eq!(m.get(&b"branches/b"[..]), Some(&vec![(3, 3), (5, 7)]));
        let (m, foreign) = parse_svk(b"u-1:/branches/left:6\nu-2:/mirror/x:9\n", "u-1");
        assert_eq!(m.get(&b"branches/left"[..]), Some(&vec![(1, 6)]));
        assert_eq!(foreign, vec!["u-2:/mirror/x:9".to_string()]);
    }
}
