//! `git surgery scan`: every check, read-only, collecting all damage instead of stopping at the
//! first.
//!
//! Invariants: nothing under the repository is written. Every object gets a verdict from its
//! own bytes (loose: inflate + hash; packed: CRC32 + inflate + delta chain + hash); an object is
//! "present" only when a good copy exists. Objects below a shallow boundary or referenced only
//! from promisor objects are legitimately absent, not damage. Refs (the common directory's and
//! each linked worktree's own) and HEAD are held to their reflogs: git appends to a reflog at
//! every update, so a value that disagrees with its log's last entry is damage of one of the
//! two, and which one is decided in `hold_refs_to_reflogs` and `hold_head_to_reflog`.

use crate::git::files;
use crate::git::object::{Kind, Oid, OidMap, OidSet};
use crate::git::pack::{self, Base, Index, Pack};
use crate::git::refs::{self, Target};
use crate::git::{loose, repo::Repo};
use crate::sched::par::{par_chunks, par_map};
use crate::sched::{Executor, OnMiss, Opts};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One thing that is wrong, with where it is.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// A stable code for scripts (`loose-corrupt`, `pack-corrupt`, `missing-object`, ...).
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oid: Option<Oid>,
    pub detail: String,
}

impl Finding {
    fn at(code: &'static str, path: &Path, detail: impl Into<String>) -> Finding {
        Finding {
            code,
            path: Some(path.to_path_buf()),
            line: None,
            oid: None,
            detail: detail.into(),
        }
    }
}

/// Where a copy of an object lives.
#[derive(Clone, Debug)]
pub enum Loc {
    Loose(PathBuf),
    /// In `Scan::packs[pack]`, at index position `pos`.
    Packed {
        pack: u32,
        pos: u32,
    },
    Alternate,
}

/// Where a good copy of an object is (without the path a loose copy has: good loose copies are
/// never moved, so only bad copies need it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Loose,
    Packed { pack: u32, pos: u32 },
    Alternate,
}

/// A good object: its kind, where a good copy is, and where its links are in `Scan::links`.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    pub kind: Kind,
    pub promisor: bool,
    pub place: Place,
    seg: u32,
    start: u32,
    len: u32,
}

/// A copy that failed its checks.
#[derive(Clone, Debug)]
pub struct BadCopy {
    pub oid: Oid,
    pub loc: Loc,
    pub why: String,
}

/// An object something needs that has no good copy.
#[derive(Clone, Debug, Serialize)]
pub struct Missing {
    pub oid: Oid,
    /// The object or root that first referenced it.
    pub referenced_by: String,
    /// Refs (and HEADs, reflogs, index) whose history needs it.
    pub needed_by: Vec<String>,
    /// A damaged copy exists (as opposed to no copy at all).
    pub damaged_copy: bool,
}

/// A pack file and its companions, with what is wrong with them.
#[derive(Clone, Debug, Default)]
pub struct PackState {
    pub pack: PathBuf,
    pub has_idx: bool,
    pub damaged: bool,
    pub promisor: bool,
}

/// Everything a scan found.
#[derive(Default)]
pub struct Scan {
    pub findings: Vec<Finding>,
    pub objects: OidMap<Info>,
    /// Everything a promisor-pack object links to (filled in by the connectivity walk).
    pub promised: OidSet,
    /// The links of every good object, in segments (one per verified batch; see `links_of`),
    /// so that batches are kept as they come instead of being copied together.
    pub links: Vec<Vec<Oid>>,
    pub bad: Vec<BadCopy>,
    pub missing: Vec<Missing>,
    pub packs: Vec<PackState>,
    /// Roots of the connectivity walk: name (ref, `HEAD`, `index:<path>`, `reflog:<file>`) and id.
    pub roots: Vec<(String, Oid)>,
    pub loose_count: usize,
    pub packed_count: usize,
    pub index_corrupt: bool,
    pub leftovers: Vec<PathBuf>,
    /// Files and directories that could not be read: not damage (their content is unknown),
    /// and never moved. Repair refuses to run while there are any.
    pub unreadable: Vec<PathBuf>,
    /// Refs to set back to what their reflog recorded, with a finding each.
    pub ref_restores: Vec<RefRestore>,
    /// HEAD files to rewrite (path, new content) because they disagree with HEAD's reflog.
    pub head_restores: Vec<(PathBuf, String)>,
}

/// A ref to set back from its reflog.
#[derive(Clone, Debug)]
pub struct RefRestore {
    /// Its path from the common directory (`refs/...` or `worktrees/NAME/refs/...`).
    pub name: String,
    /// The reflog's last value: what the ref should be.
    pub last: Oid,
    /// The newest value of the reflog intact here at scan time (`last` itself when it is):
    /// what the ref goes to if recovery cannot bring `last` back.
    pub intact: Option<Oid>,
    /// The reflog has damaged lines: its last value may not be the ref's last value.
    pub from_damaged_log: bool,
}

