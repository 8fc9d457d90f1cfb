//! The SSH certificate authority shared by `ssh-ca` and `ssh-acme`: CA keys, policy, issuing,
//! serials, revocation with KRLs, and the audit trail, all kept in one CA directory.
//!
//! Layout of a CA directory (0700): `user_ca` and `host_ca` (OpenSSH private keys, 0600,
//! optionally passphrase-encrypted) with their `.pub`, `config.yaml` (policy), `ca.db` (the
//! [`store::Store`]) and `ssh-ca.log` (JSON lines).
//!
//! Invariants: every issuance, refusal and revocation is recorded in the store's audit chain;
//! nothing here logs or prints key material (fingerprints only); files are replaced by
//! write-temp-then-rename.

pub mod agent;
pub mod inspect;
pub mod keys;
pub mod krl;
pub mod options;
pub mod policy;
pub mod signer;
pub mod store;
pub mod validity;
pub mod wire;

use options::CertOptions;
use policy::{Config, PolicyError, Request};
use serde::{Deserialize, Serialize};
use ssh_key::certificate::{Builder, CertType as KeyCertType};
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Certificate, HashAlg, PublicKey, getrandom::SysRng};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{CertRecord, Revocation, Store, StoreError};

/// User or host certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertType {
    User,
    Host,
}

impl fmt::Display for CertType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertType::User => "user",
            CertType::Host => "host",
        })
    }
}

impl From<CertType> for KeyCertType {
    fn from(t: CertType) -> KeyCertType {
        match t {
            CertType::User => KeyCertType::User,
            CertType::Host => KeyCertType::Host,
        }
    }
}

impl From<KeyCertType> for CertType {
    fn from(t: KeyCertType) -> CertType {
        match t {
            KeyCertType::User => CertType::User,
            KeyCertType::Host => CertType::Host,
        }
    }
}

