//! ssh-acme's protocol layer: the SSHSIG request envelope (also against ssh-keygen -Y) and the
//! RFC 8555 state machines.

use bitrot::acme::envelope::{self, Envelope, Protected, Signer};
use bitrot::acme::order::{
    Authorization, AuthzStatus, ChallengeStatus, Order, OrderStatus, cert_id, renewal_window,
};
use bitrot::acme::problem::{Problem, ProblemType};
use proptest::prelude::*;
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, PrivateKey, PublicKey, getrandom::SysRng};
use std::cell::RefCell;
use std::collections::HashSet;
use std::process::Command;

const URL: &str = "http://127.0.0.1:14000/new-order";
const KID: &str = "http://127.0.0.1:14000/account/1";

fn key() -> PrivateKey {
    PrivateKey::random(&mut UnwrapErr(SysRng), Algorithm::Ed25519).expect("key")
}

fn protected(nonce: &str) -> Protected {
    Protected {
        alg: "sshsig".into(),
        nonce: nonce.into(),
        url: URL.into(),
        kid: Some(KID.into()),
        key: None,
    }
}

/// A server's view: issued nonces, each good once; one account.
struct Server {
    nonces: RefCell<HashSet<String>>,
    taken: RefCell<usize>,
    account: PublicKey,
}

impl Server {
    fn new(account: PublicKey) -> Server {
        let nonces = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        Server {
            nonces: RefCell::new(nonces),
            taken: RefCell::new(0),
            account,
        }
    }

    fn check(&self, body: &[u8], url: &str) -> Result<envelope::Verified, Problem> {
        envelope::verify(
            body,
            url,
            |n| {
                *self.taken.borrow_mut() += 1;
                self.nonces.borrow_mut().remove(n)
            },
            |kid| (kid == KID).then(|| self.account.clone()),
        )
    }
}

fn body(e: &Envelope) -> Vec<u8> {
    serde_json::to_vec(e).expect("json")
}

#[test]
fn a_signed_request_verifies_once_and_every_tampering_is_refused_with_its_problem() {
    let k = key();
    let server = Server::new(k.public_key().clone());
    let env = envelope::sign(&k, &protected("n1"), br#"{"identifiers":[]}"#).expect("sign");
    let ok = server.check(&body(&env), URL).expect("valid request");
    assert_eq!(ok.payload, br#"{"identifiers":[]}"#);
    assert_eq!(ok.signer, Signer::Account(KID.into()));
    let again = server.check(&body(&env), URL).expect_err("replayed");
    assert_eq!(again.kind, ProblemType::BadNonce);

    let kind = |b: &[u8], url: &str| server.check(b, url).expect_err("refused").kind;
    let fresh = envelope::sign(&k, &protected("n2"), b"{}").expect("sign");
    assert_eq!(
        kind(&body(&fresh), "http://127.0.0.1:14000/other"),
        ProblemType::Unauthorized,
        "url mismatch"
    );
    let mut tampered = fresh.clone();
    tampered.payload = "e30x".into();
    assert_eq!(
        kind(&body(&tampered), URL),
        ProblemType::Unauthorized,
        "tampered payload"
    );
    let other = envelope::sign(&key(), &protected("n2"), b"{}").expect("sign");
    assert_eq!(
        kind(&body(&other), URL),
        ProblemType::Unauthorized,
        "signed by another key"
    );
    let taken_before = *server.taken.borrow();
    assert_eq!(taken_before, 2, "forged requests consumed no nonce");
    assert!(
        server.check(&body(&fresh), URL).is_ok(),
        "n2 is still good after the forgeries"
    );

    let mut both = protected("n3");
    both.key = Some(k.public_key().to_openssh().expect("openssh"));
    assert_eq!(
        kind(&body(&envelope::sign(&k, &both, b"").expect("sign")), URL),
        ProblemType::Malformed
    );
    let mut alg = protected("n3");
    alg.alg = "ES256".into();
    assert_eq!(
        kind(&body(&envelope::sign(&k, &alg, b"").expect("sign")), URL),
        ProblemType::BadSignatureAlgorithm
    );
    let mut nobody = protected("n3");
    nobody.kid = Some("http://127.0.0.1:14000/account/999".into());
    assert_eq!(
        kind(&body(&envelope::sign(&k, &nobody, b"").expect("sign")), URL),
        ProblemType::AccountDoesNotExist
    );
    assert_eq!(kind(b"{not json", URL), ProblemType::Malformed);
    let mut bad64 = envelope::sign(&k, &protected("n3"), b"").expect("sign");
    bad64.signature = "***".into();
    assert_eq!(kind(&body(&bad64), URL), ProblemType::Malformed);
    let problem = server.check(b"[]", URL).expect_err("refused");
    let json: serde_json::Value = serde_json::from_str(&problem.to_json()).expect("problem json");
    assert_eq!(json["type"], "urn:ietf:params:acme:error:malformed");
    assert_eq!(json["status"], 400);
}

fn b64url(b: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(b)
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_client_made_of_ssh_keygen_y_sign_is_accepted_and_our_signatures_verify_with_ssh_keygen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyfile = dir.path().join("acct");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&keyfile));
    let public = PublicKey::read_openssh_file(dir.path().join("acct.pub")).expect("pub");
    let server = Server::new(public.clone());

    // What a shell client does: base64url the header and payload, sign "protected.payload".
    let prot = b64url(&serde_json::to_vec(&protected("n1")).expect("json"));
    let payload = b64url(br#"{"certType":"user"}"#);
    let input = dir.path().join("input");
    std::fs::write(&input, format!("{prot}.{payload}")).expect("input");
    run(Command::new("ssh-keygen")
        .args(["-Y", "sign", "-q", "-n", "ssh-acme-v1", "-f"])
        .arg(&keyfile)
        .arg(&input));
    let armoured = std::fs::read_to_string(dir.path().join("input.sig")).expect("sig");
    let inner: String = armoured
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64ct::{Base64, Encoding};
    let blob = Base64::decode_vec(&inner).expect("armour body");
    let env = Envelope {
        protected: prot,
        payload,
        signature: b64url(&blob),
    };
    let ok = server
        .check(&body(&env), URL)
        .expect("ssh-keygen's signature is accepted");
    assert_eq!(ok.payload, br#"{"certType":"user"}"#);

    // And the other way: our envelope's signature checks with ssh-keygen -Y verify.
    let private = PrivateKey::read_openssh_file(&keyfile).expect("key");
    let ours = envelope::sign(&private, &protected("n2"), b"{}").expect("sign");
    let sig = Base64::encode_string(
        &base64ct::Base64UrlUnpadded::decode_vec(&ours.signature).expect("b64"),
    );
    let wrapped: Vec<String> = sig
        .as_bytes()
        .chunks(70)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    std::fs::write(
        dir.path().join("ours.sig"),
        format!(
            "-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n",
            wrapped.join("\n")
        ),
    )
    .expect("sig file");
    std::fs::write(
        dir.path().join("allowed"),
        format!("acct {}\n", public.to_openssh().expect("pub")),
    )
    .expect("allowed");
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "ssh-acme-v1", "-I", "acct", "-f"])
        .arg(dir.path().join("allowed"))
        .arg("-s")
        .arg(dir.path().join("ours.sig"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(format!("{}.{}", ours.protected, ours.payload).as_bytes())?;
            c.wait_with_output()
        })
        .expect("ssh-keygen -Y verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug, Clone)]
enum Event {
    Start(usize),
    Finish(usize, bool),
    Deactivate,
    Revoke,
    Tick(u64),
    Finalize,
    Issued(bool),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0usize..2).prop_map(Event::Start),
        (0usize..2, any::<bool>()).prop_map(|(i, ok)| Event::Finish(i, ok)),
        Just(Event::Deactivate),
        Just(Event::Revoke),
        (0u64..50).prop_map(Event::Tick),
        Just(Event::Finalize),
        any::<bool>().prop_map(Event::Issued),
    ]
}

