//! Turning dump records into git: the Subversion tree of every revision (`tree`), branches and
//! tags found by layout, one commit per touched branch per revision (mixed-branch revisions are
//! split), merge parents from merge tickets (`svn:mergeinfo`, `svnmerge-integrated`,
//! `svk:merge`; never a parent another parent contains), annotated tags, objects written by
//! `odb`.
//!
//! Invariants: the output depends only on the dump and the options (no clock, no randomness,
//! deterministic orders), so a resumed run gives the same ids as a one-shot run. A branch that
//! is deleted ends; one created again at the same path is a new line of history (the old tip
//! is kept under `refs/deleted/`). Every text is checked against its md5/sha1 once deltas are
//! applied. Nothing outside a branch is dropped silently: it is listed in `Outcome::outside`.

pub mod authors;
pub mod mergeinfo;
pub mod odb;
pub mod rules;
pub mod tree;
pub mod verify;

use super::dump::{self, Action, Kind as NodeKind, Node, Record};
use crate::git::object::{Kind, Oid, OidMap};
use mergeinfo::Mergeinfo;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tree::{Dir, Entry, File, PropMap};

/// Conversion errors name the revision and path.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Dump(#[from] dump::DumpError),
    #[error("r{rev}, node {path:?}: {what}")]
    Node {
        rev: u64,
        path: String,
        what: String,
    },
    #[error("writing objects: {0}")]
    Io(#[from] std::io::Error),
    #[error("the dump has no revisions")]
    Empty,
}

/// What the user chose.
#[derive(Clone, Debug)]
pub struct Options {
    /// svn user → (name, email); `None` means `user <user@uuid>` for everyone.
    pub authors: Option<BTreeMap<String, (String, String)>>,
    /// Fallback email domain for users the authors map lacks.
    pub default_domain: Option<String>,
    /// The branch name trunk gets.
    pub trunk: String,
    /// A rules file instead of the standard layout.
    pub rules: Option<Arc<rules::Rules>>,
    /// With several repositories in the rules: the one this converter writes.
    pub repository: Option<String>,
    /// Write `.gitattributes` from `svn:eol-style` (`text`, `text eol=lf`, `-text` for CRLF).
    pub eol_attributes: bool,
    /// Make an empty commit for a revision that changes a branch in nothing git records.
    pub keep_empty_revisions: bool,
    /// An empty file of this name in every empty directory (`--empty-dirs=.gitkeep`).
    pub empty_dir_placeholder: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            authors: None,
            default_domain: None,
            trunk: "main".into(),
            rules: None,
            repository: None,
            eol_attributes: false,
            keep_empty_revisions: false,
            empty_dir_placeholder: None,
        }
    }
}

/// Where objects go; `odb::Odb` in the tool, anything in tests.
pub trait Sink {
    fn put(&mut self, kind: Kind, data: Vec<u8>) -> Result<Oid, String>;
    /// Stores an object whose id the caller computed (see [`prepare`]).
    fn put_known(&mut self, kind: Kind, data: Vec<u8>, id: Oid) -> Result<Oid, String> {
        let _ = id;
        self.put(kind, data)
    }
    fn get(&mut self, id: Oid) -> Result<Vec<u8>, String>;
}

impl Sink for odb::Odb {
    fn put(&mut self, kind: Kind, data: Vec<u8>) -> Result<Oid, String> {
        odb::Odb::put(self, kind, data).map_err(|e| e.to_string())
    }

    fn get(&mut self, id: Oid) -> Result<Vec<u8>, String> {
        match odb::Odb::get(self, id) {
            Ok(Some((_, d))) => Ok(d),
            Ok(None) => Err(format!("object {id} is not in the pack being written")),
            Err(e) => Err(e.to_string()),
        }
    }
}

struct StoreAdapter<'a>(&'a mut dyn Sink);

impl tree::Store for StoreAdapter<'_> {
    fn put(&mut self, kind: Kind, data: Vec<u8>) -> Result<Oid, String> {
        self.0.put(kind, data)
    }

    fn text(&mut self, id: Oid) -> Result<Vec<u8>, String> {
        self.0.get(id)
    }
}

/// Revision metadata as git will show it.
#[derive(Clone, Debug, Default)]
struct Meta {
    author: String,
    email: String,
    time: i64,
    log: Vec<u8>,
    /// `svn:author` and `svn:date` as Subversion holds them, for the report.
    svn_author: Option<String>,
    svn_date: Option<String>,
}

/// A line of history: a branch or a tag, from its creation to its deletion.
#[derive(Debug)]
struct Flow {
    name: String,
    root: Vec<u8>,
    tag: bool,
    tip: Option<Oid>,
    tree: Option<Oid>,
    /// Commits made on this flow, by revision.
    commits: Vec<(u64, Oid)>,
    created: u64,
    meta: Meta,
    mergeinfo: Mergeinfo,
    /// The raw merge-ticket values `mergeinfo` was parsed from.
    mergeinfo_raw: Option<Vec<u8>>,
    /// Per merge source root, the highest revision merged into this flow.
    merged_from: BTreeMap<Vec<u8>, u64>,
    ended: Option<u64>,
}

/// Where a path belongs.
enum Where {
    /// At or below the root of a branch or tag of this repository.
    Flow {
        root: Vec<u8>,
        prefix: Vec<u8>,
        name: String,
        tag: bool,
    },
    /// Ignored by a rule, above a rule's root, or in another repository of the rules.
    Elsewhere,
    /// Matched by nothing: reported.
    Outside,
}

/// The result: refs to write and what the user should know.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub refs: Vec<(String, Oid)>,
    pub head: Option<String>,
    pub revisions: u64,
    /// The number of the last revision converted.
    pub last_revision: Option<u64>,
    pub commits: u64,
    pub merges: u64,
    /// (revision, path) of changes outside every branch.
    pub outside: Vec<(u64, String)>,
    /// Users the authors map lacks (the run must stop when this is not empty).
    pub unknown_authors: Vec<String>,
    /// Why mergeinfo did not become a merge, for the log.
    pub ignored_merges: Vec<String>,
    /// `svn:externals` and `svn:eol-style` values set, which git has no place for:
    /// (revision, path, property, value).
    pub kept_properties: Vec<(u64, String, String, String)>,
    /// What the dump's checks found that did not stop the conversion.
    pub warnings: Vec<String>,
    /// Revisions that made no commit (nothing git records changed, or only a deletion),
    /// with what git would otherwise lose of them.
    pub unconverted: Vec<Unconverted>,
    pub uuid: String,
}

