//! The quarantine: where repair puts every file it takes out of a repository.
//!
//! Layout: `.git/surgery/quarantine/<id>/files/<path relative to the common dir>` plus
//! `manifest.json` (why each file was moved). Invariants: files are only ever renamed in and
//! out (same filesystem, atomic), never rewritten; restore never overwrites a file that exists
//! again at the original path; deleting happens only in `purge`, on the user's explicit ask.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Quarantine errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no quarantine named {0:?} (see `git surgery quarantine list`)")]
    Unknown(String),
    #[error("{0} is not inside the repository's common directory")]
    Outside(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One moved file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Item {
    /// Path relative to the repository's common directory.
    pub path: PathBuf,
    pub reason: String,
    pub bytes: u64,
}

/// A quarantine directory being filled by one repair run.
pub struct Quarantine {
    common: PathBuf,
    pub dir: PathBuf,
    pub items: Vec<Item>,
}

/// The quarantine root of a repository.
pub fn root(common: &Path) -> PathBuf {
    common.join("surgery").join("quarantine")
}

impl Quarantine {
    /// Creates `quarantine/<UTC timestamp>-<pid>/`.
    pub fn create(common: &Path) -> Result<Quarantine, Error> {
        let id = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            std::process::id()
        );
        let dir = root(common).join(id);
        std::fs::create_dir_all(dir.join("files")).map_err(io(&dir))?;
        Ok(Quarantine {
            common: common.to_path_buf(),
            dir,
            items: Vec::new(),
        })
    }

    /// Where a file's copy goes: `files/<rel>` the first time, `files.2/<rel>`, `files.3/...`
    /// when the same file is taken again in one run, so no copy ever overwrites another (the
    /// first generation holds what the repository had before the repair).
    fn destination(&self, rel: &Path) -> PathBuf {
        let generation = |g: u32| {
            let d = if g == 1 {
                "files".to_string()
            } else {
                format!("files.{g}")
            };
            self.dir.join(d).join(rel)
        };
        (1..)
            .map(generation)
            .find(|p| std::fs::symlink_metadata(p).is_err())
            .unwrap_or_else(|| generation(1))
    }

    /// `file`'s path relative to the common directory and a free destination for it, whose
    /// parent directory exists.
    fn place(&self, file: &Path) -> Result<(PathBuf, PathBuf), Error> {
        let rel = file
            .strip_prefix(&self.common)
            .map_err(|_| Error::Outside(file.to_path_buf()))?
            .to_path_buf();
        let dest = self.destination(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        Ok((rel, dest))
    }

    /// Moves `file` (inside the common directory) into the quarantine.
    pub fn take(&mut self, file: &Path, reason: &str) -> Result<(), Error> {
        let (rel, dest) = self.place(file)?;
        let bytes = std::fs::symlink_metadata(file)
            .map(|m| m.len())
            .unwrap_or(0);
        std::fs::rename(file, &dest).map_err(io(file))?;
        crate::info!(
            "quarantined",
            path = rel.display().to_string(),
            reason = reason.to_string()
        );
        self.items.push(Item {
            path: rel,
            reason: reason.to_string(),
            bytes,
        });
        self.save()
    }

    /// Writes a file into the quarantine that the repository does not hold as a file (a ref
    /// that lived only in packed-refs): `restore` creates it at `rel` (relative to the common
    /// directory), as if it had been taken.
    pub fn add_file(&mut self, rel: &Path, bytes: &[u8], reason: &str) -> Result<(), Error> {
        let (rel, dest) = self.place(&self.common.join(rel))?;
        std::fs::write(&dest, bytes).map_err(io(&dest))?;
        self.items.push(Item {
            path: rel,
            reason: reason.to_string(),
            bytes: bytes.len() as u64,
        });
        self.save()
    }

    /// Copies `file` into the quarantine (for files repair rewrites in place: packed-refs,
    /// reflogs), so the original bytes can be brought back.
    pub fn keep_copy(&mut self, file: &Path, reason: &str) -> Result<(), Error> {
        let (rel, dest) = self.place(file)?;
        let bytes = std::fs::copy(file, &dest).map_err(io(file))?;
        self.items.push(Item {
            path: rel,
            reason: format!("original of a rewritten file: {reason}"),
            bytes,
        });
        self.save()
    }

    fn save(&self) -> Result<(), Error> {
        let path = self.dir.join("manifest.json");
        let text = serde_json::to_vec_pretty(&self.items).unwrap_or_default();
        let tmp = self.dir.join("manifest.json.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// A quarantine as `list` shows it.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: String,
    pub files: Vec<Item>,
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| e.path().strip_prefix(dir).ok().map(Path::to_path_buf))
        .collect()
}

/// Every quarantine, oldest first. Files found on disk but missing from a manifest (a repair
/// killed between the rename and the manifest write) are listed with reason "unrecorded".
pub fn list(common: &Path) -> Result<Vec<Entry>, Error> {
    let root = root(common);
    let mut ids: Vec<String> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::Io {
                path: root,
                source: e,
            });
        }
    };
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let dir = root.join(&id);
        let manifest: Vec<Item> = std::fs::read(dir.join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let files = files_under(&dir.join("files"))
            .into_iter()
            .map(|p| {
                manifest
                    .iter()
                    .rev()
                    .find(|i| i.path == p)
                    .cloned()
                    .unwrap_or_else(|| Item {
                        bytes: std::fs::metadata(dir.join("files").join(&p))
                            .map(|m| m.len())
                            .unwrap_or(0),
                        path: p,
                        reason: "unrecorded".into(),
                    })
            })
            .collect();
        out.push(Entry { id, files });
    }
    Ok(out)
}

/// What restore did with each file.
#[derive(Debug, Default, Serialize)]
pub struct Restored {
    pub restored: Vec<PathBuf>,
    /// Files left in the quarantine because something exists at the original path.
    pub kept: Vec<PathBuf>,
}

/// Moves the files of quarantine `id` back where they came from, never over an existing file.
pub fn restore(common: &Path, id: &str) -> Result<Restored, Error> {
    let dir = checked_dir(common, id)?;
    let mut r = Restored::default();
    for rel in files_under(&dir.join("files")) {
        let dest = common.join(&rel);
        if dest.exists() {
            r.kept.push(rel);
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let src = dir.join("files").join(&rel);
        std::fs::rename(&src, &dest).map_err(io(&src))?;
        r.restored.push(rel);
    }
    Ok(r)
}

fn checked_dir(common: &Path, id: &str) -> Result<PathBuf, Error> {
    let dir = root(common).join(id);
    let plain = !id.is_empty() && !id.contains('/') && id != "." && id != "..";
    if plain && dir.is_dir() {
        Ok(dir)
    } else {
        Err(Error::Unknown(id.to_string()))
    }
}

/// Deletes quarantine `id` for good.
pub fn purge(common: &Path, id: &str) -> Result<(), Error> {
    let dir = checked_dir(common, id)?;
    std::fs::remove_dir_all(&dir).map_err(io(&dir))
}