fn allowed_order(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::*;
    from == to
        || matches!(
            (from, to),
            (Pending, Ready)
                | (Ready, Processing)
                | (Processing, Valid)
                | (Pending | Ready | Processing, Invalid)
        )
}

fn allowed_authz(from: AuthzStatus, to: AuthzStatus) -> bool {
    use AuthzStatus::*;
    from == to
        || matches!(
            (from, to),
            (Pending, Valid | Invalid | Expired | Deactivated)
                | (Valid, Expired | Deactivated | Revoked)
        )
}

proptest! {
    /// Whatever happens in whatever order, statuses only move along RFC 8555's edges, finished
    /// orders stay finished, and an order is ready only with its authorization valid.
    #[test]
    fn state_machines_only_move_along_rfc_8555_edges(events in prop::collection::vec(event(), 1..40)) {
        let mut now = 0u64;
        let mut authz = Authorization::new(100, 2);
        let mut order = Order::new(120);
        for e in events {
            let (a0, o0) = (authz.status, order.status);
            let challenges0: Vec<ChallengeStatus> = authz.challenges.iter().map(|c| c.status).collect();
            match e {
                Event::Start(i) => { let _ = authz.challenges[i].start(); }
                Event::Finish(i, ok) => {
                    let r = if ok { Ok(()) } else { Err(Problem::new(ProblemType::Unauthorized, "key mismatch")) };
                    let _ = authz.challenges[i].finish(r, now);
                }
                Event::Deactivate => { let _ = authz.deactivate(); }
                Event::Revoke => { let _ = authz.revoke(); }
                Event::Tick(d) => now += d,
                Event::Finalize => { let _ = order.finalize(); }
                Event::Issued(ok) => {
                    let r = if ok { Ok(()) } else { Err(Problem::new(ProblemType::ServerInternal, "signing failed")) };
                    let _ = order.issued(r);
                }
            }
            let a1 = authz.refresh(now);
            let o1 = order.refresh(&[a1], now);
            prop_assert!(allowed_authz(a0, a1), "authorization {:?} -> {:?}", a0, a1);
            prop_assert!(allowed_order(o0, o1), "order {:?} -> {:?}", o0, o1);
            for (c0, c1) in challenges0.iter().zip(authz.challenges.iter().map(|c| c.status)) {
                use ChallengeStatus::*;
                prop_assert!(*c0 == c1 || matches!((c0, c1), (Pending, Processing) | (Processing, Valid | Invalid)));
            }
            if o1 == OrderStatus::Ready {
                prop_assert_eq!(a1, AuthzStatus::Valid);
            }
        }
    }
}

