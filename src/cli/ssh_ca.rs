//! `ssh-ca`: the command line of the offline SSH certificate authority in [`crate::ca`].

use crate::ca::inspect::{read_cert, render_like_ssh_keygen};
use crate::ca::keys::{self, KeyType};
use crate::ca::store::{AuditCheck, Revocation, StoreError};
use crate::ca::{Ca, CaError, CertType, SignRequest, fingerprint, validity};
use anyhow::{Context, Result, anyhow};
use clap::{Args, Parser, Subcommand};
use ssh_key::PublicKey;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  verify: the certificate would be refused; audit verify: the audit chain is broken
  2  bad usage or bad input (a malformed key, validity or option); nothing was changed
  3  refused by policy (the message names the profile and the rule); the refusal is audited
  4  the CA directory, a key or the store is missing, unreadable or unsafe (permissions)
  5  sign: certificates were issued and recorded, but writing their files failed (serials listed)";

/// An SSH certificate authority with policy, serials, revocation lists and an audit trail.
#[derive(Parser, Debug)]
#[command(name = "ssh-ca", version, after_help = super::after_help(EXIT_CODES))]
pub struct Cli {
    /// CA directory [default: $SSH_CA_DIR, else $XDG_DATA_HOME/ssh-ca, else ~/.local/share/ssh-ca]
    #[arg(long, global = true, env = "SSH_CA_DIR")]
    dir: Option<PathBuf>,
    /// Machine-readable JSON on stdout
    #[arg(long, global = true)]
    json: bool,
    /// Print the man page or the bash completion script and exit (for packagers)
    #[arg(long, hide = true, value_enum, exclusive = true)]
    generate: Option<super::Generate>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a CA: user and host CA keys, a commented config.yaml, the store
    Init {
        /// CA key algorithm
        #[arg(long, default_value = "ed25519", value_parser = ["ed25519", "ecdsa", "rsa"])]
        key_type: String,
        #[command(flatten)]
        pass: PassArgs,
        /// Encrypt the CA keys with a passphrase (from --passphrase-file, SSH_CA_PASSPHRASE or the terminal)
        #[arg(long)]
        encrypt: bool,
    },
    /// Sign public keys (ssh-keygen -s flags); writes NAME-cert.pub beside each key, or stdout for -
    Sign(SignArgs),
    /// List issued certificates
    List {
        /// Only certificates for this principal
        #[arg(long)]
        principal: Option<String>,
        /// Only certificates expiring within this interval (e.g. 7d)
        #[arg(long)]
        expiring_within: Option<String>,
    },
    /// Show a certificate as ssh-keygen -L does, plus whether this CA issued and revoked it
    Inspect { cert: PathBuf },
    /// Check a certificate as sshd would for a principal: signature, CA, time, options, revocation
    Verify {
        #[arg(long)]
        principal: String,
        cert: PathBuf,
    },
    /// Revoke by serial, key id or public key (recorded; write a KRL with `ssh-ca krl`)
    Revoke(RevokeArgs),
    /// Write the OpenSSH KRL of everything revoked (atomically)
    Krl {
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Print the TrustedUserCAKeys line and the @cert-authority known_hosts line
    Export {
        /// Host pattern for the known_hosts line
        #[arg(long, default_value = "*")]
        host_pattern: String,
    },
    /// Audit trail commands
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the hash chain: detects edited, deleted or truncated records
    Verify,
}

#[derive(Args, Debug)]
struct PassArgs {
    /// Read the CA key passphrase from this file
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// User certificate
    #[arg(long, conflicts_with = "host", required_unless_present = "host")]
    user: bool,
    /// Host certificate (also -h in ssh-keygen)
    #[arg(long)]
    host: bool,
    /// Key identity, logged by sshd and revocable
    #[arg(short = 'I', long = "key-id")]
    key_id: String,
    /// Principals, comma-separated
    #[arg(short = 'n', long, value_delimiter = ',')]
    principals: Vec<String>,
    /// Validity, ssh-keygen syntax: -5m:+8h, always:forever, 20260101:20270101Z, +52w
    #[arg(short = 'V', long, allow_hyphen_values = true)]
    validity: Option<String>,
    /// Certificate option (repeatable): clear, force-command=CMD, source-address=CIDRS,
    /// verify-required, no-touch-required, permit-*/no-* (pty, user-rc, X11-forwarding,
    /// agent-forwarding, port-forwarding), critical:NAME[=V], extension:NAME[=V]
    #[arg(short = 'O', long = "option")]
    options: Vec<String>,
    /// Policy profile [default: default_user_profile / default_host_profile]
    #[arg(long)]
    profile: Option<String>,
    /// Serial to use instead of the next one
    #[arg(short = 'z', long)]
    serial: Option<u64>,
    /// Sign with the CA key held in ssh-agent ($SSH_AUTH_SOCK), like ssh-keygen -U
    #[arg(short = 'U', long)]
    agent: bool,
    #[command(flatten)]
    pass: PassArgs,
    /// Public keys to sign (- for stdin, the certificate goes to stdout)
    #[arg(required = true)]
    pubkeys: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["serial", "key_id", "key"])))]
