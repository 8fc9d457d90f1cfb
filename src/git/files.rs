//! The repository's other files: the index, commit-graph, multi-pack-index, `.rev` and
//! `.bitmap` files, `shallow`, lock files and temporary files.
//!
//! Invariant: read-only. Each check returns what is wrong in words a user can act on.

use super::object::{Oid, sha1};
use std::path::{Path, PathBuf};

/// What the index names: blob (or, in a sparse index, tree) ids by path.
#[derive(Debug)]
pub struct IndexFile {
    pub entries: Vec<(String, Oid)>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Checks a file whose last 20 bytes are the SHA-1 of everything before them.
pub fn trailer_ok(b: &[u8]) -> bool {
    b.len() >= 20 && sha1(&b[..b.len() - 20]) == b[b.len() - 20..]
}

/// Parses `.git/index` (versions 2, 3 and 4), checking its signature and checksum.
pub fn read_index(b: &[u8]) -> Result<IndexFile, String> {
    if b.len() < 32 || &b[..4] != b"DIRC" {
        return Err("bad index signature (not DIRC)".into());
    }
    let version = be32(b, 4).unwrap_or(0);
    if !(2..=4).contains(&version) {
        return Err(format!("unsupported index version {version}"));
    }
    let tail = &b[b.len() - 20..];
    if tail != [0u8; 20] && !trailer_ok(b) {
        return Err("index checksum mismatch".into());
    }
    let n = be32(b, 8).unwrap_or(0) as usize;
    let mut at = 12;
    let mut entries = Vec::with_capacity(n);
    let mut prev = Vec::new();
    for i in 0..n {
        let (entry, next) = index_entry(b, at, version, &mut prev)
            .ok_or(format!("index entry {} is truncated or malformed", i + 1))?;
        if let Some(e) = entry {
            entries.push(e);
        }
        at = next;
    }
    Ok(IndexFile { entries })
}

fn index_entry(
    b: &[u8],
    at: usize,
    version: u32,
    prev: &mut Vec<u8>,
) -> Option<(Option<(String, Oid)>, usize)> {
    let mode = be32(b, at + 24)?;
    let oid = Oid::from_raw(b.get(at + 40..at + 60)?)?;
    let flags = u16::from_be_bytes(b.get(at + 60..at + 62)?.try_into().ok()?);
    let mut p = at + 62;
    if version >= 3 && flags & 0x4000 != 0 {
        p += 2;
    }
    let name;
    let next;
    if version == 4 {
        let mut strip = 0usize;
        loop {
            let c = *b.get(p)?;
            p += 1;
            strip = strip.checked_mul(128)? | usize::from(c & 0x7f);
            if c & 0x80 == 0 {
                break;
            }
            strip = strip.checked_add(1)?;
        }
        let end = p + b.get(p..)?.iter().position(|&c| c == 0)?;
        prev.truncate(prev.len().checked_sub(strip)?);
        prev.extend_from_slice(&b[p..end]);
        name = prev.clone();
        next = end + 1;
    } else {
        let end = p + b.get(p..)?.iter().position(|&c| c == 0)?;
        name = b[p..end].to_vec();
        next = at + ((end - at + 8) & !7);
    }
    let gitlink = mode & 0o170000 == 0o160000;
    let entry = (!gitlink).then(|| (String::from_utf8_lossy(&name).into_owned(), oid));
    Some((entry, next))
}

/// The commits a commit-graph file (or one layer of a chain) lists, after checking its header
/// and checksum.
pub fn commit_graph_oids(b: &[u8]) -> Result<Vec<Oid>, String> {
    if b.len() < 8 + 20 || &b[..4] != b"CGPH" {
        return Err("bad commit-graph signature".into());
    }
    if !trailer_ok(b) {
        return Err("commit-graph checksum mismatch".into());
    }
    chunk(b, 8, usize::from(b[6]), *b"OIDL")
        .map(|c| c.chunks_exact(20).filter_map(Oid::from_raw).collect())
        .ok_or_else(|| "commit-graph has no OID lookup chunk".into())
}

/// Finds chunk `id` in a chunk-format file whose table starts at `table` with `n` chunks.
fn chunk(b: &[u8], table: usize, n: usize, id: [u8; 4]) -> Option<&[u8]> {
    for i in 0..n {
        let at = table + i * 12;
        if b.get(at..at + 4)? == id {
            let start = u64::from_be_bytes(b.get(at + 4..at + 12)?.try_into().ok()?) as usize;
            let end = u64::from_be_bytes(b.get(at + 16..at + 24)?.try_into().ok()?) as usize;
            return b.get(start..end);
        }
    }
    None
}

/// The pack names a multi-pack-index covers, after checking its header and checksum.
pub fn midx_packs(b: &[u8]) -> Result<Vec<String>, String> {
    if b.len() < 12 + 20 || &b[..4] != b"MIDX" {
        return Err("bad multi-pack-index signature".into());
    }
    if !trailer_ok(b) {
        return Err("multi-pack-index checksum mismatch".into());
    }
    let names = chunk(b, 12, usize::from(b[6]), *b"PNAM")
        .ok_or("multi-pack-index has no pack-name chunk")?;
    Ok(names
        .split(|&c| c == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect())
}

/// Checks a `.rev` file against the checksum of the pack it belongs to.
pub fn check_rev(b: &[u8], pack_sum: &[u8]) -> Result<(), String> {
    if b.len() < 12 + 40 || &b[..4] != b"RIDX" {
        return Err("bad .rev signature".into());
    }
    if !trailer_ok(b) {
        return Err(".rev checksum mismatch".into());
    }
    if &b[b.len() - 40..b.len() - 20] != pack_sum {
        return Err(".rev was written for another pack".into());
    }
    Ok(())
}

/// Checks a `.bitmap` file's header against its pack.
pub fn check_bitmap(b: &[u8], pack_sum: &[u8]) -> Result<(), String> {
    if b.len() < 32 || &b[..4] != b"BITM" {
        return Err("bad .bitmap signature".into());
    }
    if &b[12..32] != pack_sum {
        return Err(".bitmap was written for another pack".into());
    }
    if !trailer_ok(b) {
        return Err(".bitmap checksum mismatch".into());
    }
    Ok(())
}

/// The commits listed in `shallow` (history below them is legitimately absent).
pub fn shallow(common: &Path) -> Vec<Oid> {
    std::fs::read(common.join("shallow"))
        .unwrap_or_default()
        .split(|&c| c == b'\n')
        .filter_map(Oid::from_hex)
        .collect()
}

/// Lock files and temporary files a crashed git (or git-surgery) left behind.
pub fn leftovers(git_dir: &Path, common: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [git_dir, common] {
        for e in walkdir::WalkDir::new(dir)
            .max_depth(6)
            .into_iter()
            .filter_entry(|e| {
                let n = e.file_name().to_string_lossy();
                !(e.depth() == 1
                    && (n == "surgery"
                        || n == "modules"
                        || (n == "worktrees" && dir == common && git_dir != common)))
            })
        {
            let Ok(e) = e else { continue };
            let n = e.file_name().to_string_lossy();
            let temp = n.starts_with("tmp_obj_")
                || n.starts_with("tmp_pack_")
                || n.starts_with("tmp_idx_")
                || n.starts_with("tmp_rev_")
                || n.starts_with("tmp_surgery_")
                || n.starts_with("incoming-");
            if (e.file_type().is_file() && n.ends_with(".lock")) || temp {
                out.push(e.path().to_path_buf());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Checks that a config file parses, by asking git (the authority on its own syntax).
pub fn check_config(path: &Path) -> Result<(), String> {
    if !path.exists() {
        return Err("config file is missing".into());
    }
    let o = crate::git::command()
        .args(["config", "--file"])
        .arg(path)
        .arg("--list")
        .output()
        .map_err(|e| format!("cannot run git config: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_index_signature_is_named() {
        assert!(read_index(&[0u8; 100]).unwrap_err().contains("signature"));
    }
}