#[test]
fn finalizing_an_order_that_is_not_ready_is_order_not_ready() {
    let mut order = Order::new(100);
    assert_eq!(
        order.finalize().expect_err("pending").kind,
        ProblemType::OrderNotReady
    );
    let mut authz = Authorization::new(100, 1);
    authz.challenges[0].start().expect("start");
    authz.challenges[0].finish(Ok(()), 5).expect("finish");
    assert_eq!(order.refresh(&[authz.refresh(5)], 5), OrderStatus::Ready);
    order.finalize().expect("ready");
    order.issued(Ok(())).expect("issued");
    assert_eq!(order.status, OrderStatus::Valid);
    assert_eq!(
        order.refresh(&[AuthzStatus::Revoked], 500),
        OrderStatus::Valid,
        "valid stays valid"
    );
}

#[test]
fn renewal_starts_in_the_last_third_and_cert_ids_have_the_rfc_9773_shape() {
    assert_eq!(renewal_window(0, 300), (200, 300));
    assert_eq!(
        renewal_window(1000, 1000 + 8 * 3600),
        (1000 + 8 * 3600 - 8 * 1200, 1000 + 8 * 3600)
    );
    let id = cert_id(b"ca key blob", 258);
    let (ca, serial) = id.split_once('.').expect("two parts");
    assert_eq!(ca.len(), 43, "base64url of 32 bytes, unpadded");
    assert_eq!(serial, "AAAAAAAAAQI", "258 as 8 big-endian bytes");
}

// ---- the server and client, end to end ----

use crate::acme as this;
use crate::ssh_ca::{Lab, Sshd, host_setup, text, whoami};
use std::path::Path;
use std::process::{Child, Stdio};

const ACME: &str = env!("CARGO_BIN_EXE_ssh-acme");

/// A running `ssh-acme serve` on a free loopback port, killed on drop.
pub(crate) struct AcmeServerProc {
    child: Child,
    pub(crate) url: String,
}

impl AcmeServerProc {
    pub(crate) fn start(lab: &Lab) -> AcmeServerProc {
        AcmeServerProc::start_with(lab, &[])
    }

    pub(crate) fn start_with(lab: &Lab, extra: &[&str]) -> AcmeServerProc {
        AcmeServerProc::start_on(lab, "127.0.0.1:0", extra)
    }

    pub(crate) fn start_on(lab: &Lab, listen: &str, extra: &[&str]) -> AcmeServerProc {
        let mut child = Command::new(ACME)
            .args(["serve", "--listen", listen, "--dir"])
            .arg(lab.ca_dir())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-acme serve");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("banner");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_string();
        AcmeServerProc { child, url }
    }

    pub(crate) fn client(&self, lab: &Lab, args: &[&str]) -> std::process::Output {
        self.client_env(lab, args, &[])
    }