impl Scan {
    /// What a good object links to.
    pub fn links_of(&self, i: &Info) -> &[Oid] {
        &self.links[i.seg as usize][i.start as usize..(i.start + i.len) as usize]
    }

    /// Adds a good object whose links are `self.links[seg][start..start + len]`, unless a
    /// better copy is known (loose and packed copies beat alternates).
    fn add_good(
        &mut self,
        oid: Oid,
        kind: Kind,
        place: Place,
        promisor: bool,
        (seg, start, len): (u32, u32, u32),
    ) {
        let better = self
            .objects
            .get(&oid)
            .is_none_or(|i| i.place == Place::Alternate);
        if better {
            self.objects.insert(
                oid,
                Info {
                    kind,
                    promisor,
                    place,
                    seg,
                    start,
                    len,
                },
            );
        }
    }

    /// Stores a segment of links; returns its number.
    fn push_links(&mut self, links: Vec<Oid>) -> u32 {
        self.links.push(links);
        (self.links.len() - 1) as u32
    }

    pub fn healthy(&self) -> bool {
        self.findings.is_empty()
    }

    fn add(&mut self, f: Finding) {
        self.findings.push(f);
    }

    fn add_unreadable(&mut self, path: &Path, e: &std::io::Error) {
        self.add(Finding::at(
            "unreadable",
            path,
            format!("cannot read: {e} (not damage: its content is unknown)"),
        ));
        self.unreadable.push(path.to_path_buf());
    }
}

/// Whether an I/O error means "not allowed to read" rather than "not there" or "broken".
pub fn is_denied(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
}

/// Runs every check on `repo`, in parallel on `exec`.
pub fn scan(repo: &Repo, exec: &Executor) -> Scan {
    let mut s = Scan::default();
    scan_readable(repo, &mut s);
    scan_loose(repo, exec, &mut s);
    scan_packs(&repo.objects, exec, &mut s);
    scan_alternates(repo, exec, &mut s);
    scan_aux(repo, &mut s);
    scan_refs(repo, &mut s);
    scan_index(repo, &mut s);
    scan_leftovers(repo, &mut s);
    scan_config(repo, &mut s);
    connectivity(repo, exec, &mut s);
    scan_submodules(repo, exec, &mut s);
    crate::info!(
        "scan finished",
        findings = s.findings.len() as u64,
        objects = s.objects.len() as u64
    );
    s
}

/// Every file and directory outside `objects/` (which the object checks read themselves) that
/// this process may not read: refs, reflogs, packed-refs, the index, HEAD, config, hooks
/// aside. One finding each, and none of them is ever treated as damage.
fn scan_readable(repo: &Repo, s: &mut Scan) {
    // Submodules' repositories (modules/) are scanned as repositories of their own; LFS
    // content is not git's.
    let skip = [
        repo.objects.clone(),
        repo.common_dir.join("surgery"),
        repo.common_dir.join("modules"),
        repo.common_dir.join("lfs"),
    ];
    let mut roots = vec![repo.common_dir.clone()];
    if repo.git_dir != repo.common_dir {
        roots.push(repo.git_dir.clone());
    }
    for root in roots {
        let walk = walkdir::WalkDir::new(&root)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| !skip.iter().any(|p| e.path() == p));
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    if let Err(err) = std::fs::File::open(e.path())
                        && is_denied(&err)
                    {
                        s.add_unreadable(e.path(), &err);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let denied = e.io_error().is_some_and(is_denied);
                    if let (true, Some(path)) = (denied, e.path()) {
                        let err = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
                        s.add_unreadable(path, &err);
                    }
                }
            }
        }
    }
}

/// A loose file's verdict: good (kind and links), unreadable, or corrupt (why).
enum Loose {
    Good(Kind, Vec<Oid>),
    Unreadable(std::io::Error),
    Corrupt(String),
}

type LooseVerdict = (PathBuf, Option<Oid>, Loose);

fn check_loose(path: PathBuf, id: Option<Oid>) -> LooseVerdict {
    let Some(oid) = id else {
        return (
            path,
            id,
            Loose::Corrupt("file name is not an object id".into()),
        );
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if is_denied(&e) => return (path, id, Loose::Unreadable(e)),
        Err(e) => return (path, id, Loose::Corrupt(format!("cannot read: {e}"))),
    };
    let r = loose::decode(&bytes, oid).and_then(|o| {
        crate::git::object::links(o.kind, &o.data)
            .map(|l| (o.kind, l))
            .map_err(|e| format!("malformed {}: {e}", o.kind.name()))
    });
    let v = match r {
        Ok((kind, links)) => Loose::Good(kind, links),
        Err(why) => Loose::Corrupt(why),
    };
    (path, id, v)
}

