//! Finding a repository's directories without trusting its damaged files.
//!
//! A repository is found even when HEAD or config is garbage (git itself refuses such a
//! repository, which is exactly when git-surgery is needed): a directory with `objects/` and
//! `refs/` is a git directory.

use std::path::{Path, PathBuf};

/// The directories of one repository.
#[derive(Clone, Debug)]
pub struct Repo {
    /// `.git` (or the bare repository, or a linked worktree's private directory).
    pub git_dir: PathBuf,
    /// Where objects, refs and config live (differs from `git_dir` in a linked worktree).
    pub common_dir: PathBuf,
    pub objects: PathBuf,
    pub work_tree: Option<PathBuf>,
}

/// Why no repository was found.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error(
        "{path}: {what} is not supported yet (only SHA-1 object ids and the files ref backend); nothing was changed"
    )]
    Unsupported { path: PathBuf, what: String },
    #[error("{0}: not a git repository (no .git, and no objects/ and refs/ here or above)")]
    NotFound(PathBuf),
    #[error("GIT_DIR={0}: not a git directory (no objects/ and refs/ there)")]
    NotAGitDir(PathBuf),
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn looks_like_git_dir(d: &Path) -> bool {
    d.join("objects").is_dir() && (d.join("refs").is_dir() || d.join("HEAD").is_file())
}

fn gitdir_file(f: &Path) -> Result<PathBuf, FindError> {
    let text = std::fs::read_to_string(f).map_err(|source| FindError::Io {
        path: f.to_path_buf(),
        source,
    })?;
    let target = text
        .trim()
        .strip_prefix("gitdir:")
        .map(str::trim)
        .unwrap_or("");
    let base = f.parent().unwrap_or(Path::new("."));
    Ok(base.join(target))
}

/// What git's environment says about the repository (`GIT_DIR`, `GIT_WORK_TREE`), read by the
/// command line and handed in; relative paths are relative to the start directory, as git
/// resolves them after `-C`.
#[derive(Clone, Debug, Default)]
pub struct GitEnv {
    pub git_dir: Option<PathBuf>,
    pub work_tree: Option<PathBuf>,
}

