//! What the tools need from a git repository beyond parsing objects: object ids and hashing,
//! loose objects, packs and their indexes (read entry by entry, tolerant of damage), pack
//! writing, the repository's other files (refs, reflogs, index, commit-graph), and git's
//! lock-file protocol for replacing one of them (`lockfile`).
//!
//! Invariant: everything here reads without changing the repository, except `packwrite`,
//! which only ever adds a complete pack through temp-file + fsync + rename. Every git child
//! process is made by [`command`], which the caller's environment cannot point elsewhere.

use std::process::Command;

/// The variables with which git picks a repository, a work tree or an object store other than
/// the one its command line names.
const REPOSITORY_ENV: [&str; 7] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
];

/// A `git` child process that works only on what its own arguments name (`--git-dir`, `-C`,
/// `--file`): the caller's GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, ... are removed, so that
/// `git --git-dir=X surgery`, a git hook or an exported GIT_DIR cannot redirect it to another
/// repository. Every git process the tools start is made here; stdin is closed.
pub fn command() -> Command {
    let mut c = Command::new("git");
    for var in REPOSITORY_ENV {
        c.env_remove(var);
    }
    c.stdin(std::process::Stdio::null());
    c
}

pub mod files;
pub mod lockfile;
pub mod loose;
pub mod object;
pub mod pack;
pub mod packwrite;
pub mod refs;
pub mod repo;
pub mod store;