fn scan_loose(repo: &Repo, exec: &Executor, s: &mut Scan) {
    let listing = match loose::list(&repo.objects) {
        Ok(f) => f,
        Err(e) if is_denied(&e) => return s.add_unreadable(&repo.objects, &e),
        Err(e) => {
            s.add(Finding::at(
                "objects-unreadable",
                &repo.objects,
                e.to_string(),
            ));
            return;
        }
    };
    for (dir, e) in &listing.unreadable {
        s.add_unreadable(dir, e);
    }
    let files = listing.files;
    let bar = crate::logging::progress_bar(files.len() as u64, "loose objects");
    let verdicts = par_map(
        exec,
        files,
        512,
        move |(p, id)| check_loose(p, id),
        Some(bar.clone()),
    );
    bar.finish_and_clear();
    let seg = s.push_links(Vec::new());
    for (path, id, r) in verdicts {
        s.loose_count += 1;
        match (id, r) {
            (_, Loose::Unreadable(e)) => s.add_unreadable(&path, &e),
            (Some(id), Loose::Good(kind, links)) => {
                let start = s.links[seg as usize].len() as u32;
                s.links[seg as usize].extend_from_slice(&links);
                s.add_good(
                    id,
                    kind,
                    Place::Loose,
                    false,
                    (seg, start, links.len() as u32),
                );
            }
            (id, Loose::Corrupt(why)) => {
                let mut f = Finding::at("loose-corrupt", &path, why.clone());
                f.oid = id;
                s.add(f);
                if let Some(oid) = id {
                    s.bad.push(BadCopy {
                        oid,
                        loc: Loc::Loose(path),
                        why,
                    });
                }
            }
            (None, Loose::Good(..)) => {}
        }
    }
}

fn pack_files(objects: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(objects.join("pack"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn scan_packs(objects: &Path, exec: &Executor, s: &mut Scan) {
    let files = pack_files(objects);
    let has = |p: &Path, ext: &str| files.contains(&p.with_extension(ext));
    for f in &files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
        let stem_is_pack = f
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pack-"));
        match ext {
            "pack" if !has(f, "idx") => {
                s.add(Finding::at(
                    "pack-without-index",
                    f,
                    "pack has no .idx: git cannot see its objects",
                ));
                s.packs.push(PackState {
                    pack: f.clone(),
                    has_idx: false,
                    damaged: true,
                    promisor: has(f, "promisor"),
                });
            }
            "pack" => scan_pack(f, has(f, "promisor"), exec, s),
            "idx" | "rev" | "bitmap" | "keep" | "promisor" | "mtimes"
                if stem_is_pack && !has(f, "pack") =>
            {
                s.add(Finding::at(
                    "orphan-pack-file",
                    f,
                    format!(".{ext} without its .pack"),
                ));
            }
            _ => {}
        }
    }
}

fn scan_pack(path: &Path, promisor: bool, exec: &Executor, s: &mut Scan) {
    let mut state = PackState {
        pack: path.to_path_buf(),
        has_idx: true,
        damaged: false,
        promisor,
    };
    let idx_path = path.with_extension("idx");
    // An index or pack this process may not read is not damage: noted, never quarantined.
    for f in [&idx_path, path] {
        if let Err(e) = std::fs::File::open(f)
            && is_denied(&e)
        {
            return s.add_unreadable(f, &e);
        }
    }
    let index = std::fs::read(&idx_path)
        .map_err(|e| e.to_string())
        .and_then(|b| Index::parse(&b));
    let index = match index {
        Ok(i) => i,
        Err(e) => {
            s.add(Finding::at("index-corrupt", &idx_path, e));
            state.damaged = true;
            s.packs.push(state);
            return;
        }
    };
    let pack = match Pack::open(path, index) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            s.add(Finding::at("pack-unreadable", path, e.to_string()));
            state.damaged = true;
            s.packs.push(state);
            return;
        }
    };
    // The trailer checksum reads the whole pack: run it beside the entry checks.
    let p = pack.clone();
    let opts = Opts::new(exec.now()).on_miss(OnMiss::RunLate);
    let envelope = exec.spawn_with(opts, move |_| p.check_envelope());
    check_pack_companions(path, &pack, s);
    let verdicts = verify_entries(&pack, exec);
    let envelope = envelope
        .join()
        .unwrap_or_else(|e| vec![format!("pack check failed: {e}")]);
    for p in envelope {
        s.add(Finding::at("pack-corrupt", path, p));
        state.damaged = true;
    }
    s.packed_count += pack.index.len();
    let me = s.packs.len() as u32;
    s.objects.reserve(pack.index.len());
    for mut b in verdicts {
        let seg = s.push_links(std::mem::take(&mut b.links));
        for &(pos, kind, start, len) in &b.good {
            let place = Place::Packed { pack: me, pos };
            s.add_good(
                pack.index.oids[pos as usize],
                kind,
                place,
                promisor,
                (seg, start, len),
            );
        }
        for (pos, why) in b.bad {
            let oid = pack.index.oids[pos as usize];
            let mut f = Finding::at("packed-object-corrupt", path, why.clone());
            f.oid = Some(oid);
            s.add(f);
            s.bad.push(BadCopy {
                oid,
                loc: Loc::Packed { pack: me, pos },
                why,
            });
            state.damaged = true;
        }
    }
    s.packs.push(state);
}