struct RevokeArgs {
    /// A serial this CA issued
    #[arg(long)]
    serial: Option<u64>,
    /// A key id: revokes every certificate with it
    #[arg(long)]
    key_id: Option<String>,
    /// A public key (or certificate) file: revokes the key and every certificate on it
    #[arg(long)]
    key: Option<PathBuf>,
    #[arg(long, default_value = "unspecified")]
    reason: String,
}

/// Runs `ssh-ca` with the process's arguments and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut std::io::stdout().lock()) {
        Ok(code) => code,
        Err(e) => super::report_error("ssh-ca", &e, exit_code(&e)),
    }
}

/// Certificates were issued and recorded, but their files could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "the certificates were issued and recorded in the store (serials {0}), but their files could not be written; `ssh-ca inspect` and `ssh-ca list --json` show them"
)]
struct IssuedNotWritten(String);

fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain()
        .any(|c| c.downcast_ref::<IssuedNotWritten>().is_some())
    {
        return 5;
    }
    // The log beside the store cannot be opened: the CA directory is unusable, as for the store.
    if e.chain()
        .any(|c| c.downcast_ref::<crate::logging::InitError>().is_some())
    {
        return 4;
    }
    match e.downcast_ref::<CaError>() {
        Some(CaError::Policy(_)) => 3,
        // A -z serial that is taken or out of range is bad input, not a broken store.
        Some(CaError::Store(StoreError::SerialTaken(_) | StoreError::SerialRange(_))) => 2,
        Some(
            CaError::NotInitialised(_)
            | CaError::AlreadyInitialised(_)
            | CaError::Permissions { .. }
            | CaError::Store(_)
            | CaError::Config { .. }
            | CaError::Key { .. },
        ) => 4,
        _ => 2,
    }
}

