//! Getting good copies of missing objects: from another local repository (`--reference`),
//! or from remotes, fetched by object id into a fresh temporary repository.
//!
//! Invariants: nothing fetched is trusted: every object is re-read from the temporary
//! repository's files and hash-checked (pack entries against their index and content hash,
//! loose files against their name) before it is handed out. Fetches go into an empty
//! repository, never into the damaged one, so negotiation cannot skip ids that only "exist".

use crate::git::object::Oid;
use crate::git::repo::Repo;
pub use crate::git::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A place to recover from, in the order the user gave.
#[derive(Clone, Debug)]
pub enum Source {
    /// Another local copy: its object directory is read directly.
    Reference(PathBuf),
    /// A remote: configured, or a URL or path as given.
    Remote(Remote),
}

/// Runs git with a clean environment for our temporary repositories.
fn git(dir: &Path) -> Command {
    let mut c = crate::git::command();
    c.arg("-C").arg(dir);
    c
}

/// How git itself fetches from the damaged repository, so that a fetch into a fresh temporary
/// repository reaches exactly the remotes `git fetch <remote>` reaches from it.
///
/// Two things make a fetch depend on the repository it runs in: the directory git runs in
/// (relative URLs and relative paths in the config resolve from the work tree's top, or from the
/// git directory of a bare repository), and the repository's own configuration (remotes,
/// `url.*.insteadOf`, `http.*`, credential helpers, `core.sshCommand`, includes resolved for
/// this git directory). Both are carried over; the object store and refs are not.
#[derive(Clone, Debug, Default)]
pub struct FetchContext {
    /// Where git would run for this repository.
    pub cwd: PathBuf,
    /// The repository's own config entries (local and worktree scope, includes followed) that
    /// concern reaching a remote, in file order.
    config: Vec<(String, String)>,
}

impl FetchContext {
    /// Reads the fetch-related configuration of `repo` as git sees it.
    pub fn of(repo: &Repo) -> FetchContext {
        let cwd = repo
            .work_tree
            .clone()
            .unwrap_or_else(|| repo.git_dir.clone());
        let mut c = crate::git::command();
        c.arg("--git-dir")
            .arg(&repo.git_dir)
            .args(["config", "--list", "-z", "--show-scope", "--includes"])
            .current_dir(&cwd);
        let config = match c.output() {
            Ok(o) if o.status.success() => parse_scoped_list(&o.stdout)
                .into_iter()
                .filter(|(scope, key, _)| {
                    matches!(scope.as_str(), "local" | "worktree") && carried(key)
                })
                .map(|(_, k, v)| (k, v))
                .collect(),
            // A config git cannot read: the fetch goes ahead with the URL alone (repair has
            // already rewritten what it could of the file).
            _ => Vec::new(),
        };
        FetchContext { cwd, config }
    }

