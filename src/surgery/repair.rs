//! `git surgery repair`: the plan run in order, each step safe to repeat.
//!
//! Steps: refuse if a git process works in the repository → scan → quarantine leftovers →
//! salvage damaged packs (good entries into a new pack, then the pack into quarantine) →
//! quarantine bad loose objects, orphans, stale commit-graph/MIDX/.rev/.bitmap → repair refs,
//! reflogs and HEADs (a ref set back to its reflog's last value even when that object is
//! damaged, so that recovery fetches it) → recover missing objects (reference copies, then
//! remotes) → fall back for refs whose value no source had → rebuild the index → move refs
//! whose history is lost into the quarantine (with `--force`) → regenerate the commit-graph →
//! verify with a fresh scan and `git fsck --full --strict`.
//!
//! Invariant: every step re-derives its work from the repository as it finds it and replaces
//! files only by complete new versions (temp or `.lock` + rename, the old bytes copied to the
//! quarantine first), so a run killed between or inside steps converges when rerun.

use super::quarantine::{self, Quarantine};
use super::recover::{self, FetchContext, FetchFailure, Source, Store};
use super::scan::{Finding, Loc, Missing, PackState, RefRestore, Scan, scan};
use crate::git::object::{Kind, Oid};
use crate::git::pack::{Index, Pack};
use crate::git::packwrite::PackWriter;
use crate::git::refs;
use crate::git::repo::Repo;
use crate::sched::Executor;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Repair errors: the run could not start or could not change the repository safely.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("git is working in this repository ({0}); run repair when it has finished")]
    Busy(String),
    #[error("{0} exists: another git or git surgery process holds this lock")]
    Locked(PathBuf),
    #[error(transparent)]
    Quarantine(#[from] quarantine::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read {} file(s), first {}: repair changes nothing until it can read everything \
         (run it as the repository's owner, or fix the permissions); nothing was changed",
        .0.len(),
        .0.first().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    Unreadable(Vec<PathBuf>),
    #[error(
        "{path} belongs to {owner}, not to the user running repair (uid {me}): files repair \
         writes would not be the owner's; run it as the owner (sudo -u '#{uid}' git surgery \
         repair); nothing was changed",
        owner = owner_name(*.uid)
    )]
    NotOwner { path: PathBuf, uid: u32, me: u32 },
}

/// A user's name for messages (the uid when it has none).
fn owner_name(uid: u32) -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    let name = unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*pw).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    name.map_or(format!("uid {uid}"), |n| format!("{n} (uid {uid})"))
}

/// Refuses to repair a repository this process's user does not own, as git's
/// `safe.directory` check refuses to work in one: what repair writes (packs, refs, the
/// quarantine, git's own objects from fetch) would belong to the wrong user.
pub fn check_owner(repo: &Repo) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&repo.common_dir).map_err(io(&repo.common_dir))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(Error::NotOwner {
            path: repo.common_dir.clone(),
            uid: meta.uid(),
            me,
        });
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub remotes: Vec<String>,
    pub references: Vec<PathBuf>,
    pub dry_run: bool,
    pub force: bool,
    pub reset_broken: bool,
    /// Test hook: the process kills itself (SIGKILL) after this step.
    pub kill_after: Option<String>,
}

/// One thing repair did (or, in a dry run, would do).
#[derive(Clone, Debug, Serialize)]
pub struct Action {
    pub action: &'static str,
    pub target: String,
    pub detail: String,
}

/// An object brought back, and from where.
#[derive(Clone, Debug, Serialize)]
pub struct Recovered {
    pub oid: Oid,
    pub source: String,
}

/// The outcome of a repair.
#[derive(Debug, Serialize)]
pub struct Report {
    pub healthy: bool,
    pub dry_run: bool,
    pub found: Vec<Finding>,
    pub actions: Vec<Action>,
    pub recovered: Vec<Recovered>,
    pub fetch_failures: Vec<FetchFailure>,
    /// What is still wrong after the repair.
    pub remaining: Vec<Finding>,
    /// Objects no source had, with the refs that need them.
    pub lost: Vec<Missing>,
    pub fsck_ok: Option<bool>,
    pub fsck_output: String,
    pub quarantine: Option<PathBuf>,
    /// When damage remains: the commands to try next, most promising first.
    pub next: Vec<String>,
}

struct Run<'a> {
    repo: &'a Repo,
    exec: &'a Executor,
    opts: &'a Options,
    actions: Vec<Action>,
    q: Option<Quarantine>,
    recovered: Vec<Recovered>,
    failures: Vec<FetchFailure>,
    regenerate_graph: bool,
    regenerate_midx: bool,
    regenerate_bitmaps: bool,
    /// Refs whose value could not be read or recovered: (name, why).
    lost_refs: Vec<(String, String)>,
    /// Refs set to a reflog value that was damaged at the start (see `finish_ref_restores`).
    pending_restores: Vec<RefRestore>,
    phases: Phases,
}

/// The phases of a repair on a terminal: one bar over the phases whose message names the one
/// running (its spinner keeps turning through long fetches and `git fsck`), and a line per
/// finished phase with its time, so the screen never sits still without saying why. Nothing is
/// drawn when stderr is not a terminal.
struct Phases {
    bar: indicatif::ProgressBar,
    current: Option<(&'static str, std::time::Instant)>,
}

/// The phases `Phases` counts, in order.
const PHASES: [&str; 9] = [
    "leftovers",
    "salvage",
    "quarantine",
    "refs",
    "fetch",
    "index",
    "rebuild",
    "submodules",
    "verify",
];

impl Phases {
    fn new() -> Phases {
        let bar = crate::logging::progress_bar(PHASES.len() as u64, "repair");
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Phases { bar, current: None }
    }

    /// Ends the running phase (its line printed above the bar) and starts `name`.
    fn start(&mut self, name: &'static str) {
        self.finish();
        self.bar.set_message(format!("repair: {name}"));
        self.current = Some((name, std::time::Instant::now()));
    }