/// `$XDG_DATA_HOME/ssh-ca` (an absolute one; the XDG spec ignores relative values), else
/// `~/.local/share/ssh-ca`.
fn default_dir() -> Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("ssh-ca"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; give --dir"))?;
    Ok(PathBuf::from(home).join(".local/share/ssh-ca"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs a parsed command, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<ExitCode> {
    if let Some(what) = cli.generate {
        super::generate::<Cli>(what, out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(ExitCode::from(2));
    };
    let dir = match cli.dir {
        Some(d) => d,
        None => default_dir()?,
    };
    if let Command::Init {
        key_type,
        pass,
        encrypt,
    } = &command
    {
        return init(&dir, key_type, pass, *encrypt, cli.json, out);
    }
    let log_path = dir.join("ssh-ca.log");
    let _log = super::init_logging(Some(log_path.as_path()).filter(|_| dir.is_dir()))?;
    let mut ca = Ca::open(&dir)?;
    match command {
        Command::Init { .. } => unreachable!("handled above"),
        Command::Sign(args) => sign(&mut ca, args, cli.json, out),
        Command::List {
            principal,
            expiring_within,
        } => list(&ca, principal, expiring_within, cli.json, out),
        Command::Inspect { cert } => inspect(&ca, &cert, cli.json, out),
        Command::Verify { principal, cert } => verify(&ca, &cert, &principal, cli.json, out),
        Command::Revoke(args) => revoke(&mut ca, args, cli.json, out),
        Command::Krl { out: path } => krl(&mut ca, &path, out),
        Command::Export { host_pattern } => export(&ca, &host_pattern, cli.json, out),
        Command::Audit {
            command: AuditCommand::Verify,
        } => audit_verify(&ca, cli.json, out),
    }
}

/// Where the passphrase of an encrypted CA key comes from: a file, SSH_CA_PASSPHRASE, or the
/// terminal.
fn passphrase(file: Option<&Path>) -> Result<String, CaError> {
    if let Some(f) = file {
        keys::check_private_file(f)?;
        let text = std::fs::read_to_string(f).map_err(|e| CaError::io(f, e))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    if let Ok(p) = std::env::var("SSH_CA_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CaError::Key {
            path: PathBuf::from("-"),
            why: "the CA key is encrypted: give --passphrase-file or SSH_CA_PASSPHRASE (stdin is not a terminal to ask on)".into(),
        });
    }
    read_terminal_passphrase().map_err(|e| CaError::Key {
        path: PathBuf::from("/dev/tty"),
        why: format!("the CA key is encrypted and no passphrase was given (--passphrase-file, SSH_CA_PASSPHRASE or a terminal): {e}"),
    })
}

fn read_terminal_passphrase() -> std::io::Result<String> {
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let saved = term;
    term.c_lflag &= !libc::ECHO;
    // SAFETY: valid fd and termios.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    let mut w = &tty;
    let _ = w.write_all(b"CA key passphrase: ");
    let mut line = String::new();
    let r = std::io::BufRead::read_line(&mut std::io::BufReader::new(&tty), &mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    let _ = w.write_all(b"\n");
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn init(
    dir: &Path,
    key_type: &str,
    pass: &PassArgs,
    encrypt: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let kind: KeyType = key_type.parse().map_err(|e: String| anyhow!(e))?;
    let pw = if encrypt || pass.passphrase_file.is_some() {
        Some(passphrase(pass.passphrase_file.as_deref())?)
    } else {
        None
    };
    let ca = Ca::init(dir, kind, pw.as_deref())?;
    let _log = super::init_logging(Some(&dir.join("ssh-ca.log")))?;
    crate::info!(
        "CA initialised",
        dir = dir,
        user_ca = fingerprint(&ca.user_ca),
        host_ca = fingerprint(&ca.host_ca)
    );
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "dir": dir, "user_ca": fingerprint(&ca.user_ca), "host_ca": fingerprint(&ca.host_ca),
            })
        )?;
    } else {
        writeln!(
            out,
            "Created CA in {}\n  user CA {}\n  host CA {}\nEdit {} to set the policy.",
            dir.display(),
            fingerprint(&ca.user_ca),
            fingerprint(&ca.host_ca),
            dir.join("config.yaml").display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a public key file, with errors that say what the file is instead.
fn read_pubkey(path: &Path) -> Result<PublicKey, CaError> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CaError::io(path, e))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?
    };
    let bad = |why: &str| CaError::BadInput {
        path: path.to_path_buf(),
        why: why.into(),
    };
    if text.contains("PRIVATE KEY") {
        return Err(bad("this is a private key; give the public key (.pub)"));
    }
    if text
        .split_whitespace()
        .next()
        .is_some_and(|t| t.contains("-cert-v01@openssh.com"))
    {
        return Err(bad("this is a certificate, not a public key"));
    }
    PublicKey::from_openssh(text.trim())
        .map_err(|e| bad(&format!("not an OpenSSH public key ({e})")))
}

/// `id_user.pub` → `id_user-cert.pub`, as ssh-keygen names it.
fn cert_path(pubkey: &Path) -> PathBuf {
    let s = pubkey.to_string_lossy();
    let stem = s.strip_suffix(".pub").unwrap_or(&s);
    PathBuf::from(format!("{stem}-cert.pub"))
}

fn sign(ca: &mut Ca, a: SignArgs, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let kind = if a.host {
        CertType::Host
    } else {
        CertType::User
    };
    let t0 = std::time::Instant::now();
    // Read every key first, so one bad file refuses the whole batch before anything is signed.
    let subjects = a
        .pubkeys
        .iter()
        .map(|p| read_pubkey(p).map(|k| (p, k)))
        .collect::<Result<Vec<_>, _>>()?;
    let pass_file = a.pass.passphrase_file.clone();
    let signer = if a.agent {
        let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
            anyhow!("--agent: SSH_AUTH_SOCK is not set (start ssh-agent and ssh-add the CA key)")
        })?;
        ca.agent_signer(kind, Path::new(&sock))?
    } else {
        ca.signer(kind, &|_| passphrase(pass_file.as_deref()))?
    };
    let reqs: Vec<SignRequest> = subjects
        .iter()
        .enumerate()
        .map(|(i, (_, subject))| SignRequest {
            cert_type: kind,
            key_id: a.key_id.clone(),
            principals: a.principals.clone(),
            validity: a.validity.clone(),
            options: a.options.clone(),
            profile: a.profile.clone(),
            // The store numbers a batch from the first request's serial, with its own checks.
            serial: a.serial.filter(|_| i == 0),
            subject: subject.clone(),
        })
        .collect();
    let t_read = t0.elapsed();
    let issued = ca.sign_batch(&reqs, &signer, now())?;
    let t_issue = t0.elapsed();
    let mut files = Vec::new();
    for ((path, _), (_, rec)) in subjects.iter().zip(&issued) {
        let text = format!("{}\n", rec.cert);
        if *path == Path::new("-") {
            out.write_all(text.as_bytes())?;
        } else {
            files.push((cert_path(path), text.into_bytes()));
        }
    }
    if let Err(e) = keys::write_all_atomic(&files, 0o644) {
        let serials: Vec<String> = issued.iter().map(|(_, r)| r.serial.to_string()).collect();
        return Err(anyhow::Error::new(IssuedNotWritten(serials.join(", "))).context(e));
    }
    let t_write = t0.elapsed();
    crate::debug!(
        "sign timings",
        certificates = issued.len() as u64,
        read_us = t_read.as_micros() as u64,
        issue_us = (t_issue - t_read).as_micros() as u64,
        write_us = (t_write - t_issue).as_micros() as u64
    );
    let mut written = files.iter().map(|(p, _)| p);
    // One write for all the human lines: a batch of thousands stays cheap.
    let mut notes = String::new();
    for ((path, _), (cert, rec)) in subjects.iter().zip(&issued) {
        let target = (*path != Path::new("-")).then(|| written.next()).flatten();
        if json {
            let mut v = serde_json::to_value(rec)?;
            v["file"] = serde_json::json!(target);
            writeln!(out, "{v}")?;
        } else if let Some(t) = target {
            let principals = if rec.principals.is_empty() {
                "(any principal)".to_string()
            } else {
                rec.principals.join(",")
            };
            notes.push_str(&format!(
                "Signed {kind} key {}: id \"{}\" serial {} for {principals} valid {}\n",
                t.display(),
                cert.key_id(),
                rec.serial,
                validity_text(rec.valid_after, rec.valid_before)
            ));
        }
    }
    std::io::stderr().lock().write_all(notes.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn validity_text(after: u64, before: u64) -> String {
    format!(
        "from {} to {}",
        validity::display_bound(after, true),
        validity::display_bound(before, false)
    )
}

fn list(
    ca: &Ca,
    principal: Option<String>,
    expiring: Option<String>,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let t = now();
    let horizon = expiring
        .map(|e| validity::interval(&e, &e).map(|s| t.saturating_add(s)))
        .transpose()?;
    let revoked = ca.store.revocations()?;
    let rows = ca.store.certs()?.into_iter().filter(|c| {
        principal.as_ref().is_none_or(|p| c.principals.contains(p))
            && horizon.is_none_or(|h| c.valid_before > t && c.valid_before <= h)
    });
    if !json {
        writeln!(
            out,
            "{:>8}  {:4}  {:24}  {:24}  {:19}  status",
            "serial", "type", "key id", "principals", "valid until"
        )?;
    }
    for c in rows {
        let status = if revoked
            .iter()
            .any(|r| crate::ca::inspect::covers(r, &c.ca_fp, c.serial, &c.key_id, &c.subject_fp))
        {
            "revoked"
        } else if c.valid_before <= t {
            "expired"
        } else {
            "valid"
        };
        if json {
            let mut v = serde_json::to_value(&c)?;
            v["status"] = serde_json::json!(status);
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{:>8}  {:4}  {:24}  {:24}  {:19}  {status}",
                c.serial,
                c.cert_type,
                c.key_id,
                c.principals.join(","),
                validity::display_bound(c.valid_before, false)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(ca: &Ca, path: &Path, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let cert = read_cert(path)?;
    let prov = ca.provenance(&cert)?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "key_id": cert.key_id(), "serial": cert.serial(), "type": crate::ca::CertType::from(cert.cert_type()),
                "principals": cert.valid_principals(), "valid_after": cert.valid_after(), "valid_before": cert.valid_before(),
                "critical_options": cert.critical_options().iter().collect::<std::collections::BTreeMap<_, _>>(),
                "extensions": cert.extensions().iter().collect::<std::collections::BTreeMap<_, _>>(),
                "signing_ca": fingerprint(&PublicKey::from(cert.signature_key().clone())),
                "issued_here": prov.issued_here, "record": prov.record, "revoked": prov.revoked,
            })
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    out.write_all(render_like_ssh_keygen(&path.display().to_string(), &cert).as_bytes())?;
    match &prov.record {
        Some(r) => writeln!(
            out,
            "        Issued by this CA: yes (profile {}, at {})",
            r.profile,
            validity::display_bound(r.issued_at, true)
        )?,
        None => writeln!(out, "        Issued by this CA: no")?,
    }
    if prov.revoked.is_empty() {
        writeln!(out, "        Revoked: no")?;
    }
    for r in &prov.revoked {
        writeln!(
            out,
            "        Revoked: yes, by {} {} ({}) at {}",
            r.kind,
            r.value,
            r.reason,
            validity::display_bound(r.revoked_at, true)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(
    ca: &Ca,
    path: &Path,
    principal: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let cert = read_cert(path)?;
    let problems = ca.verify(&cert, principal, now())?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"valid": problems.is_empty(), "problems": problems})
        )?;
    } else if problems.is_empty() {
        writeln!(out, "{}: valid for {principal}", path.display())?;
    } else {
        for p in &problems {
            writeln!(out, "{}: {p}", path.display())?;
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn revoke(ca: &mut Ca, a: RevokeArgs, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let items: Vec<Revocation> = if let Some(serial) = a.serial {
        let rec = ca.store.cert_by_serial(serial)?.ok_or_else(|| {
            CaError::NotFound(format!("serial {serial} was not issued by this CA"))
        })?;
        vec![revocation(
            "serial",
            serial.to_string(),
            rec.ca_fp,
            &a.reason,
        )]
    } else if let Some(id) = &a.key_id {
        let mut fps: Vec<String> = ca
            .store
            .certs_by_key_id(id)?
            .into_iter()
            .map(|c| c.ca_fp)
            .collect();
        fps.dedup();
        if fps.is_empty() {
            return Err(CaError::NotFound(format!(
                "no certificate with key id {id:?} was issued by this CA"
            ))
            .into());
        }
        fps.into_iter()
            .map(|fp| revocation("key_id", id.clone(), fp, &a.reason))
            .collect()
    } else {
        let path = a
            .key
            .as_deref()
            .context("one of --serial, --key-id, --key")?;
        let key = match read_pubkey(path) {
            Ok(k) => k,
            Err(_) => PublicKey::from(read_cert(path)?.public_key().clone()),
        };
        let mut plain = key.clone();
        plain.set_comment("");
        vec![revocation(
            "key",
            plain.to_openssh()?,
            String::new(),
            &a.reason,
        )]
    };
    let at = items.first().map_or_else(now, |r| r.revoked_at);
    let new = ca.revoke(&items, at)?;
    if json {
        writeln!(out, "{}", serde_json::json!({"revoked": items, "new": new}))?;
    } else {
        writeln!(
            out,
            "revoked {} ({} new); run `ssh-ca krl -o FILE` to publish",
            items
                .iter()
                .map(|r| format!("{} {}", r.kind, r.value))
                .collect::<Vec<_>>()
                .join(", "),
            new
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn revocation(kind: &str, value: String, ca_fp: String, reason: &str) -> Revocation {
    Revocation {
        kind: kind.into(),
        value,
        ca_fp,
        reason: reason.into(),
        revoked_at: now(),
    }
}

fn krl(ca: &mut Ca, path: &Path, out: &mut dyn Write) -> Result<ExitCode> {
    let krl = ca.krl(now())?;
    keys::write_atomic(path, &krl.encode(), 0o644)?;
    crate::info!("KRL written", path = path, version = krl.version);
    writeln!(
        out,
        "wrote KRL version {} to {}",
        krl.version,
        path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn export(ca: &Ca, pattern: &str, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let user = ca.user_ca.to_openssh()?;
    let host = format!("@cert-authority {pattern} {}", ca.host_ca.to_openssh()?);
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"trusted_user_ca_keys": user, "known_hosts": host})
        )?;
    } else {
        writeln!(
            out,
            "# sshd: a line of the file named by TrustedUserCAKeys\n{user}\n# ssh: a known_hosts line trusting host certificates\n{host}"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(ca: &Ca, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let check = ca.store.verify_audit()?;
    let (ok, text) = match &check {
        AuditCheck::Intact { records } => (true, format!("audit chain intact: {records} records")),
        AuditCheck::Broken { seq, why } => {
            (false, format!("audit chain broken at record {seq}: {why}"))
        }
    };
    if json {
        writeln!(out, "{}", serde_json::json!({"intact": ok, "detail": text}))?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
