//! `--verify`: every branch and tag tip (or every commit) is compared with the Subversion tree
//! it came from, exported by `svn export` at the revision its `svn-revision:` trailer names.
//!
//! Invariants: read-only on both sides; the comparison is independent of the converter's own
//! model (files are read back through git and Subversion's tools). Generated `.gitignore` files
//! and `.gitattributes` lines are not differences; empty directories are not either (git
//! cannot store them), nor the empty placeholder files `--empty-dirs` puts in them.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// One difference between a git tree and its Subversion tree.
#[derive(Debug, serde::Serialize)]
pub struct Difference {
    pub commit: String,
    pub svn: String,
    pub path: String,
    pub what: String,
}

/// What each side holds at a path: mode and content.
type Files = BTreeMap<String, (&'static str, Vec<u8>)>;

fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if o.status.success() {
        Ok(o.stdout)
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// The (revision, path) of a commit's `svn-revision:` trailer.
fn origin(git_dir: &Path, commit: &str) -> Result<Option<(u64, String)>, String> {
    let msg = run(crate::git::command().arg("--git-dir").arg(git_dir).args([
        "log",
        "-1",
        "--format=%B",
        commit,
    ]))?;
    let text = String::from_utf8_lossy(&msg);
    Ok(text.lines().rev().find_map(|l| {
        let rest = l.strip_prefix("svn-revision: ")?;
        let (at, path) = rest.split_once(' ')?;
        let rev = at.rsplit_once('@')?.1.parse().ok()?;
        Some((rev, path.to_string()))
    }))
}

fn git_files(git_dir: &Path, commit: &str) -> Result<Files, String> {
    let list = run(crate::git::command()
        .arg("--git-dir")
        .arg(git_dir)
        .args(["ls-tree", "-r", "-z", commit]))?;
    let mut entries = Vec::new();
    for rec in list.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let Some(tab) = rec.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let meta = String::from_utf8_lossy(&rec[..tab]).into_owned();
        let mut it = meta.split(' ');
        let (mode, _, id) = (
            it.next().unwrap_or(""),
            it.next(),
            it.next().unwrap_or("").to_string(),
        );
        let mode: &'static str = match mode {
            "100755" => "exec",
            "120000" => "link",
            "160000" => continue,
            _ => "file",
        };
        entries.push((
            String::from_utf8_lossy(&rec[tab + 1..]).into_owned(),
            mode,
            id,
        ));
    }
    let mut child = crate::git::command()
        .arg("--git-dir")
        .arg(git_dir)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut input = child.stdin.take().ok_or("no stdin")?;
    let ids: String = entries.iter().map(|e| format!("{}\n", e.2)).collect();
    let writer = std::thread::spawn(move || input.write_all(ids.as_bytes()));
    let mut out = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut files = Files::new();
    for (path, mode, _) in entries {
        let mut header = String::new();
        out.read_line(&mut header).map_err(|e| e.to_string())?;
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or("bad cat-file output")?;
        let mut data = vec![0u8; size + 1];
        out.read_exact(&mut data).map_err(|e| e.to_string())?;
        data.pop();
        files.insert(path, (mode, data));
    }
    let _ = writer.join();
    let _ = child.wait();
    Ok(files)
}

