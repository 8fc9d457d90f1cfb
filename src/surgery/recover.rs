//! Getting good copies of missing objects: from another local repository (`--reference`),
//! or from remotes, fetched by object id into a fresh temporary repository.
//!
//! Invariants: nothing fetched is trusted: every object is re-read from the temporary
//! repository's files and hash-checked (pack entries against their index and content hash,
//! loose files against their name) before it is handed out. Fetches go into an empty
//! repository, never into the damaged one, so negotiation cannot skip ids that only "exist".

use crate::git::object::Oid;
pub use crate::git::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A place to recover from, in the order the user gave.
#[derive(Clone, Debug)]
pub enum Source {
    /// Another local copy: its object directory is read directly.
    Reference(PathBuf),
    /// A remote: name (or URL as given) and URL.
    Remote { name: String, url: String },
}

/// Runs git with a clean environment for our temporary repositories.
fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY");
    c.stdin(std::process::Stdio::null());
    c
}

/// Why a fetch failed, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FetchFailure {
    pub source: String,
    pub error: String,
}

/// Fetches `want` from `url` into a fresh bare repository at `tmp`: first by id (protocol v2),
/// then, if the server refuses wants by id, every ref. Returns the store and how it fetched.
pub fn fetch(
    name: &str,
    url: &str,
    want: &[Oid],
    tmp: &Path,
) -> Result<(Store, &'static str), FetchFailure> {
    let fail = |error: String| FetchFailure {
        source: name.to_string(),
        error,
    };
    if tmp.exists() {
        // Our own temporary repository from an interrupted run: it holds only copies.
        std::fs::remove_dir_all(tmp).map_err(|e| fail(format!("{}: {e}", tmp.display())))?;
    }
    let init = git(Path::new("."))
        .args(["init", "-q", "--bare"])
        .arg(tmp)
        .output()
        .map_err(|e| fail(format!("cannot run git: {e}")))?;
    if !init.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&init.stderr).trim().to_string(),
        ));
    }
    let by_id_err = match fetch_by_id(url, want, tmp) {
        Ok(()) => return Ok((Store::open(name, &tmp.join("objects")), "by-id")),
        Err(e) => e,
    };
    crate::warn!(
        "fetch by id refused, fetching all refs",
        source = name.to_string(),
        error = by_id_err.clone()
    );
    let all = git(tmp)
        .args([
            "fetch",
            "-q",
            "--no-write-fetch-head",
            url,
            "+refs/*:refs/surgery-fetched/*",
        ])
        .output();
    match all {
        Ok(o) if o.status.success() => Ok((Store::open(name, &tmp.join("objects")), "all-refs")),
        Ok(o) => Err(fail(format!(
            "by id: {by_id_err}; all refs: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Fetches `want` by id. A server that does not have one id refuses the whole request
/// ("not our ref <id>"): that id is dropped and the rest asked again, so an object no remote
/// has never turns into a download of the whole remote. Any other refusal is returned.
fn fetch_by_id(url: &str, want: &[Oid], tmp: &Path) -> Result<(), String> {
    let mut ids: Vec<String> = want.iter().map(Oid::to_hex).collect();
    while !ids.is_empty() {
        let o = git(tmp)
            .args([
                "-c",
                "protocol.version=2",
                "fetch",
                "-q",
                "--no-tags",
                "--no-write-fetch-head",
                url,
            ])
            .args(&ids)
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if o.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
        let unknown = err
            .split("not our ref ")
            .nth(1)
            .map(|r| r.chars().take(40).collect::<String>());
        match unknown {
            Some(id) if ids.contains(&id) => ids.retain(|i| *i != id),
            _ => return Err(err),
        }
    }
    Ok(())
}

/// The remotes to try: `--remote` names, else `surgery.remote` values, else every configured
/// remote in config order. A name that is not a configured remote is taken as a URL or path.
pub fn remotes(common: &Path, asked: &[String]) -> Vec<Source> {
    let names: Vec<String> = if !asked.is_empty() {
        asked.to_vec()
    } else {
        let configured = config_list(common, &["config", "--get-all", "surgery.remote"]);
        if !configured.is_empty() {
            configured
        } else {
            config_list(common, &["remote"])
        }
    };
    names
        .into_iter()
        .map(|n| {
            let url = config_list(common, &["config", "--get", &format!("remote.{n}.url")])
                .into_iter()
                .next()
                .unwrap_or_else(|| n.clone());
            Source::Remote { name: n, url }
        })
        .collect()
}

fn config_list(common: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(common)
        .args(args)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}