impl Repo {
    /// Finds the repository as git does: `GIT_DIR` names it (a git directory or a `.git` file;
    /// no search), else it is searched upwards from `start`. `GIT_WORK_TREE` names the work
    /// tree; with `GIT_DIR` alone it is `core.worktree`, else none for a bare repository, else
    /// `start`.
    pub fn find_with(start: &Path, env: &GitEnv) -> Result<Repo, FindError> {
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                start.join(p)
            }
        };
        let mut repo = match &env.git_dir {
            None => Repo::find(start)?,
            Some(d) => {
                let named = resolve(d);
                let dir = if named.is_file() {
                    gitdir_file(&named)?
                } else {
                    named.clone()
                };
                if !looks_like_git_dir(&dir) {
                    return Err(FindError::NotAGitDir(named));
                }
                let mut repo = Repo::at(dir, None);
                repo.work_tree = repo.default_work_tree(start);
                repo
            }
        };
        if let Some(wt) = &env.work_tree {
            let wt = resolve(wt);
            repo.work_tree = Some(std::fs::canonicalize(&wt).unwrap_or(wt));
        }
        Ok(repo)
    }

    /// The work tree of a repository named by `GIT_DIR` alone: `core.worktree` (relative to
    /// the git directory), none when `core.bare` is true, else the start directory.
    fn default_work_tree(&self, start: &Path) -> Option<PathBuf> {
        if let Some(wt) = self.config("core.worktree") {
            let wt = self.git_dir.join(wt);
            return Some(std::fs::canonicalize(&wt).unwrap_or(wt));
        }
        if self.config("core.bare").is_some_and(|b| b == "true") {
            return None;
        }
        std::fs::canonicalize(start).ok()
    }

    /// One value of the repository's own config file (not the user's), or None when the file
    /// cannot be read or does not set it.
    fn config(&self, key: &str) -> Option<String> {
        let o = crate::git::command()
            .arg("config")
            .arg("--file")
            .arg(self.common_dir.join("config"))
            .args(["--get", key])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    /// Finds the repository containing `start`, searching upwards like git.
    pub fn find(start: &Path) -> Result<Repo, FindError> {
        let start = std::fs::canonicalize(start).map_err(|source| FindError::Io {
            path: start.to_path_buf(),
            source,
        })?;
        for dir in start.ancestors() {
            let dotgit = dir.join(".git");
            if dotgit.is_dir() && looks_like_git_dir(&dotgit) {
                return Ok(Repo::at(dotgit, Some(dir.to_path_buf())));
            }
            if dotgit.is_file() {
                let gd = gitdir_file(&dotgit)?;
                return Ok(Repo::at(gd, Some(dir.to_path_buf())));
            }
            if looks_like_git_dir(dir) {
                return Ok(Repo::at(dir.to_path_buf(), None));
            }
        }
        Err(FindError::NotFound(start))
    }

    fn at(git_dir: PathBuf, work_tree: Option<PathBuf>) -> Repo {
        let git_dir = std::fs::canonicalize(&git_dir).unwrap_or(git_dir);
        let common_dir = std::fs::read_to_string(git_dir.join("commondir"))
            .map(|c| git_dir.join(c.trim()))
            .unwrap_or_else(|_| git_dir.clone());
        // `commondir` is usually `../..`: normalised so paths under it compare as prefixes.
        let common_dir = std::fs::canonicalize(&common_dir).unwrap_or(common_dir);
        let objects = common_dir.join("objects");
        Repo {
            git_dir,
            common_dir,
            objects,
            work_tree,
        }
    }

    /// Refuses repositories whose objects or refs this code cannot read correctly: SHA-256
    /// object ids and the reftable ref backend (reading them as SHA-1/files would turn every
    /// object and ref into "damage").
    pub fn check_supported(&self) -> Result<(), FindError> {
        let get = |key: &str| self.config(key).map(|v| v.to_ascii_lowercase());
        let unsupported = |what: &str| {
            Err(FindError::Unsupported {
                path: self.common_dir.clone(),
                what: what.to_string(),
            })
        };
        if get("extensions.objectformat").is_some_and(|f| f != "sha1") {
            return unsupported("a SHA-256 repository");
        }
        if get("extensions.refstorage").is_some_and(|f| f != "files")
            || self.common_dir.join("reftable").is_dir()
        {
            return unsupported("the reftable ref backend");
        }
        Ok(())
    }

    /// Where git-surgery keeps its log, quarantine and temporary repositories.
    pub fn surgery_dir(&self) -> PathBuf {
        self.common_dir.join("surgery")
    }

    /// The object directories named in `objects/info/alternates` (relative ones resolved
    /// against `objects/`) with their 1-based line numbers, in order, whether or not they exist.
    pub fn alternates(&self) -> Vec<(usize, PathBuf)> {
        let Ok(text) = std::fs::read_to_string(self.objects.join("info/alternates")) else {
            return Vec::new();
        };
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .map(|(i, l)| (i, self.objects.join(l)))
            .collect()
    }

    /// The git directories of submodules under `modules/` (nested ones included).
    pub fn submodules(&self) -> Vec<Repo> {
        walkdir::WalkDir::new(self.common_dir.join("modules"))
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_type().is_dir()
                    && e.path().join("objects").is_dir()
                    && e.path().join("HEAD").exists()
            })
            .map(|e| {
                let wt = std::fs::read_to_string(e.path().join("config"))
                    .ok()
                    .and_then(|c| {
                        c.lines().find_map(|l| {
                            l.trim()
                                .strip_prefix("worktree = ")
                                .map(|w| e.path().join(w.trim()))
                        })
                    });
                Repo::at(e.path().to_path_buf(), wt.filter(|w| w.is_dir()))
            })
            .collect()
    }
}
