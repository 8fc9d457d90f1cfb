//! git-surgery recovers from every remote that `git fetch <remote>` reaches from the damaged
//! repository: the remote's URL and everything the repository's config says about fetching
//! (relative paths, `insteadOf`, includes, `uploadpack`, `core.sshCommand`, `http.*`, credential
//! helpers) is taken as git takes it. Each case first shows that `git fetch` itself works with
//! that configuration, then damages the repository and expects repair to end healthy.

use crate::surgery::{Lab, git};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_git-surgery");

/// The HEAD commit is loose in the lab: deleting it loses it locally, the remote has it.
const LOSE_HEAD: &str = r#"rm -f $(objpath $(git rev-parse HEAD))"#;

fn lab_dir(lab: &Lab) -> PathBuf {
    lab.repo.parent().expect("lab dir").to_path_buf()
}

/// `git fetch NAME` works from `dir` with the environment given (before any damage).
fn git_fetch_works(dir: &Path, name: &str, env: &[(&str, &str)]) {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["fetch", "-q", name])
        // As in `repair_in`: the environment of the machine must not carry the setup.
        .env_remove("GIT_SSH_COMMAND")
        .env_remove("GIT_SSL_CAINFO")
        .envs(env.iter().copied())
        .output()
        .expect("git fetch runs");
    assert!(
        o.status.success(),
        "the setup is wrong: git fetch {name} itself fails: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn repair_in(dir: &Path, env: &[(&str, &str)]) -> Output {
    let o = Command::new(BIN)
        .arg("-C")
        .arg(dir)
        .args(["repair", "--json"])
        .env_remove("BITROT_LOG")
        .env_remove("GIT_SSH_COMMAND")
        .env_remove("GIT_SSL_CAINFO")
        .envs(env.iter().copied())
        .output()
        .expect("git-surgery runs");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn fsck_ok(dir: &Path) -> bool {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["fsck", "--full", "--strict", "--no-dangling"])
        .output()
        .expect("git fsck");
    if !o.status.success() {
        eprintln!("fsck: {}", String::from_utf8_lossy(&o.stderr));
    }
    o.status.success()
}

