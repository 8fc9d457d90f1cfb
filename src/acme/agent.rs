//! The renewal agent: keeps certificates renewed through an ACME server, on `sched` timers.
//!
//! [`renew_once`] renews one [`Target`] when its renewal window is open (or when forced): a new
//! order for the same principals, the certificate file replaced atomically, then the reload
//! command. [`start`] schedules every target on an executor: checked again `check_every`
//! after a success; after a failure (the server may be down) again after `retry_min`,
//! doubling up to `check_every`.
//!
//! Invariants: a certificate file is only ever replaced whole (written beside it and renamed),
//! so a reader never sees half of one; a failed renewal leaves the old file in place; the
//! reload command runs only after the new file is in place.

use super::client::{Client, ClientError, Proof};
use crate::ca::CertType;
use ssh_key::PrivateKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One certificate to keep renewed (a `renew` command line, or an entry of the agent's
/// configuration file).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The account key.
    pub key: PathBuf,
    /// The certificate file, replaced on renewal.
    pub cert: PathBuf,
    /// For host certificates: the host's private key (it signs the proof of possession).
    #[serde(default)]
    pub host_key: Option<PathBuf>,
    /// Renew even if the window is not open.
    #[serde(default)]
    pub force: bool,
    /// A shell command run after the certificate is replaced.
    #[serde(default)]
    pub reload: Option<String>,
}

/// The agent's configuration file: `certificates: [Target…]` in YAML.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    certificates: Vec<Target>,
}

/// What a renewal attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The window opens at this Unix time.
    NotDue {
        opens: u64,
    },
    Renewed,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("{0} is not the key of {1}")]
    NotTheKey(PathBuf, PathBuf),
    #[error("renewing the host certificate {0} needs its host key (host_key, --host-key)")]
    NeedsHostKey(PathBuf),
    #[error("reload command {cmd:?} failed: {why}")]
    Reload { cmd: String, why: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl AgentError {
    /// The exit code a command-line tool reports it with: 1 refused by the server, 3 the
    /// server unreachable, 2 bad input, 4 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Client(ClientError::Problem(_)) => 1,
            AgentError::Client(ClientError::Http { .. }) => 3,
            AgentError::File { .. } | AgentError::NotTheKey(..) | AgentError::NeedsHostKey(_) => 2,
            AgentError::Reload { .. } => 4,
        }
    }
}

fn file_err(path: &Path, why: impl std::fmt::Display) -> AgentError {
    AgentError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// Reads the agent's configuration file.
pub fn read_config(path: &Path) -> Result<Vec<Target>, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    let c: Config = serde_yaml::from_str(&text).map_err(|e| file_err(path, e))?;
    Ok(c.certificates)
}

/// Reads an unencrypted OpenSSH private key.
pub fn read_private(path: &Path) -> Result<PrivateKey, AgentError> {
    let key = PrivateKey::read_openssh_file(path)
        .map_err(|e| file_err(path, format!("not an unencrypted OpenSSH private key: {e}")))?;
    if key.is_encrypted() {
        return Err(file_err(path, "encrypted keys are not supported yet"));
    }
    Ok(key)
}

/// Writes the certificate atomically (mode 0644), then runs the reload command.
pub fn install(cert: &str, target: &Path, reload: Option<&str>) -> Result<(), AgentError> {
    crate::ca::keys::write_atomic(target, format!("{cert}\n").as_bytes(), 0o644)
        .map_err(|e| file_err(target, e))?;
    if let Some(cmd) = reload {
        let status = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .map_err(|e| AgentError::Reload {
                cmd: cmd.into(),
                why: e.to_string(),
            })?;
        if !status.success() {
            return Err(AgentError::Reload {
                cmd: cmd.into(),
                why: status.to_string(),
            });
        }
    }
    Ok(())
}

