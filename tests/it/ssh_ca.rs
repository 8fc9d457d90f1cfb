//! ssh-ca against the real thing: ssh-keygen and a real sshd on a loopback port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ssh-ca");

/// A scratch directory with a CA and helpers to run ssh-ca and ssh-keygen in it.
pub(crate) struct Lab {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
}

/// A policy with room for the edge cases the tests need (long backdating, custom options).
const TEST_CONFIG: &str = r#"
profiles:
  user:
    cert_type: user
    principals: ["*"]
    default_validity: 1h
    max_validity: 2d
    backdate: 1d
    extensions: [permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc, foo@example.com]
    critical_options: [force-command, source-address, verify-required, foo@example.com]
  narrow:
    cert_type: user
    principals: ["deploy-*"]
    default_validity: 1h
    max_validity: 8h
    extensions: [permit-pty]
  host:
    cert_type: host
    principals: ["*"]
    default_validity: 1d
    max_validity: 30d
    backdate: 1d
"#;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    eprintln!(
        "$ {cmd:?}\n-> {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Lab {
    pub(crate) fn new(key_type: &str) -> Lab {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let lab = Lab { _tmp: tmp, dir };
        let out = lab.ca(&["init", "--key-type", key_type]);
        assert!(out.status.success(), "init: {}", text(&out));
        std::fs::write(lab.ca_dir().join("config.yaml"), TEST_CONFIG).expect("config");
        lab
    }

    pub(crate) fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn ca(&self, args: &[&str]) -> Output {
        run(Command::new(BIN)
            .args(args)
            .env("SSH_CA_DIR", self.ca_dir())
            .env_remove("SSH_CA_PASSPHRASE")
            .current_dir(&self.dir))
    }

    /// A new key pair `name` / `name.pub` made by ssh-keygen.
    pub(crate) fn keygen(&self, name: &str, kind: &str) -> PathBuf {
        let p = self.path(name);
        let mut args = vec!["-q", "-t", kind, "-N", "", "-C", name, "-f"];
        let ps = p.to_string_lossy().into_owned();
        args.push(&ps);
        assert!(run(Command::new("ssh-keygen").args(&args)).status.success());
        p
    }

    /// Signs `name.pub` with ssh-ca, asserting success; returns the certificate path.
    pub(crate) fn sign(&self, name: &str, args: &[&str]) -> PathBuf {
        let pubkey = format!("{name}.pub");
        let mut all = vec!["sign"];
        all.extend_from_slice(args);
        all.push(&pubkey);
        let out = self.ca(&all);
        assert!(out.status.success(), "sign {args:?}: {}", text(&out));
        self.path(&format!("{name}-cert.pub"))
    }

    /// The serial ssh-ca recorded for the certificate with `key_id`.
    fn serial_of(&self, key_id: &str) -> u64 {
        let out = self.ca(&["--json", "list"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
            .find(|v| v["key_id"] == key_id)
            .and_then(|v| v["serial"].as_u64())
            .expect("a record for the key id")
    }

    pub(crate) fn export(&self) -> (String, String) {
        let out = self.ca(&["--json", "export", "--host-pattern", "localhost,127.0.0.1"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("export json");
        (
            v["trusted_user_ca_keys"]
                .as_str()
                .expect("user")
                .to_string(),
            v["known_hosts"].as_str().expect("host").to_string(),
        )
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A real sshd on a loopback port, killed on drop.
pub(crate) struct Sshd {
    child: Child,
    pub(crate) port: u16,
    log: PathBuf,
}

impl Sshd {
    pub(crate) fn start(lab: &Lab, host_key: &Path, host_cert: Option<&Path>, extra: &str) -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("privsep dir");
        let (user_ca, _) = lab.export();
        std::fs::write(lab.path("trusted_user_ca.pub"), format!("{user_ca}\n")).expect("ca file");
        let krl = lab.path("revoked.krl");
        if !krl.exists() {
            assert!(
                lab.ca(&["krl", "-o", &krl.to_string_lossy()])
                    .status
                    .success()
            );
        }
        let port = free_port();
        let cert_line = host_cert
            .map(|c| format!("HostCertificate {}\n", c.display()))
            .unwrap_or_default();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\n{cert_line}TrustedUserCAKeys {}\nRevokedKeys {}\n\
             AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n\
             PidFile {}\nLogLevel VERBOSE\n{extra}",
            host_key.display(),
            lab.path("trusted_user_ca.pub").display(),
            krl.display(),
            lab.path(&format!("sshd-{port}.pid")).display(),
        );
        let conf = lab.path(&format!("sshd-{port}.conf"));
        std::fs::write(&conf, config).expect("sshd config");
        let log = lab.path(&format!("sshd-{port}.log"));
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&conf)
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("sshd starts");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd { child, port, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh` as the current user with a certificate; host checked against `known_hosts`.
    pub(crate) fn ssh(
        &self,
        key: &Path,
        cert: &Path,
        known_hosts: &str,
        lab: &Lab,
        extra: &[&str],
        command: &str,
    ) -> Output {
        let kh = lab.path(&format!("known_hosts-{}", rand_suffix()));
        std::fs::write(&kh, format!("{known_hosts}\n")).expect("known_hosts");
        let user = whoami();
        let mut cmd = Command::new("ssh");
        cmd.args([
            "-F",
            "/dev/null",
            "-p",
            &self.port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            &format!("UserKnownHostsFile={}", kh.display()),
            "-o",
            "ConnectTimeout=10",
        ])
        .args(["-i"])
        .arg(key)
        .args(["-o", &format!("CertificateFile={}", cert.display())])
        .args(extra)
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null());
        run(&mut cmd)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos() as u64
}

/// A host key with an ssh-ca host certificate for localhost and 127.0.0.1.
pub(crate) fn host_setup(lab: &Lab) -> (PathBuf, PathBuf) {
    let host_key = lab.keygen("ssh_host_ed25519_key", "ed25519");
    let cert = lab.sign(
        "ssh_host_ed25519_key",
        &[
            "--host",
            "-I",
            "host-localhost",
            "-n",
            "localhost,127.0.0.1",
            "-V",
            "-5m:+1d",
        ],
    );
    (host_key, cert)
}

#[test]
fn user_certificates_are_accepted_and_refused_by_a_real_sshd_exactly_as_issued() {
    let lab = Lab::new("ed25519");
    let (host_key, host_cert) = host_setup(&lab);
    let sshd = Sshd::start(&lab, &host_key, Some(&host_cert), "");
    let (_, known) = lab.export();
    let me = whoami();
    let key = lab.keygen("id_user", "ed25519");
    let login = |cert: &Path, cmd: &str| sshd.ssh(&key, cert, &known, &lab, &[], cmd);

    let good = lab.sign(
        "id_user",
        &[
            "--user",
            "-I",
            "alice@example.com",
            "-n",
            &me,
            "-V",
            "-5m:+1h",
            "-O",
            "clear",
            "-O",
            "permit-pty",
        ],
    );
    let out = login(&good, "echo logged-in");
    assert!(
        out.status.success() && text(&out).contains("logged-in"),
        "valid certificate logs in"
    );
    let serial = lab.serial_of("alice@example.com");
    assert!(
        sshd.log()
            .contains(&format!("ID alice@example.com (serial {serial})")),
        "sshd logs key id and serial: {}",
        sshd.log()
    );

    let cases: &[(&str, Vec<&str>)] = &[
        // Policy refuses to issue an already expired certificate, so this one expires in 1 s.
        ("expired", vec!["-I", "old", "-n", &me, "-V", "-1m:+1"]),
        ("wrong principal", vec!["-I", "other", "-n", "nobody-else"]),
        (
            "source-address mismatch",
            vec![
                "-I",
                "elsewhere",
                "-n",
                &me,
                "-O",
                "source-address=10.0.0.0/8",
            ],
        ),
        (
            "unknown critical option",
            vec![
                "-I",
                "crit",
                "-n",
                &me,
                "-O",
                "critical:foo@example.com=bar",
            ],
        ),
    ];
    for (what, args) in cases {
        let name = format!("k-{}", what.replace(' ', "-"));
        let k = lab.keygen(&name, "ed25519");
        let mut all = vec!["--user"];
        all.extend(args.iter().copied());
        let cert = lab.sign(&name, &all);
        if *what == "expired" {
            let t0 = Instant::now();
            while !text(&lab.ca(&["verify", "--principal", &me, &cert.to_string_lossy()]))
                .contains(": expired (at")
            {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "certificate never expired"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let out = sshd.ssh(&k, &cert, &known, &lab, &[], "echo should-not-run");
        assert!(
            !out.status.success() && !text(&out).contains("should-not-run"),
            "{what}: refused by sshd"
        );
    }

    let forced = lab.sign(
        "k-expired",
        &[
            "--user",
            "-I",
            "forced",
            "-n",
            &me,
            "-O",
            "force-command=echo forced",
        ],
    );
    let out = sshd.ssh(
        &lab.path("k-expired"),
        &forced,
        &known,
        &lab,
        &[],
        "echo not-forced",
    );
    assert!(
        text(&out).contains("forced") && !text(&out).contains("not-forced"),
        "force-command is honoured"
    );

    // An untrusted CA: a second ssh-ca signs the same key.
    let other = Lab::new("ed25519");
    std::fs::copy(lab.path("id_user.pub"), other.path("id_user.pub")).expect("copy");
    let foreign = other.sign("id_user", &["--user", "-I", "foreign", "-n", &me]);
    assert!(
        !sshd
            .ssh(&key, &foreign, &known, &lab, &[], "true")
            .status
            .success(),
        "untrusted CA refused"
    );

    // Revocation through our KRL, replaced atomically while sshd runs.
    let out = login(&good, "true");
    assert!(out.status.success());
    assert!(
        lab.ca(&[
            "revoke",
            "--serial",
            &serial.to_string(),
            "--reason",
            "laptop lost"
        ])
        .status
        .success()
    );
    assert!(
        lab.ca(&["krl", "-o", &lab.path("revoked.krl").to_string_lossy()])
            .status
            .success()
    );
    assert!(!login(&good, "true").status.success(), "revoked by our KRL");
    assert!(sshd.log().contains("revoked by file"), "{}", sshd.log());
}

#[test]
fn host_certificates_are_trusted_through_cert_authority_lines_only_for_their_names() {
    let lab = Lab::new("ed25519");
    let (host_key, host_cert) = host_setup(&lab);
    let sshd = Sshd::start(&lab, &host_key, Some(&host_cert), "");
    let me = whoami();
    let key = lab.keygen("id_user", "ed25519");
    let cert = lab.sign("id_user", &["--user", "-I", "u", "-n", &me]);
    let (_, known) = lab.export();
    let out = sshd.ssh(&key, &cert, &known, &lab, &[], "true");
    assert!(
        out.status.success(),
        "host certificate accepted with StrictHostKeyChecking=yes"
    );

    let other = Lab::new("ed25519");
    let (_, other_known) = other.export();
    let out = sshd.ssh(&key, &cert, &other_known, &lab, &[], "true");
    assert!(
        !out.status.success() && text(&out).contains("Host key verification failed"),
        "another CA is not trusted"
    );

    let star = known.replacen("localhost,127.0.0.1", "*", 1);
    let out = sshd.ssh(
        &key,
        &cert,
        &star,
        &lab,
        &["-o", "HostKeyAlias=other.example"],
        "true",
    );
    assert!(
        !out.status.success(),
        "a name the host certificate does not list is refused"
    );
}

#[test]
fn authorized_principals_file_maps_certificate_principals_to_accounts() {
    let lab = Lab::new("ed25519");
    let (host_key, host_cert) = host_setup(&lab);
    let me = whoami();
    std::fs::create_dir_all(lab.path("principals")).expect("dir");
    std::fs::write(lab.path(&format!("principals/{me}")), "zone-web\n").expect("principals");
    let extra = format!(
        "AuthorizedPrincipalsFile {}/principals/%u\n",
        lab.dir.display()
    );
    let sshd = Sshd::start(&lab, &host_key, Some(&host_cert), &extra);
    let (_, known) = lab.export();
    let key = lab.keygen("id_user", "ed25519");
    let zone = lab.sign("id_user", &["--user", "-I", "z", "-n", "zone-web"]);
    assert!(
        sshd.ssh(&key, &zone, &known, &lab, &[], "true")
            .status
            .success(),
        "listed principal logs in"
    );
    let key2 = lab.keygen("id_two", "ed25519");
    let named = lab.sign("id_two", &["--user", "-I", "n", "-n", &me]);
    assert!(
        !sshd
            .ssh(&key2, &named, &known, &lab, &[], "true")
            .status
            .success(),
        "the user name alone no longer suffices"
    );
}

/// The `ssh-keygen -L` text minus the header line (the file name).
fn keygen_l(cert: &Path) -> Vec<String> {
    let out = run(Command::new("ssh-keygen").args(["-L", "-f"]).arg(cert));
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[test]
fn inspect_agrees_with_ssh_keygen_for_every_key_type() {
    for ca_type in ["ed25519", "ecdsa", "rsa"] {
        let lab = Lab::new(ca_type);
        for subject in ["ed25519", "ecdsa", "rsa"] {
            let name = format!("id_{subject}");
            lab.keygen(&name, subject);
            let cert = lab.sign(
                &name,
                &[
                    "--user",
                    "-I",
                    "alice",
                    "-n",
                    "alice,bob",
                    "-V",
                    "-1h:+2h",
                    "-O",
                    "source-address=127.0.0.1/32",
                    "-O",
                    "extension:foo@example.com=bar",
                    "-O",
                    "critical:foo@example.com",
                ],
            );
            let ours = lab.ca(&["inspect", &cert.to_string_lossy()]);
            assert!(ours.status.success());
            let ours: Vec<String> = String::from_utf8_lossy(&ours.stdout)
                .lines()
                .skip(1)
                .map(|l| l.trim_end().to_string())
                .collect();
            let theirs = keygen_l(&cert);
            assert_eq!(
                ours[..theirs.len()],
                theirs[..],
                "CA {ca_type}, subject {subject}: ssh-ca inspect vs ssh-keygen -L"
            );
            assert!(ours.iter().any(|l| l.contains("Issued by this CA: yes")));
        }
    }
}

/// The certificate's wire bytes without nonce and signature. The nonce is the second string;
/// the signature is the last string, so walk the strings from the end of the signature key
/// backwards is not possible: instead strip the known-length tail (signature) by re-reading the
/// blob as a sequence where only the last field matters.
fn body_without_nonce_and_signature(cert: &Path) -> Vec<u8> {
    let line = std::fs::read_to_string(cert).expect("cert");
    let bytes = base64_decode(line.split_whitespace().nth(1).expect("base64 field"));
    let parsed = ssh_key::Certificate::from_openssh(line.trim()).expect("certificate");
    let str_end = |at: usize| {
        at + 4 + u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
    };
    let after_type = str_end(0);
    let after_nonce = str_end(after_type);
    let sig_len = {
        use ssh_key::encoding::Encode;
        parsed.signature().encoded_len().expect("signature length") + 4
    };
    let mut body = bytes[..after_type].to_vec();
    body.extend_from_slice(&bytes[after_nonce..bytes.len() - sig_len]);
    body
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = T.iter().position(|t| *t == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

#[test]
fn ssh_ca_and_ssh_keygen_certificates_differ_only_in_nonce_and_signature() {
    let lab = Lab::new("ed25519");
    lab.keygen("id_a", "ed25519");
    std::fs::copy(lab.path("id_a.pub"), lab.path("id_b.pub")).expect("copy");
    // The same flags for both, but for the validity (ssh-keygen gets the exact one ssh-ca used).
    let same = [
        "-I",
        "same",
        "-n",
        "alice,bob",
        "-z",
        "42",
        "-O",
        "clear",
        "-O",
        "permit-pty",
        "-O",
        "force-command=uptime",
    ];
    let mut ca_args = vec!["--user", "-V", "-5m:+1h"];
    ca_args.extend(same);
    let ours = lab.sign("id_a", &ca_args);
    let before = std::fs::read(&ours).expect("cert");
    let again = lab.ca(&[
        "sign", "--user", "-I", "again", "-n", "u", "-z", "42", "id_b.pub",
    ]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a taken -z serial is bad input: {}",
        text(&again)
    );
    assert!(text(&again).contains("42"), "{}", text(&again));
    assert_eq!(std::fs::read(&ours).expect("cert"), before);
    assert!(!lab.path("id_b-cert.pub").exists());
    // Same inputs to ssh-keygen, with the exact validity ssh-ca recorded.
    let rec = lab.ca(&["--json", "list"]);
    let rec: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&rec.stdout)
            .lines()
            .last()
            .expect("record"),
    )
    .expect("json");
    let validity = format!(
        "0x{:x}:0x{:x}",
        rec["valid_after"].as_u64().expect("after"),
        rec["valid_before"].as_u64().expect("before")
    );
    let out = run(Command::new("ssh-keygen")
        .current_dir(&lab.dir)
        .args(["-q", "-s"])
        .arg(lab.ca_dir().join("user_ca"))
        .args(same)
        .args(["-V", &validity, "id_b.pub"]));
    assert!(out.status.success());
    assert_eq!(
        body_without_nonce_and_signature(&ours),
        body_without_nonce_and_signature(&lab.path("id_b-cert.pub")),
        "every field but nonce and signature is byte-identical"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let lab = Lab::new("ed25519");
    lab.keygen("id_user", "ed25519");
    let before = std::fs::read(lab.ca_dir().join("ca.db")).expect("db");
    let cases: &[(&[&str], &str)] = &[
        (
            &["sign", "--user", "-I", "x", "-n", "a", "id_user"],
            "private key",
        ),
        (
            &[
                "sign",
                "--user",
                "-I",
                "x",
                "-n",
                "a",
                "-V",
                "+1q",
                "id_user.pub",
            ],
            "\"1q\"",
        ),
        (
            &[
                "sign",
                "--user",
                "-I",
                "x",
                "-n",
                "a",
                "-O",
                "permit-teleport",
                "id_user.pub",
            ],
            "permit-teleport",
        ),
        (
            &["sign", "--user", "-I", "x", "-n", "a", "missing.pub"],
            "missing.pub",
        ),
    ];
    for (args, names) in cases {
        let out = lab.ca(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out).contains(names),
            "{args:?}: the error names {names}: {}",
            text(&out)
        );
    }
    assert!(
        !lab.path("id_user-cert.pub").exists(),
        "no certificate written"
    );
    assert_eq!(
        std::fs::read(lab.ca_dir().join("ca.db")).expect("db"),
        before,
        "store untouched"
    );

    let out = lab.ca(&[
        "sign",
        "--profile",
        "narrow",
        "--user",
        "-I",
        "x",
        "-n",
        "root",
        "id_user.pub",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out).contains("\"narrow\"")
            && text(&out).contains("principal \"root\" is not allowed"),
        "{}",
        text(&out)
    );

    std::fs::write(
        lab.ca_dir().join("ca.db"),
        b"this is not sqlite, it is a disk error",
    )
    .expect("corrupt");
    let _ = std::fs::remove_file(lab.ca_dir().join("ca.db-wal"));
    let _ = std::fs::remove_file(lab.ca_dir().join("ca.db-shm"));
    let out = lab.ca(&["list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out).contains("ca.db") && text(&out).contains("damaged"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_ca_directory_or_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new("ed25519");
    let key = lab.ca_dir().join("user_ca");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = lab.ca(&["list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out).contains("user_ca") && text(&out).contains("644"),
        "{}",
        text(&out)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(lab.ca_dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = lab.ca(&["list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out).contains("755"), "{}", text(&out));
}

#[test]
fn a_missing_ca_key_is_a_broken_ca_directory_with_exit_4() {
    let lab = Lab::new("ed25519");
    lab.keygen("id_missing", "ed25519");
    std::fs::rename(lab.ca_dir().join("user_ca"), lab.path("user_ca.moved"))
        .expect("move the key away");
    let out = lab.ca(&[
        "sign",
        "--user",
        "-I",
        "x",
        "-n",
        "root",
        "-V",
        "+1h",
        "id_missing.pub",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("user_ca") && text(&out).contains("cannot read"),
        "{}",
        text(&out)
    );
    assert!(
        !lab.path("id_missing-cert.pub").exists(),
        "nothing is issued"
    );
}

#[test]
fn serials_are_unique_and_never_zero_when_processes_sign_at_once() {
    let lab = Lab::new("ed25519");
    let names: Vec<String> = (0..24).map(|i| format!("k{i}")).collect();
    for n in &names {
        lab.keygen(n, "ed25519");
    }
    let children: Vec<Child> = names
        .chunks(6)
        .map(|chunk| {
            let mut args = vec![
                "sign".to_string(),
                "--user".into(),
                "-I".into(),
                "batch".into(),
                "-n".into(),
                "a".into(),
            ];
            args.extend(chunk.iter().map(|n| format!("{n}.pub")));
            Command::new(BIN)
                .args(&args)
                .env("SSH_CA_DIR", lab.ca_dir())
                .current_dir(&lab.dir)
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    let mut serials: Vec<u64> = names
        .iter()
        .map(|n| {
            let out = run(Command::new("ssh-keygen")
                .args(["-L", "-f"])
                .arg(lab.path(&format!("{n}-cert.pub"))));
            let t = String::from_utf8_lossy(&out.stdout).into_owned();
            t.lines()
                .find_map(|l| l.trim().strip_prefix("Serial: "))
                .expect("serial")
                .parse()
                .expect("number")
        })
        .collect();
    serials.sort_unstable();
    assert_eq!(
        serials,
        (1..=24).collect::<Vec<u64>>(),
        "24 distinct serials from 1, none reused, none 0"
    );
}

#[test]
fn the_audit_chain_detects_an_edited_or_deleted_record() {
    let lab = Lab::new("ed25519");
    for n in ["a", "b", "c"] {
        lab.keygen(n, "ed25519");
        lab.sign(n, &["--user", "-I", n, "-n", "x"]);
    }
    let out = lab.ca(&["audit", "verify"]);
    assert!(
        out.status.success() && text(&out).contains("intact: 3 records"),
        "{}",
        text(&out)
    );
    let db = lab.ca_dir().join("ca.db");
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute(
        "UPDATE audit SET record = replace(record, '\"b\"', '\"mallory\"') WHERE seq = 2",
        [],
    )
    .expect("edit");
    drop(conn);
    let out = lab.ca(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("record 2") && text(&out).contains("edited"),
        "{}",
        text(&out)
    );

    let lab = Lab::new("ed25519");
    for n in ["a", "b"] {
        lab.keygen(n, "ed25519");
        lab.sign(n, &["--user", "-I", n, "-n", "x"]);
    }
    let conn = rusqlite::Connection::open(lab.ca_dir().join("ca.db")).expect("db");
    conn.execute("DELETE FROM audit WHERE seq = 2", [])
        .expect("delete");
    drop(conn);
    let out = lab.ca(&["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a removed last record is detected: {}",
        text(&out)
    );
    // Signing on would chain new records onto the cut and hide it: refused, nothing issued.
    lab.keygen("c", "ed25519");
    let out = lab.ca(&["sign", "--user", "-I", "c", "-n", "x", "c.pub"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("audit log"), "{}", text(&out));
    assert!(!lab.path("c-cert.pub").exists(), "nothing is issued");
    let out = lab.ca(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "still detected: {}", text(&out));
}

#[test]
fn an_encrypted_ca_key_needs_its_passphrase() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "correct horse\n").expect("pw");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ca = |args: &[&str], env: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("SSH_CA_DIR", &dir)
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .env_remove("SSH_CA_PASSPHRASE");
        if let Some(p) = env {
            c.env("SSH_CA_PASSPHRASE", p);
        }
        run(&mut c)
    };
    assert!(
        ca(&["init", "--passphrase-file", &pw.to_string_lossy()], None)
            .status
            .success()
    );
    let key = std::fs::read_to_string(dir.join("user_ca")).expect("key");
    assert!(
        run(Command::new("ssh-keygen")
            .args(["-y", "-P", "", "-f"])
            .arg(dir.join("user_ca")))
        .status
        .code()
            != Some(0),
        "encrypted on disk: {}",
        key.len()
    );
    assert!(
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(tmp.path().join("id")))
        .status
        .success()
    );
    let out = ca(
        &["sign", "--user", "-I", "x", "-n", "a", "id.pub"],
        Some("wrong"),
    );
    assert!(
        !out.status.success() && text(&out).contains("wrong passphrase"),
        "{}",
        text(&out)
    );
    let out = ca(&["sign", "--user", "-I", "x", "-n", "a", "id.pub"], None);
    assert!(
        !out.status.success() && text(&out).contains("passphrase"),
        "no terminal, no passphrase: {}",
        text(&out)
    );
    assert!(
        ca(
            &["sign", "--user", "-I", "x", "-n", "a", "id.pub"],
            Some("correct horse")
        )
        .status
        .success()
    );
    assert!(
        ca(
            &[
                "sign",
                "--user",
                "-I",
                "y",
                "-n",
                "a",
                "--passphrase-file",
                &pw.to_string_lossy(),
                "id.pub"
            ],
            None
        )
        .status
        .success()
    );
}

#[test]
fn a_ca_key_held_in_ssh_agent_signs_without_touching_the_key_file() {
    for ca_type in ["ed25519", "rsa"] {
        let lab = Lab::new(ca_type);
        let sock = lab.path("agent.sock");
        let _agent = KillOnDrop(
            Command::new("ssh-agent")
                .args(["-D", "-a"])
                .arg(&sock)
                .stdout(Stdio::null())
                .spawn()
                .expect("ssh-agent"),
        );
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(10), "agent socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        lab.keygen("id_user", "ed25519");
        let sign = |lab: &Lab| {
            run(Command::new(BIN)
                .args([
                    "sign",
                    "-U",
                    "--user",
                    "-I",
                    "via-agent",
                    "-n",
                    "alice",
                    "id_user.pub",
                ])
                .env("SSH_CA_DIR", lab.ca_dir())
                .env("SSH_AUTH_SOCK", &sock)
                .current_dir(&lab.dir))
        };
        let out = sign(&lab);
        assert_eq!(out.status.code(), Some(4), "key not in the agent yet");
        assert!(
            text(&out).contains("ssh-add") && !lab.path("id_user-cert.pub").exists(),
            "{}",
            text(&out)
        );
        assert!(
            run(Command::new("ssh-add")
                .arg("-q")
                .arg(lab.ca_dir().join("user_ca"))
                .env("SSH_AUTH_SOCK", &sock))
            .status
            .success()
        );
        // Take the key file out of the CA directory: the agent, not the file, signs.
        std::fs::rename(lab.ca_dir().join("user_ca"), lab.path("user_ca.away")).expect("move key");
        assert!(
            sign(&lab).status.success(),
            "{ca_type} CA key in ssh-agent signs"
        );
        let cert = lab.path("id_user-cert.pub");
        let out = lab.ca(&["verify", "--principal", "alice", &cert.to_string_lossy()]);
        assert!(
            out.status.success(),
            "the agent's signature verifies: {}",
            text(&out)
        );
        let listing = String::from_utf8_lossy(
            &run(Command::new("ssh-keygen").args(["-L", "-f"]).arg(&cert)).stdout,
        )
        .into_owned();
        if ca_type == "rsa" {
            assert!(
                listing.contains("using rsa-sha2-512"),
                "RSA CA signs with SHA-512: {listing}"
            );
        }
    }
}

/// A child process killed when the test ends, pass or fail.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn revocations_by_key_id_and_by_key_are_in_the_krl_ssh_keygen_reads() {
    let lab = Lab::new("ed25519");
    for n in ["a", "b", "c", "d"] {
        lab.keygen(n, "ed25519");
    }
    let ca = lab.sign("a", &["--user", "-I", "team-x", "-n", "u"]);
    let cb = lab.sign("b", &["--user", "-I", "team-x", "-n", "u"]);
    let cc = lab.sign("c", &["--user", "-I", "other", "-n", "u"]);
    let cd = lab.sign("d", &["--user", "-I", "keep", "-n", "u"]);
    assert!(
        lab.ca(&["revoke", "--key-id", "team-x", "--reason", "team disbanded"])
            .status
            .success()
    );
    assert!(lab.ca(&["revoke", "--key", "c.pub"]).status.success());
    let krl = lab.path("r.krl");
    assert!(
        lab.ca(&["krl", "-o", &krl.to_string_lossy()])
            .status
            .success()
    );
    for (cert, revoked) in [(&ca, true), (&cb, true), (&cc, true), (&cd, false)] {
        let out = run(Command::new("ssh-keygen")
            .args(["-Q", "-f"])
            .arg(&krl)
            .arg(cert));
        assert_eq!(
            out.status.success(),
            !revoked,
            "{}: ssh-keygen -Q",
            cert.display()
        );
    }
    // `list` agrees with the KRL, key revocations included.
    let listed = lab.ca(&["--json", "list"]);
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let rec: serde_json::Value = serde_json::from_str(line).expect("json line");
        let want = if rec["key_id"] == "keep" {
            "valid"
        } else {
            "revoked"
        };
        assert_eq!(rec["status"], want, "{rec}");
    }
    assert_eq!(
        lab.ca(&["revoke", "--serial", "999"]).status.code(),
        Some(2),
        "an unknown serial is refused"
    );
    let log = std::fs::read_to_string(lab.ca_dir().join("ssh-ca.log")).expect("json log");
    let lines = crate::harness::json_lines(&log);
    assert!(
        lines
            .iter()
            .filter(|l| l["msg"] == "certificate issued")
            .count()
            == 4
    );
    assert!(
        lines
            .iter()
            .any(|l| l["msg"] == "revoked" && l["value"] == "team-x")
    );
    let user_ca = std::fs::read_to_string(lab.ca_dir().join("user_ca")).expect("key");
    let secret_line = user_ca.lines().nth(1).expect("key body");
    assert!(!log.contains(secret_line), "no key material in the log");
}

#[test]
fn stdin_to_stdout_signing_and_list_filters_for_scripts() {
    let lab = Lab::new("ed25519");
    lab.keygen("id_a", "ed25519");
    lab.keygen("id_b", "ed25519");
    let mut child = Command::new(BIN)
        .args(["sign", "--user", "-I", "piped", "-n", "deploy", "-"])
        .env("SSH_CA_DIR", lab.ca_dir())
        .current_dir(&lab.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&std::fs::read(lab.path("id_a.pub")).expect("pub"))
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let cert = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    assert!(!lab.path("id_a-cert.pub").exists() && !lab.path("--cert.pub").exists());

    lab.sign(
        "id_b",
        &["--user", "-I", "short", "-n", "alice,ops", "-V", "-1m:+2h"],
    );
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json", "list"];
        all.extend_from_slice(args);
        let out = lab.ca(&all);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["key_id"]
                    .as_str()
                    .expect("id")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(ids(&[]), ["piped", "short"]);
    assert_eq!(ids(&["--principal", "ops"]), ["short"]);
    assert_eq!(
        ids(&["--expiring-within", "90m"]),
        ["piped"],
        "the 2h certificate expires later than the 1h default one"
    );
    let v = lab.ca(&[
        "--json",
        "verify",
        "--principal",
        "nobody",
        &lab.path("id_b-cert.pub").to_string_lossy(),
    ]);
    assert_eq!(v.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).expect("json");
    assert_eq!(v["valid"], false);
    assert!(
        v["problems"][0]
            .as_str()
            .expect("problem")
            .contains("not a listed principal")
    );
}

#[test]
fn init_builds_the_ca_aside_and_keeps_what_the_directory_already_held() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ca");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("NOTES"), "mine").expect("write");
    let out = run(Command::new(BIN)
        .arg("init")
        .env("SSH_CA_DIR", &dir)
        .env_remove("SSH_CA_PASSPHRASE"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("NOTES")).expect("notes"),
        "mine",
        "the user's file is kept"
    );
    assert!(dir.join("ca.db").is_file() && dir.join("user_ca").is_file());
    use std::os::unix::fs::PermissionsExt;
    for name in [
        "ca.db",
        "ca.db-wal",
        "ca.db-shm",
        "user_ca",
        "host_ca",
        "config.yaml",
    ] {
        let meta = std::fs::metadata(dir.join(name)).expect(name);
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{name} is private"
        );
    }
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["ca".to_string()],
        "no staging directory is left beside the CA"
    );
    let again = run(Command::new(BIN).arg("init").env("SSH_CA_DIR", &dir));
    assert_eq!(again.status.code(), Some(4), "an existing CA is refused");
}

#[test]
fn a_certificate_file_that_cannot_be_written_after_issuing_says_so_with_exit_5() {
    let lab = Lab::new("ed25519");
    lab.keygen("id_blocked", "ed25519");
    std::fs::create_dir(lab.path("id_blocked-cert.pub"))
        .expect("a directory where the file would go");
    let out = lab.ca(&[
        "sign",
        "--user",
        "-I",
        "blocked",
        "-n",
        "root",
        "-V",
        "+1h",
        "id_blocked.pub",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("issued and recorded") && text(&out).contains("serials 1"),
        "the message says what did happen: {}",
        text(&out)
    );
    let list = lab.ca(&["--json", "list"]);
    assert!(
        text(&list).contains("\"blocked\""),
        "the certificate is in the store"
    );
}

#[test]
fn every_krl_version_is_recorded_in_the_audit_chain() {
    let lab = Lab::new("ed25519");
    for _ in 0..2 {
        assert!(
            lab.ca(&["krl", "-o", &lab.path("r.krl").to_string_lossy()])
                .status
                .success()
        );
    }
    let db = rusqlite::Connection::open(lab.ca_dir().join("ca.db")).expect("store opens");
    let versions: Vec<String> = db
        .prepare("SELECT record FROM audit WHERE kind = 'krl' ORDER BY seq")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(
        versions,
        vec![
            r#"{"version":1}"#.to_string(),
            r#"{"version":2}"#.to_string()
        ]
    );
    assert!(
        lab.ca(&["audit", "verify"]).status.success(),
        "the chain stays intact"
    );
}

/// `n` new Ed25519 key pairs `{prefix}000`, `{prefix}001`, …; their names.
fn many_keys(lab: &Lab, prefix: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i:03}")).collect();
    for name in &names {
        lab.keygen(name, "ed25519");
    }
    names
}

/// One `ssh-ca sign` of every `name.pub` (key id "big", principal alice, one hour).
fn sign_all(lab: &Lab, names: &[String]) -> Output {
    let mut args = vec!["sign", "--user", "-I", "big", "-n", "alice", "-V", "+1h"];
    let pubs: Vec<String> = names.iter().map(|n| format!("{n}.pub")).collect();
    args.extend(pubs.iter().map(String::as_str));
    lab.ca(&args)
}

/// ssh-ca's temporary files left in the lab directory.
fn temporary_files(lab: &Lab) -> Vec<String> {
    std::fs::read_dir(&lab.dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.contains(".tmp-"))
        .collect()
}

#[test]
fn a_large_batch_signed_on_every_core_gives_each_key_its_own_certificate_in_order() {
    let lab = Lab::new("ed25519");
    // Above the size from which ssh-ca signs and writes on all cores.
    let names = many_keys(&lab, "b", 100);
    let out = sign_all(&lab, &names);
    assert!(out.status.success(), "{}", text(&out));
    let fingerprint = |p: &Path| {
        let out = run(Command::new("ssh-keygen").arg("-lf").arg(p));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_string()
    };
    for (i, n) in names.iter().enumerate() {
        let cert = lab.path(&format!("{n}-cert.pub"));
        let fields = keygen_l(&cert);
        let field = |name: &str| {
            fields
                .iter()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {fields:?}"))
                .trim()
                .to_string()
        };
        assert_eq!(
            field("Serial:"),
            (i + 1).to_string(),
            "{n}: serials follow the argument order"
        );
        assert!(
            field("Public key:").ends_with(&fingerprint(&lab.path(&format!("{n}.pub")))),
            "{n}: the certificate certifies {n}.pub, not another key of the batch"
        );
        let verdict = lab.ca(&["verify", "--principal", "alice", &cert.to_string_lossy()]);
        assert!(verdict.status.success(), "{n}: {}", text(&verdict));
    }
    let leftovers = temporary_files(&lab);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_large_batch_whose_last_file_cannot_be_written_leaves_no_temporary_files() {
    let lab = Lab::new("ed25519");
    let names = many_keys(&lab, "w", 80);
    std::fs::create_dir(lab.path("w079-cert.pub")).expect("a directory where a file would go");
    let out = sign_all(&lab, &names);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("serials 1, 2, 3"), "{}", text(&out));
    let leftovers = temporary_files(&lab);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn every_certificate_of_a_burst_has_its_line_in_the_json_log() {
    let lab = Lab::new("ed25519");
    lab.keygen("one", "ed25519");
    let public = std::fs::read(lab.path("one.pub")).expect("pub");
    std::fs::create_dir(lab.path("keys")).expect("dir");
    let names: Vec<String> = (0..3000).map(|i| format!("keys/k{i}.pub")).collect();
    for n in &names {
        std::fs::write(lab.path(n), &public).expect("copy");
    }
    // The longest key id the policy allows makes each record large, so the batch's records are
    // several times what one thread's log ring holds and the worker must keep up or the thread
    // must wait.
    let key_id = "x".repeat(bitrot::ca::policy::MAX_KEY_ID_LEN);
    let mut args = vec!["sign", "--user", "-I", &key_id, "-n", "alice", "-V", "+1h"];
    args.extend(names.iter().map(String::as_str));
    let out = lab.ca(&args);
    assert!(out.status.success(), "{}", text(&out));
    let log = std::fs::read_to_string(lab.ca_dir().join("ssh-ca.log")).expect("log");
    let issued = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|v| v["msg"] == "certificate issued")
        .count();
    assert_eq!(issued, 3000, "one log line per certificate");
    assert!(!log.contains("dropped"), "no record was dropped");
}

#[test]
fn audit_verify_finds_an_edited_inventory_row_or_a_deleted_revocation() {
    let lab = Lab::new("ed25519");
    for n in ["a", "b"] {
        lab.keygen(n, "ed25519");
        lab.sign(n, &["--user", "-I", n, "-n", "x"]);
    }
    let out = lab.ca(&["revoke", "--key-id", "b", "--reason", "lost"]);
    assert!(out.status.success(), "{}", text(&out));
    // A repeated revocation is recorded again but does not change the first one.
    let out = lab.ca(&["revoke", "--key-id", "b", "--reason", "again"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.ca(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));

    // Each tampering starts from the intact store and must make verify fail naming it.
    let db = lab.ca_dir().join("ca.db");
    let intact = lab.path("ca.db.orig");
    std::fs::copy(&db, &intact).expect("backup");
    for (sql, says) in [
        (
            "UPDATE certs SET principals = '[\"root\"]' WHERE serial = 1",
            "certificate serial 1 in the inventory differs from this record (edited)",
        ),
        (
            "DELETE FROM revocations",
            "the revocation of key_id b is missing from the store (deleted",
        ),
        (
            "DELETE FROM certs WHERE serial = 2",
            "certificate serial 2 is missing from the inventory (deleted)",
        ),
    ] {
        std::fs::copy(&intact, &db).expect("restore");
        let conn = rusqlite::Connection::open(&db).expect("db");
        conn.execute(sql, []).expect(sql);
        drop(conn);
        let out = lab.ca(&["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{sql}: {}", text(&out));
        assert!(text(&out).contains(says), "{sql}: {}", text(&out));
    }
}

/// Subject keys the CA must never certify: its own keys, DSA, RSA under 2048 bits. Each is a
/// policy refusal (exit 3) that names the rule, and nothing is written.
#[test]
fn weak_keys_and_the_cas_own_keys_are_never_certified() {
    let lab = Lab::new("ed25519");
    std::fs::copy(lab.ca_dir().join("user_ca.pub"), lab.path("own.pub")).expect("copy");
    let rsa1024 = lab.path("rsa1024");
    assert!(
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
            .arg(&rsa1024))
        .status
        .success()
    );
    lab.keygen("dsa", "dsa");
    for (name, rule) in [
        ("own", "this CA's own keys"),
        ("rsa1024", "RSA 1024 bits, at least 2048"),
        ("dsa", "DSA keys are not certified"),
    ] {
        let pubkey = format!("{name}.pub");
        let out = lab.ca(&["sign", "--user", "-I", "x", "-n", "alice", &pubkey]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", text(&out));
        assert!(text(&out).contains(rule), "{name}: {}", text(&out));
        assert!(
            !lab.path(&format!("{name}-cert.pub")).exists(),
            "{name}: nothing written"
        );
    }
    lab.keygen("rsa2048", "rsa");
    lab.sign("rsa2048", &["--user", "-I", "ok", "-n", "alice"]);
}

/// The policy and public keys must not be writable by others, SQLite's side files must be
/// private like the store, and a serial counter set back below issued serials breaks the
/// audit.
#[test]
fn writable_policy_or_public_keys_are_refused_and_a_set_back_serial_counter_is_found() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new("ed25519");
    let chmod = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    for (file, bad, good) in [
        ("config.yaml", 0o666, 0o600),
        ("user_ca.pub", 0o646, 0o644),
        ("host_ca.pub", 0o664, 0o644),
    ] {
        let p = lab.ca_dir().join(file);
        let before = std::fs::metadata(&p).expect("meta").permissions().mode();
        chmod(&p, bad);
        let out = lab.ca(&["list"]);
        assert_eq!(out.status.code(), Some(4), "{file}: {}", text(&out));
        assert!(text(&out).contains(file), "{file}: {}", text(&out));
        chmod(&p, good.max(before & 0o777 & !0o022));
        assert!(lab.ca(&["list"]).status.success(), "{file} fixed");
    }
    lab.keygen("id_a", "ed25519");
    lab.sign("id_a", &["--user", "-I", "a", "-n", "alice"]);
    lab.keygen("id_b", "ed25519");
    lab.sign("id_b", &["--user", "-I", "b", "-n", "alice"]);
    assert!(lab.ca(&["audit", "verify"]).status.success());
    {
        let db = rusqlite::Connection::open(lab.ca_dir().join("ca.db")).expect("db");
        db.execute("UPDATE serial_counter SET next = 2 WHERE id = 1", [])
            .expect("set back");
    }
    let out = lab.ca(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("serial counter"), "{}", text(&out));
}

/// Without --dir or SSH_CA_DIR the CA lives in $XDG_DATA_HOME/ssh-ca (an absolute one),
/// else ~/.local/share/ssh-ca.
#[test]
fn the_default_ca_directory_follows_xdg_data_home() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, xdg) = (tmp.path().join("home"), tmp.path().join("data"));
    std::fs::create_dir_all(&home).expect("home");
    let init = |xdg_value: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ssh-ca"))
            .args(["init", "--key-type", "ed25519"])
            .env_remove("SSH_CA_DIR")
            .env("HOME", &home)
            .env("XDG_DATA_HOME", xdg_value)
            .output()
            .expect("ssh-ca")
    };
    assert!(init(&xdg).status.success());
    assert!(xdg.join("ssh-ca/config.yaml").is_file(), "in XDG_DATA_HOME");
    assert!(init(Path::new("relative/data")).status.success());
    assert!(
        home.join(".local/share/ssh-ca/config.yaml").is_file(),
        "a relative XDG_DATA_HOME is ignored"
    );
}

#[test]
fn revoking_the_ca_key_revokes_every_certificate_it_signed_as_sshd_sees_it() {
    let lab = Lab::new("ed25519");
    lab.keygen("e", "ed25519");
    let cert = lab.sign("e", &["--user", "-I", "e", "-n", "u"]);
    let parsed = ssh_key::Certificate::read_file(&cert).expect("a certificate");
    assert_eq!(
        parsed.nonce().len(),
        32,
        "a 32-byte nonce, as ssh-keygen writes"
    );
    std::fs::copy(lab.ca_dir().join("user_ca.pub"), lab.path("ca-key.pub")).expect("copy");
    let out = lab.ca(&[
        "revoke",
        "--key",
        "ca-key.pub",
        "--reason",
        "CA key compromised",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let krl = lab.path("ca.krl");
    assert!(
        lab.ca(&["krl", "-o", &krl.to_string_lossy()])
            .status
            .success()
    );
    // OpenSSH's own check: a certificate signed by a revoked key is revoked.
    let q = run(Command::new("ssh-keygen")
        .args(["-Q", "-f"])
        .arg(&krl)
        .arg(&cert));
    assert!(!q.status.success(), "ssh-keygen -Q refuses it");
    let v = lab.ca(&["verify", "--principal", "u", &cert.to_string_lossy()]);
    assert!(!v.status.success(), "ssh-ca verify refuses it too");
    assert!(text(&v).contains("revoked"), "{}", text(&v));
    let listed = lab.ca(&["--json", "list"]);
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let rec: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(rec["status"], "revoked", "list agrees: {rec}");
    }
}

/// `-V` means what it means to ssh-keygen: for each CA key type and each form both accept, a
/// certificate from `ssh-ca sign -V SPEC` and one from `ssh-keygen -s -V SPEC` made in the same
/// second have the same validity, as `ssh-keygen -L` prints it.
#[test]
fn validity_arithmetic_matches_ssh_keygen_for_every_key_type() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
    };
    let tomorrow = String::from_utf8_lossy(
        &run(Command::new("date").args(["-d", "tomorrow", "+%Y%m%d"])).stdout,
    )
    .trim()
    .to_string();
    let specs = [
        "+1h".to_string(),
        "+90m".into(),
        "+1d2h".into(),
        "-5m:+1h".into(),
        "-1d:+1d".into(),
        "+1h:+2h".into(),
        "-30s:+45".into(),
        format!("-1h:{tomorrow}"),
    ];
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let lab = Lab::new(kind);
        lab.keygen("id", "ed25519");
        let mut n = 0;
        for spec in &specs {
            let mut matched = false;
            for _attempt in 0..5 {
                n += 1;
                let (k, c) = (format!("k{n}"), format!("c{n}"));
                for name in [&k, &c] {
                    std::fs::copy(lab.path("id.pub"), lab.path(&format!("{name}.pub")))
                        .expect("copy");
                }
                // ssh-keygen's time(2) reads the coarse clock, which lags the precise one by up
                // to a tick: start well after a second boundary, so both read the same second.
                while now().subsec_millis() < 100 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let t0 = now().as_secs();
                let out = run(Command::new("ssh-keygen")
                    .current_dir(&lab.dir)
                    .args(["-q", "-s"])
                    .arg(lab.ca_dir().join("user_ca"))
                    .args(["-I", "v", "-n", "alice", "-V", spec])
                    .arg(format!("{k}.pub")));
                assert!(out.status.success(), "ssh-keygen -V {spec}");
                let ours = lab.sign(&c, &["--user", "-I", "v", "-n", "alice", "-V", spec]);
                if now().as_secs() != t0 {
                    continue; // a second boundary fell between the two: try again
                }
                let valid = |p: &Path| {
                    keygen_l(p)
                        .into_iter()
                        .find(|l| l.trim_start().starts_with("Valid:"))
                        .expect("a Valid: line")
                };
                assert_eq!(
                    valid(&ours),
                    valid(&lab.path(&format!("{k}-cert.pub"))),
                    "-V {spec} with a {kind} CA"
                );
                matched = true;
                break;
            }
            assert!(matched, "-V {spec}: five attempts straddled a second");
        }
    }
}

/// A CA directory or store that cannot be written (read-only bind mounts, in a private user
/// and mount namespace) is named with what to do, exit 4, each cause said once, and nothing is
/// issued; writable again, the same request is issued.
#[test]
fn a_read_only_ca_directory_or_store_is_named_and_nothing_is_issued() {
    let lab = Lab::new("ed25519");
    lab.keygen("id", "ed25519");
    let ca = lab.ca_dir();
    let db = ca.join("ca.db");
    for (what, target, words) in [
        ("directory", &ca, "cannot open log file"),
        ("store", &db, "cannot be written"),
    ] {
        let script = format!(
            "mount --bind {t} {t} && mount -o remount,ro,bind {t} && exec {BIN} sign --user -I ro -n alice id.pub",
            t = target.display()
        );
        let out = run(Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .env("SSH_CA_DIR", &ca)
            .current_dir(&lab.dir));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(4), "read-only {what}: {t}");
        assert!(
            t.contains(words) && t.contains(&target.display().to_string()),
            "{what}: {t}"
        );
        assert!(!t.contains("readonly database"), "no raw SQLite text: {t}");
        assert!(
            t.matches("Read-only file system").count() <= 1,
            "each cause once: {t}"
        );
        assert!(!lab.path("id-cert.pub").exists(), "{what}");
    }
    lab.sign("id", &["--user", "-I", "ro", "-n", "alice"]);
}