/// A revision that became no commit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unconverted {
    pub revision: u64,
    pub author: Option<String>,
    pub date: Option<String>,
    pub log: String,
    pub why: String,
}

/// The converter's state between records.
pub struct Converter<S: Sink> {
    sink: S,
    opts: Options,
    uuid: String,
    roots: BTreeMap<u64, Arc<Dir>>,
    cur: Arc<Dir>,
    rev: Option<u64>,
    meta: Meta,
    flows: Vec<Flow>,
    alive: BTreeMap<Vec<u8>, usize>,
    touched: BTreeSet<usize>,
    parents: OidMap<Vec<Oid>>,
    names: BTreeMap<String, Vec<u8>>,
    /// Which root each ref name belongs to.
    ref_owners: BTreeMap<String, Vec<u8>>,
    unknown: BTreeSet<String>,
    trees_of: OidMap<Oid>,
    /// The revision each commit was made for.
    commit_rev: OidMap<u64>,
    /// The alive flows as of the last completed revision (what refs show after an error).
    alive_done: BTreeMap<Vec<u8>, usize>,
    /// The blob id `prepare` computed for the node being applied.
    prepared_blob: Option<Oid>,
    /// `alive` changed in this revision (flows created or ended).
    alive_dirty: bool,
    /// Nodes in the current revision, and `out.outside` / `out.commits` when it began.
    rev_nodes: usize,
    rev_outside: usize,
    rev_commits: u64,
    /// Revisions that created a tag and no commit: unconverted if the tag is deleted later.
    tag_revisions: Vec<(usize, Unconverted)>,
    /// Standard layout (`Some(true)`), the whole repository as one branch (`Some(false)`), or
    /// not decided yet (before the first revision with changes).
    standard: Option<bool>,
    /// Paths changed in the current revision while the layout is undecided.
    first_paths: Vec<Vec<u8>>,
    /// Refs of deleted flows: (revision of the delete, ref, tip).
    deleted: Vec<(u64, String, Oid)>,
    out: Outcome,
}

fn err(rev: u64, path: &[u8], what: impl Into<String>) -> ConvertError {
    ConvertError::Node {
        rev,
        path: String::from_utf8_lossy(path).into_owned(),
        what: what.into(),
    }
}

impl<S: Sink> Converter<S> {
    pub fn new(sink: S, opts: Options) -> Converter<S> {
        let empty = Dir::with(tree::Children::new(), Arc::default());
        let standard = opts.rules.as_ref().map(|_| true);
        Converter {
            sink,
            opts,
            uuid: String::new(),
            roots: BTreeMap::new(),
            cur: empty,
            rev: None,
            meta: Meta::default(),
            flows: Vec::new(),
            alive: BTreeMap::new(),
            touched: BTreeSet::new(),
            parents: OidMap::default(),
            names: BTreeMap::new(),
            ref_owners: BTreeMap::new(),
            unknown: BTreeSet::new(),
            trees_of: OidMap::default(),
            commit_rev: OidMap::default(),
            alive_done: BTreeMap::new(),
            alive_dirty: false,
            prepared_blob: None,
            rev_nodes: 0,
            rev_outside: 0,
            rev_commits: 0,
            tag_revisions: Vec::new(),
            standard,
            first_paths: Vec::new(),
            deleted: Vec::new(),
            out: Outcome::default(),
        }
    }

    /// Feeds one record.
    pub fn record(&mut self, r: Record) -> Result<(), ConvertError> {
        match r {
            Record::Version(_) => Ok(()),
            Record::Uuid(u) => {
                self.uuid = u;
                Ok(())
            }
            Record::Revision { number, props } => {
                self.end_revision()?;
                self.begin_revision(number, &props);
                Ok(())
            }
            Record::Node(n) => self.node(n),
        }
    }

    /// Feeds one record that went through [`prepare`].
    pub fn record_prepared(&mut self, p: Prepared) -> Result<(), ConvertError> {
        for w in p.warnings {
            self.warn(Some(w));
        }
        self.prepared_blob = p.blob;
        let r = self.record(p.record);
        self.prepared_blob = None;
        r
    }

    fn warn(&mut self, warning: Option<String>) {
        if let Some(w) = warning {
            crate::warn!("dump check", what = w.as_str());
            self.out.warnings.push(w);
        }
    }

    /// Where objects go (to finish or checkpoint the pack).
    pub fn sink(&mut self) -> &mut S {
        &mut self.sink
    }

    /// The last revision fully converted.
    pub fn last_revision(&self) -> Option<u64> {
        self.roots.keys().next_back().copied()
    }

    fn begin_revision(&mut self, number: u64, props: &BTreeMap<Vec<u8>, Vec<u8>>) {
        self.rev = Some(number);
        let user = props
            .get(&b"svn:author"[..])
            .map(|a| String::from_utf8_lossy(a).into_owned());
        let (author, email) = self.ident(user.as_deref());
        let time = props
            .get(&b"svn:date"[..])
            .and_then(|d| parse_date(d))
            .unwrap_or(0);
        let log = props.get(&b"svn:log"[..]).cloned().unwrap_or_default();
        self.meta = Meta {
            author,
            email,
            time,
            log,
            svn_author: user,
            svn_date: props
                .get(&b"svn:date"[..])
                .map(|d| String::from_utf8_lossy(d).into_owned()),
        };
        self.rev_nodes = 0;
        self.rev_outside = self.out.outside.len();
        self.rev_commits = self.out.commits;
    }

    fn ident(&mut self, user: Option<&str>) -> (String, String) {
        let (name, email) = self.ident_raw(user);
        // git identities cannot hold `<`, `>` or line breaks: an author like `Joe <joe@corp>`
        // would otherwise forge the header.
        let clean = |s: &str, extra: &[char]| {
            s.chars()
                .filter(|c| !matches!(c, '<' | '>' | '\n' | '\r' | '\0') && !extra.contains(c))
                .collect::<String>()
                .trim()
                .to_string()
        };
        (clean(&name, &[]), clean(&email, &[' ', '\t']))
    }