fn svn_files(url: &str, path: &str, rev: u64, tmp: &Path) -> Result<Files, String> {
    let dir = tmp.join(format!("export-{rev}"));
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("svn")
        .args([
            "export",
            "-q",
            "--non-interactive",
            "--ignore-externals",
            "--ignore-keywords",
            "--native-eol",
            "LF",
        ])
        .arg(format!("{url}{path}@{rev}"))
        .arg(&dir))?;
    let mut files = Files::new();
    for e in walkdir::WalkDir::new(&dir)
        .into_iter()
        .filter_map(Result::ok)
    {
        let rel = e
            .path()
            .strip_prefix(&dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ft = e.path_is_symlink();
        if ft {
            let target = std::fs::read_link(e.path()).map_err(|x| x.to_string())?;
            files.insert(
                rel,
                ("link", target.as_os_str().as_encoded_bytes().to_vec()),
            );
        } else if e.file_type().is_file() {
            use std::os::unix::fs::PermissionsExt;
            let exec = e
                .metadata()
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            files.insert(
                rel,
                (
                    if exec { "exec" } else { "file" },
                    std::fs::read(e.path()).map_err(|x| x.to_string())?,
                ),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(files)
}

/// Files the converter writes or extends itself.
fn generated(path: &str) -> bool {
    path == ".gitignore"
        || path.ends_with("/.gitignore")
        || path == ".gitattributes"
        || path.ends_with("/.gitattributes")
}

/// Whether a file that `svn export` wrote differently from git holds, as Subversion stores it,
/// exactly git's bytes: `svn export` rewrites line endings by `svn:eol-style`, even where the
/// stored text contradicts the property (a dump can hold such a text; git keeps it as stored).
/// A local repository is read raw with `svnlook cat`; a remote one can only be compared with
/// line endings made equal on both sides.
fn stored_as_git_has_it(
    url: &str,
    root: &str,
    file: &str,
    rev: u64,
    git: &[u8],
    exported: &[u8],
) -> bool {
    let lf = |b: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match (b[i], b.get(i + 1)) {
                (b'\r', Some(b'\n')) => {}
                (b'\r', _) => out.push(b'\n'),
                (c, _) => out.push(c),
            }
            i += 1;
        }
        out
    };
    if !git.contains(&b'\r') || lf(git) != lf(exported) {
        return false;
    }
    let Some(repo) = url.strip_prefix("file://") else {
        return true;
    };
    let path = format!("{}/{file}", root.trim_end_matches('/'));
    let raw = run(Command::new("svnlook")
        .args(["cat", "-r", &rev.to_string()])
        .arg(repo)
        .arg(&path));
    raw.is_ok_and(|r| r == git)
}

/// Compares `commits` (ids or ref names) with Subversion at `url` (the repository root).
/// `placeholder` names the empty file `--empty-dirs` put in empty directories.
pub fn verify(
    git_dir: &Path,
    url: &str,
    commits: &[String],
    placeholder: Option<&str>,
) -> Result<Vec<Difference>, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut diffs = Vec::new();
    for c in commits {
        let Some((rev, path)) = origin(git_dir, c)? else {
            diffs.push(Difference {
                commit: c.clone(),
                svn: String::new(),
                path: String::new(),
                what: "no svn-revision trailer".into(),
            });
            continue;
        };
        let git = git_files(git_dir, c)?;
        let svn = svn_files(url, &path, rev, tmp.path())?;
        let at = format!("{path}@{rev}");
        for (p, (mode, data)) in &svn {
            match git.get(p) {
                None => diffs.push(Difference {
                    commit: c.clone(),
                    svn: at.clone(),
                    path: p.clone(),
                    what: "missing in git".into(),
                }),
                Some((m, d)) if m != mode => diffs.push(Difference {
                    commit: c.clone(),
                    svn: at.clone(),
                    path: p.clone(),
                    what: format!("mode: git {m}, svn {mode}"),
                }),
                // A committed .gitignore/.gitattributes gets svn:ignore / --eol-attributes lines
                // appended on purpose: it must start with what Subversion holds.
                Some((_, d)) if generated(p) && d.starts_with(data) => {}
                Some((_, d)) if d != data && !stored_as_git_has_it(url, &path, p, rev, d, data) => {
                    diffs.push(Difference {
                        commit: c.clone(),
                        svn: at.clone(),
                        path: p.clone(),
                        what: "content differs".into(),
                    })
                }
                _ => {}
            }
        }
        let is_placeholder = |p: &str, data: &[u8]| {
            placeholder.is_some_and(|name| {
                data.is_empty() && (p == name || p.ends_with(&format!("/{name}")))
            })
        };
        for (p, _) in git
            .iter()
            .filter(|(p, (_, d))| !svn.contains_key(*p) && !generated(p) && !is_placeholder(p, d))
        {
            diffs.push(Difference {
                commit: c.clone(),
                svn: at.clone(),
                path: p.clone(),
                what: "only in git".into(),
            });
        }
    }
    Ok(diffs)
}