fn check_pack_companions(path: &Path, pack: &Pack, s: &mut Scan) {
    let sum = &pack.index.pack_checksum;
    for (ext, check) in [
        (
            "rev",
            files::check_rev as fn(&[u8], &[u8]) -> Result<(), String>,
        ),
        ("bitmap", files::check_bitmap),
    ] {
        let p = path.with_extension(ext);
        if let Ok(b) = std::fs::read(&p)
            && let Err(e) = check(&b, sum)
        {
            s.add(Finding::at(
                if ext == "rev" {
                    "rev-corrupt"
                } else {
                    "bitmap-corrupt"
                },
                &p,
                e,
            ));
        }
    }
}

/// Verifies every entry of `pack` on `exec`: whole objects first (in pack order, in batches),
/// then the delta trees below them. Every index position ends up in exactly one batch's
/// `good` or `bad` list.
fn verify_entries(pack: &Arc<Pack>, exec: &Executor) -> Vec<pack::Batch> {
    let n = pack.index.len();
    let bar = crate::logging::progress_bar(n as u64, "pack entries");
    let order = pack.by_pack_order();
    let p = pack.clone();
    let (b1, b2) = (bar.clone(), bar.clone());
    let mut batches = par_chunks(exec, order, 2048, move |part: Vec<usize>| {
        let b = pack::check_entries(&p, &part);
        b1.inc((b.good.len() + b.bad.len()) as u64);
        b
    });
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for b in &mut batches {
        for (pos, base) in b.deltas.drain(..) {
            children.entry(base).or_default().push(pos);
        }
    }
    let roots: Vec<usize> = batches
        .iter()
        .flat_map(|b| b.good.iter().map(|g| g.0))
        .filter(|r| children.contains_key(r))
        .map(|r| r as usize)
        .collect();
    let children = Arc::new(children);
    let (p, c) = (pack.clone(), children.clone());
    batches.extend(par_chunks(exec, roots, 16, move |part: Vec<usize>| {
        let b = pack::resolve_from(&p, &part, &c);
        b2.inc((b.good.len() + b.bad.len()) as u64);
        b
    }));
    bar.finish_and_clear();
    let mut done = vec![false; n];
    for b in &batches {
        b.good.iter().for_each(|g| done[g.0 as usize] = true);
        b.bad.iter().for_each(|x| done[x.0 as usize] = true);
    }
    let lost: Vec<(u32, String)> = (0..n)
        .filter(|&i| !done[i])
        .map(|i| (i as u32, unresolved(pack, i)))
        .collect();
    batches.push(pack::Batch {
        bad: lost,
        ..Default::default()
    });
    batches
}

fn unresolved(pack: &Pack, pos: usize) -> String {
    match pack::entry_header(&pack.data, pack.index.offsets[pos]).map(|h| h.base) {
        Ok(Base::Ofs(o)) => format!("delta base at offset {o} is damaged"),
        Ok(Base::Ref(id)) => format!("delta base {id} is damaged"),
        _ => "delta chain cannot be resolved".into(),
    }
}

fn scan_alternates(repo: &Repo, exec: &Executor, s: &mut Scan) {
    for (line, alt) in repo.alternates() {
        if !alt.is_dir() {
            let mut f = Finding::at(
                "alternate-missing",
                &repo.objects.join("info/alternates"),
                format!(
                    "alternate object directory {} does not exist",
                    alt.display()
                ),
            );
            f.line = Some(line);
            s.add(f);
            continue;
        }
        let mut sub = Scan::default();
        scan_packs(&alt, exec, &mut sub);
        let sub_repo = Repo {
            objects: alt.clone(),
            ..repo.clone()
        };
        scan_loose(&sub_repo, exec, &mut sub);
        for f in std::mem::take(&mut sub.findings) {
            s.add(Finding {
                code: "alternate-damaged",
                ..f
            });
        }
        let base = s.links.len() as u32;
        s.links.append(&mut sub.links);
        for (oid, i) in &sub.objects {
            s.add_good(
                *oid,
                i.kind,
                Place::Alternate,
                i.promisor,
                (base + i.seg, i.start, i.len),
            );
        }
    }
}

