//! `ssh-acme`: the ACME-style CA server for SSH certificates and its client.

use crate::acme::agent;
use crate::acme::client::{Client, ClientError, Proof};
use crate::acme::server::{AcmeServer, ServerOptions};
use crate::acme::store;
use crate::ca::{Ca, CaError, CertType, fingerprint};
use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use ssh_key::{PrivateKey, PublicKey};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the server refused the request (the problem document is printed)
  2  bad usage or bad input
  3  the server could not be reached
  4  the CA directory, a key or a TLS file is missing, unreadable or unsafe";

/// An ACME-style certificate authority for SSH certificates: server and client.
#[derive(Parser, Debug)]
#[command(name = "ssh-acme", version, after_help = super::after_help(EXIT_CODES))]
pub struct Cli {
    /// Server URL for client commands, e.g. http://127.0.0.1:14000 or https://ca.example:14000
    #[arg(long, global = true, env = "SSH_ACME_SERVER")]
    server: Option<String>,
    /// PEM certificates to trust for an https:// server (client commands) [default: the system
    /// bundle]
    #[arg(long, global = true, env = "SSH_ACME_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Print the man page or the bash completion script and exit (for packagers)
    #[arg(long, hide = true, value_enum, exclusive = true)]
    generate: Option<super::Generate>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server on a CA directory made by `ssh-ca init`
    Serve {
        #[arg(long, env = "SSH_CA_DIR")]
        dir: PathBuf,
        /// YAML file with any of the settings below (snake_case names); flags win
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: ServeSettings,
    },
    /// Operator commands on accounts
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Create (or find) the account of a key
    Register {
        /// Account key, an OpenSSH private key [default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa,
        /// the first that exists]
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        contact: Vec<String>,
        /// External account binding key id (from the operator)
        // base64url values may start with '-': take them as values, not flags.
        #[arg(long, requires = "eab_hmac_key", allow_hyphen_values = true)]
        eab_kid: Option<String>,
        /// External account binding MAC key, base64url (from the operator)
        #[arg(long, requires = "eab_kid", allow_hyphen_values = true)]
        eab_hmac_key: Option<String>,
    },
    /// Move the account to a new key (the CA keeps its grants and orders)
    KeyChange {
        /// The account's current key [default: as for register]
        #[arg(long)]
        key: Option<PathBuf>,
        /// The new account key, an OpenSSH private key
        #[arg(long)]
        new_key: PathBuf,
    },
    /// Deactivate the account for good: the CA refuses its requests afterwards
    Deactivate {
        /// Account key [default: as for register]
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// List the account's orders that are not invalid
    Orders {
        /// Account key [default: as for register]
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Order a certificate
    Issue {
        #[command(subcommand)]
        what: IssueCommand,
    },
    /// Renew a certificate once the server's renewal window opens (does nothing before)
    Renew {
        /// Account key, an OpenSSH private key; for user certificates also the certificate's
        /// key [default: the key next to --cert (KEY-cert.pub), else ~/.ssh/id_ed25519,
        /// id_ecdsa or id_rsa, the first that exists]
        #[arg(long)]
        key: Option<PathBuf>,
        /// The certificate to renew; replaced atomically
        #[arg(long)]
        cert: PathBuf,
        /// The host's private key, for host certificates
        #[arg(long)]
        host_key: Option<PathBuf>,
        /// Renew now, whatever the window says
        #[arg(long)]
        force: bool,
        /// Command to run after the certificate is replaced (e.g. systemctl reload ssh)
        #[arg(long)]
        reload: Option<String>,
    },
    /// Keep the certificates listed in a YAML file renewed (runs until stopped)
    Agent {
        /// YAML: `certificates: [{cert, key, host_key?, reload?}]`
        #[arg(long)]
        config: PathBuf,
        /// Seconds between checks of each certificate
        #[arg(long, default_value_t = 600)]
        check_every: u64,
        /// First retry delay after a failure, in milliseconds (doubles up to --check-every)
        #[arg(long, default_value_t = 30_000)]
        retry_min_ms: u64,
    },
    /// Revoke a certificate this account ordered
    Revoke {
        /// Account key, an OpenSSH private key [default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa,
        /// the first that exists]
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value = "unspecified")]
        reason: String,
        cert: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Let the account of KEY get user certificates for principals, or host certificates for
    /// names, matching the globs
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["principals", "hosts"])))]
    Allow {
        #[arg(long, env = "SSH_CA_DIR")]
        dir: PathBuf,
        /// The account's public key
        #[arg(long)]
        key: PathBuf,
        #[arg(long = "principal")]
        principals: Vec<String>,
        /// Host names or addresses (globs)
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Make an external account binding key: the account that registers with it gets these
    /// grants (prints the key id and the MAC key to give to the account's owner)
    #[command(group(clap::ArgGroup::new("eab_what").required(true).multiple(true).args(["principals", "hosts"])))]
    EabCreate {
        #[arg(long, env = "SSH_CA_DIR")]
        dir: PathBuf,
        #[arg(long = "principal")]
        principals: Vec<String>,
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum IssueCommand {
    /// A user certificate for KEY (the account key is the certificate's key)
    User {
        /// Account key, an OpenSSH private key [default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa,
        /// the first that exists]
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long = "principal", required = true)]
        principals: Vec<String>,
        /// Validity, e.g. 8h (capped by the CA's policy)
        #[arg(long)]
        validity: Option<String>,
        /// Where to write the certificate [default: KEY-cert.pub]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A host certificate for the names, proven by ssh-hostkey-01 against this host's sshd
    Host {
        /// Account key, an OpenSSH private key [default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa,
        /// the first that exists]
        #[arg(long)]
        key: Option<PathBuf>,
        /// The host's private key (the certificate's key; signs the proof of possession)
        #[arg(long)]
        host_key: PathBuf,
        #[arg(long = "name", required = true, value_hint = clap::ValueHint::Hostname)]
        names: Vec<String>,
        /// Where to write the certificate [default: HOST_KEY-cert.pub]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Command to run after the certificate is written (e.g. systemctl reload ssh)
        #[arg(long)]
        reload: Option<String>,
        /// Prove the names with http-01 by writing the answers under this web root
        /// (DIR/.well-known/acme-challenge/) instead of with ssh-hostkey-01
        #[arg(long)]
        http_01_dir: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut std::io::stdout().lock()) {
        Ok(code) => code,
        Err(e) => super::report_error("ssh-acme", &e, exit_code(&e)),
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(a) = e.downcast_ref::<agent::AgentError>() {
        return a.exit_code();
    }
    if let Some(c) = e.downcast_ref::<ClientError>() {
        return match c {
            ClientError::Problem(_) => 1,
            ClientError::Http { .. } => 3,
        };
    }
    if let Some(crate::acme::tls::TlsError::File { .. }) = e.downcast_ref() {
        return 4;
    }
    match e.downcast_ref::<CaError>() {
        Some(CaError::BadInput { .. } | CaError::Options(_) | CaError::Validity(_)) | None => 2,
        Some(_) => 4,
    }
}

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
    // Client commands only: a stale SSH_ACME_TLS_CA must not stop `serve`.
    let server = || -> Result<String> {
        if let Some(ca) = &cli.tls_ca {
            crate::acme::tls::trust(ca)?;
        }
        cli.server
            .clone()
            .ok_or_else(|| anyhow!("give --server URL (or SSH_ACME_SERVER)"))
    };
    match command {
        Command::Serve {
            dir,
            config,
            settings,
        } => {
            let file = match &config {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?;
                    serde_yaml::from_str(&text).map_err(|e| CaError::Config {
                        path: path.clone(),
                        why: e.to_string(),
                    })?
                }
                None => ServeSettings::default(),
            };
            run_server(&dir, settings.over(file).resolve()?, out)
        }
        Command::Account {
            command:
                AccountCommand::Allow {
                    dir,
                    key,
                    principals,
                    hosts,
                },
        } => allow(&dir, &key, &principals, &hosts, out),
        Command::Account {
            command:
                AccountCommand::EabCreate {
                    dir,
                    principals,
                    hosts,
                },
        } => eab_create(&dir, principals, hosts, out),
        Command::Register {
            key,
            contact,
            eab_kid,
            eab_hmac_key,
        } => {
            let mut c = Client::new(&server()?, read_private(&account_key(key)?)?)?;
            let eab = eab_kid.as_deref().zip(eab_hmac_key.as_deref());
            let kid = c.register_with(&contact, eab)?;
            writeln!(out, "{kid}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::KeyChange { key, new_key } => {
            let mut c = Client::new(&server()?, read_private(&account_key(key)?)?)?;
            c.change_key(read_private(&new_key)?)?;
            writeln!(
                out,
                "{} now uses {}",
                c.account_url().unwrap_or_default(),
                new_key.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deactivate { key } => {
            let mut c = Client::new(&server()?, read_private(&account_key(key)?)?)?;
            c.deactivate()?;
            writeln!(out, "{} deactivated", c.account_url().unwrap_or_default())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Orders { key } => {
            let mut c = Client::new(&server()?, read_private(&account_key(key)?)?)?;
            for o in c.orders()? {
                writeln!(out, "{o}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Issue { what } => issue(what, &server()?, out),
        Command::Agent {
            config,
            check_every,
            retry_min_ms,
        } => run_agent(
            &server()?,
            &config,
            agent::Pace {
                check_every: Duration::from_secs(check_every.max(1)),
                retry_min: Duration::from_millis(retry_min_ms.max(1)),
            },
        ),
        Command::Renew {
            key,
            cert,
            host_key,
            force,
            reload,
        } => renew(
            &server()?,
            &agent::Target {
                // A user certificate's own key is its account key; a host's is not.
                key: account_key(
                    key.or_else(|| host_key.is_none().then(|| key_of_cert(&cert)).flatten()),
                )?,
                cert,
                host_key,
                force,
                reload,
            },
            out,
        ),
        Command::Revoke { key, reason, cert } => {
            let mut c = Client::new(&server()?, read_private(&account_key(key)?)?)?;
            let text = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading {}", cert.display()))?;
            c.revoke(text.trim(), &reason)?;
            writeln!(out, "revoked {}", cert.display())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn issue(what: IssueCommand, server: &str, out: &mut dyn Write) -> Result<ExitCode> {
    let (cert, target, reload) = match what {
        IssueCommand::User {
            key,
            principals,
            validity,
            out: target,
        } => {
            let key = account_key(key)?;
            let private = read_private(&key)?;
            let mut c = Client::new(server, private.clone())?;
            let cert = c.issue_user(&private, &principals, validity.as_deref())?;
            (cert, target.unwrap_or_else(|| cert_path(&key)), None)
        }
        IssueCommand::Host {
            key,
            host_key,
            names,
            out: target,
            reload,
            http_01_dir,
        } => {
            let host = read_private(&host_key)?;
            let mut c = Client::new(server, read_private(&account_key(key)?)?)?;
            let proof = match http_01_dir {
                Some(dir) => Proof::Http01 { webroot: dir },
                None => Proof::SshHostKey,
            };
            let cert = c.issue_host(&host, &names, &proof)?;
            (cert, target.unwrap_or_else(|| cert_path(&host_key)), reload)
        }
    };
    install(&cert, &target, reload.as_deref(), out)
}

fn install(
    cert: &str,
    target: &Path,
    reload: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    agent::install(cert, target, reload)?;
    writeln!(out, "{}", target.display())?;
    Ok(ExitCode::SUCCESS)
}

fn renew(server: &str, t: &agent::Target, out: &mut dyn Write) -> Result<ExitCode> {
    match agent::renew_once(server, t, crate::ca::unix_now())? {
        agent::Outcome::NotDue { opens } => writeln!(
            out,
            "{}: not due; the renewal window opens at {}",
            t.cert.display(),
            crate::ca::validity::display_bound(opens, true)
        )?,
        agent::Outcome::Renewed => writeln!(out, "{}", t.cert.display())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the agent until the process is stopped.
fn run_agent(server: &str, config: &Path, pace: agent::Pace) -> Result<ExitCode> {
    let _log = super::init_logging(None)?;
    let targets = agent::read_config(config)?;
    let exec = crate::sched::Builder::new()
        .thread_name("ssh-acme-agent")
        .build()?;
    let _stats = agent::start(&exec, server, targets, pace);
    loop {
        std::thread::park();
    }
}

fn cert_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push("-cert.pub");
    PathBuf::from(s)
}

/// The private key next to a certificate named the OpenSSH way (KEY-cert.pub), if it exists.
fn key_of_cert(cert: &Path) -> Option<PathBuf> {
    let name = cert.file_name()?.to_str()?.strip_suffix("-cert.pub")?;
    let key = cert.with_file_name(name);
    key.is_file().then_some(key)
}

/// The account key: the one given, else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
fn account_key(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(k) = given {
        return Ok(k);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("no --key given and HOME is not set"))?;
    let ssh = Path::new(&home).join(".ssh");
    let tried: Vec<PathBuf> = ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| ssh.join(n))
        .collect();
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let names: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        anyhow!(
            "no account key: give --key, or create one of {} (ssh-keygen -t ed25519)",
            names.join(", ")
        )
    })
}

fn read_private(path: &Path) -> Result<PrivateKey> {
    Ok(agent::read_private(path)?)
}

fn allow(
    dir: &Path,
    key: &Path,
    principals: &[String],
    hosts: &[String],
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let ca = Ca::open(dir)?;
    let text = std::fs::read_to_string(key).map_err(|e| CaError::io(key, e))?;
    let public = PublicKey::from_openssh(text.trim()).map_err(|e| CaError::BadInput {
        path: key.to_path_buf(),
        why: format!("not an OpenSSH public key: {e}"),
    })?;
    store::init(ca.store_connection())?;
    let fp = fingerprint(&public);
    store::grant(ca.store_connection(), &fp, "principal", principals)?;
    store::grant(ca.store_connection(), &fp, "host", hosts)?;
    if !principals.is_empty() {
        writeln!(
            out,
            "account {fp} may get user certificates for {}",
            principals.join(", ")
        )?;
    }
    if !hosts.is_empty() {
        writeln!(
            out,
            "account {fp} may get host certificates for {}",
            hosts.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn eab_create(
    dir: &Path,
    principals: Vec<String>,
    hosts: Vec<String>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use ssh_key::rand_core::Rng;
    let ca = Ca::open(dir)?;
    store::init(ca.store_connection())?;
    let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
    let (mut kid, mut mac) = ([0u8; 12], [0u8; 32]);
    rng.fill_bytes(&mut kid);
    rng.fill_bytes(&mut mac);
    let eab = store::Eab {
        kid: Base64UrlUnpadded::encode_string(&kid),
        mac_key: Base64UrlUnpadded::encode_string(&mac),
        principals,
        hosts,
        used_by: None,
    };
    store::create_eab(ca.store_connection(), &eab, crate::ca::unix_now())?;
    writeln!(out, "eab-kid: {}\neab-hmac-key: {}", eab.kid, eab.mac_key)?;
    Ok(ExitCode::SUCCESS)
}

/// `serve` settings: flags, or a `--config` YAML file; a flag given on the command line wins.
#[derive(clap::Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeSettings {
    /// Address to listen on (loopback unless told otherwise; port 0 picks a free one)
    /// [default: 127.0.0.1:14000]
    #[arg(long)]
    listen: Option<String>,
    /// The URL clients reach the server at [default: http://<listen address>]
    #[arg(long)]
    base_url: Option<String>,
    /// Read the CA key passphrase from this file
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Milliseconds a request may wait for a worker before it is refused as rate limited
    /// [default: 10000]
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Milliseconds a client has to send a request's headers, then its body, and that a
    /// keep-alive connection may sit idle [default: 10000]
    #[arg(long)]
    read_timeout_ms: Option<u64>,
    /// Connections open at once, in all; more are answered 503 [default: 4096]
    #[arg(long)]
    max_connections: Option<usize>,
    /// Connections open at once from one client address; more are answered 429 [default: 256]
    #[arg(long)]
    max_connections_per_client: Option<usize>,
    /// The port ssh-hostkey-01 connects to [default: 22]
    #[arg(long)]
    challenge_ssh_port: Option<u16>,
    /// The port http-01 fetches from [default: 80]
    #[arg(long)]
    challenge_http_port: Option<u16>,
    /// Milliseconds one challenge validation may take, connect to verdict [default: 10000]
    #[arg(long)]
    challenge_timeout_ms: Option<u64>,
    /// Orders one account may place per minute [default: 300]
    #[arg(long)]
    orders_per_minute: Option<usize>,
    /// New accounts must present an external account binding (ssh-acme account eab-create)
    #[arg(long)]
    #[serde(default)]
    eab_required: bool,
    /// TEST SWITCH: every challenge passes without being checked
    #[arg(long)]
    #[serde(default)]
    test_always_valid: bool,
    /// TEST SWITCH: refuse this percentage of valid nonces (clients must retry badNonce)
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    test_nonce_reject_percent: Option<u8>,
}

impl ServeSettings {
    /// These settings, with `file`'s filling what was not given.
    fn over(self, file: ServeSettings) -> ServeSettings {
        ServeSettings {
            listen: self.listen.or(file.listen),
            base_url: self.base_url.or(file.base_url),
            passphrase_file: self.passphrase_file.or(file.passphrase_file),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            timeout_ms: self.timeout_ms.or(file.timeout_ms),
            read_timeout_ms: self.read_timeout_ms.or(file.read_timeout_ms),
            max_connections: self.max_connections.or(file.max_connections),
            max_connections_per_client: self
                .max_connections_per_client
                .or(file.max_connections_per_client),
            challenge_ssh_port: self.challenge_ssh_port.or(file.challenge_ssh_port),
            challenge_http_port: self.challenge_http_port.or(file.challenge_http_port),
            challenge_timeout_ms: self.challenge_timeout_ms.or(file.challenge_timeout_ms),
            orders_per_minute: self.orders_per_minute.or(file.orders_per_minute),
            eab_required: self.eab_required || file.eab_required,
            test_always_valid: self.test_always_valid || file.test_always_valid,
            test_nonce_reject_percent: self
                .test_nonce_reject_percent
                .or(file.test_nonce_reject_percent),
        }
    }

    /// The edge's limits: the defaults, with what was given.
    fn limits(&self) -> Result<crate::acme::edge::Limits> {
        let mut l = crate::acme::edge::Limits::default();
        if let Some(ms) = self.read_timeout_ms {
            l.header_timeout = Duration::from_millis(ms);
            l.body_timeout = Duration::from_millis(ms);
            l.handshake_timeout = Duration::from_millis(ms);
        }
        l.max_connections = self.max_connections.unwrap_or(l.max_connections);
        l.max_per_client = self.max_connections_per_client.unwrap_or(l.max_per_client);
        if l.max_connections == 0 || l.max_per_client == 0 || l.header_timeout.is_zero() {
            anyhow::bail!(
                "max_connections, max_connections_per_client and read_timeout_ms must be above 0"
            );
        }
        Ok(l)
    }

    fn resolve(self) -> Result<ServeOpts> {
        let limits = self.limits()?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!(
                "--tls-cert and --tls-key (tls_cert and tls_key in --config) go together: \
                 give both or neither"
            ),
        };
        Ok(ServeOpts {
            tls,
            listen: self.listen.unwrap_or_else(|| "127.0.0.1:14000".into()),
            base_url: self.base_url,
            passphrase_file: self.passphrase_file,
            timeout_ms: self.timeout_ms.unwrap_or(10_000),
            limits,
            server: ServerOptions {
                ssh_port: self.challenge_ssh_port.unwrap_or(22),
                http_port: self.challenge_http_port.unwrap_or(80),
                orders_per_minute: self.orders_per_minute.unwrap_or(300),
                eab_required: self.eab_required,
                always_valid: self.test_always_valid,
                nonce_reject_percent: self.test_nonce_reject_percent.unwrap_or(0).min(100),
                challenge_timeout: self.challenge_timeout_ms.map_or(
                    crate::acme::validate::DEFAULT_DEADLINE,
                    Duration::from_millis,
                ),
            },
        })
    }
}

struct ServeOpts {
    listen: String,
    base_url: Option<String>,
    passphrase_file: Option<PathBuf>,
    /// Certificate chain and key files when serving HTTPS.
    tls: Option<(PathBuf, PathBuf)>,
    timeout_ms: u64,
    limits: crate::acme::edge::Limits,
    server: ServerOptions,
}

fn run_server(dir: &Path, o: ServeOpts, out: &mut dyn Write) -> Result<ExitCode> {
    let _log = super::init_logging(Some(&dir.join("ssh-acme.log")))?;
    let ca = Ca::open(dir)?;
    let pass = o.passphrase_file.clone();
    let ask = |p: &Path| -> Result<String, CaError> {
        let f = pass.as_deref().ok_or_else(|| CaError::Key {
            path: p.to_path_buf(),
            why: "the CA key is encrypted: give --passphrase-file".into(),
        })?;
        std::fs::read_to_string(f)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| CaError::io(f, e))
    };
    let signers = (
        ca.signer(CertType::User, &ask)?,
        ca.signer(CertType::Host, &ask)?,
    );
    // TLS files are read before anything listens: a bad file stops the start-up.
    let tls = match &o.tls {
        Some((cert, key)) => Some(crate::acme::tls::server_config(cert, key)?),
        None => None,
    };
    let listen = &o.listen;
    let exec = crate::sched::Builder::new()
        .thread_name("ssh-acme")
        .build()?;
    let timeout = Duration::from_millis(o.timeout_ms);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let start = |addr: std::net::SocketAddr, out: &mut dyn Write| -> Result<_> {
        let base = o
            .base_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"));
        let server =
            AcmeServer::new(ca, signers, base.clone(), o.server).map_err(|p| anyhow!(p))?;
        crate::info!("ssh-acme listening", url = base);
        writeln!(out, "listening on {base}")?;
        out.flush()?;
        Ok(std::sync::Arc::new(server))
    };
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let server = start(listener.local_addr()?, out)?;
    let limits = crate::acme::edge::Limits {
        queue_timeout: timeout,
        ..o.limits
    };
    crate::acme::edge::serve(server, listener, tls, &exec, limits)
        .with_context(|| format!("serving {listen}"))?;
    Ok(ExitCode::SUCCESS)
}