    fn finish(&mut self) {
        if let Some((name, t)) = self.current.take() {
            self.bar.println(format!(
                "git surgery: {name} done ({:.1} s)",
                t.elapsed().as_secs_f64()
            ));
            self.bar.inc(1);
        }
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        self.finish();
        self.bar.finish_and_clear();
    }
}

/// Repairs `repo`.
pub fn repair(repo: &Repo, exec: &Executor, opts: &Options) -> Result<Report, Error> {
    check_busy(repo)?;
    let _lock = if opts.dry_run {
        None
    } else {
        Some(RunLock::take(repo)?)
    };
    let before = scan(repo, exec);
    if !opts.dry_run && !before.unreadable.is_empty() {
        return Err(Error::Unreadable(before.unreadable.clone()));
    }
    let mut run = Run {
        repo,
        exec,
        opts,
        actions: Vec::new(),
        q: None,
        recovered: Vec::new(),
        failures: Vec::new(),
        regenerate_graph: false,
        regenerate_midx: false,
        regenerate_bitmaps: false,
        lost_refs: Vec::new(),
        pending_restores: Vec::new(),
        phases: Phases::new(),
    };
    if opts.dry_run {
        run.plan(&before);
        return Ok(run.report(before.findings.clone(), &before, None));
    }
    if !before.healthy() {
        run.fix(&before)?;
    }
    run.phases.start("verify");
    let after = scan(repo, exec);
    let fsck = fsck(repo);
    run.phases.finish();
    let _ = std::fs::remove_dir_all(repo.surgery_dir().join("tmp"));
    Ok(run.report(before.findings, &after, Some(fsck)))
}

impl Run<'_> {
    fn act(&mut self, action: &'static str, target: impl Into<String>, detail: impl Into<String>) {
        let (target, detail) = (target.into(), detail.into());
        crate::info!(
            "repair action",
            action = action,
            target = target.clone(),
            detail = detail.clone()
        );
        self.actions.push(Action {
            action,
            target,
            detail,
        });
    }

