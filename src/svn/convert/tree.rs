//! The Subversion tree of every revision, as a persistent (copy-on-write) tree: a revision's
//! root shares every unchanged directory with the revision before it, so keeping all roots
//! (copies may name any old revision) costs memory per change, not per file.
//!
//! Invariants: nodes are immutable once built; a directory's git tree id is computed at most
//! once and cached in the node, which stays valid because the node never changes. File nodes
//! hold the id of the Subversion text (a git blob), never the text itself.

use crate::git::object::{Kind, Oid};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Node properties (`svn:executable`, `svn:special`, `svn:ignore`, `svn:mergeinfo`, ...).
pub type PropMap = BTreeMap<Vec<u8>, Vec<u8>>;

/// A directory's entries: a persistent ordered map, so that changing one entry of a wide
/// directory (a `branches/` with hundreds of branches) shares the rest with the old version
/// instead of copying it.
pub type Children = imbl::OrdMap<Name, Entry>;

/// An entry name, shared (not copied) between the versions of a directory.
pub type Name = Arc<[u8]>;

/// A file or a directory.
#[derive(Clone, Debug)]
pub enum Entry {
    File(Arc<File>),
    Dir(Arc<Dir>),
}

/// A file: its text (as a blob id) and properties.
#[derive(Debug)]
pub struct File {
    pub text: Oid,
    pub props: Arc<PropMap>,
}

impl File {
    pub fn is_symlink(&self) -> bool {
        self.props.contains_key(&b"svn:special"[..])
    }

    pub fn is_executable(&self) -> bool {
        self.props.contains_key(&b"svn:executable"[..])
    }
}

/// A directory.
#[derive(Debug, Default)]
pub struct Dir {
    pub children: Children,
    pub props: Arc<PropMap>,
    /// The git tree of this directory (`None` when it holds no files), once computed.
    pub git: OnceLock<Option<Oid>>,
}

impl Dir {
    pub fn with(children: Children, props: Arc<PropMap>) -> Arc<Dir> {
        Arc::new(Dir {
            children,
            props,
            git: OnceLock::new(),
        })
    }
}

fn split(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect()
}

/// The entry at `path` (the root itself for an empty path).
pub fn get(root: &Arc<Dir>, path: &[u8]) -> Option<Entry> {
    let mut cur = Entry::Dir(root.clone());
    for c in split(path) {
        let Entry::Dir(d) = cur else { return None };
        cur = d.children.get(c)?.clone();
    }
    Some(cur)
}

/// A new root with `path` set to `entry` (or removed when `None`); missing parent directories
/// are an error naming the first one that is missing.
pub fn set(root: &Arc<Dir>, path: &[u8], entry: Option<Entry>) -> Result<Arc<Dir>, String> {
    let parts = split(path);
    if parts.is_empty() {
        return match entry {
            Some(Entry::Dir(d)) => Ok(d),
            _ => Err("the repository root can only be replaced by a directory".into()),
        };
    }
    set_in(root, &parts, entry)
}

fn set_in(dir: &Arc<Dir>, parts: &[&[u8]], entry: Option<Entry>) -> Result<Arc<Dir>, String> {
    let mut children = dir.children.clone();
    let name: Name = match dir.children.get_key_value(parts[0]) {
        Some((k, _)) => k.clone(),
        None => Arc::from(parts[0]),
    };
    if parts.len() == 1 {
        match entry {
            Some(e) => {
                children.insert(name, e);
            }
            None => {
                children.remove(&*name);
            }
        }
    } else {
        let Some(Entry::Dir(sub)) = dir.children.get(parts[0]) else {
            return Err(format!(
                "parent directory {:?} does not exist",
                String::from_utf8_lossy(parts[0])
            ));
        };
        children.insert(name, Entry::Dir(set_in(sub, &parts[1..], entry)?));
    }
    Ok(Dir::with(children, dir.props.clone()))
}

/// What writing git trees needs from its caller: storing objects and reading a text back.
pub trait Store {
    fn put(&mut self, kind: Kind, data: Vec<u8>) -> Result<Oid, String>;
    fn text(&mut self, id: Oid) -> Result<Vec<u8>, String>;
}

