//! Random damage to a repository's files, of the kinds git-repair's own test suite uses:
//! a file deleted, emptied, truncated, one bit flipped, its bytes reversed, or two files'
//! contents swapped; one to three at once, anywhere under `.git` except `config` and `hooks/`.
//! Seeded: the same seed gives the same damage to the same repository. Shared by the
//! damagebench program and the fixed-seed slice in the test suite (included by path).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// splitmix64: small, seedable, and good enough to pick files and offsets.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `before` (the refs before the damage) with the reflogs found in `repo` now (after it).
pub fn with_reflogs_left(before: &Refs, repo: &Path) -> Refs {
    Refs {
        logged: refs_of(repo).logged,
        ..before.clone()
    }
}

/// Every file under `git_dir` damage may hit, sorted (so a seed picks the same ones).
pub fn targets(git_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(git_dir)
        .into_iter()
        .filter(|p| {
            let rel = p.strip_prefix(git_dir).unwrap_or(p);
            let first = rel.components().next().map(|c| c.as_os_str().to_owned());
            rel != Path::new("config")
                && first.as_deref() != Some(std::ffi::OsStr::new("hooks"))
                && first.as_deref() != Some(std::ffi::OsStr::new("surgery"))
        })
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

fn writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
}

/// Damages one to three files under `git_dir`; returns what was done, one line per damage.
pub fn damage(git_dir: &Path, rng: &mut Rng) -> Vec<String> {
    let files = targets(git_dir);
    if files.is_empty() {
        return Vec::new();
    }
    let count = 1 + rng.below(3);
    let mut done = Vec::new();
    for _ in 0..count {
        let f = &files[rng.below(files.len() as u64) as usize];
        let rel = f.strip_prefix(git_dir).unwrap_or(f).display().to_string();
        if !f.exists() {
            continue; // deleted by an earlier damage of this trial
        }
        writable(f);
        let bytes = std::fs::read(f).unwrap_or_default();
        let what = match rng.below(6) {
            0 => {
                let _ = std::fs::remove_file(f);
                format!("deleted {rel}")
            }
            1 => {
                let _ = std::fs::write(f, b"");
                format!("emptied {rel}")
            }
            2 if !bytes.is_empty() => {
                let keep = rng.below(bytes.len() as u64) as usize;
                let _ = std::fs::write(f, &bytes[..keep]);
                format!("truncated {rel} to {keep} of {} bytes", bytes.len())
            }
            3 if !bytes.is_empty() => {
                let mut b = bytes.clone();
                let at = rng.below(b.len() as u64) as usize;
                let bit = rng.below(8) as u8;
                b[at] ^= 1 << bit;
                let _ = std::fs::write(f, &b);
                format!("flipped bit {bit} of byte {at} in {rel}")
            }
            4 if bytes.len() > 1 => {
                let mut b = bytes.clone();
                b.reverse();
                let _ = std::fs::write(f, &b);
                format!("reversed {rel}")
            }
            _ => {
                let other = &files[rng.below(files.len() as u64) as usize];
                if other == f || !other.exists() {
                    let _ = std::fs::remove_file(f);
                    format!("deleted {rel}")
                } else {
                    writable(other);
                    let theirs = std::fs::read(other).unwrap_or_default();
                    let _ = std::fs::write(f, &theirs);
                    let _ = std::fs::write(other, &bytes);
                    let orel = other.strip_prefix(git_dir).unwrap_or(other).display();
                    format!("swapped {rel} and {orel}")
                }
            }
        };
        done.push(what);
    }
    done
}

/// A repository's refs: each ref's value, HEAD's target, and which refs have a reflog
/// (evidence of their value that survives the ref itself). Judging compares the values before
/// the damage with those after the repair, and takes the reflogs as they are after the damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    pub values: std::collections::BTreeMap<String, String>,
    pub head: String,
    pub logged: std::collections::BTreeSet<String>,
}

fn git_text(repo: &Path, args: &[&str]) -> String {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// What `repo`'s refs are now.
pub fn refs_of(repo: &Path) -> Refs {
    let values = git_text(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let logs = repo.join(".git/logs");
    let logged = walk(&logs.join("refs"))
        .into_iter()
        .filter_map(|p| p.strip_prefix(&logs).ok().map(|r| r.display().to_string()))
        .collect();
    Refs {
        values,
        head: git_text(repo, &["symbolic-ref", "-q", "HEAD"]),
        logged,
    }
}

/// `git fsck --full --strict` finds nothing.
pub fn fsck_clean(repo: &Path) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["fsck", "--full", "--strict", "--no-dangling"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How one tool did on one damaged copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Said it succeeded, and fsck and the refs agree.
    Healed,
    /// Said it succeeded, fsck agrees, and only refs that left no trace in the repository (no
    /// reflog left after the damage) differ: a loose ref file deleted with or without its
    /// reflog, which no tool can tell from `git update-ref -d` without another copy.
    HealedButUntraceableRefLost,
    /// Said it failed (damage remains), honestly.
    Failed,
    /// Said it succeeded while fsck disagrees, or a ref with a reflog is not what it was.
    FalseSuccess,
    /// Killed by a signal or panicked.
    Crashed,
}

/// Judges a run from its exit status and the repository afterwards: `before` has the refs'
/// values before the damage and the reflogs that were left after it.
pub fn judge(status: std::process::ExitStatus, repo: &Path, before: &Refs) -> Verdict {
    use std::os::unix::process::ExitStatusExt;
    if status.signal().is_some() || status.code() == Some(101) {
        return Verdict::Crashed;
    }
    if !status.success() {
        return Verdict::Failed;
    }
    if !fsck_clean(repo) {
        return Verdict::FalseSuccess;
    }
    let now = refs_of(repo);
    if now.head != before.head {
        return Verdict::FalseSuccess;
    }
    let names: std::collections::BTreeSet<&String> =
        before.values.keys().chain(now.values.keys()).collect();
    let mut untraceable = false;
    for n in names {
        if before.values.get(n) == now.values.get(n) {
            continue;
        }
        if before.logged.contains(n) || !before.values.contains_key(n) {
            return Verdict::FalseSuccess;
        }
        untraceable = true;
    }
    if untraceable {
        Verdict::HealedButUntraceableRefLost
    } else {
        Verdict::Healed
    }
}