fn scan_aux(repo: &Repo, s: &mut Scan) {
    let info = repo.objects.join("info");
    let mut graphs = vec![info.join("commit-graph")];
    if let Ok(rd) = std::fs::read_dir(info.join("commit-graphs")) {
        graphs.extend(
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "graph")),
        );
    }
    for g in graphs {
        let Ok(b) = std::fs::read(&g) else { continue };
        match files::commit_graph_oids(&b) {
            Err(e) => s.add(Finding::at("commit-graph-corrupt", &g, e)),
            Ok(ids) => {
                if let Some(id) = ids.iter().find(|id| !s.objects.contains_key(id)) {
                    let mut f = Finding::at(
                        "commit-graph-stale",
                        &g,
                        format!("lists commit {id}, which has no good copy"),
                    );
                    f.oid = Some(*id);
                    s.add(f);
                }
            }
        }
    }
    let midx = repo.objects.join("pack/multi-pack-index");
    if let Ok(b) = std::fs::read(&midx) {
        match files::midx_packs(&b) {
            Err(e) => s.add(Finding::at("midx-corrupt", &midx, e)),
            Ok(names) => {
                let pack_dir = repo.objects.join("pack");
                let gone: Vec<&String> = names
                    .iter()
                    .filter(|n| !pack_dir.join(n).with_extension("pack").is_file())
                    .collect();
                let damaged = s.packs.iter().any(|p| p.damaged);
                if !gone.is_empty() || damaged {
                    s.add(Finding::at(
                        "midx-stale",
                        &midx,
                        format!("covers packs that are missing or damaged: {gone:?}"),
                    ));
                }
            }
        }
    }
}

fn add_problems(s: &mut Scan, code: &'static str, problems: Vec<refs::Problem>) {
    for p in problems {
        s.add(Finding {
            code,
            path: Some(p.path),
            line: p.line,
            oid: None,
            detail: p.what,
        });
    }
}

fn scan_refs(repo: &Repo, s: &mut Scan) {
    let (packed, pp) = refs::packed_refs(&repo.common_dir);
    add_problems(s, "packed-refs-line", pp);
    let (loose, lp) = refs::loose_refs(&repo.common_dir);
    add_problems(s, "ref-corrupt", lp);
    let mut by_name: HashMap<String, refs::Ref> = HashMap::new();
    for r in packed.into_iter().chain(loose) {
        by_name.insert(r.name.clone(), r);
    }
    let mut names: Vec<&String> = by_name.keys().collect();
    names.sort();
    for name in names {
        let r = &by_name[name];
        if let Target::Object(id) = r.target {
            s.roots.push((name.clone(), id));
        }
    }
    head(s, &repo.git_dir.join("HEAD"), "HEAD", "head-corrupt");
    if repo.git_dir != repo.common_dir {
        head(
            s,
            &repo.common_dir.join("HEAD"),
            "main-worktree:HEAD",
            "head-corrupt",
        );
    }
    if let Ok(rd) = std::fs::read_dir(repo.common_dir.join("worktrees")) {
        for wt in rd.filter_map(Result::ok) {
            let name = format!("worktree:{}:HEAD", wt.file_name().to_string_lossy());
            head(s, &wt.path().join("HEAD"), &name, "worktree-head-corrupt");
        }
    }
    let worktrees = worktree_dirs(repo);
    let mut logs = refs::reflog_files(&repo.common_dir);
    for wt in &worktrees {
        logs.extend(refs::reflog_files(wt));
    }
    hold_refs_to_reflogs(&repo.common_dir, "", &by_name, s);
    hold_head_to_reflog(&repo.git_dir, &repo.common_dir, &by_name, s);
    // Each linked worktree's own refs (refs/bisect, refs/worktree, refs/rewritten) live in its
    // private directory; they are named here by their path from the common directory
    // (`worktrees/NAME/refs/...`), which is also where repair writes them back.
    for wt in worktrees {
        let prefix = wt
            .strip_prefix(&repo.common_dir)
            .map(|p| format!("{}/", p.display()))
            .unwrap_or_default();
        let (wrefs, problems) = refs::loose_refs(&wt);
        add_problems(s, "ref-corrupt", problems);
        let mut mine: HashMap<String, refs::Ref> = HashMap::new();
        for r in wrefs {
            if let Target::Object(id) = r.target {
                s.roots.push((format!("{prefix}{}", r.name), id));
            }
            mine.insert(r.name.clone(), r);
        }
        hold_refs_to_reflogs(&wt, &prefix, &mine, s);
    }
    for f in logs {
        let (entries, problems) = refs::reflog(&f);
        add_problems(s, "reflog-line", problems);
        let rel = f
            .strip_prefix(&repo.common_dir)
            .unwrap_or(&f)
            .display()
            .to_string();
        for e in entries {
            for id in [e.old, e.new].into_iter().filter(|i| !i.is_zero()) {
                s.roots.push((format!("reflog:{rel}"), id));
            }
        }
    }
}