/// Everything that can go wrong in the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not an ssh-ca directory (run `ssh-ca init` first)", .0.display())]
    NotInitialised(PathBuf),
    #[error("{} already holds a CA; refusing to overwrite it", .0.display())]
    AlreadyInitialised(PathBuf),
    #[error("{} has mode {mode:03o}: others can read it; run `chmod {want:03o} {}`", path.display(), path.display())]
    Permissions { path: PathBuf, mode: u32, want: u32 },
    #[error("key {}: {why}", path.display())]
    Key { path: PathBuf, why: String },
    #[error("{}: {why}", path.display())]
    BadInput { path: PathBuf, why: String },
    #[error("config {}: {why}", path.display())]
    Config { path: PathBuf, why: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Options(#[from] options::OptionError),
    #[error(transparent)]
    Validity(#[from] validity::ValidityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot sign the certificate: {0}")]
    Sign(String),
    #[error("{0}")]
    NotFound(String),
}

impl CaError {
    pub fn io(path: &Path, source: std::io::Error) -> CaError {
        CaError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Asks for the passphrase of an encrypted CA key (the CLI reads a file, env var or terminal).
pub type Passphrase<'a> = &'a dyn Fn(&Path) -> Result<String, CaError>;

/// A certificate request, as `ssh-ca sign` takes it.
#[derive(Debug, Clone)]
pub struct SignRequest {
    pub cert_type: CertType,
    pub key_id: String,
    pub principals: Vec<String>,
    /// `-V`, in ssh-keygen syntax.
    pub validity: Option<String>,
    /// `-O` options in order.
    pub options: Vec<String>,
    pub profile: Option<String>,
    pub serial: Option<u64>,
    pub subject: PublicKey,
}

/// What signs: a private key loaded from the CA directory, or one held in ssh-agent.
pub enum CaSigner {
    Key(Box<signer::KeySigner>),
    Agent(agent::AgentSigner),
}

impl fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaSigner(<key material not shown>)")
    }
}

/// An opened CA directory.
pub struct Ca {
    pub dir: PathBuf,
    pub config: Config,
    pub user_ca: PublicKey,
    pub host_ca: PublicKey,
    pub store: Store,
}

/// The refusal record written to the audit log.
#[derive(Serialize)]
struct Refusal<'a> {
    cert_type: CertType,
    key_id: &'a str,
    principals: &'a [String],
    subject_fp: String,
    reason: String,
}

pub fn fingerprint(k: &PublicKey) -> String {
    k.fingerprint(HashAlg::Sha256).to_string()
}

impl Ca {
    pub fn key_path(dir: &Path, kind: CertType) -> PathBuf {
        dir.join(format!("{kind}_ca"))
    }

    /// Creates a CA directory: keys, commented config and store. Refuses an existing CA.
    /// The CA is built in a temporary sibling directory and renamed into place at the end, so
    /// an init that fails half-way leaves nothing behind and can simply be run again.
    pub fn init(dir: &Path, kind: keys::KeyType, passphrase: Option<&str>) -> Result<Ca, CaError> {
        if dir.join("ca.db").exists() || Ca::key_path(dir, CertType::User).exists() {
            return Err(CaError::AlreadyInitialised(dir.to_path_buf()));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ca".into());
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| CaError::io(parent, e))?;
        let staging = parent.join(format!(".{name}.init-{}", std::process::id()));
        let built =
            Ca::build(&staging, kind, passphrase).and_then(|()| Ca::move_into(&staging, dir));
        if let Err(e) = built {
            // Only files this call just created live in the staging directory.
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ca::open(dir)
    }

    /// Puts the built CA at `dir`: one rename, or, when `dir` already exists (a directory the
    /// user made, perhaps with other files), one rename per CA file.
    fn move_into(staging: &Path, dir: &Path) -> Result<(), CaError> {
        if !dir.exists() {
            return std::fs::rename(staging, dir).map_err(|e| CaError::io(dir, e));
        }
        let entries = std::fs::read_dir(staging).map_err(|e| CaError::io(staging, e))?;
        for e in entries {
            let e = e.map_err(|e| CaError::io(staging, e))?;
            let to = dir.join(e.file_name());
            std::fs::rename(e.path(), &to).map_err(|err| CaError::io(&to, err))?;
        }
        std::fs::remove_dir(staging).map_err(|e| CaError::io(staging, e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CaError::io(dir, e))
    }

    fn build(dir: &Path, kind: keys::KeyType, passphrase: Option<&str>) -> Result<(), CaError> {
        std::fs::create_dir(dir).map_err(|e| CaError::io(dir, e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CaError::io(dir, e))?;
        for t in [CertType::User, CertType::Host] {
            let key = keys::generate(kind, &format!("ssh-ca {t} CA"))?;
            keys::write_key_pair(&Ca::key_path(dir, t), &key, passphrase)?;
        }
        keys::write_atomic(
            &dir.join("config.yaml"),
            policy::DEFAULT_CONFIG.as_bytes(),
            0o600,
        )?;
        let db = dir.join("ca.db");
        drop(Store::open(&db)?);
        // SQLite made the store and its -wal and -shm files (kept between runs) with the
        // umask's mode; later runs recreate any of them with the database file's mode.
        for name in ["ca.db", "ca.db-wal", "ca.db-shm"] {
            let f = dir.join(name);
            if f.exists() {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| CaError::io(&f, e))?;
            }
        }
        Ok(())
    }

    /// Opens a CA directory: checks permissions, reads the public keys, the policy and the store.
    pub fn open(dir: &Path) -> Result<Ca, CaError> {
        if !dir.join("config.yaml").exists() {
            return Err(CaError::NotInitialised(dir.to_path_buf()));
        }
        keys::check_dir(dir)?;
        let read_pub = |t| {
            let p = keys::pub_path(&Ca::key_path(dir, t));
            // The private key may live only in ssh-agent (`--agent`); when its file is here,
            // it must be private.
            let private = Ca::key_path(dir, t);
            if private.exists() {
                keys::check_private_file(&private)?;
            }
            keys::check_not_writable(&p)?;
            PublicKey::read_openssh_file(&p).map_err(|e| CaError::Key {
                path: p.clone(),
                why: e.to_string(),
            })
        };
        let (user_ca, host_ca) = (read_pub(CertType::User)?, read_pub(CertType::Host)?);
        keys::check_not_writable(&dir.join("config.yaml"))?;
        let config = load_config(&dir.join("config.yaml"))?;
        let db = dir.join("ca.db");
        keys::check_private_file(&db)?;
        // SQLite's write-ahead log and shared memory hold the newest records.
        for side in ["ca.db-wal", "ca.db-shm"] {
            let f = dir.join(side);
            if f.exists() {
                keys::check_private_file(&f)?;
            }
        }
        let store = Store::open(&db)?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            config,
            user_ca,
            host_ca,
            store,
        })
    }

    /// The store's SQLite connection (for ssh-acme's tables).
    pub fn store_connection(&self) -> &rusqlite::Connection {
        self.store.connection_ref()
    }

    pub fn ca_key(&self, kind: CertType) -> &PublicKey {
        match kind {
            CertType::User => &self.user_ca,
            CertType::Host => &self.host_ca,
        }
    }

    /// Which of our CAs has this fingerprint.
    pub fn ca_kind(&self, fp: &str) -> Option<CertType> {
        [CertType::User, CertType::Host]
            .into_iter()
            .find(|t| fingerprint(self.ca_key(*t)) == fp)
    }

    /// A signer for `kind` certificates through the ssh-agent at `socket`.
    pub fn agent_signer(&self, kind: CertType, socket: &Path) -> Result<CaSigner, CaError> {
        let signer = agent::AgentSigner::new(socket, self.ca_key(kind).clone());
        signer.check().map_err(|e| CaError::Key {
            path: socket.to_path_buf(),
            why: e.to_string(),
        })?;
        Ok(CaSigner::Agent(signer))
    }

    /// Loads the private key that signs `kind` certificates.
    pub fn signer(&self, kind: CertType, ask: Passphrase<'_>) -> Result<CaSigner, CaError> {
        let key = keys::load_private(&Ca::key_path(&self.dir, kind), ask)?;
        Ok(CaSigner::Key(Box::new(signer::KeySigner::new(key))))
    }

    /// Checks `req` against policy and, if allowed, issues and records the certificate.
    pub fn sign(
        &mut self,
        req: &SignRequest,
        signer: &CaSigner,
        now: u64,
    ) -> Result<(Certificate, CertRecord), CaError> {
        let mut out = self.sign_batch(std::slice::from_ref(req), signer, now)?;
        out.pop()
            .ok_or_else(|| CaError::Sign("no certificate issued".into()))
    }

    /// Checks every request against policy first (one refusal refuses the batch, and is
    /// audited), then issues all of them in one store transaction with consecutive serials
    /// (from the first request's `serial`, if given).
    pub fn sign_batch(
        &mut self,
        reqs: &[SignRequest],
        signer: &CaSigner,
        now: u64,
    ) -> Result<Vec<(Certificate, CertRecord)>, CaError> {
        self.sign_batch_with(reqs, signer, now, &|_, _| Ok(()))
    }

    /// [`Ca::sign_batch`], with `also` run for each certificate inside the store transaction
    /// that records it (so a caller's own bookkeeping commits or rolls back with it).
    pub fn sign_batch_with(
        &mut self,
        reqs: &[SignRequest],
        signer: &CaSigner,
        now: u64,
        also: &dyn Fn(&rusqlite::Connection, &CertRecord) -> rusqlite::Result<()>,
    ) -> Result<Vec<(Certificate, CertRecord)>, CaError> {
        let checked = reqs
            .iter()
            .map(|r| self.check_or_audit(r, now))
            .collect::<Result<Vec<_>, _>>()?;
        let wanted = reqs.first().and_then(|r| r.serial);
        let (user_fp, host_fp) = (fingerprint(&self.user_ca), fingerprint(&self.host_ca));
        let jobs: Vec<Issue> = reqs
            .iter()
            .zip(checked)
            .map(|(req, (profile, validity, opts))| Issue {
                ca_fp: match req.cert_type {
                    CertType::User => user_fp.clone(),
                    CertType::Host => host_fp.clone(),
                },
                req: req.clone(),
                profile,
                validity,
                opts,
                issued_at: now,
            })
            .collect();
        let mut certs = Vec::new();
        let (t0, mut signed) = (std::time::Instant::now(), std::time::Duration::ZERO);
        let records = self.store.issue_batch(
            wanted,
            reqs.len(),
            now,
            |serials| {
                let (c, r) = issue_all(jobs, serials, signer)?.into_iter().unzip();
                signed = t0.elapsed();
                certs = c;
                Ok::<_, CaError>(r)
            },
            also,
        )??;
        crate::debug!(
            "batch issued",
            certificates = records.len() as u64,
            sign_us = signed.as_micros() as u64,
            record_us = (t0.elapsed() - signed).as_micros() as u64
        );
        for r in &records {
            crate::info!(
                "certificate issued",
                serial = r.serial,
                key_id = r.key_id,
                cert_type = r.cert_type,
                subject = r.subject_fp,
                profile = r.profile
            );
        }
        Ok(certs.into_iter().zip(records).collect())
    }

    /// Policy check; a policy refusal is written to the audit trail and the log.
    fn check_or_audit(
        &mut self,
        req: &SignRequest,
        now: u64,
    ) -> Result<(String, validity::Validity, CertOptions), CaError> {
        match self.check(req, now) {
            Err(e @ CaError::Policy(_)) => {
                self.store.audit_refusal(
                    now,
                    &Refusal {
                        cert_type: req.cert_type,
                        key_id: &req.key_id,
                        principals: &req.principals,
                        subject_fp: fingerprint(&req.subject),
                        reason: e.to_string(),
                    },
                )?;
                crate::info!(
                    "certificate refused",
                    key_id = req.key_id,
                    subject = fingerprint(&req.subject),
                    reason = crate::logging::Disp(&e)
                );
                Err(e)
            }
            other => other,
        }
    }

    fn check(
        &self,
        req: &SignRequest,
        now: u64,
    ) -> Result<(String, validity::Validity, CertOptions), CaError> {
        let mut opts = CertOptions::defaults(req.cert_type);
        opts.apply_all(req.cert_type, req.options.iter().map(String::as_str))?;
        let requested = req
            .validity
            .as_deref()
            .map(|s| validity::parse(s, now))
            .transpose()?;
        let (name, profile) = self.config.profile(req.profile.as_deref(), req.cert_type)?;
        // A certificate for one of this CA's own keys would let that key's holder act as
        // both: refused whatever the profile says.
        let subject = req.subject.key_data();
        if subject == self.user_ca.key_data() || subject == self.host_ca.key_data() {
            return Err(CaError::Policy(policy::PolicyError {
                profile: name.into(),
                rule: "subject key: it is one of this CA's own keys".into(),
            }));
        }
        let v = profile.check(
            name,
            Request {
                cert_type: req.cert_type,
                key_id: &req.key_id,
                principals: &req.principals,
                validity: requested,
                options: &mut opts,
                subject: &req.subject,
            },
            now,
        )?;
        Ok((name.to_string(), v, opts))
    }

    /// Checks `req` against policy as signing would, without signing or auditing: for
    /// servers that refuse an order when it is placed rather than when it is finalized.
    pub fn precheck(&self, req: &SignRequest, now: u64) -> Result<(), CaError> {
        self.check(req, now).map(|_| ())
    }

    /// The backdate (ssh-keygen interval) of the default profile for `kind`.
    pub fn backdate(&self, kind: CertType) -> Result<String, CaError> {
        Ok(self.config.profile(None, kind)?.1.backdate.clone())
    }

    /// Records revocations; returns how many were new.
    pub fn revoke(&mut self, items: &[Revocation], now: u64) -> Result<usize, CaError> {
        let n = self.store.revoke(now, items)?;
        for r in items {
            crate::info!("revoked", kind = r.kind, value = r.value, reason = r.reason);
        }
        Ok(n)
    }

    /// The KRL for everything revoked so far.
    pub fn krl(&mut self, now: u64) -> Result<krl::Krl, CaError> {
        let revs = self.store.revocations()?;
        let version = self.store.next_krl_version(now)?;
        let mut cas = Vec::new();
        for kind in [CertType::User, CertType::Host] {
            let fp = fingerprint(self.ca_key(kind));
            let mine: Vec<&Revocation> = revs.iter().filter(|r| r.ca_fp == fp).collect();
            if mine.is_empty() {
                continue;
            }
            cas.push(krl::CaRevocations {
                ca_key: blob(self.ca_key(kind))?,
                serials: mine
                    .iter()
                    .filter(|r| r.kind == "serial")
                    .filter_map(|r| r.value.parse().ok())
                    .collect(),
                key_ids: mine
                    .iter()
                    .filter(|r| r.kind == "key_id")
                    .map(|r| r.value.clone())
                    .collect(),
            });
        }
        let keys = revs
            .iter()
            .filter(|r| r.kind == "key")
            .map(|r| {
                PublicKey::from_openssh(&r.value)
                    .map_err(|e| CaError::Sign(e.to_string()))
                    .and_then(|k| blob(&k))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(krl::Krl {
            version,
            generated: now,
            comment: format!("ssh-ca {}", self.dir.display()),
            cas,
            keys,
        })
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The wire encoding of a public key.
pub fn blob(k: &PublicKey) -> Result<Vec<u8>, CaError> {
    k.to_bytes()
        .map_err(|e| CaError::Sign(format!("cannot encode a public key: {e}")))
}

fn load_config(path: &Path) -> Result<Config, CaError> {
    let text = std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?;
    let config: Config = serde_yaml::from_str(&text).map_err(|e| CaError::Config {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    config.check().map_err(|why| CaError::Config {
        path: path.to_path_buf(),
        why,
    })?;
    Ok(config)
}

/// One certificate to issue once its serial is known: the request and what policy made of it.
struct Issue {
    req: SignRequest,
    profile: String,
    validity: validity::Validity,
    opts: CertOptions,
    ca_fp: String,
    issued_at: u64,
}

impl Issue {
    /// Builds and signs the certificate with `serial`, and its store record.
    fn run(&self, serial: u64, signer: &CaSigner) -> Result<(Certificate, CertRecord), CaError> {
        let c = build(&self.req, &self.opts, self.validity, serial, signer)?;
        let record = CertRecord {
            serial,
            cert_type: self.req.cert_type.to_string(),
            key_id: self.req.key_id.clone(),
            principals: self.req.principals.clone(),
            valid_after: self.validity.after,
            valid_before: self.validity.before,
            subject_fp: fingerprint(&self.req.subject),
            ca_fp: self.ca_fp.clone(),
            profile: self.profile.clone(),
            issued_at: self.issued_at,
            cert: c.to_openssh().map_err(|e| CaError::Sign(e.to_string()))?,
        };
        Ok((c, record))
    }
}

/// Batches at least this long are signed on `sched` workers, one per core; below it, starting
/// the threads costs more than they save.
const PARALLEL_MIN: usize = 64;

/// Workers for a batch of `len` items (signatures, certificate files), one per core: `None`
/// when the batch is short or the machine has one core (or the threads cannot start), and the
/// work is then done on the calling thread.
pub(crate) fn batch_executor(len: usize) -> Option<crate::sched::Executor> {
    if len < PARALLEL_MIN {
        return None;
    }
    // Asked only now: it reads the cgroup files, which costs a one-certificate run ~2%.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // At least half a minimum batch per worker, so a short batch on a big machine does not
    // start more threads than it has work for.
    let workers = cores.min(len / (PARALLEL_MIN / 2));
    if workers < 2 {
        return None;
    }
    crate::sched::Builder::new()
        .workers(workers)
        .thread_name("ssh-ca-batch")
        .build()
        .ok()
}

/// Runs `f` on every item, on `exec`'s workers when there is one; results in item order.
pub(crate) fn map_on<T, R>(
    exec: Option<&crate::sched::Executor>,
    items: Vec<T>,
    f: impl Fn(T) -> R + Send + Sync + 'static,
) -> Vec<R>
where
    T: Send + Clone + 'static,
    R: Send + 'static,
{
    match exec {
        Some(exec) => {
            let chunk = items.len().div_ceil(exec.workers() * 8);
            crate::sched::par::par_map(exec, items, chunk, f, None)
        }
        None => items.into_iter().map(f).collect(),
    }
}

/// Signs `jobs[i]` with `serials[i]`, in order. A key held in this process signs on every core
/// (through `bitrot::sched`); an agent signs one request at a time over its socket.
fn issue_all(
    jobs: Vec<Issue>,
    serials: &[u64],
    signer: &CaSigner,
) -> Result<Vec<(Certificate, CertRecord)>, CaError> {
    let exec = match signer {
        CaSigner::Key(_) => batch_executor(jobs.len()),
        CaSigner::Agent(_) => None,
    };
    let (Some(exec), CaSigner::Key(key)) = (exec, signer) else {
        return jobs
            .iter()
            .zip(serials)
            .map(|(job, &serial)| job.run(serial, signer))
            .collect();
    };
    let signer = Arc::new(CaSigner::Key(key.clone()));
    let jobs = Arc::new(jobs);
    let items: Vec<(usize, u64)> = serials.iter().copied().enumerate().collect();
    map_on(Some(&exec), items, move |(i, serial)| {
        jobs[i].run(serial, &signer)
    })
    .into_iter()
    .collect()
}

fn build(
    req: &SignRequest,
    opts: &CertOptions,
    v: validity::Validity,
    serial: u64,
    signer: &CaSigner,
) -> Result<Certificate, CaError> {
    let e = |x: ssh_key::Error| CaError::Sign(x.to_string());
    // 32 bytes of nonce, as ssh-keygen writes (the crate's default is 16).
    let mut nonce = [0u8; 32];
    ssh_key::rand_core::Rng::fill_bytes(&mut UnwrapErr(SysRng), &mut nonce);
    let mut b = Builder::new(
        nonce.to_vec(),
        req.subject.key_data().clone(),
        v.after,
        v.before,
    )
    .map_err(e)?;
    b.serial(serial).map_err(e)?;
    b.cert_type(req.cert_type.into()).map_err(e)?;
    b.key_id(req.key_id.clone()).map_err(e)?;
    if req.principals.is_empty() {
        b.all_principals_valid().map_err(e)?;
    }
    for p in &req.principals {
        b.valid_principal(p.clone()).map_err(e)?;
    }
    for (k, val) in &opts.critical {
        b.critical_option(k.clone(), val.clone()).map_err(e)?;
    }
    for (k, val) in &opts.extensions {
        b.extension(k.clone(), val.clone()).map_err(e)?;
    }
    b.comment(req.subject.comment().to_string()).map_err(e)?;
    match signer {
        CaSigner::Key(k) => b.sign(k.as_ref()).map_err(e),
        CaSigner::Agent(a) => b.sign(a).map_err(|x| match std::error::Error::source(&x) {
            Some(inner) => CaError::Sign(format!("{x}: {inner}")),
            None => CaError::Sign(x.to_string()),
        }),
    }
}