    fn ident_raw(&mut self, user: Option<&str>) -> (String, String) {
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return ("(no author)".into(), format!("no-author@{}", self.uuid));
        };
        match (&self.opts.authors, &self.opts.default_domain) {
            (Some(map), _) if map.contains_key(user) => map[user].clone(),
            (Some(_), Some(d)) | (None, Some(d)) => (user.to_string(), format!("{user}@{d}")),
            (Some(_), None) => {
                self.unknown.insert(user.to_string());
                (user.to_string(), format!("{user}@{}", self.uuid))
            }
            (None, None) => (user.to_string(), format!("{user}@{}", self.uuid)),
        }
    }

    fn node(&mut self, mut n: Node) -> Result<(), ConvertError> {
        let rev = self
            .rev
            .ok_or_else(|| err(0, &n.path, "node before any revision"))?;
        self.rev_nodes += 1;
        let path = n.path.strip_prefix(b"/").unwrap_or(&n.path).to_vec();
        if n.action == Action::Change && n.props.is_none() && n.text.is_none() {
            // An empty change node (svnsync and hand-made dumps have them): nothing happens.
            return Ok(());
        }
        if n.kind.is_none()
            && n.copyfrom.is_none()
            && matches!(n.action, Action::Add | Action::Replace)
        {
            // Nothing to add (the parser refuses one with content): svnadmin loads an add of
            // this kind as nothing and a replace as a delete.
            self.warn(Some(where_(
                rev,
                &path,
                "an add or replace without Node-kind, copy source or content: \
                 converted as svnadmin loads it (nothing added)",
            )));
            if n.action == Action::Add {
                return Ok(());
            }
            n.action = Action::Delete;
        }
        if n.action == Action::Add && tree::get(&self.cur, &path).is_some() {
            // As in `svnadmin load`: a copy onto an existing path replaces it (svn_fs_copy
            // does), an add of a new file or directory there is refused.
            if n.copyfrom.is_none() {
                return Err(err(rev, &path, "add of a path that already exists"));
            }
            self.warn(Some(where_(
                rev,
                &path,
                "a copy is added onto a path that exists: converted as a replace, as svnadmin loads it",
            )));
            n.action = Action::Replace;
        }
        if matches!(n.action, Action::Delete | Action::Replace) {
            if tree::get(&self.cur, &path).is_none() {
                return Err(err(rev, &path, "delete of a path that does not exist"));
            }
            self.cur = tree::set(&self.cur, &path, None).map_err(|w| err(rev, &path, w))?;
            self.end_flows_under(&path, rev);
        }
        if self.standard.is_none() {
            self.first_paths.push(path.clone());
        }
        if n.action == Action::Delete {
            self.touch(&path);
            return Ok(());
        }
        let entry = self.build_entry(rev, &path, &mut n)?;
        self.note_kept_properties(rev, &path, &entry);
        let is_dir = matches!(entry, Entry::Dir(_));
        self.cur = tree::set(&self.cur, &path, Some(entry)).map_err(|w| err(rev, &path, w))?;
        if matches!(n.action, Action::Add | Action::Replace)
            && is_dir
            && self.standard != Some(false)
        {
            self.maybe_create_flow(rev, &path, n.copyfrom.as_ref());
            if let Some((r, from)) = &n.copyfrom {
                self.flows_in_copied_tree(rev, &path, *r, from.strip_prefix(b"/").unwrap_or(from));
            }
        }
        self.touch(&path);
        // A file where no branch is (including a file copied to a branch root's path).
        if !is_dir
            && self.standard.is_some()
            && self.flow_of(&path).is_none()
            && !matches!(self.locate(&path, rev), Where::Elsewhere)
        {
            self.out
                .outside
                .push((rev, String::from_utf8_lossy(&path).into_owned()));
        }
        Ok(())
    }

    /// The entry a non-delete node leaves at its path.
    fn build_entry(&mut self, rev: u64, path: &[u8], n: &mut Node) -> Result<Entry, ConvertError> {
        let base = match (&n.action, &n.copyfrom) {
            (Action::Change, _) => Some(
                tree::get(&self.cur, path)
                    .ok_or_else(|| err(rev, path, "change of a path that does not exist"))?,
            ),
            (_, Some((r, p))) => {
                let p = p.strip_prefix(b"/").unwrap_or(p);
                // A copy names an earlier revision; the current or a later one is a corrupt dump.
                let root = (*r < rev)
                    .then(|| self.roots.range(..=*r).next_back().map(|(_, d)| d.clone()))
                    .flatten()
                    .ok_or_else(|| {
                        err(
                            rev,
                            path,
                            format!(
                                "copy source revision {r} is not an earlier revision of this dump"
                            ),
                        )
                    })?;
                Some(tree::get(&root, p).ok_or_else(|| {
                    err(
                        rev,
                        path,
                        format!(
                            "copy source {}@{r} does not exist",
                            String::from_utf8_lossy(p)
                        ),
                    )
                })?)
            }
            _ => None,
        };
        // What is there (changed or copied) decides the kind, as in svnadmin load, whatever
        // Node-kind says; only a new node takes its kind from the header.
        let kind = match &base {
            Some(Entry::Dir(_)) => Some(NodeKind::Dir),
            Some(Entry::File(_)) => Some(NodeKind::File),
            None => n.kind,
        };
        if base.is_some() && n.kind.is_some() && n.kind != kind {
            self.warn(Some(where_(
                rev,
                path,
                &format!(
                    "Node-kind says {} but the node is a {} (converted as what it is)",
                    kind_name(n.kind),
                    kind_name(kind)
                ),
            )));
        }
        if kind == Some(NodeKind::Dir) && n.text.is_some() {
            return Err(err(rev, path, "a directory node has a text section"));
        }
        match (kind, base) {
            (Some(NodeKind::Dir), base) => {
                let (children, props) = match base {
                    Some(Entry::Dir(d)) => (d.children.clone(), d.props.clone()),
                    Some(Entry::File(_)) => {
                        return Err(err(rev, path, "directory node over a file"));
                    }
                    None => (tree::Children::new(), Arc::default()),
                };
                Ok(Entry::Dir(Dir::with(
                    children,
                    apply_props(&props, n.props.as_ref()),
                )))
            }
            (Some(NodeKind::File), base) => {
                let (text, props) = match base {
                    Some(Entry::File(f)) => (Some(f.text), f.props.clone()),
                    Some(Entry::Dir(_)) => {
                        return Err(err(rev, path, "file node over a directory"));
                    }
                    None => (None, Arc::default()),
                };
                let text = match n.text.as_mut() {
                    Some(t) => self.text(rev, path, text, t)?,
                    None => match text {
                        Some(t) => t,
                        None => self
                            .sink
                            .put(Kind::Blob, Vec::new())
                            .map_err(|w| err(rev, path, w))?,
                    },
                };
                Ok(Entry::File(Arc::new(File {
                    text,
                    props: apply_props(&props, n.props.as_ref()),
                })))
            }
            (None, _) => Err(err(
                rev,
                path,
                "node kind is unknown (no Node-kind and no copy source)",
            )),
        }
    }

    /// Applies a text section (full or delta on `base`), checks it, stores it.
    fn text(
        &mut self,
        rev: u64,
        path: &[u8],
        base: Option<Oid>,
        t: &mut dump::Text,
    ) -> Result<Oid, ConvertError> {
        if !t.delta
            && let Some(id) = self.prepared_blob.take()
        {
            // `prepare` already checked this full text and hashed it.
            return self
                .sink
                .put_known(Kind::Blob, std::mem::take(&mut t.data), id)
                .map_err(|w| err(rev, path, w));
        }
        let content = if t.delta {
            let b = match base {
                Some(id) => self.sink.get(id).map_err(|w| err(rev, path, w))?,
                None => Vec::new(),
            };
            dump::svndiff::apply(&b, &t.data).map_err(|e| err(rev, path, e.to_string()))?
        } else {
            std::mem::take(&mut t.data)
        };
        let warning = check_text(t, &content).map_err(|w| err(rev, path, w))?;
        self.warn(warning.map(|w| where_(rev, path, &w)));
        self.sink
            .put(Kind::Blob, content)
            .map_err(|w| err(rev, path, w))
    }

    /// Records `svn:externals` / `svn:eol-style` values that a node sets or changes.
    fn note_kept_properties(&mut self, rev: u64, path: &[u8], entry: &Entry) {
        let props = match entry {
            Entry::Dir(d) => &d.props,
            Entry::File(f) => &f.props,
        };
        let before = match tree::get(&self.cur, path) {
            Some(Entry::Dir(d)) => Some(d.props.clone()),
            Some(Entry::File(f)) => Some(f.props.clone()),
            None => None,
        };
        for key in [&b"svn:externals"[..], &b"svn:eol-style"[..]] {
            let now = props.get(key);
            if now.is_some() && now != before.as_ref().and_then(|b| b.get(key)) {
                let v = String::from_utf8_lossy(now.map(Vec::as_slice).unwrap_or_default())
                    .trim_end()
                    .to_string();
                self.out.kept_properties.push((
                    rev,
                    String::from_utf8_lossy(path).into_owned(),
                    String::from_utf8_lossy(key).into_owned(),
                    v,
                ));
            }
        }
    }

    /// What the layout (standard, or the rules file) says about `path` at `rev`.
    fn locate(&self, path: &[u8], rev: u64) -> Where {
        let Some(rules) = &self.opts.rules else {
            return match classify(path, &self.opts.trunk) {
                Some((root, prefix, name, tag)) => Where::Flow {
                    root,
                    prefix,
                    name,
                    tag,
                },
                None => Where::Outside,
            };
        };
        match rules.classify(path, rev) {
            Some(rules::Class::Root {
                root,
                name,
                tag,
                repository,
            }) if repository == self.opts.repository => Where::Flow {
                root,
                prefix: Vec::new(),
                name,
                tag,
            },
            Some(rules::Class::Root { .. }) | Some(rules::Class::Ignored) => Where::Elsewhere,
            None if rules.is_structural(path) => Where::Elsewhere,
            None => Where::Outside,
        }
    }

    /// The alive flow whose root is `path` or above it.
    fn flow_of(&self, path: &[u8]) -> Option<usize> {
        // Roots are whole components: look up `path` and each of its parents, deepest first,
        // then the empty root of a whole-repository layout.
        let cuts = path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i);
        std::iter::once(path.len())
            .chain(cuts.collect::<Vec<_>>().into_iter().rev())
            .chain(std::iter::once(0))
            .find_map(|end| self.alive.get(&path[..end]).copied())
    }

    fn touch(&mut self, path: &[u8]) {
        if let Some(id) = self.flow_of(path) {
            self.touched.insert(id);
        }
    }

    fn end_flows_under(&mut self, path: &[u8], rev: u64) {
        let gone: Vec<Vec<u8>> = self
            .alive
            .keys()
            .filter(|r| {
                r.as_slice() == path
                    || (r.starts_with(path) && r.get(path.len()) == Some(&b'/'))
                    || path.is_empty()
            })
            .cloned()
            .collect();
        for root in gone {
            if let Some(id) = self.alive.remove(&root) {
                self.alive_dirty = true;
                let f = &mut self.flows[id];
                f.ended = Some(rev);
                self.touched.remove(&id);
                if let Some(tip) = f.tip {
                    let kind = if f.tag { "tags" } else { "heads" };
                    self.deleted
                        .push((rev, format!("refs/deleted/{kind}/{}@{rev}", f.name), tip));
                }
            }
        }
    }

    /// A directory added at a branch or tag root starts a new flow; with a copy source that is
    /// itself a flow root, the new flow starts at that flow's last commit at or before the
    /// copy revision.
    fn maybe_create_flow(&mut self, rev: u64, path: &[u8], copy: Option<&(u64, Vec<u8>)>) {
        let Where::Flow {
            root,
            prefix,
            name,
            tag,
        } = self.locate(path, rev)
        else {
            return;
        };
        if root != path {
            return;
        }
        let name = self.ref_name(&root, &prefix, &name, tag);
        let source = copy.map(|(r, p)| (*r, p.strip_prefix(b"/").unwrap_or(p)));
        let (tip, tree, mergeinfo) = match source.and_then(|(r, p)| self.commit_at(p, r)) {
            Some((commit, tree, mi)) => (Some(commit), tree, mi),
            // Copied from inside a branch (a tag of `trunk/doc`): its history continues from
            // that branch's commit, with a commit of its own for the different tree.
            None => (
                source.and_then(|(r, p)| self.enclosing_commit(p, r)),
                None,
                Mergeinfo::new(),
            ),
        };
        let id = self.flows.len();
        self.flows.push(Flow {
            name,
            root: root.clone(),
            tag,
            tip,
            tree,
            commits: Vec::new(),
            created: rev,
            meta: self.meta.clone(),
            mergeinfo,
            mergeinfo_raw: None,
            merged_from: BTreeMap::new(),
            ended: None,
        });
        self.alive.insert(root, id);
        self.alive_dirty = true;
        self.touched.insert(id);
    }

    /// A directory copied whole that holds branch or tag roots (`svn mv proj proj2`,
    /// `svn cp branches old/branches`): each root inside becomes a flow continuing the flow at
    /// the matching path of the copy source. Searched a few levels deep, not into roots.
    fn flows_in_copied_tree(&mut self, rev: u64, path: &[u8], from_rev: u64, from: &[u8]) {
        let Some(Entry::Dir(dir)) = tree::get(&self.cur, path) else {
            return;
        };
        let mut stack: Vec<(Vec<u8>, Arc<Dir>, usize)> = vec![(Vec::new(), dir, 0)];
        while let Some((rel, d, depth)) = stack.pop() {
            for (name, e) in d.children.iter() {
                let Entry::Dir(sub) = e else { continue };
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(name);
                let target = [path, b"/".as_slice(), r.as_slice()].concat();
                let is_root =
                    matches!(self.locate(&target, rev), Where::Flow { root, .. } if root == target);
                if is_root {
                    let source = [from, b"/".as_slice(), r.as_slice()].concat();
                    self.maybe_create_flow(rev, &target, Some(&(from_rev, source)));
                } else if depth < 4 {
                    stack.push((r, sub.clone(), depth + 1));
                }
            }
        }
    }

    /// The commit at or before `rev` of the flow whose root lies above `path`.
    fn enclosing_commit(&self, path: &[u8], rev: u64) -> Option<Oid> {
        let cuts: Vec<usize> = path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i)
            .collect();
        cuts.into_iter()
            .rev()
            .find_map(|end| self.commit_at(&path[..end], rev).map(|c| c.0))
    }

    /// The last commit of the flow rooted at `root` at or before `rev`, its tree, and the
    /// mergeinfo it carried then.
    fn commit_at(&self, root: &[u8], rev: u64) -> Option<(Oid, Option<Oid>, Mergeinfo)> {
        let f = self
            .flows
            .iter()
            .rev()
            .find(|f| f.root == root && f.created <= rev && f.ended.is_none_or(|e| e > rev))?;
        let commit = f
            .commits
            .iter()
            .rev()
            .find(|(r, _)| *r <= rev)
            .map(|(_, c)| *c)
            .or_else(|| {
                if f.commits.is_empty() || f.commits[0].0 > rev {
                    self.flow_start(f)
                } else {
                    None
                }
            })?;
        let snapshot = self
            .roots
            .range(..=rev)
            .next_back()
            .map(|(_, d)| d.clone())?;
        let mi = match tree::get(&snapshot, root) {
            Some(Entry::Dir(d)) => merge_tickets(&d.props, &self.uuid).0,
            _ => Mergeinfo::new(),
        };
        let tree = self.commit_tree(commit);
        Some((commit, tree, mi))
    }

    /// The commit a flow started from (its copy source), when it has no commit of its own yet.
    fn flow_start(&self, f: &Flow) -> Option<Oid> {
        if f.commits.is_empty() {
            f.tip
        } else {
            self.parents
                .get(&f.commits[0].1)
                .and_then(|p| p.first().copied())
        }
    }

    fn commit_tree(&self, commit: Oid) -> Option<Oid> {
        self.trees_of.get(&commit).copied()
    }

    /// A git ref name for a branch or tag: the first project to use a name gets it plain,
    /// later projects get it under their path (`proj/name`). Characters git refuses become `_`.
    fn ref_name(&mut self, root: &[u8], prefix: &[u8], name: &str, tag: bool) -> String {
        let kind = if tag { "tags/" } else { "heads/" };
        let owner = self
            .names
            .entry(format!("{kind}{name}"))
            .or_insert_with(|| prefix.to_vec())
            .clone();
        let mut full = if owner == prefix || prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", String::from_utf8_lossy(prefix))
        };
        // Two roots must never share a ref (trunk and branches/main, say): the later one is
        // named by its path. A root keeps its name when it is deleted and made again.
        let taken = self
            .ref_owners
            .get(&format!("{kind}{}", sanitize_ref(&full)))
            .is_some_and(|r| r.as_slice() != root);
        if taken {
            full = String::from_utf8_lossy(root).into_owned();
        }
        let full = sanitize_ref(&full);
        self.ref_owners
            .entry(format!("{kind}{full}"))
            .or_insert_with(|| root.to_vec());
        full
    }

    /// Decides the layout from the first revision with changes: standard when any path in it
    /// is or lies under a `trunk`, `branches` or `tags` directory, else the whole repository
    /// is one branch.
    fn decide_layout(&mut self, rev: u64) {
        if self.standard.is_some() || self.first_paths.is_empty() {
            return;
        }
        let paths = std::mem::take(&mut self.first_paths);
        let standard = paths.iter().any(|p| {
            p.split(|&b| b == b'/')
                .any(|c| c == b"trunk" || c == b"branches" || c == b"tags")
        });
        let has_file = paths
            .iter()
            .any(|p| matches!(tree::get(&self.cur, p), Some(Entry::File(_))));
        if !standard && !has_file {
            // Only directories so far (`proj/` before `proj/trunk`): keep looking.
            return;
        }
        self.standard = Some(standard);
        if !standard {
            let id = self.flows.len();
            let name = sanitize_ref(&self.opts.trunk);
            self.flows.push(Flow {
                name,
                root: Vec::new(),
                tag: false,
                tip: None,
                tree: None,
                commits: Vec::new(),
                created: rev,
                meta: self.meta.clone(),
                mergeinfo: Mergeinfo::new(),
                mergeinfo_raw: None,
                merged_from: BTreeMap::new(),
                ended: None,
            });
            self.alive.insert(Vec::new(), id);
            self.alive_dirty = true;
            self.touched.insert(id);
        } else {
            let outside: Vec<(u64, String)> = paths
                .iter()
                .filter(|p| {
                    matches!(tree::get(&self.cur, p), Some(Entry::File(_)))
                        && self.flow_of(p).is_none()
                })
                .map(|p| (rev, String::from_utf8_lossy(p).into_owned()))
                .collect();
            self.out.outside.extend(outside);
        }
    }

    /// Commits every flow this revision touched, in root order.
    fn end_revision(&mut self) -> Result<(), ConvertError> {
        let Some(rev) = self.rev else { return Ok(()) };
        self.decide_layout(rev);
        let touched = std::mem::take(&mut self.touched);
        let any_touched = !touched.is_empty();
        let mut order: Vec<usize> = touched
            .into_iter()
            .filter(|id| self.flows[*id].ended.is_none())
            .collect();
        order.sort_by(|a, b| self.flows[*a].root.cmp(&self.flows[*b].root));
        for id in order {
            self.commit_flow(rev, id)?;
        }
        // With rules, a revision that touched no branch and nothing outside changed only paths
        // the rules leave out on purpose (or another repository's): not this one's to list.
        let ruled_out =
            self.opts.rules.is_some() && !any_touched && self.out.outside.len() == self.rev_outside;
        if rev > 0 && self.out.commits == self.rev_commits && !ruled_out {
            self.list_unconverted(rev);
        }
        self.roots.insert(rev, self.cur.clone());
        if self.alive_dirty {
            self.alive_done = self.alive.clone();
            self.alive_dirty = false;
        }
        self.out.revisions += 1;
        Ok(())
    }

    /// Lists revision `rev`, which made no commit, with why and what git would otherwise lose
    /// of it (its author, date and log).
    fn list_unconverted(&mut self, rev: u64) {
        let created: Vec<&Flow> = self.flows.iter().filter(|f| f.created == rev).collect();
        let deleted_a_flow = self.flows.iter().any(|f| f.ended == Some(rev));
        let m = &self.meta;
        let entry = |why: String| Unconverted {
            revision: rev,
            author: m.svn_author.clone(),
            date: m.svn_date.clone(),
            log: String::from_utf8_lossy(&m.log).into_owned(),
            why,
        };
        if let Some(id) = self.flows.iter().rposition(|f| f.created == rev && f.tag) {
            // An annotated tag's message will hold the revision's log and trailer, unless the
            // tag is deleted later (then its ref under refs/deleted/ is a plain one): `finish`
            // lists it then.
            let why = format!(
                "creates tag {}, deleted later (kept under refs/deleted/ without a tag message)",
                self.flows[id].name
            );
            let u = entry(why);
            self.tag_revisions.push((id, u));
            return;
        }
        let why = if self.rev_nodes == 0 {
            "changes nothing (an empty revision)".to_string()
        } else if let Some(f) = created.first() {
            match f.tip {
                Some(_) => format!("creates branch {} (a git branch needs no commit)", f.name),
                None => format!(
                    "creates branch {} with nothing git records in it yet (empty directories)",
                    f.name
                ),
            }
        } else if deleted_a_flow {
            "deletes a branch or tag (its tip is kept under refs/deleted/)".to_string()
        } else if self.out.outside.len() > self.rev_outside {
            "changes only paths outside every branch (listed as outside)".to_string()
        } else {
            "changes nothing git records (properties or empty directories)".to_string()
        };
        let u = entry(why);
        self.out.unconverted.push(u);
    }

    fn commit_flow(&mut self, rev: u64, id: usize) -> Result<(), ConvertError> {
        let root = self.flows[id].root.clone();
        let Some(Entry::Dir(dir)) = tree::get(&self.cur, &root) else {
            return Err(err(rev, &root, "branch root is not a directory"));
        };
        let opts = tree::TreeOpts {
            eol: self.opts.eol_attributes,
            placeholder: self
                .opts
                .empty_dir_placeholder
                .as_ref()
                .map(|p| p.as_bytes().to_vec()),
        };
        let tree = tree::git_tree(&dir, &mut StoreAdapter(&mut self.sink), &opts)
            .map_err(|w| err(rev, &root, w))?;
        let merges = self.merge_parents(rev, id, &dir.props);
        let f = &self.flows[id];
        // Nothing git records changed: no commit, unless the user keeps such revisions (the
        // revision is listed in `Outcome::unconverted` when no branch got a commit from it).
        let keep = self.opts.keep_empty_revisions;
        if tree == f.tree && merges.is_empty() && f.tip.is_some() && !keep {
            return Ok(());
        }
        if tree.is_none() && f.tip.is_none() && merges.is_empty() && !keep {
            return Ok(());
        }
        let tree = match tree {
            Some(t) => t,
            None => self
                .sink
                .put(Kind::Tree, Vec::new())
                .map_err(|w| err(rev, &root, w))?,
        };
        let mut parents: Vec<Oid> = f.tip.into_iter().collect();
        parents.extend(merges.iter().copied().filter(|m| Some(*m) != f.tip));
        let commit = self.write_commit(rev, &root, tree, &parents)?;
        self.out.commits += 1;
        self.out.merges += u64::from(parents.len() > 1);
        let f = &mut self.flows[id];
        f.tip = Some(commit);
        f.tree = Some(tree);
        f.commits.push((rev, commit));
        self.parents.insert(commit, parents);
        self.trees_of.insert(commit, tree);
        self.commit_rev.insert(commit, rev);
        Ok(())
    }

    fn write_commit(
        &mut self,
        rev: u64,
        root: &[u8],
        tree: Oid,
        parents: &[Oid],
    ) -> Result<Oid, ConvertError> {
        let m = &self.meta;
        let ident = format!("{} <{}> {} +0000", m.author, m.email, m.time);
        let mut data = format!("tree {tree}\n").into_bytes();
        for p in parents {
            data.extend_from_slice(format!("parent {p}\n").as_bytes());
        }
        data.extend_from_slice(format!("author {ident}\ncommitter {ident}\n\n").as_bytes());
        data.extend_from_slice(&message(&m.log, &self.uuid, rev, root));
        self.sink
            .put(Kind::Commit, data)
            .map_err(|w| err(rev, root, w))
    }

    /// Merge parents from mergeinfo added on the flow's root in this revision: a source branch
    /// is merged when every one of its commits up to the highest merged revision that this flow
    /// does not already contain is covered, that revision is not in the future, and the source
    /// commit is not already in this flow's history. Anything else is a cherry-pick or noise.
    fn merge_parents(&mut self, rev: u64, id: usize, props: &PropMap) -> Vec<Oid> {
        let raw = merge_tickets_raw(props);
        if raw == self.flows[id].mergeinfo_raw {
            return Vec::new();
        }
        self.flows[id].mergeinfo_raw = raw;
        let (now, foreign) = merge_tickets(props, &self.uuid);
        for f in foreign {
            self.out.ignored_merges.push(format!(
                "r{rev}: svk:merge ticket {f} names another repository (an SVK mirror's depot)"
            ));
        }
        if now == self.flows[id].mergeinfo {
            return Vec::new();
        }
        let old = std::mem::replace(&mut self.flows[id].mergeinfo, now.clone());
        let mut out: Vec<(Vec<u8>, Oid)> = Vec::new();
        for (src, ranges) in &now {
            if old.get(src) == Some(ranges) || *src == self.flows[id].root {
                continue;
            }
            let max = ranges.iter().map(|r| r.1).max().unwrap_or(0);
            if max > rev {
                self.out.ignored_merges.push(format!(
                    "r{rev}: mergeinfo from /{} names future revision {max}",
                    String::from_utf8_lossy(src)
                ));
                continue;
            }
            let Some(sf) =
                self.flows.iter().rev().find(|f| {
                    f.root == *src && f.created <= max && f.ended.is_none_or(|e| e > max)
                })
            else {
                continue;
            };
            // Source commits merged by an earlier merge are contained already.
            let done = self.flows[id].merged_from.get(src).copied().unwrap_or(0);
            let own: Vec<(u64, Oid)> = sf
                .commits
                .iter()
                .copied()
                .filter(|(r, _)| done < *r && *r <= max)
                .collect();
            let Some(&(_, candidate)) = own.last() else {
                continue;
            };
            // Every source commit this flow does not already contain must be covered; one
            // left out means a cherry-pick, which is not a merge.
            let tip = self.flows[id].tip;
            let have = tip
                .map(|t| self.ancestors_since(t, own[0].0))
                .unwrap_or_default();
            if have.contains(&candidate) {
                continue;
            }
            if let Some((r, _)) = own
                .iter()
                .find(|(r, c)| !have.contains(c) && !mergeinfo::covers(ranges, *r))
            {
                self.out.ignored_merges.push(format!(
                    "r{rev}: /{} merged without r{r} (a cherry-pick): no merge parent",
                    String::from_utf8_lossy(src)
                ));
                continue;
            }
            self.flows[id].merged_from.insert(src.clone(), max);
            out.push((src.clone(), candidate));
        }
        self.minimal_parents(rev, out)
    }

    /// Drops every candidate that another candidate already contains (a source merged into
    /// another source before, or a branch copied from another), as git would: octopus merges
    /// stay only for lines that are really independent. Candidates are never ancestors of the
    /// first parent (`merge_parents` checked that).
    fn minimal_parents(&mut self, rev: u64, candidates: Vec<(Vec<u8>, Oid)>) -> Vec<Oid> {
        let mut out: Vec<Oid> = Vec::new();
        for (i, (src, c)) in candidates.iter().enumerate() {
            let since = self.commit_rev.get(c).copied().unwrap_or(0);
            let within = candidates.iter().enumerate().find(|(j, (_, o))| {
                *j != i && o != c && self.ancestors_since(*o, since).contains(c)
            });
            let duplicate = out.contains(c);
            if let Some((_, (by, _))) = within {
                self.out.ignored_merges.push(format!(
                    "r{rev}: /{} is already merged through /{}: not a parent of its own",
                    String::from_utf8_lossy(src),
                    String::from_utf8_lossy(by)
                ));
            } else if !duplicate {
                out.push(*c);
            }
        }
        out
    }

    /// `tip` and the commits it descends from that were made at revision `since` or later
    /// (a parent is never younger than its child, so older ones cannot lead back up).
    fn ancestors_since(&self, tip: Oid, since: u64) -> crate::git::object::OidSet {
        let mut seen = crate::git::object::OidSet::default();
        let mut stack = vec![tip];
        while let Some(c) = stack.pop() {
            if self.commit_rev.get(&c).is_some_and(|r| *r < since) {
                continue;
            }
            if seen.insert(c)
                && let Some(ps) = self.parents.get(&c)
            {
                stack.extend(ps.iter().copied());
            }
        }
        seen
    }

    /// The refs as of the last completed revision: branches at their tips, tags as annotated
    /// tags on theirs, deleted flows under `refs/deleted/`.
    pub fn refs_now(&mut self) -> Result<Vec<(String, Oid)>, ConvertError> {
        let done = self.last_revision().unwrap_or(0);
        let mut refs: Vec<(String, Oid)> = self
            .deleted
            .iter()
            .filter(|d| d.0 <= done)
            .map(|d| (d.1.clone(), d.2))
            .collect();
        let alive: Vec<usize> = self.alive_done.values().copied().collect();
        for id in alive {
            let Some(tip) = self.flows[id].tip else {
                continue;
            };
            if self.flows[id].tag {
                let tag = self.tag_object(id, tip)?;
                refs.push((format!("refs/tags/{}", self.flows[id].name), tag));
            } else {
                refs.push((format!("refs/heads/{}", self.flows[id].name), tip));
            }
        }
        refs.sort();
        Ok(refs)
    }

    /// Ends the conversion: the last revision is committed and the refs computed; gives the
    /// sink back so the caller can finish it.
    pub fn finish(mut self) -> Result<(Outcome, S), ConvertError> {
        if self.rev.is_none() {
            return Err(ConvertError::Empty);
        }
        self.end_revision()?;
        self.out.last_revision = self.last_revision();
        for (id, u) in std::mem::take(&mut self.tag_revisions) {
            if self.flows[id].ended.is_some() {
                self.out.unconverted.push(u);
            }
        }
        self.out.unconverted.sort_by_key(|u| u.revision);
        self.out.refs = self.refs_now()?;
        let main = format!("refs/heads/{}", self.opts.trunk);
        self.out.head = self
            .out
            .refs
            .iter()
            .any(|(r, _)| *r == main)
            .then_some(main);
        self.out.unknown_authors = self.unknown.into_iter().collect();
        self.out.uuid = self.uuid;
        Ok((self.out, self.sink))
    }

    /// Users met so far that the authors map lacks.
    pub fn unknown_authors(&self) -> Vec<String> {
        self.unknown.iter().cloned().collect()
    }

    fn tag_object(&mut self, id: usize, target: Oid) -> Result<Oid, ConvertError> {
        let f = &self.flows[id];
        let m = &f.meta;
        let mut data = format!(
            "object {target}\ntype commit\ntag {}\ntagger {} <{}> {} +0000\n\n",
            f.name, m.author, m.email, m.time
        )
        .into_bytes();
        data.extend_from_slice(&message(&m.log, &self.uuid, f.created, &f.root));
        let (rev, root) = (f.created, f.root.clone());
        self.sink
            .put(Kind::Tag, data)
            .map_err(|w| err(rev, &root, w))
    }
}