/// Holds every ref that has a reflog to it: a ref that is gone while its reflog's last entry
/// still names an object (packed-refs emptied, a file deleted), or that names an object its
/// reflog never recorded (a flipped bit that still spells an id), is a finding, and the value
/// to restore is the reflog's last one if that object is intact here, else the newest entry's
/// that is. git deletes a ref's reflog with the ref, so a reflog without its ref is damage.
///
/// `dir` is the common directory (`prefix` empty) or a linked worktree's private directory
/// (`prefix` its path from the common directory), whose own refs and reflogs are held the same
/// way; restores are named with the prefix.
fn hold_refs_to_reflogs(
    dir: &Path,
    prefix: &str,
    refs_now: &HashMap<String, refs::Ref>,
    s: &mut Scan,
) {
    let logs = dir.join("logs");
    for f in refs::reflog_files(dir) {
        let Ok(rel) = f.strip_prefix(&logs) else {
            continue;
        };
        let name = rel.to_string_lossy().into_owned();
        // A loose ref file that does not parse is `ref-corrupt`, restored from its reflog there.
        let corrupt_file = dir.join(&name).is_file() && !refs_now.contains_key(&name);
        if !name.starts_with("refs/") || corrupt_file {
            continue;
        }
        let (entries, problems) = refs::reflog(&f);
        let log_damaged = !problems.is_empty();
        let Some(last) = entries.last().map(|e| e.new) else {
            // Gone, with a reflog that holds no readable entry: its value is unknown here.
            if log_damaged && !refs_now.contains_key(&name) {
                s.add(Finding::at(
                    "ref-log-unreadable",
                    &f,
                    format!("{name} is gone and its reflog has no readable entry"),
                ));
            }
            continue;
        };
        if last.is_zero() {
            continue; // the log ends with a deletion
        }
        // git appends to a ref's reflog at every update, so a healthy ref equals its log's last
        // value. When they differ, one of the two is damaged. An intact value beside a log
        // with damaged lines means the log lost its end: the ref is the witness. Otherwise a
        // value behind the log's end (an older entry: a deleted loose ref uncovering its
        // packed-refs line) or outside it (a swap with another ref, a flipped bit) means the
        // ref is wrong. (Being ahead of the log's end is no witness: a ref swapped with a
        // newer one is ahead too, and swaps are the likelier damage.)
        let (code, detail) = match refs_now.get(&name).map(|r| &r.target) {
            // git never makes a branch symbolic; one with a reflog was overwritten (HEAD's
            // text swapped into it). Other symbolic refs (refs/remotes/*/HEAD) are normal.
            Some(Target::Symbolic(t)) if name.starts_with("refs/heads/") => (
                "ref-not-in-reflog",
                format!("{name} is a symbolic ref to {t}; its reflog's last value is {last}"),
            ),
            Some(Target::Symbolic(_)) => continue,
            Some(Target::Object(id)) if *id == last => continue,
            Some(Target::Object(id)) if s.objects.contains_key(id) && log_damaged => continue,
            Some(Target::Object(id)) if entries.iter().any(|e| e.new == *id) => (
                "ref-behind-reflog",
                format!(
                    "{name} names {id}, an older value of its reflog, whose last value is {last}"
                ),
            ),
            Some(Target::Object(id)) => (
                "ref-not-in-reflog",
                format!(
                    "{name} names {id}, which its reflog never recorded; the reflog's last value is {last}"
                ),
            ),
            None => (
                "ref-missing",
                format!("{name} is gone; its reflog's last value is {last}"),
            ),
        };
        let intact = |id: &Oid| s.objects.contains_key(id);
        let restore = if intact(&last) {
            Some((last, String::new()))
        } else {
            entries
                .iter()
                .rev()
                .map(|e| e.new)
                .find(|id| !id.is_zero() && intact(id))
                .map(|id| {
                    (
                        id,
                        format!(" ({last} is damaged here: the newest intact entry is {id})"),
                    )
                })
        };
        let mut finding = Finding::at(code, &f, detail);
        let intact = restore.as_ref().map(|(id, _)| *id);
        match restore {
            Some((id, note)) => {
                finding.oid = Some(id);
                finding.detail.push_str(&note);
            }
            None => finding.detail.push_str(" (no entry of it is intact here)"),
        }
        s.ref_restores.push(RefRestore {
            name: format!("{prefix}{name}"),
            last,
            intact,
            from_damaged_log: log_damaged,
        });
        s.add(finding);
    }
}