    /// The end of a step: its log lines are written through to log.jsonl now, so a SIGKILL
    /// (or a power cut before the next step) loses at most the step in progress.
    fn kill_point(&self, step: &str) {
        crate::info!("repair step done", step = step);
        let _ = crate::logging::flush_global(std::time::Duration::from_secs(2));
        if self.opts.kill_after.as_deref() == Some(step) {
            // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    fn quarantine(&mut self) -> Result<&mut Quarantine, Error> {
        if self.q.is_none() {
            self.q = Some(Quarantine::create(&self.repo.common_dir)?);
        }
        Ok(self.q.as_mut().expect("just created"))
    }

    fn take(&mut self, path: &Path, reason: &str) -> Result<(), Error> {
        if !path.exists() {
            return Ok(());
        }
        self.quarantine()?.take(path, reason)?;
        self.act("quarantine", path.display().to_string(), reason.to_string());
        Ok(())
    }

    /// The dry run: what `fix` would do, without doing it.
    fn plan(&mut self, s: &Scan) {
        for p in &s.leftovers {
            self.act(
                "quarantine",
                p.display().to_string(),
                "stale lock or temporary file",
            );
        }
        for p in s.packs.iter().filter(|p| p.damaged) {
            self.act(
                "salvage",
                p.pack.display().to_string(),
                "copy readable objects to a new pack, quarantine the pack",
            );
        }
        for b in &s.bad {
            if let Loc::Loose(p) = &b.loc {
                self.act("quarantine", p.display().to_string(), b.why.clone());
            }
        }
        for f in s.findings.iter().filter(|f| {
            !matches!(
                f.code,
                "missing-object" | "loose-corrupt" | "packed-object-corrupt" | "leftover"
            )
        }) {
            self.act(
                "fix",
                f.path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                format!("{}: {}", f.code, f.detail),
            );
        }
        for m in &s.missing {
            self.act(
                "recover",
                m.oid.to_hex(),
                format!(
                    "fetch from {}",
                    self.sources()
                        .iter()
                        .map(source_name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }

    fn fix(&mut self, s: &Scan) -> Result<(), Error> {
        self.phases.start("leftovers");
        for p in &s.leftovers {
            self.take(p, "stale lock or temporary file")?;
        }
        self.kill_point("leftovers");
        self.phases.start("salvage");
        for p in s.packs.iter().filter(|p| p.damaged) {
            self.salvage(p)?;
        }
        self.kill_point("salvage");
        self.phases.start("quarantine");
        self.quarantine_bad(s)?;
        self.kill_point("quarantine");
        self.phases.start("refs");
        self.fix_refs(s)?;
        self.kill_point("refs");
        self.phases.start("fetch");
        self.recover_missing()?;
        self.finish_ref_restores()?;
        self.kill_point("recover");
        self.phases.start("index");
        self.fix_index(s)?;
        self.park_broken_refs()?;
        self.phases.start("rebuild");
        self.regenerate();
        self.kill_point("rebuild");
        self.phases.start("submodules");
        self.repair_submodules();
        Ok(())
    }

    /// Repairs each damaged submodule repository with its own remotes.
    fn repair_submodules(&mut self) {
        let opts = Options {
            force: self.opts.force,
            reset_broken: self.opts.reset_broken,
            ..Options::default()
        };
        for sub in self.repo.submodules() {
            if scan(&sub, self.exec).healthy() {
                continue;
            }
            let name = sub.git_dir.display().to_string();
            match repair(&sub, self.exec, &opts) {
                Ok(r) => {
                    self.actions.extend(r.actions.into_iter().map(|a| Action {
                        target: format!("{name}: {}", a.target),
                        ..a
                    }));
                    self.recovered.extend(r.recovered);
                    self.failures.extend(r.fetch_failures);
                }
                Err(e) => self.act("submodule", name, format!("not repaired: {e}")),
            }
        }
    }

    fn salvage(&mut self, p: &PackState) -> Result<(), Error> {
        if !p.pack.exists() {
            return Ok(());
        }
        if (!p.has_idx || !idx_ok(&p.pack)) && self.reindex(&p.pack)? {
            return Ok(());
        }
        let mut w = PackWriter::new();
        let mut bad = 0;
        match open_pack(&p.pack) {
            Some(pack) => {
                // Salvage reads every entry of a damaged pack: show it (minutes on a big one).
                let bar = crate::logging::progress_bar(pack.index.len() as u64, "salvage");
                for pos in 0..pack.index.len() {
                    match pack.read(pos) {
                        Ok((kind, data)) => {
                            w.add(kind, &data);
                        }
                        Err(_) => bad += 1,
                    }
                    bar.inc(1);
                }
                bar.finish_and_clear();
            }
            None => self.unpack_salvage(&p.pack, &mut w)?,
        }
        let n = w.len();
        if n > 0 {
            let new = self.write_pack(w, p.promisor)?;
            self.act(
                "salvage",
                p.pack.display().to_string(),
                format!(
                    "{n} readable objects copied to {}; {bad} unreadable",
                    new.display()
                ),
            );
        }
        self.regenerate_bitmaps |= p.pack.with_extension("bitmap").exists();
        for ext in ["pack", "idx", "rev", "bitmap", "keep", "mtimes", "promisor"] {
            self.take(
                &p.pack.with_extension(ext),
                "damaged pack (readable objects salvaged)",
            )?;
        }
        Ok(())
    }

    /// Rebuilds a missing or corrupt `.idx` with `git index-pack`; true when the pack is whole.
    fn reindex(&mut self, pack: &Path) -> Result<bool, Error> {
        // index-pack wants an output name ending in .idx.
        let tmp = pack.with_extension("surgery-tmp.idx");
        let _ = std::fs::remove_file(&tmp);
        let ok = crate::git::command()
            .arg("index-pack")
            .arg("--no-rev-index")
            .arg("-o")
            .arg(&tmp)
            .arg(pack)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = std::fs::remove_file(&tmp);
            return Ok(false);
        }
        let idx = pack.with_extension("idx");
        self.take(&idx, "corrupt pack index (rebuilt from the pack)")?;
        std::fs::rename(&tmp, &idx).map_err(io(&idx))?;
        self.act(
            "reindex",
            pack.display().to_string(),
            "pack index rebuilt with git index-pack",
        );
        Ok(true)
    }

    /// Salvages a pack without a usable index by unpacking it sequentially (`unpack-objects -r`)
    /// into a temporary repository and taking every hash-checked object from there.
    fn unpack_salvage(&mut self, pack: &Path, w: &mut PackWriter) -> Result<(), Error> {
        let tmp = self.repo.surgery_dir().join("tmp").join("unpack");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let _ = crate::git::command()
            .args(["init", "-q", "--bare"])
            .arg(&tmp)
            .output();
        let input = std::fs::File::open(pack).map_err(io(pack))?;
        let _ = crate::git::command()
            .arg("--git-dir")
            .arg(&tmp)
            .args(["unpack-objects", "-r", "-q"])
            .stdin(input)
            .output();
        for (path, id) in crate::git::loose::list(&tmp.join("objects"))
            .map_err(io(&tmp))?
            .files
        {
            if let Some(o) = id.and_then(|id| crate::git::loose::read(&path, id).ok()) {
                w.add(o.kind, &o.data);
            }
        }
        Ok(())
    }

    fn write_pack(&mut self, w: PackWriter, promisor: bool) -> Result<PathBuf, Error> {
        let dir = self.repo.objects.join("pack");
        let path = w.finish(&dir).map_err(io(&dir))?;
        crate::git::packwrite::write_rev(&path).map_err(io(&path))?;
        if promisor {
            let marker = path.with_extension("promisor");
            std::fs::write(&marker, b"").map_err(io(&marker))?;
        }
        Ok(path)
    }

    fn quarantine_bad(&mut self, s: &Scan) -> Result<(), Error> {
        for b in &s.bad {
            if let Loc::Loose(p) = &b.loc {
                self.take(p, &format!("corrupt loose object: {}", b.why))?;
            }
        }
        for f in &s.findings {
            let Some(p) = &f.path else { continue };
            match f.code {
                "orphan-pack-file" => self.take(p, &f.detail)?,
                "rev-corrupt" => {
                    self.take(p, &f.detail)?;
                    let pack = p.with_extension("pack");
                    if pack.exists() && idx_ok(&pack) {
                        let r = crate::git::packwrite::write_rev(&pack).map_err(io(p))?;
                        self.act(
                            "rebuild",
                            r.display().to_string(),
                            "reverse index rewritten from the pack index",
                        );
                    }
                }
                "bitmap-corrupt" => {
                    self.regenerate_bitmaps = true;
                    self.take(p, &f.detail)?;
                }
                "commit-graph-corrupt" | "commit-graph-stale" => {
                    self.regenerate_graph = true;
                    self.take(p, &f.detail)?;
                    let chain = self
                        .repo
                        .objects
                        .join("info/commit-graphs/commit-graph-chain");
                    if p.starts_with(self.repo.objects.join("info/commit-graphs")) {
                        self.take(&chain, "commit-graph chain with a stale layer")?;
                    }
                }
                "midx-corrupt" | "midx-stale" => {
                    self.regenerate_midx = true;
                    self.take(p, &f.detail)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn fix_refs(&mut self, s: &Scan) -> Result<(), Error> {
        let mut bad_lines: HashMap<PathBuf, HashSet<usize>> = HashMap::new();
        for f in &s.findings {
            let Some(p) = &f.path else { continue };
            match (f.code, f.line) {
                ("packed-refs-line" | "reflog-line" | "alternate-missing", Some(l)) => {
                    bad_lines.entry(p.clone()).or_default().insert(l);
                }
                ("ref-corrupt", _) => self.fix_loose_ref(p, &f.detail)?,
                ("ref-log-unreadable", _) => self.lost_refs.push((
                    f.detail.split(' ').next().unwrap_or_default().to_string(),
                    "gone, and its reflog has no readable entry: `git fetch` brings back a remote-tracking ref; a branch needs a backup or another clone".into(),
                )),
                ("head-corrupt", _) => self.fix_head(p)?,
                ("worktree-head-corrupt", _) => self.fix_worktree_head(p)?,
                ("config-corrupt", _) => self.fix_config(p)?,
                _ => {}
            }
        }
        for (head, content) in &s.head_restores {
            self.quarantine()?
                .keep_copy(head, "HEAD that disagreed with its reflog")?;
            let dir = head.parent().unwrap_or(Path::new("."));
            write_plain(dir, head, content.as_bytes())?;
            self.act(
                "rewrite",
                head.display().to_string(),
                format!(
                    "HEAD set back to `{}`, as its reflog says",
                    content.trim_end()
                ),
            );
        }
        // The reflog's last value, even when it is damaged here: the ref then needs it, so
        // recovery fetches it; `finish_ref_restores` falls back if no source has it.
        for r in &s.ref_restores {
            self.restore_ref(&r.name, r.last)?;
            if r.intact != Some(r.last) {
                self.pending_restores.push(r.clone());
            }
            if r.from_damaged_log {
                self.lost_refs.push((
                    r.name.clone(),
                    format!("set back to {} from a reflog with damaged lines: its newest entries may be gone, so check the value", r.last),
                ));
            }
        }
        let packed = self.repo.common_dir.join("packed-refs");
        if let Some(lines) = bad_lines.get(&packed) {
            self.rescue_packed_lines(&packed, lines)?;
        }
        for (path, lines) in bad_lines {
            self.drop_lines(&path, &lines, "lines that are not valid entries")?;
        }
        Ok(())
    }

    /// Refs set to a reflog value that was damaged at the start: recovery brought it back,
    /// or the ref goes to the newest entry that was intact (reported), or, with none, it is
    /// lost (exit 2).
    fn finish_ref_restores(&mut self) -> Result<(), Error> {
        if self.pending_restores.is_empty() {
            return Ok(());
        }
        let now = scan(self.repo, self.exec);
        let mut whole = WholeHistory::new(&now);
        for r in std::mem::take(&mut self.pending_restores) {
            if whole.of(r.last) {
                continue;
            }
            match r.intact {
                Some(id) => self.restore_ref(&r.name, id)?,
                None => self.lost_refs.push((
                    r.name.clone(),
                    format!(
                        "its reflog's values are damaged here and no source has {}",
                        r.last
                    ),
                )),
            }
        }
        Ok(())
    }

    /// The reflog of the ref `name` (its path from the common directory; see `reflog_value`).
    fn reflog_path(&self, name: &str) -> PathBuf {
        let common = &self.repo.common_dir;
        match name
            .strip_prefix("worktrees/")
            .and_then(|r| r.split_once('/'))
        {
            Some((wt, rel)) => common.join("worktrees").join(wt).join("logs").join(rel),
            None => common.join("logs").join(name),
        }
    }

    /// The value a ref last had according to its reflog. `name` is the ref's path from the
    /// common directory: `refs/...`, or `worktrees/NAME/refs/...` for a linked worktree's own
    /// refs, whose reflogs are under that worktree's `logs/`.
    fn reflog_value(&self, name: &str) -> Option<Oid> {
        let log = self.reflog_path(name);
        refs::reflog(&log)
            .0
            .iter()
            .rev()
            .map(|e| e.new)
            .find(|id| !id.is_zero())
    }

    /// An unreadable loose ref: rewritten from its reflog when it has one (the old file kept in
    /// the quarantine); otherwise moved to the quarantine and reported as lost (exit 2), so a
    /// branch never disappears silently.
    /// Sets `name` back to `id`, the value its reflog recorded, as a loose ref (which wins over
    /// a packed one); a loose file with another value is kept in the quarantine first.
    fn restore_ref(&mut self, name: &str, id: Oid) -> Result<(), Error> {
        let path = self.repo.common_dir.join(name);
        if path.is_file() {
            self.quarantine()?
                .keep_copy(&path, "ref value its reflog never recorded")?;
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_plain(dir, &path, format!("{id}\n").as_bytes())?;
        self.act(
            "restore-ref",
            name,
            format!("set back to its reflog's value {id}"),
        );
        Ok(())
    }

    fn fix_loose_ref(&mut self, path: &Path, why: &str) -> Result<(), Error> {
        let name = path
            .strip_prefix(&self.repo.common_dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self.reflog_value(&name) {
            Some(id) => {
                if !refs::reflog(&self.reflog_path(&name)).1.is_empty() {
                    self.lost_refs.push((
                        name.clone(),
                        format!("restored as {id} from a reflog with damaged lines: its newest entries may be gone, so check the value"),
                    ));
                }
                self.quarantine()?
                    .keep_copy(path, &format!("unreadable ref: {why}"))?;
                let dir = path.parent().unwrap_or(Path::new("."));
                write_plain(dir, path, format!("{id}\n").as_bytes())?;
                self.act(
                    "rewrite",
                    name,
                    format!("unreadable ref restored from its reflog: {id}"),
                );
            }
            None => {
                self.take(path, &format!("unreadable ref: {why}"))?;
                self.lost_refs.push((
                    name,
                    "its file was unreadable and it has no reflog; the file is in the quarantine"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// packed-refs lines that name a ref but cannot be read: the ref is written as a loose ref
    /// from its reflog when possible (a loose ref wins over packed-refs), else reported lost.
    fn rescue_packed_lines(&mut self, packed: &Path, lines: &HashSet<usize>) -> Result<(), Error> {
        let bytes = std::fs::read(packed).map_err(io(packed))?;
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if !lines.contains(&(i + 1)) {
                continue;
            }
            let text = String::from_utf8_lossy(line);
            let Some(name) = text
                .split_whitespace()
                .find(|w| w.starts_with("refs/"))
                .map(str::to_string)
            else {
                continue;
            };
            let loose = self.repo.common_dir.join(&name);
            if loose.exists() {
                continue;
            }
            match self.reflog_value(&name) {
                Some(id) => {
                    let dir = loose.parent().unwrap_or(Path::new(".")).to_path_buf();
                    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    write_plain(&dir, &loose, format!("{id}\n").as_bytes())?;
                    self.act("rewrite", name, format!("unreadable packed-refs line {}: ref restored from its reflog as {id}", i + 1));
                }
                None => self.lost_refs.push((name, format!("packed-refs line {} was unreadable and it has no reflog; the original packed-refs is in the quarantine", i + 1))),
            }
        }
        Ok(())
    }

    /// Rewrites `path` without the given 1-based lines, keeping the original in quarantine.
    fn drop_lines(&mut self, path: &Path, lines: &HashSet<usize>, why: &str) -> Result<(), Error> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let mut kept: Vec<u8> = Vec::with_capacity(bytes.len());
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if !lines.contains(&(i + 1)) && !line.is_empty() {
                kept.extend_from_slice(line);
                kept.push(b'\n');
            }
        }
        self.quarantine()?.keep_copy(path, why)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        write_plain(dir, path, &kept)?;
        self.act(
            "rewrite",
            path.display().to_string(),
            format!("dropped {} {why}", lines.len()),
        );
        Ok(())
    }

    /// Keeps the lines of a broken config that git can still parse (NUL runs and binary junk
    /// dropped); if nothing survives, writes a minimal config. The original is quarantined.
    fn fix_config(&mut self, path: &Path) -> Result<(), Error> {
        let bytes = std::fs::read(path).unwrap_or_default();
        let text: String = String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.contains('\0') && !l.contains('\u{fffd}'))
            .map(|l| format!("{l}\n"))
            .collect();
        let minimal = format!(
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = {}\n",
            self.repo.work_tree.is_none()
        );
        // Decide the new content before touching anything: a kill leaves the old or the new file.
        let probe = self.repo.surgery_dir().join("config.probe");
        std::fs::write(&probe, text.as_bytes()).map_err(io(&probe))?;
        let kept = crate::git::files::check_config(&probe).is_ok() && !text.trim().is_empty();
        let _ = std::fs::remove_file(&probe);
        self.quarantine()?
            .keep_copy(path, "config git cannot parse")?;
        let dir = path.parent().unwrap_or(Path::new("."));
        write_plain(
            dir,
            path,
            if kept {
                text.as_bytes()
            } else {
                minimal.as_bytes()
            },
        )?;
        let what = if kept {
            "kept the lines git can parse"
        } else {
            "nothing parseable survived: minimal config written; give remotes with --remote URL"
        };
        self.act("rewrite", path.display().to_string(), what);
        Ok(())
    }

    fn fix_head(&mut self, head: &Path) -> Result<(), Error> {
        let branch = ["refs/heads/main", "refs/heads/master"]
            .into_iter()
            .find(|b| {
                self.repo.common_dir.join(b).is_file() || packed_has(&self.repo.common_dir, b)
            })
            .map(str::to_string)
            .or_else(|| first_branch(&self.repo.common_dir))
            .unwrap_or_else(|| "refs/heads/main".into());
        if head.exists() {
            self.quarantine()?.keep_copy(head, "unreadable HEAD")?;
        }
        let dir = head.parent().unwrap_or(Path::new("."));
        write_plain(dir, head, format!("ref: {branch}\n").as_bytes())?;
        self.act(
            "rewrite",
            head.display().to_string(),
            format!("HEAD now points at {branch}"),
        );
        Ok(())
    }

    fn fix_worktree_head(&mut self, head: &Path) -> Result<(), Error> {
        let log = head.parent().map(|d| d.join("logs/HEAD"));
        let last = log
            .map(|l| refs::reflog(&l).0)
            .and_then(|e| e.last().map(|e| e.new));
        let Some(id) = last else {
            // No reflog to take a value from: left as it is and reported by the final scan.
            return Ok(());
        };
        self.quarantine()?
            .keep_copy(head, "unreadable worktree HEAD")?;
        {
            let dir = head.parent().unwrap_or(Path::new("."));
            write_plain(dir, head, format!("{id}\n").as_bytes())?;
            self.act(
                "rewrite",
                head.display().to_string(),
                format!("detached at {id}, its last reflog entry"),
            );
        }
        Ok(())
    }

    fn sources(&self) -> Vec<Source> {
        let mut v: Vec<Source> = self
            .opts
            .references
            .iter()
            .cloned()
            .map(Source::Reference)
            .collect();
        // Read when asked for: repair may have rewritten a broken config since the run began.
        let ctx = FetchContext::of(self.repo);
        v.extend(recover::remotes(&ctx, &self.opts.remotes));
        v
    }

    /// Rounds of: rescan, fetch what is missing from each source in turn, add it as a pack.
    fn recover_missing(&mut self) -> Result<(), Error> {
        let mut given_up: HashSet<Oid> = HashSet::new();
        for round in 0..8 {
            let s = scan(self.repo, self.exec);
            let want: Vec<Oid> = s
                .missing
                .iter()
                .map(|m| m.oid)
                .filter(|o| !given_up.contains(o))
                .collect();
            if want.is_empty() {
                return Ok(());
            }
            crate::info!(
                "recovering objects",
                round = round as u64,
                wanted = want.len() as u64
            );
            let got = self.recover_round(&s, &want)?;
            if got == 0 {
                given_up.extend(want);
            }
        }
        Ok(())
    }

    fn recover_round(&mut self, s: &Scan, want: &[Oid]) -> Result<usize, Error> {
        let mut w = PackWriter::new();
        let mut have: HashSet<Oid> = HashSet::new();
        self.take_from_work_tree(s, want, &mut w, &mut have);
        let ctx = FetchContext::of(self.repo);
        for (i, src) in self.sources().into_iter().enumerate() {
            let still: Vec<Oid> = want.iter().copied().filter(|o| !have.contains(o)).collect();
            if still.is_empty() {
                break;
            }
            let store = match &src {
                Source::Reference(p) => {
                    Store::open(&p.display().to_string(), &reference_objects(p))
                }
                Source::Remote(remote) => {
                    let tmp = self
                        .repo
                        .surgery_dir()
                        .join("tmp")
                        .join(format!("fetch-{i}"));
                    match recover::fetch(&ctx, remote, &still, &tmp) {
                        Ok((store, how)) => {
                            self.act(
                                "fetch",
                                remote.name.clone(),
                                format!("{} wanted objects, {how}", still.len()),
                            );
                            store
                        }
                        Err(f) => {
                            self.failures.push(f);
                            continue;
                        }
                    }
                }
            };
            self.take_closure(&store, &still, s, &mut w, &mut have);
            let lacking = still.iter().filter(|o| !have.contains(o)).count();
            if lacking > 0 {
                let error = format!(
                    "does not have {lacking} of the {} wanted objects",
                    still.len()
                );
                self.failures.push(FetchFailure {
                    source: store.name.clone(),
                    error,
                });
            }
        }
        let n = w.len();
        if n > 0 {
            let p = self.write_pack(w, false)?;
            self.act(
                "recover",
                p.display().to_string(),
                format!("{n} objects written to a new pack"),
            );
        }
        Ok(n)
    }

    /// A staged blob that was never written may still be in the working tree: hash the file
    /// the index names and take it when it matches.
    fn take_from_work_tree(
        &mut self,
        s: &Scan,
        want: &[Oid],
        w: &mut PackWriter,
        have: &mut HashSet<Oid>,
    ) {
        let Some(wt) = self.repo.work_tree.clone() else {
            return;
        };
        for m in s.missing.iter().filter(|m| want.contains(&m.oid)) {
            for path in m.needed_by.iter().filter_map(|n| n.strip_prefix("index:")) {
                let Ok(data) = std::fs::read(wt.join(path)) else {
                    continue;
                };
                if crate::git::object::hash_object(Kind::Blob, &data) == m.oid && have.insert(m.oid)
                {
                    w.add(Kind::Blob, &data);
                    self.recovered.push(Recovered {
                        oid: m.oid,
                        source: format!("working tree file {path}"),
                    });
                }
            }
        }
    }

    /// Adds `want` and everything below them that the repository lacks, from `store`.
    fn take_closure(
        &mut self,
        store: &Store,
        want: &[Oid],
        s: &Scan,
        w: &mut PackWriter,
        have: &mut HashSet<Oid>,
    ) {
        let mut stack: Vec<Oid> = want.to_vec();
        while let Some(id) = stack.pop() {
            if have.contains(&id) || s.objects.contains_key(&id) {
                continue;
            }
            let Some((kind, data)) = store.get(id) else {
                continue;
            };
            let links = crate::git::object::links(kind, &data).unwrap_or_default();
            w.add(kind, &data);
            have.insert(id);
            self.recovered.push(Recovered {
                oid: id,
                source: store.name.clone(),
            });
            stack.extend(links);
        }
    }

    fn fix_index(&mut self, s: &Scan) -> Result<(), Error> {
        let index = self.repo.git_dir.join("index");
        if s.index_corrupt && self.repo.work_tree.is_some() {
            // Build the new index aside, then copy the old one to the quarantine and rename the
            // new one over it: there is never a moment without an index.
            let fresh = self.repo.git_dir.join("index.surgery-new");
            let _ = std::fs::remove_file(&fresh);
            let o = git_in(self.repo)
                .env("GIT_INDEX_FILE", &fresh)
                .args(["read-tree", "HEAD"])
                .output();
            if o.as_ref().is_ok_and(|o| o.status.success()) {
                self.quarantine()?.keep_copy(&index, "corrupt index")?;
                std::fs::rename(&fresh, &index).map_err(io(&index))?;
            }
            self.act(
                "rebuild",
                index.display().to_string(),
                format!(
                    "index rebuilt from HEAD ({}); the working tree is untouched",
                    status(&o)
                ),
            );
        }
        let now = scan(self.repo, self.exec);
        let paths: Vec<String> = now
            .missing
            .iter()
            .flat_map(|m| m.needed_by.iter())
            .filter_map(|n| n.strip_prefix("index:"))
            .map(str::to_string)
            .collect();
        if !paths.is_empty() && index.exists() {
            self.quarantine()?
                .keep_copy(&index, "index entries whose blobs are lost")?;
            let mut args = vec!["--literal-pathspecs", "reset", "-q", "HEAD", "--"];
            args.extend(paths.iter().map(String::as_str));
            let o = self.git(&args);
            self.act(
                "rebuild",
                index.display().to_string(),
                format!(
                    "staged entries with lost blobs reset to HEAD: {} ({})",
                    paths.join(", "),
                    status(&o)
                ),
            );
        }
        Ok(())
    }

    /// With `--force`: refs whose history is lost move into the quarantine with their reflogs
    /// (or, with `--reset-broken`, branches go back to their newest intact commit); reflog
    /// entries naming lost objects are dropped (the original reflog kept in quarantine).
    fn park_broken_refs(&mut self) -> Result<(), Error> {
        let now = scan(self.repo, self.exec);
        if now.missing.is_empty() || !self.opts.force {
            return Ok(());
        }
        let broken: HashSet<&str> = now
            .missing
            .iter()
            .flat_map(|m| m.needed_by.iter())
            .map(String::as_str)
            .collect();
        // Refs of the common directory and linked worktrees' own (`worktrees/NAME/refs/...`).
        let is_ref = |n: &str| {
            n.starts_with("refs/")
                || n.strip_prefix("worktrees/")
                    .and_then(|r| r.split_once('/'))
                    .is_some_and(|(_, rel)| rel.starts_with("refs/"))
        };
        let to_park: Vec<(String, Oid)> = now
            .roots
            .iter()
            .filter(|(n, _)| is_ref(n) && broken.contains(n.as_str()))
            .cloned()
            .collect();
        for (name, id) in to_park {
            self.park_ref(&now, &name, id)?;
        }
        let mut whole = WholeHistory::new(&now);
        let heads: Vec<(String, Oid)> = now
            .roots
            .iter()
            // needed_by names a linked worktree's HEAD `worktree:NAME` (its first two parts).
            .filter(|(n, _)| {
                let short = n.split(':').take(2).collect::<Vec<_>>().join(":");
                n.ends_with("HEAD") && broken.contains(short.as_str())
            })
            .cloned()
            .collect();
        for (name, id) in heads {
            self.reset_head(&name, id, &mut whole)?;
        }
        // An entry naming a commit whose history is broken (a parent lost) keeps git fsck
        // failing as much as one naming a lost object: both go, in every worktree's reflogs.
        let mut logs = refs::reflog_files(&self.repo.common_dir);
        for wt in super::scan::worktree_dirs(self.repo) {
            logs.extend(refs::reflog_files(&wt));
        }
        for f in logs {
            let bytes = std::fs::read(&f).unwrap_or_default();
            let mut gone =
                |h: &[u8]| Oid::from_hex(h).is_some_and(|o| !o.is_zero() && !whole.of(o));
            let bad: HashSet<usize> = bytes
                .split(|&b| b == b'\n')
                .enumerate()
                .filter(|(_, l)| l.len() >= 81 && (gone(&l[..40]) || gone(&l[41..81])))
                .map(|(i, _)| i + 1)
                .collect();
            if !bad.is_empty() {
                self.drop_lines(&f, &bad, "reflog entries naming lost objects")?;
            }
        }
        Ok(())
    }

    /// A detached HEAD (this worktree's, the main worktree's or a linked one's) at a commit
    /// whose history is lost goes back to the newest entry of its own reflog whose history is
    /// whole, the HEAD file kept in the quarantine; with no such entry it stays (reported).
    fn reset_head(&mut self, name: &str, id: Oid, whole: &mut WholeHistory) -> Result<(), Error> {
        let dir = match name {
            "HEAD" => self.repo.git_dir.clone(),
            "main-worktree:HEAD" => self.repo.common_dir.clone(),
            n => match n
                .strip_prefix("worktree:")
                .and_then(|r| r.strip_suffix(":HEAD"))
            {
                Some(wt) => self.repo.common_dir.join("worktrees").join(wt),
                None => return Ok(()),
            },
        };
        let head = dir.join("HEAD");
        let (entries, _) = refs::reflog(&dir.join("logs").join("HEAD"));
        let Some(good) = entries
            .iter()
            .rev()
            .map(|e| e.new)
            .find(|o| !o.is_zero() && *o != id && whole.of(*o))
        else {
            return Ok(());
        };
        self.quarantine()?.keep_copy(
            &head,
            &format!("detached HEAD at {id}, whose history is lost"),
        )?;
        write_plain(&dir, &head, format!("{good}\n").as_bytes())?;
        self.act(
            "reset-head",
            head.display().to_string(),
            format!("detached at {id}, whose history is lost; now at {good}, the newest whole entry of its reflog"),
        );
        Ok(())
    }

    /// Takes one ref whose history no source has out of the ref namespace, into the
    /// quarantine: its loose file (or, for a packed ref, a loose file written there with its
    /// value) and its reflog, so that `git surgery quarantine restore` brings both back and the
    /// repository can end fsck-clean meanwhile. With `--reset-broken` a branch instead goes
    /// back to its newest intact first-parent ancestor, and the old tip is kept in the
    /// quarantine as `refs/surgery/broken/<name>` (restoring it creates that ref).
    fn park_ref(&mut self, now: &Scan, name: &str, id: Oid) -> Result<(), Error> {
        let intact = if self.opts.reset_broken && name.starts_with("refs/heads/") {
            newest_intact(now, &self.repo.common_dir, name, id)
        } else {
            None
        };
        if let Some(good) = intact {
            let parked = format!("refs/surgery/broken/{}", name.trim_start_matches("refs/"));
            self.quarantine()?.add_file(
                Path::new(&parked),
                format!("{id}\n").as_bytes(),
                &format!("old tip of {name}, whose history is lost"),
            )?;
            let o = self.git(&[
                "update-ref",
                "-m",
                "git surgery: reset to newest intact commit",
                name,
                &good.to_hex(),
            ]);
            self.act(
                "park-ref",
                name,
                format!(
                    "branch reset to {good} ({}); the old tip {id} is in the quarantine as {parked}",
                    status(&o)
                ),
            );
            return Ok(());
        }
        let why = format!("ref whose history no source has (was {id})");
        let loose = self.repo.common_dir.join(name);
        if loose.is_file() {
            self.take(&loose, &why)?;
        } else {
            self.quarantine()?
                .add_file(Path::new(name), format!("{id}\n").as_bytes(), &why)?;
        }
        let packed = self.repo.common_dir.join("packed-refs");
        let lines = packed_ref_lines(&packed, name);
        if !lines.is_empty() {
            self.drop_lines(&packed, &lines, "refs whose history no source has")?;
        }
        let log = self.reflog_path(name);
        if log.is_file() {
            self.take(
                &log,
                &format!("reflog of {name}, a ref whose history no source has"),
            )?;
        }
        self.act(
            "park-ref",
            name,
            format!("moved to the quarantine with its reflog (was {id}; `git surgery quarantine restore` brings it back)"),
        );
        Ok(())
    }

    fn regenerate(&mut self) {
        let had_graph = self.regenerate_graph;
        if had_graph {
            let o = self.git(&["commit-graph", "write", "--reachable"]);
            self.act("rebuild", "objects/info/commit-graph", status(&o));
        }
        if self.regenerate_bitmaps {
            // A bitmap covers one pack holding every object: git repack writes that pack and
            // its bitmap, then drops the packs whose objects it now holds.
            // --keep-unreachable: objects no ref reaches (dropped stashes, lost reflog entries)
            // go into the new pack instead of being deleted with the old ones.
            let o = self.git(&["repack", "-a", "-d", "-b", "-q", "--keep-unreachable"]);
            self.act("rebuild", "objects/pack/*.bitmap", status(&o));
        }
        if self.regenerate_midx {
            let o = self.git(&["multi-pack-index", "write"]);
            self.act("rebuild", "objects/pack/multi-pack-index", status(&o));
        }
    }

    fn git(&self, args: &[&str]) -> std::io::Result<Output> {
        git_in(self.repo).args(args).output()
    }

    fn report(self, found: Vec<Finding>, after: &Scan, fsck: Option<(bool, String)>) -> Report {
        let fsck_ok = fsck.as_ref().map(|f| f.0);
        let mut remaining = if self.opts.dry_run {
            Vec::new()
        } else {
            after.findings.clone()
        };
        // A ref whose value was lost is damage even though the repository now reads cleanly.
        remaining.extend(self.lost_refs.iter().map(|(name, why)| Finding {
            code: "ref-lost",
            path: Some(self.repo.common_dir.join(name)),
            line: None,
            oid: None,
            detail: format!("{name}: {why}"),
        }));
        let healthy = remaining.is_empty()
            && after.healthy()
            && fsck_ok.unwrap_or(true)
            && !self.opts.dry_run;
        let lost = if self.opts.dry_run {
            Vec::new()
        } else {
            after.missing.clone()
        };
        let next = if healthy || self.opts.dry_run {
            Vec::new()
        } else {
            next_steps(
                self.opts,
                &lost,
                !self.lost_refs.is_empty(),
                self.q.is_some(),
            )
        };
        Report {
            healthy: healthy || (self.opts.dry_run && found.is_empty()),
            dry_run: self.opts.dry_run,
            found,
            actions: self.actions,
            recovered: self.recovered,
            fetch_failures: self.failures,
            remaining,
            lost,
            fsck_ok,
            fsck_output: fsck.map(|f| f.1).unwrap_or_default(),
            quarantine: self.q.map(|q| q.dir),
            next,
        }
    }
}

/// What to try when damage remains: another source for the lost objects first (a healthy
/// copy is the only way to get them back), then giving up on what nothing holds, then the
/// quarantine (what repair moved away, if the user wants it back).
fn next_steps(opts: &Options, lost: &[Missing], refs_lost: bool, quarantined: bool) -> Vec<String> {
    let mut next = Vec::new();
    if !lost.is_empty() || refs_lost {
        next.push(
            "git surgery repair --remote <URL of a healthy copy>   (another server or clone that has the lost objects)"
                .to_string(),
        );
        next.push("git surgery repair --reference <path to another local clone>".to_string());
        if !opts.force {
            next.push(
                "git surgery repair --force   (move the refs whose history no source has into the quarantine, restorable)"
                    .to_string(),
            );
        }
        if !opts.reset_broken {
            next.push(
                "git surgery repair --force --reset-broken   (move those branches back to their newest intact commit)"
                    .to_string(),
            );
        }
    }
    if quarantined {
        next.push(
            "git surgery quarantine list   (what repair moved away; `git surgery quarantine restore <id>` puts it back)"
                .to_string(),
        );
    }
    next
}

fn source_name(s: &Source) -> String {
    match s {
        Source::Reference(p) => p.display().to_string(),
        Source::Remote(r) => r.name.clone(),
    }
}

fn status(o: &std::io::Result<Output>) -> String {
    match o {
        Ok(o) if o.status.success() => "ok".into(),
        Ok(o) => format!("failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => format!("cannot run git: {e}"),
    }
}

/// The newest commit a broken branch can go back to with its whole history intact: its
/// first-parent ancestors while they exist, then its reflog (newest first), then the
/// remote-tracking branches of the same name.
fn newest_intact(s: &Scan, common: &Path, name: &str, tip: Oid) -> Option<Oid> {
    let mut cur = Some(tip);
    while let Some(c) = cur {
        if reaches_intact(s, c) {
            return Some(c);
        }
        cur = s
            .objects
            .get(&c)
            .filter(|i| i.kind == Kind::Commit)
            .and_then(|i| s.links_of(i).get(1).copied());
    }
    let log = refs::reflog(&common.join("logs").join(name)).0;
    if let Some(e) = log
        .iter()
        .rev()
        .find(|e| !e.new.is_zero() && reaches_intact(s, e.new))
    {
        return Some(e.new);
    }
    let short = name.strip_prefix("refs/heads/")?;
    let tracking = format!("/{short}");
    s.roots
        .iter()
        .filter(|(n, _)| n.starts_with("refs/remotes/") && n.ends_with(&tracking))
        .map(|(_, id)| *id)
        .find(|id| reaches_intact(s, *id))
}

/// Whether everything reachable from `id` has a good copy.
/// Whether an object's whole history (everything it links to, transitively) is here,
/// memoised over one scan: each object is visited once however many ids are asked about.
struct WholeHistory<'a> {
    scan: &'a Scan,
    memo: HashMap<Oid, bool>,
}

impl<'a> WholeHistory<'a> {
    fn new(scan: &'a Scan) -> Self {
        WholeHistory {
            scan,
            memo: HashMap::new(),
        }
    }

    fn of(&mut self, id: Oid) -> bool {
        // Post-order without recursion (histories are deep): an object is decided after all
        // its links are. Objects form a DAG, so every link is decided by then.
        let mut stack = vec![(id, false)];
        while let Some((o, links_done)) = stack.pop() {
            if self.memo.contains_key(&o) {
                continue;
            }
            let Some(info) = self.scan.objects.get(&o) else {
                self.memo.insert(o, false);
                continue;
            };
            let links = self.scan.links_of(info);
            if links_done {
                let whole = links
                    .iter()
                    .all(|l| self.memo.get(l).copied().unwrap_or(false));
                self.memo.insert(o, whole);
            } else {
                stack.push((o, true));
                stack.extend(
                    links
                        .iter()
                        .filter(|l| !self.memo.contains_key(*l))
                        .map(|l| (*l, false)),
                );
            }
        }
        self.memo.get(&id).copied().unwrap_or(false)
    }
}

fn reaches_intact(s: &Scan, id: Oid) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![id];
    while let Some(o) = stack.pop() {
        if !seen.insert(o) {
            continue;
        }
        match s.objects.get(&o) {
            Some(i) => stack.extend(s.links_of(i).iter().copied()),
            None => return false,
        }
    }
    true
}

fn reference_objects(p: &Path) -> PathBuf {
    if p.join(".git/objects").is_dir() {
        p.join(".git/objects")
    } else if p.join("objects").is_dir() {
        p.join("objects")
    } else {
        p.to_path_buf()
    }
}

fn idx_ok(pack: &Path) -> bool {
    std::fs::read(pack.with_extension("idx"))
        .map_err(|e| e.to_string())
        .and_then(|b| Index::parse(&b))
        .is_ok()
}

fn open_pack(pack: &Path) -> Option<Pack> {
    let idx = std::fs::read(pack.with_extension("idx")).ok()?;
    Pack::open(pack, Index::parse(&idx).ok()?).ok()
}

/// The 1-based lines of packed-refs that hold `name` (and its peel line).
fn packed_ref_lines(packed: &Path, name: &str) -> HashSet<usize> {
    let bytes = std::fs::read(packed).unwrap_or_default();
    let mut out = HashSet::new();
    let mut prev = false;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let hit = line.len() > 41 && &line[41..] == name.as_bytes();
        if hit || (prev && line.starts_with(b"^")) {
            out.insert(i + 1);
        }
        prev = hit;
    }
    out
}

fn packed_has(common: &Path, name: &str) -> bool {
    refs::packed_refs(common).0.iter().any(|r| r.name == name)
}

fn first_branch(common: &Path) -> Option<String> {
    let (loose, _) = refs::loose_refs(common);
    let (packed, _) = refs::packed_refs(common);
    loose
        .into_iter()
        .chain(packed)
        .map(|r| r.name)
        .filter(|n| n.starts_with("refs/heads/"))
        .min()
}

/// Replaces a small file (a ref, HEAD, packed-refs, a reflog, config) through git's lock file.
fn write_plain(_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::git::lockfile::replace(path, bytes).map_err(|e| match e {
        crate::git::lockfile::LockError::Locked(lock) => Error::Locked(lock),
        crate::git::lockfile::LockError::Io { path, source } => Error::Io { path, source },
    })
}

/// git run against this repository, whatever the caller's environment says.
pub fn git_in(repo: &Repo) -> Command {
    let mut c = crate::git::command();
    c.arg("--git-dir").arg(&repo.git_dir);
    if let Some(wt) = &repo.work_tree {
        c.arg("--work-tree").arg(wt).current_dir(wt);
    }
    c
}

/// `git fsck --full --strict`: whether it passed, and what it printed.
pub fn fsck(repo: &Repo) -> (bool, String) {
    match git_in(repo)
        .args([
            "fsck",
            "--full",
            "--strict",
            "--no-dangling",
            "--no-progress",
        ])
        .output()
    {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run git fsck: {e}")),
    }
}

/// Refuses when a git process (not one of our ancestors, such as the `git` that ran
/// `git surgery`) has its working directory inside the repository.
pub fn check_busy(repo: &Repo) -> Result<(), Error> {
    let ancestors = ancestors();
    let roots: Vec<PathBuf> = [Some(repo.common_dir.clone()), repo.work_tree.clone()]
        .into_iter()
        .flatten()
        .collect();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Ok(());
    };
    let mut busy = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if ancestors.contains(&pid) {
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !(comm == "git" || comm.starts_with("git-")) || comm == "git-surgery" {
            continue;
        }
        let in_repo = std::fs::read_link(e.path().join("cwd"))
            .is_ok_and(|cwd| roots.iter().any(|r| cwd.starts_with(r)));
        // `git --git-dir=... ` or `git -C ...` run from elsewhere names the repository instead.
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let names_repo = cmdline
            .split(|&b| b == 0)
            .filter_map(|a| std::str::from_utf8(a).ok())
            .any(|a| {
                let a = a.split_once('=').map_or(a, |(_, v)| v);
                // Only absolute paths: a relative one means something else in that process's cwd.
                a.starts_with('/')
                    && std::fs::canonicalize(a)
                        .is_ok_and(|p| roots.iter().any(|r| p.starts_with(r)))
            });
        if in_repo || names_repo {
            busy.push(format!("pid {pid}"));
        }
    }
    busy.extend(fresh_locks(repo));
    if busy.is_empty() {
        Ok(())
    } else {
        Err(Error::Busy(busy.join(", ")))
    }
}

/// Lock files changed in the last two minutes: a git process (perhaps in another container or
/// on another machine sharing the disk) may be writing; only older ones are stale leftovers.
fn fresh_locks(repo: &Repo) -> Vec<String> {
    let now = std::time::SystemTime::now();
    crate::git::files::leftovers(&repo.git_dir, &repo.common_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "lock"))
        .filter(|p| {
            let age = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            age.is_none_or(|a| a < std::time::Duration::from_secs(120))
        })
        .map(|p| format!("fresh lock {}", p.display()))
        .collect()
}

fn ancestors() -> HashSet<u32> {
    let mut out = HashSet::new();
    let mut pid = std::process::id();
    while pid > 1 && out.insert(pid) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The parent pid is the second field after the parenthesised command name.
        pid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
    }
    out
}

/// Our own run lock, `surgery/repair.lock`, holding the pid; a lock whose pid is gone is stale.
struct RunLock(PathBuf);

impl RunLock {
    fn take(repo: &Repo) -> Result<RunLock, Error> {
        let dir = repo.surgery_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("repair.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(RunLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = pid
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    if alive {
                        return Err(Error::Locked(path));
                    }
                    std::fs::remove_file(&path).map_err(io(&path))?;
                }
                Err(e) => return Err(Error::Io { path, source: e }),
            }
        }
        Err(Error::Locked(path))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