/// A record with the work that needs no converter state done ahead, on another thread: a
/// full text checked against its md5/sha1 and hashed as a git blob.
pub struct Prepared {
    pub record: Record,
    pub blob: Option<Oid>,
    /// What the parse and the checks found that is worth saying but not refusing.
    pub warnings: Vec<String>,
}

/// Checks and hashes a node's full text (delta texts need their base: the converter does them).
/// `rev` is the revision the record belongs to, for error messages.
pub fn prepare(record: Record, rev: u64) -> Result<Prepared, ConvertError> {
    let mut warnings = Vec::new();
    let blob = match &record {
        Record::Node(n) => match &n.text {
            Some(t) if !t.delta => {
                warnings.extend(
                    check_text(t, &t.data)
                        .map_err(|w| err(rev, &n.path, w))?
                        .map(|w| where_(rev, &n.path, &w)),
                );
                Some(crate::git::object::hash_object(Kind::Blob, &t.data))
            }
            _ => None,
        },
        _ => None,
    };
    Ok(Prepared {
        record,
        blob,
        warnings,
    })
}

fn kind_name(k: Option<NodeKind>) -> &'static str {
    match k {
        Some(NodeKind::Dir) => "dir",
        Some(NodeKind::File) => "file",
        None => "nothing",
    }
}

