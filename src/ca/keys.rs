//! CA key files: generation, permission checks, passphrase encryption, loading, and
//! write-to-temp-then-rename for everything the CA writes.
//!
//! Invariants: the CA directory is 0700 and every private file in it 0600; a directory or key
//! that others can read is refused before it is used. Key material is never logged or shown in
//! `Debug` output.

use super::CaError;
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, EcdsaCurve, LineEnding, PrivateKey, getrandom::SysRng};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Key algorithms `ssh-ca init --key-type` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<KeyType, String> {
        match s {
            "ed25519" => Ok(KeyType::Ed25519),
            "ecdsa" => Ok(KeyType::Ecdsa),
            "rsa" => Ok(KeyType::Rsa),
            _ => Err(format!("unknown key type {s:?}: use ed25519, ecdsa or rsa")),
        }
    }
}

/// A fresh private key of `kind` (RSA 4096, ECDSA P-256).
pub fn generate(kind: KeyType, comment: &str) -> Result<PrivateKey, CaError> {
    let mut rng = UnwrapErr(SysRng);
    let mut key = match kind {
        KeyType::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519),
        KeyType::Ecdsa => PrivateKey::random(
            &mut rng,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
        KeyType::Rsa => ssh_key::private::RsaKeypair::random(&mut rng, 4096).map(PrivateKey::from),
    }
    .map_err(|e| CaError::Key {
        path: PathBuf::from(comment),
        why: format!("cannot generate a {kind:?} key: {e}"),
    })?;
    key.set_comment(comment);
    Ok(key)
}

/// Writes `key` (encrypted when a passphrase is given) to `path` (0600) and its public half to
/// `path.pub` (0644).
pub fn write_key_pair(
    path: &Path,
    key: &PrivateKey,
    passphrase: Option<&str>,
) -> Result<(), CaError> {
    let key_err = |why: String| CaError::Key {
        path: path.to_path_buf(),
        why,
    };
    let to_write = match passphrase {
        Some(pw) => key
            .encrypt(&mut SysRng, pw)
            .map_err(|e| key_err(format!("cannot encrypt: {e}")))?,
        None => key.clone(),
    };
    let pem = to_write
        .to_openssh(LineEnding::LF)
        .map_err(|e| key_err(format!("cannot encode: {e}")))?;
    write_atomic(path, pem.as_bytes(), 0o600)?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| key_err(format!("cannot encode the public key: {e}")))?;
    write_atomic(&pub_path(path), format!("{public}\n").as_bytes(), 0o644)
}

pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Reads a private key, decrypting it with the passphrase `ask` returns when it is encrypted.
pub fn load_private(
    path: &Path,
    ask: &dyn Fn(&Path) -> Result<String, CaError>,
) -> Result<PrivateKey, CaError> {
    check_private_file(path)?;
    let key = PrivateKey::read_openssh_file(path).map_err(|e| CaError::Key {
        path: path.to_path_buf(),
        why: format!("not an OpenSSH private key: {e}"),
    })?;
    if !key.is_encrypted() {
        return Ok(key);
    }
    let pw = ask(path)?;
    key.decrypt(pw.as_bytes()).map_err(|_| CaError::Key {
        path: path.to_path_buf(),
        why: "wrong passphrase".into(),
    })
}

/// Refuses a file that group or others can read or write.
pub fn check_private_file(path: &Path) -> Result<(), CaError> {
    // A key or store that is missing or unreadable is a broken CA directory (exit 4), not bad
    // input.
    let meta = fs::metadata(path).map_err(|e| CaError::Key {
        path: path.to_path_buf(),
        why: format!("cannot read: {e}"),
    })?;
    check_mode(path, &meta, 0o600)
}

/// Refuses a file that group or others can write (the policy and the public keys: readable
/// by all is fine, changeable by others is not).
pub fn check_not_writable(path: &Path) -> Result<(), CaError> {
    let meta = fs::metadata(path).map_err(|e| CaError::io(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(CaError::Permissions {
            path: path.to_path_buf(),
            mode,
            want: mode & !0o022,
        });
    }
    Ok(())
}

/// Refuses a CA directory that group or others can enter or read.
pub fn check_dir(dir: &Path) -> Result<(), CaError> {
    let meta = fs::metadata(dir).map_err(|e| CaError::io(dir, e))?;
    if !meta.is_dir() {
        return Err(CaError::NotInitialised(dir.to_path_buf()));
    }
    check_mode(dir, &meta, 0o700)
}

fn check_mode(path: &Path, meta: &fs::Metadata, want: u32) -> Result<(), CaError> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CaError::Permissions {
            path: path.to_path_buf(),
            mode,
            want,
        });
    }
    Ok(())
}

/// Writes `data` to a new temporary file beside `path` (mode `mode`) and returns its path and
/// the open file; on failure nothing is left behind.
fn write_temp(path: &Path, data: &[u8], mode: u32) -> Result<(PathBuf, fs::File), CaError> {
    let tmp = temp_path(path);
    // A file already at the temporary name is not ours: it is left alone.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| CaError::io(path, e))?;
    match file.write_all(data) {
        Ok(()) => Ok((tmp, file)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(CaError::io(path, e))
        }
    }
}

/// The temporary file this process writes before renaming it to `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `data` to a temporary file beside `path`, syncs it, and renames it over `path`, so
/// readers see either the old or the new content, never a mix.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CaError> {
    let (tmp, file) = write_temp(path, data, mode)?;
    let result = file.sync_all().and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(CaError::io(path, e));
    }
    if let Ok(d) = fs::File::open(parent_dir(path)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes issued certificate files: each through a temporary file and a rename, so readers
/// see the old or the new file, never a mix. They are not fsynced: the store has already
/// committed every certificate durably (`ssh-ca list --json` holds its text), so a power cut can
/// cost a copy of a file but never a record or a serial, and a `syncfs` or one `fsync` per file
/// would make issuance wait for unrelated disk traffic.
pub fn write_all_atomic(files: &[(PathBuf, Vec<u8>)], mode: u32) -> Result<(), CaError> {
    let exec = super::batch_executor(files.len());
    let shared = Arc::new(files.to_vec());
    let all: Vec<usize> = (0..files.len()).collect();
    let f = shared.clone();
    let temps = super::map_on(exec.as_ref(), all, move |i| {
        write_temp(&f[i].0, &f[i].1, mode).map(|(tmp, _)| tmp)
    });
    let (mut made, mut failed) = (Vec::with_capacity(files.len()), None);
    for t in temps {
        match t {
            Ok(tmp) => made.push(tmp),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        remove_files(made);
        return Err(e);
    }
    let f = shared;
    let renamed = super::map_on(
        exec.as_ref(),
        made.into_iter().enumerate().collect(),
        move |(i, tmp)| fs::rename(&tmp, &f[i].0).map_err(|e| (tmp, CaError::io(&f[i].0, e))),
    );
    let mut first = None;
    let mut left = Vec::new();
    for r in renamed {
        if let Err((tmp, e)) = r {
            left.push(tmp);
            first.get_or_insert(e);
        }
    }
    remove_files(left);
    first.map_or(Ok(()), Err)
}

/// Removes temporary files this call made and did not rename.
fn remove_files(paths: impl IntoIterator<Item = PathBuf>) {
    for p in paths {
        let _ = fs::remove_file(p);
    }
}