/// Repair in `dir` ends healthy (exit 0, fsck agrees) having fetched from `remote`.
fn assert_recovered(dir: &Path, repo: &Path, remote: &str, env: &[(&str, &str)]) -> Output {
    let o = repair_in(dir, env);
    assert_eq!(
        o.status.code(),
        Some(0),
        "repair recovers through {remote} as git fetch does"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert!(
        v["recovered"]
            .as_array()
            .expect("recovered")
            .iter()
            .any(|r| r["source"] == remote),
        "an object came from {remote}: {v}"
    );
    assert!(fsck_ok(repo), "git fsck agrees");
    o
}

#[test]
fn a_relative_remote_path_is_resolved_from_the_work_tree_top_even_from_a_subdirectory() {
    let lab = Lab::new();
    git(&lab.repo, &["remote", "set-url", "origin", "../remote.git"]);
    std::fs::create_dir_all(lab.repo.join("sub/deeper")).expect("subdir");
    git_fetch_works(&lab.repo.join("sub/deeper"), "origin", &[]);
    lab.sh(LOSE_HEAD);
    assert_recovered(&lab.repo.join("sub/deeper"), &lab.repo, "origin", &[]);
}

#[test]
fn a_relative_remote_path_of_a_bare_repository_is_resolved_from_its_git_dir() {
    let lab = Lab::new();
    let bare = lab_dir(&lab).join("bare.git");
    let o = Command::new("cp")
        .arg("-a")
        .arg(lab.repo.join(".git"))
        .arg(&bare)
        .status()
        .expect("cp");
    assert!(o.success());
    git(&bare, &["config", "core.bare", "true"]);
    git(&bare, &["remote", "set-url", "origin", "../remote.git"]);
    git_fetch_works(&bare, "origin", &[]);
    let head = git(&bare, &["rev-parse", "HEAD"]).trim().to_string();
    std::fs::remove_file(bare.join(format!("objects/{}/{}", &head[..2], &head[2..])))
        .expect("lose the loose HEAD commit");
    assert_recovered(&bare, &bare, "origin", &[]);
}

#[test]
fn a_remote_spelled_through_insteadof_is_rewritten_as_git_rewrites_it() {
    let lab = Lab::new();
    let base = format!("{}/", lab_dir(&lab).display());
    git(
        &lab.repo,
        &["config", &format!("url.{base}.insteadOf"), "lab:"],
    );
    git(
        &lab.repo,
        &["remote", "set-url", "origin", "lab:remote.git"],
    );
    git_fetch_works(&lab.repo, "origin", &[]);
    lab.sh(LOSE_HEAD);
    assert_recovered(&lab.repo, &lab.repo, "origin", &[]);
}

#[test]
fn a_remote_defined_only_in_an_included_file_is_found_and_used() {
    let lab = Lab::new();
    git(&lab.repo, &["remote", "remove", "origin"]);
    // The include is conditional on this repository's git dir and names a path relative to the
    // config file; the remote it defines has a relative URL of its own.
    std::fs::write(
        lab.repo.join(".git/backup.inc"),
        "[remote \"backup\"]\n\turl = ../remote.git\n\tfetch = +refs/heads/*:refs/remotes/backup/*\n",
    )
    .expect("include file");
    // `gitdir:DIR/` is the usual spelling: every repository under DIR.
    let top = lab.repo.canonicalize().expect("canonical");
    git(
        &lab.repo,
        &[
            "config",
            &format!("includeIf.gitdir:{}/.path", top.display()),
            "backup.inc",
        ],
    );
    git_fetch_works(&lab.repo, "backup", &[]);
    lab.sh(LOSE_HEAD);
    assert_recovered(&lab.repo, &lab.repo, "backup", &[]);
}

#[test]
fn a_remotes_uploadpack_command_is_the_one_run() {
    let lab = Lab::new();
    let marker = lab_dir(&lab).join("upload-pack-ran");
    let wrapper = lab_dir(&lab).join("my-upload-pack");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho ran >> '{}'\nexec git-upload-pack \"$@\"\n",
            marker.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let url = format!("file://{}", lab.remote.display());
    git(&lab.repo, &["remote", "set-url", "origin", &url]);
    git(
        &lab.repo,
        &[
            "config",
            "remote.origin.uploadpack",
            &wrapper.to_string_lossy(),
        ],
    );
    git_fetch_works(&lab.repo, "origin", &[]);
    std::fs::remove_file(&marker).expect("git fetch ran the wrapper");
    lab.sh(LOSE_HEAD);
    assert_recovered(&lab.repo, &lab.repo, "origin", &[]);
    assert!(
        marker.exists(),
        "repair's fetch ran remote.origin.uploadpack"
    );
}

/// A child process killed and reaped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git_output(args: &[&str]) -> String {
    let o = Command::new("git").args(args).output().expect("git runs");
    assert!(o.status.success(), "git {args:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for_port(port: u16) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "server listens");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn objects_are_recovered_from_git_daemon_through_an_insteadof_alias() {
    let lab = Lab::new();
    let port = free_port();
    // git-daemon itself, not `git daemon`: the `git` wrapper runs it as a child, so killing the
    // wrapper would leave the daemon running (holding the test's stdout open).
    let exec_path = git_output(&["--exec-path"]);
    let _daemon = Server(
        Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", lab_dir(&lab).display()))
            .arg(lab_dir(&lab))
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts"),
    );
    wait_for_port(port);
    git(
        &lab.repo,
        &[
            "config",
            &format!("url.git://127.0.0.1:{port}/.insteadOf"),
            "daemon:",
        ],
    );
    git(
        &lab.repo,
        &["remote", "set-url", "origin", "daemon:remote.git"],
    );
    git_fetch_works(&lab.repo, "origin", &[]);
    lab.sh(LOSE_HEAD);
    assert_recovered(&lab.repo, &lab.repo, "origin", &[]);
}

#[test]
fn core_sshcommand_in_the_repository_config_is_used_for_an_ssh_remote() {
    ssh_remote(SshFrom::Config);
}

#[test]
fn git_ssh_command_in_the_environment_is_used_for_an_ssh_remote() {
    ssh_remote(SshFrom::Environment);
}

enum SshFrom {
    Config,
    Environment,
}

/// An ssh:// remote served by a real sshd on loopback, reached with a certificate only the ssh
/// command given (through the config or the environment) knows about.
fn ssh_remote(from: SshFrom) {
    use crate::ssh_ca;
    let ca = ssh_ca::Lab::new("ed25519");
    let (host_key, host_cert) = ssh_ca::host_setup(&ca);
    let me = ssh_ca::whoami();
    let key = ca.keygen("id_git", "ed25519");
    let cert = ca.sign(
        "id_git",
        &[
            "--user",
            "-I",
            "surgery-remotes",
            "-n",
            &me,
            "-V",
            "-5m:+1h",
        ],
    );
    let (_, known) = ca.export();
    let kh = ca.path("known_hosts_git");
    std::fs::write(&kh, format!("{known}\n")).expect("known_hosts");
    let ssh_cmd = format!(
        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile={} -i {} -o CertificateFile={}",
        kh.display(),
        key.display(),
        cert.display()
    );
    let sshd = ssh_ca::Sshd::start(&ca, &host_key, Some(&host_cert), "AcceptEnv GIT_PROTOCOL\n");
    let lab = Lab::new();
    let url = format!("ssh://{me}@127.0.0.1:{}{}", sshd.port, lab.remote.display());
    git(&lab.repo, &["remote", "set-url", "origin", &url]);
    let env: Vec<(&str, &str)> = match from {
        SshFrom::Config => {
            git(&lab.repo, &["config", "core.sshCommand", &ssh_cmd]);
            vec![]
        }
        SshFrom::Environment => vec![("GIT_SSH_COMMAND", ssh_cmd.as_str())],
    };
    git_fetch_works(&lab.repo, "origin", &env);
    lab.sh(LOSE_HEAD);
    assert_recovered(&lab.repo, &lab.repo, "origin", &env);
}

/// An https git server (git http-backend behind TLS) on a loopback port that wants
/// `Authorization: Basic <auth>`; returns the server, its port and the CA certificate.
fn https_server(lab: &Lab, auth: &str) -> (Server, u16, PathBuf) {
    let dir = lab_dir(lab);
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/git-https-server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&dir)
        .arg(&cert)
        .arg(&key)
        .arg(auth)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port line");
    let port = port.trim().parse().expect("port");
    (Server(child), port, cert)
}