/// Holds HEAD to its reflog: git logs every change of what HEAD resolves to, so a HEAD that
/// names a branch that does not exist, or is detached at another value than its reflog's last,
/// was damaged (a truncated or bit-flipped HEAD, HEAD swapped with a ref), unless the reflog's
/// last checkout says it moved there (an orphan branch). The value to restore is the branch of
/// the last checkout when it exists, else the branch at the reflog's last value, else that
/// value detached.
fn hold_head_to_reflog(
    git_dir: &Path,
    common: &Path,
    refs_now: &HashMap<String, refs::Ref>,
    s: &mut Scan,
) {
    let head = git_dir.join("HEAD");
    let log = git_dir.join("logs").join("HEAD");
    let Ok(target) = std::fs::read(&head)
        .map_err(|e| e.to_string())
        .and_then(|b| refs::parse_ref_file(&b))
    else {
        return; // unreadable: head-corrupt, handled elsewhere
    };
    let (entries, problems) = refs::reflog(&log);
    let Some(last) = entries.last().map(|e| e.new).filter(|id| !id.is_zero()) else {
        return;
    };
    if !problems.is_empty() {
        return; // the log is damaged itself: no witness
    }
    let checkout = last_checkout_target(&log).map(|b| format!("refs/heads/{b}"));
    let value_of = |name: &str| match refs_now.get(name).map(|r| &r.target) {
        Some(Target::Object(id)) => Some(*id),
        _ => None,
    };
    let wrong = match &target {
        // A branch that is there but damaged (its file or its reflog) is the branch's own
        // finding; HEAD is wrong only when nothing of the branch it names exists.
        Target::Symbolic(t) => {
            value_of(t).is_none()
                && !common.join(t).exists()
                && !common.join("logs").join(t).exists()
                && checkout.as_deref() != Some(t.as_str())
        }
        Target::Object(id) => *id != last,
    };
    if !wrong {
        return;
    }
    let branch = checkout.filter(|b| value_of(b).is_some()).or_else(|| {
        let mut at_last: Vec<&String> = refs_now
            .keys()
            .filter(|n| n.starts_with("refs/heads/") && value_of(n) == Some(last))
            .collect();
        at_last.sort();
        at_last.first().map(|n| n.to_string())
    });
    let content = match &branch {
        Some(b) => format!("ref: {b}\n"),
        None => format!("{last}\n"),
    };
    let what = match &target {
        Target::Symbolic(t) => format!("HEAD names {t}, which does not exist"),
        Target::Object(id) => format!("HEAD is detached at {id}"),
    };
    s.add(Finding::at(
        "head-not-in-reflog",
        &head,
        format!(
            "{what}, while its reflog's last value is {last}; it goes back to {}",
            content.trim_end()
        ),
    ));
    s.head_restores.push((head, content));
}

/// The branch the last `checkout: moving from A to B` line of a HEAD reflog moved to.
fn last_checkout_target(log: &Path) -> Option<String> {
    let text = std::fs::read(log).ok()?;
    String::from_utf8_lossy(&text).lines().rev().find_map(|l| {
        l.split_once("\tcheckout: moving from ")
            .and_then(|(_, rest)| rest.rsplit_once(" to "))
            .map(|(_, to)| to.trim().to_string())
    })
}

fn head(s: &mut Scan, path: &Path, name: &str, code: &'static str) {
    match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| refs::parse_ref_file(&b))
    {
        Ok(Target::Object(id)) => s.roots.push((name.to_string(), id)),
        Ok(Target::Symbolic(_)) => {}
        Err(e) => s.add(Finding::at(code, path, e)),
    }
}

/// The index of this worktree (which repair can rebuild), and those of the other worktrees:
/// every index's entries are roots, as git fsck treats them.
fn scan_index(repo: &Repo, s: &mut Scan) {
    read_index_roots(&repo.git_dir.join("index"), "index", s, true);
    let mut others: Vec<(PathBuf, String)> = Vec::new();
    if repo.git_dir != repo.common_dir {
        others.push((repo.common_dir.join("index"), "index(main)".into()));
    }
    for wt in worktree_dirs(repo)
        .into_iter()
        .filter(|d| *d != repo.git_dir)
    {
        let name = wt
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        others.push((wt.join("index"), format!("index({name})")));
    }
    for (path, label) in others {
        read_index_roots(&path, &label, s, false);
    }
}

fn read_index_roots(path: &Path, label: &str, s: &mut Scan, own: bool) {
    let Ok(b) = std::fs::read(path) else { return };
    match files::read_index(&b) {
        Ok(idx) => {
            for (name, id) in idx.entries {
                s.roots.push((format!("{label}:{name}"), id));
            }
        }
        Err(e) => {
            s.index_corrupt |= own;
            s.add(Finding::at("index-file-corrupt", path, e));
        }
    }
}