/// The git tree of `dir` (`None` when no file lies below it): symlinks become mode 120000 with
/// the link target, `svn:executable` gives 100755, and `svn:ignore` / `svn:global-ignores`
/// become a `.gitignore` (appended to a committed `.gitignore` if there is one).
/// With `opts.eol`, files with `svn:eol-style` get a line in the directory's `.gitattributes`;
/// with `opts.placeholder`, a directory git would drop (nothing below it) holds an empty file
/// of that name instead. The options are the same for a whole conversion (the cache in each
/// directory relies on it).
pub fn git_tree(
    dir: &Arc<Dir>,
    store: &mut dyn Store,
    opts: &TreeOpts,
) -> Result<Option<Oid>, String> {
    if let Some(t) = dir.git.get() {
        return Ok(*t);
    }
    let eol = opts.eol;
    let mut entries: Vec<(Vec<u8>, &'static str, Oid)> = Vec::new();
    let ignore = ignore_lines(&dir.props);
    let attributes = if eol { eol_lines(dir) } else { Vec::new() };
    if !attributes.is_empty() {
        let mut text = match dir.children.get(&b".gitattributes"[..]) {
            Some(Entry::File(f)) => store.text(f.text)?,
            _ => Vec::new(),
        };
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(&attributes);
        entries.push((
            b".gitattributes".to_vec(),
            "100644",
            store.put(Kind::Blob, text)?,
        ));
    }
    for (name, e) in &dir.children {
        if !attributes.is_empty() && **name == *b".gitattributes" {
            continue;
        }
        match e {
            Entry::Dir(d) => {
                if let Some(t) = git_tree(d, store, opts)? {
                    entries.push((name.to_vec(), "40000", t));
                }
            }
            Entry::File(f) if **name == *b".gitignore" && !ignore.is_empty() => {
                let mut text = store.text(f.text)?;
                if !text.is_empty() && !text.ends_with(b"\n") {
                    text.push(b'\n');
                }
                text.extend_from_slice(&ignore);
                entries.push((name.to_vec(), "100644", store.put(Kind::Blob, text)?));
            }
            Entry::File(f) => entries.push(file_entry(name, f, store)?),
        }
    }
    if !ignore.is_empty() && !dir.children.contains_key(&b".gitignore"[..]) {
        entries.push((
            b".gitignore".to_vec(),
            "100644",
            store.put(Kind::Blob, ignore)?,
        ));
    }
    if entries.is_empty()
        && let Some(name) = &opts.placeholder
    {
        entries.push((name.clone(), "100644", store.put(Kind::Blob, Vec::new())?));
    }
    let id = if entries.is_empty() {
        None
    } else {
        Some(write_tree(entries, store)?)
    };
    let _ = dir.git.set(id);
    Ok(id)
}

/// How Subversion trees become git trees (fixed for a conversion).
#[derive(Clone, Debug, Default)]
pub struct TreeOpts {
    /// `.gitattributes` lines from `svn:eol-style`.
    pub eol: bool,
    /// The empty file an empty directory holds (`.gitkeep`); `None`: empty directories vanish.
    pub placeholder: Option<Vec<u8>>,
}

fn file_entry(
    name: &[u8],
    f: &File,
    store: &mut dyn Store,
) -> Result<(Vec<u8>, &'static str, Oid), String> {
    if f.is_symlink() {
        let text = store.text(f.text)?;
        if let Some(target) = text.strip_prefix(b"link ") {
            return Ok((
                name.to_vec(),
                "120000",
                store.put(Kind::Blob, target.to_vec())?,
            ));
        }
    }
    let mode = if f.is_executable() {
        "100755"
    } else {
        "100644"
    };
    Ok((name.to_vec(), mode, f.text))
}

/// Sorts entries in git's order (directories compare as if their name ended in `/`) and
/// writes the tree.
fn write_tree(
    mut entries: Vec<(Vec<u8>, &'static str, Oid)>,
    store: &mut dyn Store,
) -> Result<Oid, String> {
    let key = |e: &(Vec<u8>, &str, Oid)| {
        let mut k = e.0.clone();
        if e.1 == "40000" {
            k.push(b'/');
        }
        k
    };
    entries.sort_by_key(key);
    let mut data = Vec::new();
    for (name, mode, id) in entries {
        data.extend_from_slice(mode.as_bytes());
        data.push(b' ');
        data.extend_from_slice(&name);
        data.push(0);
        data.extend_from_slice(&id.0);
    }
    store.put(Kind::Tree, data)
}

/// `.gitattributes` lines for the files of a directory that have `svn:eol-style`.
fn eol_lines(dir: &Dir) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, e) in &dir.children {
        let Entry::File(f) = e else { continue };
        let attr: &[u8] = match f.props.get(&b"svn:eol-style"[..]).map(|v| v.trim_ascii()) {
            Some(b"native") => b"text",
            Some(b"LF") => b"text eol=lf",
            // CRLF-style files may be stored with CRLF already: git must leave their bytes alone
            // (`text` or `eol` would normalise them and show them as modified).
            Some(b"CRLF") => b"-text",
            _ => continue,
        };
        let plain = name
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"\"\\*?[#!".contains(&b));
        if plain {
            out.push(b'/');
            out.extend_from_slice(name);
        } else {
            out.extend_from_slice(b"\"/");
            for &b in name.iter() {
                if b == b'"' || b == b'\\' || b"*?[".contains(&b) {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        }
        out.push(b' ');
        out.extend_from_slice(attr);
        out.push(b'\n');
    }
    out
}

/// `.gitignore` lines for a directory: `svn:ignore` patterns anchored to it (svn:ignore is not
/// recursive), `svn:global-ignores` patterns unanchored.
fn ignore_lines(props: &PropMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (prop, anchor) in [
        (&b"svn:ignore"[..], true),
        (&b"svn:global-ignores"[..], false),
    ] {
        let Some(v) = props.get(prop) else { continue };
        for pat in v
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        {
            if anchor {
                out.push(b'/');
            }
            out.extend_from_slice(pat);
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_shares_unchanged_directories() {
        let root = Dir::with(Children::new(), Arc::default());
        let root = set(
            &root,
            b"a",
            Some(Entry::Dir(Dir::with(Children::new(), Arc::default()))),
        )
        .expect("a");
        let root = set(
            &root,
            b"b",
            Some(Entry::Dir(Dir::with(Children::new(), Arc::default()))),
        )
        .expect("b");
        let f = Entry::File(Arc::new(File {
            text: Oid::ZERO,
            props: Arc::default(),
        }));
        let r2 = set(&root, b"a/x", Some(f)).expect("a/x");
        let (Some(Entry::Dir(b1)), Some(Entry::Dir(b2))) = (get(&root, b"b"), get(&r2, b"b"))
        else {
            panic!("dirs")
        };
        assert!(
            Arc::ptr_eq(&b1, &b2),
            "untouched directories are shared between revisions"
        );
        assert!(get(&root, b"a/x").is_none() && get(&r2, b"a/x").is_some());
        assert!(set(&r2, b"missing/y", None).is_err());
    }
}
