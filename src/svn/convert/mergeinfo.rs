//! `svn:mergeinfo` values: `/source/path:RANGES` lines, RANGES being `N`, `N-M`, each with an
//! optional `*` (non-inheritable: a partial merge, never a merge parent).

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
}