/// The private directories of the linked worktrees (`worktrees/*`).
pub(crate) fn worktree_dirs(repo: &Repo) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo.common_dir.join("worktrees"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn scan_leftovers(repo: &Repo, s: &mut Scan) {
    for p in files::leftovers(&repo.git_dir, &repo.common_dir) {
        s.add(Finding::at(
            "leftover",
            &p,
            "lock or temporary file left by an interrupted git",
        ));
        s.leftovers.push(p);
    }
}

/// Walks from every root; records objects that are needed but have no good copy.
fn connectivity(repo: &Repo, exec: &Executor, s: &mut Scan) {
    if s.bad.is_empty() && all_links_present(exec, s) {
        return;
    }
    let shallow: OidSet = files::shallow(&repo.common_dir).into_iter().collect();
    let promised: OidSet = s
        .objects
        .values()
        .filter(|i| i.promisor)
        .flat_map(|i| s.links_of(i).iter().copied())
        .collect();
    s.promised = promised;
    let bad: OidSet = s.bad.iter().map(|b| b.oid).collect();
    let mut seen = OidSet::default();
    let mut missing = OidMap::<String>::default();
    for (name, root) in &s.roots {
        walk(s, &shallow, *root, name, &mut seen, &mut missing);
    }
    for b in &s.bad {
        if !s.objects.contains_key(&b.oid) {
            missing
                .entry(b.oid)
                .or_insert_with(|| "(damaged copy, unreferenced)".into());
        }
    }
    if missing.is_empty() {
        return;
    }
    let needed = needed_by(s, &shallow, &missing);
    let mut list: Vec<Missing> = missing
        .into_iter()
        .map(|(oid, by)| Missing {
            oid,
            referenced_by: by,
            needed_by: needed.get(&oid).cloned().unwrap_or_default(),
            damaged_copy: bad.contains(&oid),
        })
        .collect();
    list.sort_by_key(|m| m.oid);
    for m in &list {
        let d = if m.damaged_copy {
            "damaged and no good copy"
        } else {
            "missing"
        };
        let roots = if m.needed_by.is_empty() {
            "nothing".to_string()
        } else {
            m.needed_by.join(", ")
        };
        s.findings.push(Finding {
            code: "missing-object",
            path: None,
            line: None,
            oid: Some(m.oid),
            detail: format!("{d}; referenced by {}; needed by {roots}", m.referenced_by),
        });
    }
    s.missing = list;
}

/// The fast path for a healthy repository: every root and every link of every good object
/// names a good object (checked in parallel). Only when this fails is the walk from the roots
/// needed, which also applies the shallow and promisor exemptions and finds what needs what.
fn all_links_present(exec: &Executor, s: &mut Scan) -> bool {
    if s.roots.iter().any(|(_, r)| !s.objects.contains_key(r)) {
        return false;
    }
    let objects = Arc::new(std::mem::take(&mut s.objects));
    let links = Arc::new(std::mem::take(&mut s.links));
    let step = 1 << 16;
    let ranges: Vec<(usize, usize)> = links
        .iter()
        .enumerate()
        .flat_map(|(i, seg)| (0..seg.len()).step_by(step).map(move |st| (i, st)))
        .collect();
    let (o, l) = (objects.clone(), links.clone());
    let ok = par_map(
        exec,
        ranges,
        1,
        move |(i, st)| {
            l[i][st..(st + step).min(l[i].len())]
                .iter()
                .all(|id| o.contains_key(id))
        },
        None,
    );
    s.objects = Arc::try_unwrap(objects).unwrap_or_else(|a| (*a).clone());
    s.links = Arc::try_unwrap(links).unwrap_or_else(|a| (*a).clone());
    ok.into_iter().all(|x| x)
}

fn walk(
    s: &Scan,
    shallow: &OidSet,
    root: Oid,
    name: &str,
    seen: &mut OidSet,
    missing: &mut OidMap<String>,
) {
    let mut stack = vec![(root, None::<Oid>)];
    while let Some((id, from)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(info) = s.objects.get(&id) else {
            // As git: an object any promisor object links to may be missing (a partial clone
            // fetches it on demand), whoever else refers to it (an index entry, a ref).
            let promised = s.promised.contains(&id);
            if !promised {
                missing
                    .entry(id)
                    .or_insert_with(|| from.map_or_else(|| name.to_string(), |f| f.to_hex()));
            }
            continue;
        };
        let all = s.links_of(info);
        let links = if info.kind == Kind::Commit && shallow.contains(&id) {
            &all[..1]
        } else {
            all
        };
        stack.extend(links.iter().map(|l| (*l, Some(id))));
    }
}

/// For each missing object, the roots whose history reaches it (one walk per root).
fn needed_by(s: &Scan, shallow: &OidSet, missing: &OidMap<String>) -> OidMap<Vec<String>> {
    let mut out: OidMap<Vec<String>> = OidMap::default();
    for (name, root) in &s.roots {
        let mut seen = OidSet::default();
        let mut m = OidMap::default();
        walk(s, shallow, *root, name, &mut seen, &mut m);
        let short = name.split(':').take(2).collect::<Vec<_>>().join(":");
        for id in m.keys().filter(|k| missing.contains_key(k)) {
            let v = out.entry(*id).or_default();
            if !v.contains(&short) {
                v.push(short.clone());
            }
        }
    }
    out
}

/// The config must parse (git refuses to run at all when it does not).
fn scan_config(repo: &Repo, s: &mut Scan) {
    let path = repo.common_dir.join("config");
    if let Err(e) = files::check_config(&path) {
        s.add(Finding::at("config-corrupt", &path, e));
    }
}

/// Submodule repositories under `modules/`: their damage is reported under the superproject.
fn scan_submodules(repo: &Repo, exec: &Executor, s: &mut Scan) {
    for sub in repo.submodules() {
        let inner = scan(&sub, exec);
        for f in inner.findings {
            let detail = format!("{}: {}: {}", sub.git_dir.display(), f.code, f.detail);
            s.add(Finding {
                code: "submodule-damaged",
                detail,
                ..f
            });
        }
    }
}