    /// `client` with extra environment variables.
    fn client_env(&self, lab: &Lab, args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
        let out = Command::new(ACME)
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&lab.dir)
            .output()
            .expect("client");
        eprintln!("ssh-acme {args:?} -> {}\n{}", out.status, text(&out));
        out
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AcmeServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn allow(lab: &Lab, key: &Path, principal: &str) {
    grant(lab, key, &["--principal", principal]);
}

pub(crate) fn grant(lab: &Lab, key: &Path, what: &[&str]) {
    let out = Command::new(ACME)
        .args(["account", "allow", "--dir"])
        .arg(lab.ca_dir())
        .arg("--key")
        .arg(key)
        .args(what)
        .output()
        .expect("allow");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_user_certificate_from_ssh_acme_logs_in_and_after_revocation_the_served_krl_refuses_it() {
    let lab = Lab::new("ed25519");
    let (host_key, host_cert) = host_setup(&lab);
    let server = AcmeServerProc::start(&lab);
    let me = whoami();
    let key = lab.keygen("id_user", "ed25519");

    let out = server.client(
        &lab,
        &["issue", "user", "--key", "id_user", "--principal", &me],
    );
    assert_eq!(out.status.code(), Some(1), "no grant yet: refused");
    assert!(text(&out).contains("rejectedIdentifier"));
    allow(&lab, &lab.path("id_user.pub"), &me);
    let out = server.client(
        &lab,
        &[
            "issue",
            "user",
            "--key",
            "id_user",
            "--principal",
            &me,
            "--validity",
            "1h",
        ],
    );
    assert!(out.status.success());
    let cert = lab.path("id_user-cert.pub");

    let sshd = Sshd::start(&lab, &host_key, Some(&host_cert), "");
    let (_, known) = lab.export();
    let login = sshd.ssh(&key, &cert, &known, &lab, &[], "echo via-acme");
    assert!(
        login.status.success() && text(&login).contains("via-acme"),
        "the ssh-acme certificate logs in"
    );
    assert!(sshd.log().contains("acct-1/order-1"), "{}", sshd.log());

    assert!(
        server
            .client(&lab, &["revoke", "--key", "id_user", "id_user-cert.pub"])
            .status
            .success()
    );
    let krl = this::fetch(&format!("{}/krl", server.url));
    std::fs::write(lab.path("revoked.krl"), krl).expect("krl");
    assert!(
        !sshd
            .ssh(&key, &cert, &known, &lab, &[], "true")
            .status
            .success(),
        "refused after revocation"
    );
    // What the server issued and revoked is in the CA's inventory, chained in its audit log.
    let out = lab.ca(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The body of a GET, for tests.
pub(crate) fn fetch(url: &str) -> Vec<u8> {
    let r = bitrot::acme::client::http("GET", url, None).expect("GET");
    assert_eq!(r.status, 200, "{url}");
    r.body
}

#[test]
fn malformed_requests_get_problems_and_accounts_survive_a_killed_server() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    let key = lab.keygen("acct", "ed25519");
    let out = server.client(&lab, &["register", "--key", "acct"]);
    assert!(out.status.success());
    let kid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let new_order = format!("{}/new-order", server.url);
    let post =
        |body: &[u8]| bitrot::acme::client::http("POST", &new_order, Some(body)).expect("POST");
    for (body, what) in [
        (&b"{not json"[..], "bad JSON"),
        (
            &b"{\"protected\":\"***\",\"payload\":\"\",\"signature\":\"\"}"[..],
            "bad base64",
        ),
    ] {
        let r = post(body);
        assert_eq!(r.status, 400, "{what}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("problem");
        assert_eq!(v["type"], "urn:ietf:params:acme:error:malformed", "{what}");
        assert!(
            r.header("replay-nonce").is_some(),
            "{what}: a fresh nonce comes with every answer"
        );
    }
    let big = vec![b'x'; 70 * 1024];
    let r = post(&big);
    assert_eq!(r.status, 413, "oversized body");
    assert!(r.header("replay-nonce").is_some(), "a nonce with the 413");
    let wrong_type = raw_post(&server.url, "/new-order", "text/plain", b"{}");
    assert!(
        wrong_type.starts_with("HTTP/1.1 415") && wrong_type.contains("application/jose+json"),
        "{wrong_type}"
    );
    // RFC 8555's own media type reaches the envelope check (a malformed one here).
    let jose = raw_post(&server.url, "/new-order", "application/jose+json", b"{}");
    assert!(jose.starts_with("HTTP/1.1 400"), "{jose}");
    assert!(
        jose.contains("urn:ietf:params:acme:error:malformed"),
        "{jose}"
    );

    // A reused nonce.
    let k = PrivateKey::read_openssh_file(&key).expect("key");
    let nonce = bitrot::acme::client::http("HEAD", &format!("{}/new-nonce", server.url), None)
        .expect("nonce")
        .header("replay-nonce")
        .expect("nonce header")
        .to_string();
    let p = Protected {
        alg: "sshsig".into(),
        nonce,
        url: format!("{}/order/1", server.url),
        kid: Some(kid.clone()),
        key: None,
    };
    let env = serde_json::to_vec(&envelope::sign(&k, &p, b"").expect("sign")).expect("json");
    let first = bitrot::acme::client::http("POST", &format!("{}/order/1", server.url), Some(&env))
        .expect("post");
    assert_ne!(first.status, 200);
    let again = bitrot::acme::client::http("POST", &format!("{}/order/1", server.url), Some(&env))
        .expect("post");
    let v: serde_json::Value = serde_json::from_slice(&again.body).expect("problem");
    assert_eq!(v["type"], "urn:ietf:params:acme:error:badNonce");

    // SIGKILL, restart on the same CA directory: the account is still there.
    server.kill();
    let server = AcmeServerProc::start(&lab);
    let out = server.client(&lab, &["register", "--key", "acct"]);
    assert!(out.status.success());
    let kid2 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        kid.rsplit('/').next(),
        kid2.rsplit('/').next(),
        "same account id after the restart"
    );
}

/// A POST with any content type, over a bare socket.
fn raw_post(base: &str, path: &str, content_type: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let host = base.strip_prefix("http://").expect("http url");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("body");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn a_host_proves_its_key_with_ssh_hostkey_01_and_its_certificate_is_trusted_by_ssh() {
    let lab = Lab::new("ed25519");
    let host_key = lab.keygen("ssh_host_ed25519_key", "ed25519");
    let bare = Sshd::start(&lab, &host_key, None, "");
    let port = bare.port.to_string();
    let server = AcmeServerProc::start_with(&lab, &["--challenge-ssh-port", &port]);
    lab.keygen("acct", "ed25519");
    let names = ["--name", "localhost", "--name", "127.0.0.1"];
    let mut args = vec![
        "issue",
        "host",
        "--key",
        "acct",
        "--host-key",
        "ssh_host_ed25519_key",
    ];
    args.extend(names);
    let out = server.client(&lab, &args);
    assert_eq!(out.status.code(), Some(1), "no host grant yet");
    grant(
        &lab,
        &lab.path("acct.pub"),
        &["--host", "localhost", "--host", "127.0.0.*"],
    );
    let out = server.client(&lab, &args);
    assert!(
        out.status.success(),
        "ssh-hostkey-01 passes against the host's sshd"
    );
    let cert = lab.path("ssh_host_ed25519_key-cert.pub");
    let listing = String::from_utf8_lossy(
        &Command::new("ssh-keygen")
            .args(["-L", "-f"])
            .arg(&cert)
            .output()
            .expect("-L")
            .stdout,
    )
    .into_owned();
    assert!(
        listing.contains("host certificate")
            && listing.contains("localhost")
            && listing.contains("127.0.0.1"),
        "{listing}"
    );

    // The same sshd asked to prove another key fails the challenge.
    lab.keygen("other_host_key", "ed25519");
    let out = server.client(
        &lab,
        &[
            "issue",
            "host",
            "--key",
            "acct",
            "--host-key",
            "other_host_key",
            "--name",
            "127.0.0.1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("host key other than"), "{}", text(&out));
    assert!(!lab.path("other_host_key-cert.pub").exists());
    drop(bare);

    // Renewing for the same names and key reuses the proven authorizations: no challenge,
    // so it works while no sshd listens on the challenge port.
    let before = std::fs::read_to_string(&cert).expect("cert");
    let out = server.client(
        &lab,
        &[
            "renew",
            "--key",
            "acct",
            "--cert",
            "ssh_host_ed25519_key-cert.pub",
            "--host-key",
            "ssh_host_ed25519_key",
            "--force",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(
        std::fs::read_to_string(&cert).expect("cert"),
        before,
        "renewed without a new challenge"
    );

    // The host now serves the certificate; ssh trusts it through the @cert-authority line.
    let sshd = Sshd::start(&lab, &host_key, Some(&cert), "");
    let me = whoami();
    let user = lab.keygen("id_user", "ed25519");
    let ucert = {
        let o = Command::new(env!("CARGO_BIN_EXE_ssh-ca"))
            .args(["sign", "--user", "-I", "u", "-n", &me, "id_user.pub"])
            .env("SSH_CA_DIR", lab.ca_dir())
            .current_dir(&lab.dir)
            .output()
            .expect("ssh-ca");
        assert!(o.status.success());
        lab.path("id_user-cert.pub")
    };
    let (_, known) = lab.export();
    assert!(
        sshd.ssh(&user, &ucert, &known, &lab, &[], "true")
            .status
            .success(),
        "host certificate from ssh-acme trusted"
    );

    drop(sshd);
}

#[test]
fn renew_waits_for_the_window_then_replaces_the_certificate() {
    let lab = Lab::new("ed25519");
    // Requested validities are backdated by the policy's backdate (1d in the test policy),
    // which would put a 3 s certificate's window far in the past: backdate 1 s here.
    let config = lab.ca_dir().join("config.yaml");
    let policy = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, policy.replacen("backdate: 1d", "backdate: 1s", 1)).expect("config");
    let server = AcmeServerProc::start(&lab);
    lab.keygen("id_user", "ed25519");
    allow(&lab, &lab.path("id_user.pub"), "deploy");
    let serial = |lab: &Lab| {
        let t = String::from_utf8_lossy(
            &Command::new("ssh-keygen")
                .args(["-L", "-f"])
                .arg(lab.path("id_user-cert.pub"))
                .output()
                .expect("-L")
                .stdout,
        )
        .into_owned();
        t.lines()
            .find_map(|l| l.trim().strip_prefix("Serial: "))
            .expect("serial")
            .to_string()
    };
    // Valid for 3 s: the window (the last third) opens after 2 s.
    assert!(
        server
            .client(
                &lab,
                &[
                    "issue",
                    "user",
                    "--key",
                    "id_user",
                    "--principal",
                    "deploy",
                    "--validity",
                    "3s"
                ]
            )
            .status
            .success()
    );
    let first = serial(&lab);
    let renew = ["renew", "--key", "id_user", "--cert", "id_user-cert.pub"];
    let out = server.client(&lab, &renew);
    assert!(
        out.status.success() && text(&out).contains("not due"),
        "{}",
        text(&out)
    );
    assert_eq!(serial(&lab), first, "nothing replaced before the window");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let out = server.client(&lab, &renew);
    assert!(out.status.success() && !text(&out).contains("not due"));
    let second = serial(&lab);
    assert_ne!(second, first, "renewed inside the window");
    let mut forced = renew.to_vec();
    forced.push("--force");
    assert!(server.client(&lab, &forced).status.success());
    assert_ne!(serial(&lab), second, "--force renews at once");
}

#[test]
fn a_client_of_curl_and_ssh_keygen_written_from_the_protocol_document_gets_a_certificate() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    lab.keygen("shell_user", "ed25519");
    allow(&lab, &lab.path("shell_user.pub"), "deploy");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/acme-curl.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(&server.url)
        .arg(lab.path("shell_user"))
        .arg("deploy")
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", text(&out));
    let cert = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::write(lab.path("shell_user-cert.pub"), format!("{cert}\n")).expect("cert");
    let v = lab.ca(&[
        "verify",
        "--principal",
        "deploy",
        &lab.path("shell_user-cert.pub").to_string_lossy(),
    ]);
    assert!(
        v.status.success(),
        "the shell client's certificate verifies: {}",
        text(&v)
    );
}

#[test]
fn an_order_placed_before_the_server_is_killed_is_finalized_after_it_restarts() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    let listen = server.url.trim_start_matches("http://").to_string();
    lab.keygen("id_user", "ed25519");
    allow(&lab, &lab.path("id_user.pub"), "deploy");
    let key = PrivateKey::read_openssh_file(lab.path("id_user")).expect("key");
    let mut client =
        bitrot::acme::client::Client::new(&server.url, key.clone()).expect("directory");
    let (order_url, finalize) = client
        .order_user(key.public_key(), &["deploy".to_string()], None)
        .expect("order");
    server.kill(); // SIGKILL between order and finalize
    let server = AcmeServerProc::start_on(&lab, &listen, &[]);
    // The client's nonce is from the dead server: the badNonce answer's nonce is used to retry.
    let cert = client
        .finalize_and_download(&order_url, &finalize, &key)
        .expect("finalized after the restart");
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    drop(server);
}

#[test]
fn the_agent_renews_on_its_timer_and_retries_while_the_server_is_down() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    let listen = server.url.trim_start_matches("http://").to_string();
    lab.keygen("id_user", "ed25519");
    allow(&lab, &lab.path("id_user.pub"), "deploy");
    assert!(
        server
            .client(
                &lab,
                &[
                    "issue",
                    "user",
                    "--key",
                    "id_user",
                    "--principal",
                    "deploy",
                    "--validity",
                    "3s"
                ]
            )
            .status
            .success()
    );
    let cert = lab.path("id_user-cert.pub");
    let first = std::fs::read_to_string(&cert).expect("cert");
    server.kill();

    std::fs::write(
        lab.path("agent.yaml"),
        format!(
            "certificates:\n  - cert: {}\n    key: {}\n",
            cert.display(),
            lab.path("id_user").display()
        ),
    )
    .expect("config");
    let log = std::fs::File::create(lab.path("agent.log")).expect("log");
    let agent = Command::new(ACME)
        .args([
            "--server",
            &format!("http://{listen}"),
            "agent",
            "--check-every",
            "1",
            "--retry-min-ms",
            "200",
            "--config",
        ])
        .arg(lab.path("agent.yaml"))
        .env("BITROT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent");
    let _agent = KillOnDrop(agent);
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !cond() {
            assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let agent_log = || std::fs::read_to_string(lab.path("agent.log")).unwrap_or_default();
    wait_for("the agent reports the server being down", &|| {
        agent_log().matches("renewal failed; retrying").count() >= 2
    });
    assert_eq!(
        std::fs::read_to_string(&cert).expect("cert"),
        first,
        "nothing replaced while the server is down"
    );

    let server = AcmeServerProc::start_on(&lab, &listen, &[]);
    wait_for("the agent renews once the server is back", &|| {
        std::fs::read_to_string(&cert).is_ok_and(|c| c != first)
    });
    assert!(
        agent_log().contains("certificate renewed"),
        "{}",
        agent_log()
    );
    drop(server);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn test_switches_and_the_per_account_order_limit() {
    let lab = Lab::new("ed25519");
    lab.keygen("id_user", "ed25519");
    allow(&lab, &lab.path("id_user.pub"), "deploy");
    let issue = ["issue", "user", "--key", "id_user", "--principal", "deploy"];

    // Half of all valid nonces refused: the client's badNonce retries still get through.
    let server = AcmeServerProc::start_with(
        &lab,
        &[
            "--test-nonce-reject-percent",
            "50",
            "--orders-per-minute",
            "2",
        ],
    );
    assert!(
        server.client(&lab, &issue).status.success(),
        "retries past rejected nonces"
    );
    assert!(server.client(&lab, &issue).status.success());
    let out = server.client(&lab, &issue);
    assert_eq!(out.status.code(), Some(1), "a third order within a minute");
    assert!(
        text(&out).contains("rateLimited") && text(&out).contains("2 orders"),
        "{}",
        text(&out)
    );
    drop(server);

    // Always-valid: a host order for a name nobody serves SSH on is granted anyway.
    lab.keygen("host_key", "ed25519");
    grant(
        &lab,
        &lab.path("id_user.pub"),
        &["--host", "nothing-listens.invalid"],
    );
    let server =
        AcmeServerProc::start_with(&lab, &["--test-always-valid", "--challenge-ssh-port", "1"]);
    let out = server.client(
        &lab,
        &[
            "issue",
            "host",
            "--key",
            "id_user",
            "--host-key",
            "host_key",
            "--name",
            "nothing-listens.invalid",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    drop(server);
    let server = AcmeServerProc::start_with(&lab, &["--challenge-ssh-port", "1"]);
    // Another host key, so the authorization proven above (for host_key) is not reused.
    lab.keygen("host_key2", "ed25519");
    let out = server.client(
        &lab,
        &[
            "issue",
            "host",
            "--key",
            "id_user",
            "--host-key",
            "host_key2",
            "--name",
            "nothing-listens.invalid",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "without the switch the challenge really runs and fails"
    );
}

#[test]
fn a_host_can_prove_its_names_with_http_01_from_its_web_root() {
    let lab = Lab::new("ed25519");
    let webroot = lab.path("www");
    std::fs::create_dir_all(&webroot).expect("webroot");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let web = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(&webroot)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let _web = KillOnDrop(web);
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "web server up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let server = AcmeServerProc::start_with(
        &lab,
        &[
            "--challenge-http-port",
            &port.to_string(),
            "--challenge-ssh-port",
            "1",
        ],
    );
    lab.keygen("acct", "ed25519");
    lab.keygen("host_key", "ed25519");
    grant(&lab, &lab.path("acct.pub"), &["--host", "127.0.0.1"]);
    let issue = [
        "issue",
        "host",
        "--key",
        "acct",
        "--host-key",
        "host_key",
        "--name",
        "127.0.0.1",
        "--http-01-dir",
        "www",
    ];
    let out = server.client(&lab, &issue);
    assert!(out.status.success(), "http-01 passes: {}", text(&out));
    assert!(lab.path("host_key-cert.pub").exists());
    let left: Vec<_> = std::fs::read_dir(webroot.join(".well-known/acme-challenge"))
        .expect("dir")
        .collect();
    assert!(left.is_empty(), "the answer is removed after validation");

    // A web root the web server does not serve: the answer is not found, the order fails.
    lab.keygen("host2", "ed25519");
    std::fs::create_dir_all(lab.path("elsewhere")).expect("dir");
    let out = server.client(
        &lab,
        &[
            "issue",
            "host",
            "--key",
            "acct",
            "--host-key",
            "host2",
            "--name",
            "127.0.0.1",
            "--http-01-dir",
            "elsewhere",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn an_external_account_binding_key_binds_one_account_to_its_grants() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start_with(&lab, &["--eab-required"]);
    let dir: serde_json::Value =
        serde_json::from_slice(&this::fetch(&format!("{}/directory", server.url))).expect("JSON");
    assert_eq!(dir["meta"]["externalAccountRequired"], true, "{dir}");
    lab.keygen("alice", "ed25519");
    lab.keygen("mallory", "ed25519");
    let out = server.client(&lab, &["register", "--key", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("externalAccountRequired"),
        "{}",
        text(&out)
    );

    let made = Command::new(ACME)
        .args(["account", "eab-create", "--principal", "deploy", "--dir"])
        .arg(lab.ca_dir())
        .output()
        .expect("eab-create");
    assert!(made.status.success());
    let made = String::from_utf8_lossy(&made.stdout).into_owned();
    let field = |name: &str| {
        made.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .expect("field")
            .to_string()
    };
    let (kid, mac) = (field("eab-kid"), field("eab-hmac-key"));

    let wrong = server.client(
        &lab,
        &[
            "register",
            "--key",
            "alice",
            "--eab-kid",
            &kid,
            "--eab-hmac-key",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
    );
    assert_eq!(wrong.status.code(), Some(1), "a wrong MAC key is refused");
    let out = server.client(
        &lab,
        &[
            "register",
            "--key",
            "alice",
            "--eab-kid",
            &kid,
            "--eab-hmac-key",
            &mac,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        server
            .client(
                &lab,
                &["issue", "user", "--key", "alice", "--principal", "deploy"]
            )
            .status
            .success(),
        "the binding's grants came with the account"
    );
    let again = server.client(
        &lab,
        &[
            "register",
            "--key",
            "mallory",
            "--eab-kid",
            &kid,
            "--eab-hmac-key",
            &mac,
        ],
    );
    assert_eq!(
        again.status.code(),
        Some(1),
        "a binding key binds one account only"
    );
    assert!(text(&again).contains("already bound"), "{}", text(&again));
}

#[test]
fn serve_reads_its_settings_from_a_config_file_and_names_a_bad_one() {
    let lab = Lab::new("ed25519");
    std::fs::write(
        lab.path("acme.yaml"),
        "orders_per_minute: 1\ntimeout_ms: 5000\n",
    )
    .expect("config");
    let cfg = lab.path("acme.yaml").to_string_lossy().into_owned();
    let server = AcmeServerProc::start_with(&lab, &["--config", &cfg]);
    lab.keygen("id_user", "ed25519");
    allow(&lab, &lab.path("id_user.pub"), "deploy");
    let issue = ["issue", "user", "--key", "id_user", "--principal", "deploy"];
    assert!(server.client(&lab, &issue).status.success());
    let out = server.client(&lab, &issue);
    assert!(
        text(&out).contains("rateLimited"),
        "orders_per_minute came from the file: {}",
        text(&out)
    );
    drop(server);

    std::fs::write(lab.path("bad.yaml"), "orders_per_minut: 1\n").expect("config");
    let out = Command::new(ACME)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(lab.path("bad.yaml"))
        .arg("--dir")
        .arg(lab.ca_dir())
        .output()
        .expect("serve");
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out).contains("bad.yaml") && text(&out).contains("orders_per_minut"),
        "{}",
        text(&out)
    );
}

/// A test CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it (`tls.pem`,
/// `tls.key`), made with the openssl command-line tool.
fn tls_files(lab: &Lab) {
    std::fs::write(
        lab.path("tls.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=bitrot test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.pem",
            "-days",
            "1",
            "-extfile",
            "tls.ext",
        ],
    ];
    for args in steps {
        let out = run(Command::new("openssl").args(args).current_dir(&lab.dir));
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    }
}

#[test]
fn over_tls_the_client_trusts_only_the_ca_it_is_given_and_curl_agrees() {
    let lab = Lab::new("ed25519");
    tls_files(&lab);
    // The certificate from the config file, its key from a flag: the two sources combine.
    let (cert, key) = (lab.path("tls.pem"), lab.path("tls.key"));
    std::fs::write(
        lab.path("acme.yaml"),
        format!("tls_cert: {}\n", cert.display()),
    )
    .expect("config");
    let cfg = lab.path("acme.yaml").to_string_lossy().into_owned();
    let tls = [
        "--config",
        cfg.as_str(),
        "--tls-key",
        key.to_str().expect("utf-8"),
    ];
    let server = AcmeServerProc::start_with(&lab, &tls);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    lab.keygen("id_user", "ed25519");
    allow(&lab, &lab.path("id_user.pub"), "deploy");
    let issue = ["issue", "user", "--key", "id_user", "--principal", "deploy"];

    let out = server.client(&lab, &issue);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the test CA is not in the system bundle"
    );
    assert!(
        text(&out).to_lowercase().contains("certificate"),
        "{}",
        text(&out)
    );
    assert!(!lab.path("id_user-cert.pub").exists());

    let ca = lab.path("ca.pem").to_string_lossy().into_owned();
    let with_ca: Vec<&str> = ["--tls-ca", ca.as_str()].into_iter().chain(issue).collect();
    let out = server.client(&lab, &with_ca);
    assert!(out.status.success(), "{}", text(&out));
    let shown = run(Command::new("ssh-keygen")
        .arg("-Lf")
        .arg(lab.path("id_user-cert.pub")));
    assert!(text(&shown).contains("deploy"), "{}", text(&shown));

    let curl = run(Command::new("curl")
        .args(["-sS", "--fail", "--cacert", &ca])
        .arg(format!("{}/directory", server.url)));
    assert!(curl.status.success(), "{}", text(&curl));
    let dir: serde_json::Value = serde_json::from_slice(&curl.stdout).expect("directory JSON");
    assert_eq!(dir["meta"]["externalAccountRequired"], false, "{dir}");
    assert!(
        dir["newOrder"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")),
        "{dir}"
    );
    // Oversized bodies are refused over TLS as over plain HTTP.
    let big = run(Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &ca,
            "-H",
            "Content-Type: application/jose+json",
        ])
        .args(["--data-binary", &"x".repeat(100_000)])
        .arg(format!("{}/acme/new-order", server.url)));
    assert!(text(&big).contains("malformed"), "{}", text(&big));
}

#[test]
fn serve_names_an_unusable_tls_file_and_does_not_start() {
    let lab = Lab::new("ed25519");
    tls_files(&lab);
    std::fs::write(lab.path("bad.key"), "not a key\n").expect("bad key");
    let out = Command::new(ACME)
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(lab.ca_dir())
        .arg("--tls-cert")
        .arg(lab.path("tls.pem"))
        .arg("--tls-key")
        .arg(lab.path("bad.key"))
        .output()
        .expect("serve");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("bad.key") && text(&out).contains("not a PEM private key"),
        "{}",
        text(&out)
    );
    let out = Command::new(ACME)
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(lab.ca_dir())
        .arg("--tls-cert")
        .arg(lab.path("tls.pem"))
        .output()
        .expect("serve");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a certificate without its key is a usage error"
    );
}

#[test]
fn without_key_the_client_uses_the_usual_ssh_key_and_names_the_places_it_looked() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    let home = lab.path("home");
    std::fs::create_dir_all(home.join(".ssh")).expect("~/.ssh");
    let client = |args: &[&str]| server.client_env(&lab, args, &[("HOME", &home)]);
    let issue = ["issue", "user", "--principal", "deploy"];
    let out = client(&issue);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains(".ssh/id_ed25519") && text(&out).contains(".ssh/id_rsa"),
        "{}",
        text(&out)
    );

    let key = home.join(".ssh/id_ecdsa");
    let made = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&key));
    assert!(made.status.success(), "{}", text(&made));
    allow(&lab, &home.join(".ssh/id_ecdsa.pub"), "deploy");
    let out = client(&issue);
    assert!(out.status.success(), "{}", text(&out));
    let cert = home.join(".ssh/id_ecdsa-cert.pub");
    let shown = run(Command::new("ssh-keygen").arg("-Lf").arg(&cert));
    assert!(text(&shown).contains("deploy"), "{}", text(&shown));
}