/// `what`, saying the revision and node path it is about.
fn where_(rev: u64, path: &[u8], what: &str) -> String {
    format!("r{rev}, node {:?}: {what}", String::from_utf8_lossy(path))
}

/// Checks `content` against the text's `Text-content-md5` / `Text-content-sha1`. The md5
/// decides, as in `svnadmin load`: a sha1 that disagrees with a matching md5 is a warning
/// (returned), and refuses the text only when there is no md5.
fn check_text(t: &dump::Text, content: &[u8]) -> Result<Option<String>, String> {
    let sha1_ok = t
        .sha1
        .is_none_or(|s| crate::git::object::sha1(content) == s);
    let Some(m) = t.md5 else {
        return match sha1_ok {
            true => Ok(None),
            false => Err("text does not match its Text-content-sha1".into()),
        };
    };
    use md5::Digest;
    let got: [u8; 16] = md5::Md5::digest(content).into();
    if got != m {
        return Err(
            "text does not match its Text-content-md5 (corrupt dump or wrong delta base)".into(),
        );
    }
    Ok((!sha1_ok).then(|| {
        "text matches its Text-content-md5 but not its Text-content-sha1 \
         (converted as svnadmin loads it)"
            .to_string()
    }))
}

/// A flow root's merge tickets, all three kinds together, and the SVK tickets that name
/// another repository.
fn merge_tickets(props: &PropMap, uuid: &str) -> (Mergeinfo, Vec<String>) {
    let mut all = Mergeinfo::new();
    let mut add = |m: Mergeinfo| {
        for (k, v) in m {
            all.entry(k).or_default().extend(v);
        }
    };
    if let Some(v) = props.get(&b"svn:mergeinfo"[..]) {
        add(mergeinfo::parse(v));
    }
    if let Some(v) = props.get(&b"svnmerge-integrated"[..]) {
        add(mergeinfo::parse_svnmerge(v));
    }
    let mut foreign = Vec::new();
    if let Some(v) = props.get(&b"svk:merge"[..]) {
        let (m, f) = mergeinfo::parse_svk(v, uuid);
        add(m);
        foreign = f;
    }
    (all, foreign)
}