    /// The names of the configured remotes, in config order.
    pub fn remote_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (k, _) in &self.config {
            if let Some(name) = k
                .strip_prefix("remote.")
                .and_then(|r| r.strip_suffix(".url"))
            {
                let name = name.to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The last value of `key` (keys as `git config --list` spells them: section and name in
    /// lower case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.config
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A git command for the temporary repository `tmp`, run where git would run for the
    /// damaged repository, with the damaged repository's fetch configuration.
    fn git(&self, tmp: &Path) -> Command {
        let mut c = crate::git::command();
        c.arg("--git-dir").arg(tmp);
        if self.cwd.is_dir() {
            c.current_dir(&self.cwd);
        }
        // Passed in the environment, not as `-c` arguments: values such as http.extraHeader
        // carry credentials, and every user can read a process's arguments. Entries the user
        // gave on git's own command line (GIT_CONFIG_COUNT) keep their precedence after ours.
        let theirs: usize = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let ours = self.config.len();
        for i in (0..theirs).rev() {
            for part in ["KEY", "VALUE"] {
                if let Ok(v) = std::env::var(format!("GIT_CONFIG_{part}_{i}")) {
                    c.env(format!("GIT_CONFIG_{part}_{}", i + ours), v);
                }
            }
        }
        for (i, (k, v)) in self.config.iter().enumerate() {
            c.env(format!("GIT_CONFIG_KEY_{i}"), k);
            c.env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        c.env("GIT_CONFIG_COUNT", (ours + theirs).to_string());
        c
    }
}

/// Parses `git config --list -z --show-scope`: `scope NUL key LF value NUL`, or
/// `scope NUL key NUL` for a key without a value (which git reads as true).
fn parse_scoped_list(out: &[u8]) -> Vec<(String, String, String)> {
    let fields: Vec<&[u8]> = out.split(|&b| b == 0).collect();
    fields
        .chunks_exact(2)
        .map(|pair| {
            let scope = String::from_utf8_lossy(pair[0]).into_owned();
            let entry = String::from_utf8_lossy(pair[1]);
            let (k, v) = entry.split_once('\n').unwrap_or((&entry, "true"));
            (scope, k.to_string(), v.to_string())
        })
        .collect()
}

/// Whether a config key concerns reaching a remote. Everything else of the damaged repository
/// (its core settings, hooks, extensions, submodules, gc) must not apply to the temporary
/// repository; includes are already followed.
fn carried(key: &str) -> bool {
    let (section, rest) = key.split_once('.').unwrap_or((key, ""));
    let name = rest.rsplit('.').next().unwrap_or(rest);
    match section {
        "remote" => !matches!(name, "promisor" | "partialclonefilter"),
        "url" | "http" | "credential" | "ssh" | "transfer" => true,
        "protocol" => key != "protocol.version",
        "core" => matches!(rest, "sshcommand" | "gitproxy" | "askpass"),
        "surgery" => rest == "remote",
        _ => false,
    }
}

/// Why a fetch failed, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FetchFailure {
    pub source: String,
    pub error: String,
}

/// Fetches `want` from `src` into a fresh bare repository at `tmp`: first by id (protocol v2),
/// then, if the server refuses wants by id, every ref. A configured remote is fetched by its
/// name, so git applies everything the damaged repository's config says about it. Returns the
/// store and how it fetched.
pub fn fetch(
    ctx: &FetchContext,
    src: &Remote,
    want: &[Oid],
    tmp: &Path,
) -> Result<(Store, &'static str), FetchFailure> {
    let name = src.name.as_str();
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
    let target = src.fetch_target();
    let by_id_err = match fetch_by_id(ctx, target, want, tmp) {
        Ok(()) => return Ok((Store::open(name, &tmp.join("objects")), "by-id")),
        Err(e) => e,
    };
    crate::warn!(
        "fetch by id refused, fetching all refs",
        source = name.to_string(),
        error = by_id_err.clone()
    );
    let all = ctx
        .git(tmp)
        .args(FETCH_ARGS)
        .arg(target)
        .arg("+refs/*:refs/surgery-fetched/*")
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

/// Every fetch into a temporary repository: quiet, no FETCH_HEAD, no tags beyond those asked
/// for, no submodules, and no automatic gc or maintenance afterwards.
const FETCH_ARGS: &[&str] = &[
    "fetch",
    "-q",
    "--no-tags",
    "--no-write-fetch-head",
    "--no-recurse-submodules",
    "--no-auto-maintenance",
    "--no-auto-gc",
];

/// Fetches `want` by id. A server that does not have one id refuses the whole request
/// ("not our ref <id>"): that id is dropped and the rest asked again, so an object no remote
/// has never turns into a download of the whole remote. Any other refusal is returned.
fn fetch_by_id(ctx: &FetchContext, target: &str, want: &[Oid], tmp: &Path) -> Result<(), String> {
    let mut ids: Vec<String> = want.iter().map(Oid::to_hex).collect();
    while !ids.is_empty() {
        let o = ctx
            .git(tmp)
            .args(["-c", "protocol.version=2"])
            .args(FETCH_ARGS)
            .arg(target)
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

/// A remote to recover from.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The remote's name, or the URL or path as the user gave it.
    pub name: String,
    /// Its URL as configured (before `insteadOf`), for reports; the name itself when unnamed.
    pub url: String,
    /// A remote of the repository's config: fetched by name, so git applies its settings.
    pub configured: bool,
}

impl Remote {
    fn fetch_target(&self) -> &str {
        if self.configured {
            &self.name
        } else {
            &self.url
        }
    }
}

/// The remotes to try: `--remote` names, else `surgery.remote` values, else every configured
/// remote in config order. A name that is not a configured remote is taken as a URL or path
/// (resolved, like git resolves one, from the directory git runs in for the repository).
pub fn remotes(ctx: &FetchContext, asked: &[String]) -> Vec<Source> {
    let configured = ctx.remote_names();
    let names: Vec<String> = if !asked.is_empty() {
        asked.to_vec()
    } else {
        let chosen: Vec<String> = ctx
            .config
            .iter()
            .filter(|(k, _)| k == "surgery.remote")
            .map(|(_, v)| v.clone())
            .collect();
        if chosen.is_empty() {
            configured.clone()
        } else {
            chosen
        }
    };
    names
        .into_iter()
        .map(|n| {
            let url = ctx.get(&format!("remote.{n}.url")).map(str::to_string);
            Source::Remote(Remote {
                configured: url.is_some(),
                url: url.unwrap_or_else(|| n.clone()),
                name: n,
            })
        })
        .collect()
}