/// Renews `t.cert` through `server` if its renewal window is open at `now` (or `t.force`).
pub fn renew_once(server: &str, t: &Target, now: u64) -> Result<Outcome, AgentError> {
    let text = std::fs::read_to_string(&t.cert).map_err(|e| file_err(&t.cert, e))?;
    let cert = ssh_key::Certificate::from_openssh(text.trim())
        .map_err(|e| file_err(&t.cert, format!("not an OpenSSH certificate: {e}")))?;
    let account = read_private(&t.key)?;
    let mut c = Client::new(server, account.clone())?;
    let (start, _) = c.renewal_window(&cert)?;
    if now < start && !t.force {
        return Ok(Outcome::NotDue { opens: start });
    }
    let principals = cert.valid_principals().to_vec();
    let renewed = match CertType::from(cert.cert_type()) {
        CertType::User => {
            if account.public_key().key_data() != cert.public_key() {
                return Err(AgentError::NotTheKey(t.key.clone(), t.cert.clone()));
            }
            let span = cert.valid_before().saturating_sub(cert.valid_after());
            c.issue_user(&account, &principals, Some(&format!("{span}s")))?
        }
        CertType::Host => {
            let hk = t
                .host_key
                .as_deref()
                .ok_or_else(|| AgentError::NeedsHostKey(t.cert.clone()))?;
            c.issue_host(&read_private(hk)?, &principals, &Proof::SshHostKey)?
        }
    };
    install(&renewed, &t.cert, t.reload.as_deref())?;
    crate::info!("certificate renewed", cert = t.cert);
    Ok(Outcome::Renewed)
}

/// How the agent paces one certificate's checks.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub check_every: Duration,
    pub retry_min: Duration,
}

/// What the agent has done so far, per target (in the order given to [`start`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStats {
    pub checks: u64,
    pub renewed: u64,
    pub failures: u64,
    /// The last failure, as its error says.
    pub last_error: Option<String>,
}

/// A running agent's counters.
#[derive(Clone, Default)]
pub struct Stats(Arc<Mutex<Vec<TargetStats>>>);

impl Stats {
    pub fn snapshot(&self) -> Vec<TargetStats> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, i: usize, r: &Result<Outcome, AgentError>) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut all[i];
        s.checks += 1;
        match r {
            Ok(Outcome::Renewed) => s.renewed += 1,
            Ok(Outcome::NotDue { .. }) => {}
            Err(e) => {
                s.failures += 1;
                s.last_error = Some(e.to_string());
            }
        }
    }
}

/// Schedules every target on `exec`, first check now; returns the counters. The checks go
/// on until the executor is dropped.
pub fn start(
    exec: &crate::sched::Executor,
    server: &str,
    targets: Vec<Target>,
    pace: Pace,
) -> Stats {
    let stats = Stats(Arc::new(Mutex::new(vec![
        TargetStats::default();
        targets.len()
    ])));
    for (i, t) in targets.into_iter().enumerate() {
        let job = Job {
            server: server.to_string(),
            target: t,
            index: i,
            stats: stats.clone(),
            pace,
        };
        schedule(exec, job, Duration::ZERO, pace.retry_min);
    }
    stats
}

struct Job {
    server: String,
    target: Target,
    index: usize,
    stats: Stats,
    pace: Pace,
}

fn schedule(exec: &crate::sched::Executor, job: Job, delay: Duration, backoff: Duration) {
    let at = exec.now() + delay;
    let opts =
        crate::sched::Opts::new(at + job.pace.check_every).on_miss(crate::sched::OnMiss::RunLate);
    let next = exec.clone();
    let task = exec.spawn_at(at, opts, move |_ctx| {
        let r = renew_once(&job.server, &job.target, crate::ca::unix_now());
        job.stats.record(job.index, &r);
        let (delay, backoff) = match r {
            Ok(_) => (job.pace.check_every, job.pace.retry_min),
            Err(e) => {
                crate::warn!(
                    "renewal failed; retrying",
                    cert = job.target.cert,
                    error = crate::logging::Disp(&e),
                    retry_ms = backoff.as_millis() as u64
                );
                (backoff, (backoff * 2).min(job.pace.check_every))
            }
        };
        schedule(&next, job, delay, backoff);
    });
    drop(task);
}