const AUTH: &str = "c3VyZ2VyeTpzM2NyM3QtdG9rZW4="; // surgery:s3cr3t-token

#[test]
fn http_settings_of_the_repository_config_reach_an_https_remote_and_stay_secret() {
    let lab = Lab::new();
    let (_server, port, ca) = https_server(&lab, AUTH);
    let url = format!("https://127.0.0.1:{port}/remote.git");
    git(&lab.repo, &["remote", "set-url", "origin", &url]);
    let unauthenticated = Command::new("git")
        .arg("-C")
        .arg(&lab.repo)
        .args(["-c", &format!("http.sslCAInfo={}", ca.display())])
        .args(["fetch", "-q", "origin"])
        .env_remove("GIT_SSL_CAINFO")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git fetch");
    assert!(
        !unauthenticated.status.success(),
        "the server really wants credentials"
    );
    git(
        &lab.repo,
        &["config", "http.sslCAInfo", &ca.to_string_lossy()],
    );
    git(
        &lab.repo,
        &[
            "config",
            &format!("http.https://127.0.0.1:{port}/.extraHeader"),
            &format!("Authorization: Basic {AUTH}"),
        ],
    );
    git_fetch_works(&lab.repo, "origin", &[]);
    lab.sh(LOSE_HEAD);
    let o = assert_recovered(&lab.repo, &lab.repo, "origin", &[]);
    let log = std::fs::read_to_string(lab.repo.join(".git/surgery/log.jsonl")).expect("log");
    for (what, text) in [
        (
            "the report",
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ),
        ("stderr", String::from_utf8_lossy(&o.stderr).into_owned()),
        ("the log", log),
    ] {
        assert!(!text.contains(AUTH), "{what} does not show the credential");
    }
}

#[test]
fn a_credential_helper_of_the_repository_config_answers_an_https_remote() {
    let lab = Lab::new();
    let (_server, port, ca) = https_server(&lab, AUTH);
    let store = lab_dir(&lab).join("credentials");
    std::fs::write(
        &store,
        format!("https://surgery:s3cr3t-token@127.0.0.1:{port}\n"),
    )
    .expect("credential store");
    git(
        &lab.repo,
        &[
            "remote",
            "set-url",
            "origin",
            &format!("https://surgery@127.0.0.1:{port}/remote.git"),
        ],
    );
    git(
        &lab.repo,
        &["config", "http.sslCAInfo", &ca.to_string_lossy()],
    );
    git(
        &lab.repo,
        &[
            "config",
            "credential.helper",
            &format!("store --file={}", store.display()),
        ],
    );
    let env = [("GIT_TERMINAL_PROMPT", "0")];
    git_fetch_works(&lab.repo, "origin", &env);
    lab.sh(LOSE_HEAD);
    assert_recovered(&lab.repo, &lab.repo, "origin", &env);
}
