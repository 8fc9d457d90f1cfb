//! Replacing a small repository file (a ref, HEAD, packed-refs, a reflog, config) the way git
//! does: the new content goes into `<path>.lock`, created exclusively, is fsynced, renamed over
//! `path`, and the directory is fsynced so that the rename survives a power cut.
//!
//! Invariants: holding git's own lock file means a git process that starts meanwhile fails to
//! take it instead of racing us; a lock that exists already belongs to someone else, so nothing
//! is written and it is left alone; on any failure our lock file is removed and `path` is as it
//! was. Both git tools write through [`replace`]. (gix-lock would do the locking, but it is not
//! among the crates this workspace can build offline, and the job is twenty lines.)

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a file could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file exists: another process is changing `path`.
    #[error(
        "{0} exists: another git process is changing this file (remove the lock only if none is running)"
    )]
    Locked(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock file of `path`: `path` with `.lock` appended.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` through its lock file.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), LockError> {
    let lock = lock_path(path);
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(LockError::Locked(lock));
        }
        Err(source) => return Err(LockError::Io { path: lock, source }),
    };
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&lock, path));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&lock);
        return Err(LockError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    // The rename is in the directory: make it durable too (best effort: some filesystems
    // refuse to fsync a directory, and the file itself is already safe).
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_refuses_a_held_lock_without_touching_anything() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("HEAD");
        std::fs::write(&p, "old\n").expect("write");
        replace(&p, b"new\n").expect("replace");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new\n");
        assert!(!lock_path(&p).exists());
        std::fs::write(lock_path(&p), "theirs").expect("lock");
        let e = replace(&p, b"mine\n").expect_err("locked");
        assert!(matches!(e, LockError::Locked(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new\n");
        assert_eq!(
            std::fs::read_to_string(lock_path(&p)).expect("read"),
            "theirs"
        );
    }

    #[test]
    fn a_failed_write_leaves_the_file_and_no_lock() {
        let d = tempfile::tempdir().expect("tmp");
        // The target is a directory: the rename fails after the lock was written.
        let p = d.path().join("refs");
        std::fs::create_dir_all(p.join("x")).expect("mkdir");
        let e = replace(&p, b"id\n").expect_err("cannot rename over a directory");
        assert!(matches!(e, LockError::Io { .. }), "{e}");
        assert!(!lock_path(&p).exists());
        assert!(p.join("x").is_dir());
    }
}