/// The merge-ticket properties as they were set, to see whether any of them changed.
fn merge_tickets_raw(props: &PropMap) -> Option<Vec<u8>> {
    let mut raw: Option<Vec<u8>> = None;
    for key in [&b"svn:mergeinfo"[..], b"svnmerge-integrated", b"svk:merge"] {
        if let Some(v) = props.get(key) {
            let r = raw.get_or_insert_with(Vec::new);
            r.extend_from_slice(key);
            r.push(0);
            r.extend_from_slice(v);
            r.push(0);
        }
    }
    raw
}

/// The commit message: the log, then the origin trailer.
fn message(log: &[u8], uuid: &str, rev: u64, root: &[u8]) -> Vec<u8> {
    let mut out = log.to_vec();
    while out.last().is_some_and(|b| b.is_ascii_whitespace()) {
        out.pop();
    }
    if !out.is_empty() {
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(
        format!(
            "svn-revision: {uuid}@{rev} /{}\n",
            String::from_utf8_lossy(root)
        )
        .as_bytes(),
    );
    out
}

/// A property section applied to `base`: a full set replaces it, a delta changes it, no
/// section keeps it.
fn apply_props(base: &Arc<PropMap>, p: Option<&dump::Props>) -> Arc<PropMap> {
    let Some(p) = p else { return base.clone() };
    let mut out = if p.delta {
        (**base).clone()
    } else {
        PropMap::new()
    };
    for (k, v) in &p.entries {
        match v {
            Some(v) => {
                out.insert(k.clone(), v.clone());
            }
            None => {
                out.remove(k);
            }
        }
    }
    if out == **base {
        base.clone()
    } else {
        Arc::new(out)
    }
}

/// `svn:date` (`2004-08-12T15:40:37.644505Z`) as Unix seconds.
fn parse_date(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.fZ")
        .ok()
        .map(|d| d.and_utc().timestamp())
}

/// The standard layout at any depth: `.../trunk`, `.../branches/<name>`, `.../tags/<name>`.
/// Returns (root, project prefix, name, is_tag) for paths at or below a root.
pub fn classify(path: &[u8], trunk: &str) -> Option<(Vec<u8>, Vec<u8>, String, bool)> {
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for (i, c) in comps.iter().enumerate() {
        let prefix = comps[..i].join(&b'/');
        match *c {
            b"trunk" => return Some((comps[..=i].join(&b'/'), prefix, trunk.to_string(), false)),
            b"branches" | b"tags" if i + 1 < comps.len() => {
                let name = String::from_utf8_lossy(comps[i + 1]).into_owned();
                return Some((comps[..=i + 1].join(&b'/'), prefix, name, *c == b"tags"));
            }
            b"branches" | b"tags" => return None,
            _ => {}
        }
    }
    None
}

/// Makes a name git accepts as a ref component.
fn sanitize_ref(name: &str) -> String {
    let parts: Vec<String> = name
        .split('/')
        .filter(|c| !c.is_empty())
        .map(|c| {
            let mut c: String = c
                .chars()
                .map(|ch| {
                    if ch.is_control() || " ~^:?*[\\".contains(ch) {
                        '_'
                    } else {
                        ch
                    }
                })
                .collect();
            while c.contains("..") {
                c = c.replace("..", "_.");
            }
            c = c.replace("@{", "_{");
            if c.starts_with('.') {
                c.replace_range(..1, "_");
            }
            if c.ends_with('.') {
                c.push('_');
            }
            if c.ends_with(".lock") {
                c.push('_');
            }
            c
        })
        .collect();
    let s = parts.join("/");
    if s.is_empty() || s == "@" {
        "_".into()
    } else {
        s
    }
}
