//! RFC 8555 behaviour of `ssh-acme serve` beyond the happy path, through the library client
//! and the CLI against a real server: times, refusals at newOrder, backdating, the orders
//! list, alreadyRevoked, errors on invalid orders, deactivation and key rollover.

use crate::acme::{AcmeServerProc, allow, fetch, grant};
use crate::ssh_ca::{Lab, text};
use bitrot::acme::client::{Client, ClientError, Proof};
use bitrot::acme::problem::ProblemType;
use ssh_key::PrivateKey;

fn key(lab: &Lab, name: &str, kind: &str) -> PrivateKey {
    PrivateKey::read_openssh_file(lab.keygen(name, kind)).expect("key")
}

fn problem(r: Result<impl std::fmt::Debug, ClientError>) -> bitrot::acme::problem::Problem {
    match r {
        Err(ClientError::Problem(p)) => p,
        other => panic!("expected a problem, got {other:?}"),
    }
}

fn directory(server: &AcmeServerProc) -> serde_json::Value {
    serde_json::from_slice(&fetch(&format!("{}/directory", server.url))).expect("directory")
}

fn new_order(
    c: &mut Client,
    dir: &serde_json::Value,
    order: serde_json::Value,
) -> Result<serde_json::Value, ClientError> {
    let url = dir["newOrder"].as_str().expect("newOrder");
    let r = c.post(url, order.to_string().as_bytes())?;
    Ok(serde_json::from_slice(&r.body).expect("order"))
}

#[test]
fn new_order_refuses_at_once_what_finalize_would_and_times_are_rfc_3339() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    let dir = directory(&server);
    let acct = key(&lab, "acct", "ed25519");
    allow(&lab, &lab.path("acct.pub"), "*");
    let mut c = Client::new(&server.url, acct.clone()).expect("client");
    c.register(&[]).expect("register");
    let subject = acct.public_key().to_openssh().expect("pub");
    let user = |principals: &[&str], validity: Option<&str>, key: &str| {
        let ids: Vec<_> = principals
            .iter()
            .map(|p| serde_json::json!({"type": "principal", "value": p}))
            .collect();
        let mut o = serde_json::json!({"certType": "user", "identifiers": ids, "publicKey": key});
        if let Some(v) = validity {
            o["validity"] = serde_json::json!(v);
        }
        o
    };
    for bad in ["a\nb", "a,b", "a b", "*", "ops-?", "a\u{1b}[2J", ""] {
        let p = problem(new_order(&mut c, &dir, user(&[bad], None, &subject)));
        assert_eq!(p.kind, ProblemType::RejectedIdentifier, "{bad:?}: {p:?}");
    }
    let p = problem(new_order(
        &mut c,
        &dir,
        user(&["alice"], Some("30d"), &subject),
    ));
    assert_eq!(p.kind, ProblemType::Unauthorized, "{p:?}");
    assert!(p.detail.contains("max_validity"), "{}", p.detail);
    for bad in ["forever", "-1h", "8 hours", "1h:2h"] {
        let p = problem(new_order(
            &mut c,
            &dir,
            user(&["alice"], Some(bad), &subject),
        ));
        assert_eq!(p.kind, ProblemType::Malformed, "{bad:?}: {p:?}");
    }
    let weak_pub = {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
            .arg(lab.path("rsa1024"))
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success());
        std::fs::read_to_string(lab.path("rsa1024.pub")).expect("pub")
    };
    let p = problem(new_order(
        &mut c,
        &dir,
        user(&["alice"], None, weak_pub.trim()),
    ));
    assert_eq!(p.kind, ProblemType::BadPublicKey, "{p:?}");
    assert!(p.detail.contains("RSA 1024 bits"), "{}", p.detail);
    assert!(
        c.orders().expect("orders").is_empty(),
        "no refused order was created"
    );

    // A good order: RFC 3339 times; the certificate's validity starts the backdate (1d in the
    // test policy) ago, as a default one does.
    let o = new_order(&mut c, &dir, user(&["alice"], Some("1h"), &subject)).expect("order");
    let expires = o["expires"].as_str().expect("expires is a string");
    chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
    let authz = o["authorizations"][0].as_str().expect("authz");
    let a: serde_json::Value =
        serde_json::from_slice(&c.post(authz, b"").expect("authz").body).expect("json");
    chrono::DateTime::parse_from_rfc3339(a["expires"].as_str().expect("string")).expect("3339");
    let cert = c
        .issue_user(&acct, &["alice".to_string()], Some("1h"))
        .expect("issue");
    let cert = ssh_key::Certificate::from_openssh(&cert).expect("cert");
    let now = bitrot::ca::unix_now();
    assert!(
        cert.valid_after() <= now - 86_000,
        "backdated: {}",
        cert.valid_after()
    );
    assert!(
        cert.valid_before() <= now + 3_700,
        "1h from now: {}",
        cert.valid_before()
    );

    // The orders list names both orders; revoking twice is alreadyRevoked.
    assert_eq!(c.orders().expect("orders").len(), 2);
    c.revoke(&cert.to_openssh().expect("line"), "superseded")
        .expect("revoke");
    let p = problem(c.revoke(&cert.to_openssh().expect("line"), "superseded"));
    assert_eq!(p.kind, ProblemType::AlreadyRevoked, "{p:?}");
}

#[test]
fn a_failed_challenge_leaves_its_error_on_the_order() {
    let lab = Lab::new("ed25519");
    // Nothing listens on the challenge port: the validation fails with `connection`.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
        .to_string();
    let server = AcmeServerProc::start_with(&lab, &["--challenge-ssh-port", &closed]);
    let acct = key(&lab, "acct", "ed25519");
    grant(&lab, &lab.path("acct.pub"), &["--host", "127.0.0.1"]);
    let host = key(&lab, "host", "ed25519");
    let mut c = Client::new(&server.url, acct).expect("client");
    let p = problem(c.issue_host(&host, &["127.0.0.1".into()], &Proof::SshHostKey));
    assert_eq!(p.kind, ProblemType::Connection, "{p:?}");
    let orders = c.orders().expect("orders");
    assert!(
        orders.is_empty(),
        "invalid orders are not listed: {orders:?}"
    );
    let order: serde_json::Value = serde_json::from_slice(
        &c.post(&format!("{}/order/1", server.url), b"")
            .expect("order")
            .body,
    )
    .expect("json");
    assert_eq!(order["status"], "invalid");
    assert_eq!(
        order["error"]["type"], "urn:ietf:params:acme:error:connection",
        "{order}"
    );
}

#[test]
fn key_rollover_keeps_the_account_and_deactivation_is_final() {
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    assert!(directory(&server)["keyChange"].is_string());
    key(&lab, "old", "ed25519");
    allow(&lab, &lab.path("old.pub"), "deploy");
    let issue = |k: &str| {
        server.client(
            &lab,
            &["issue", "user", "--key", k, "--principal", "deploy"],
        )
    };
    assert!(issue("old").status.success());
    let before = server.client(&lab, &["register", "--key", "old"]);
    let kid = String::from_utf8_lossy(&before.stdout).trim().to_string();

    // Roll over to a new key with the CLI: same account, same grants, the old key is out.
    key(&lab, "new", "ecdsa");
    let out = server.client(&lab, &["key-change", "--key", "old", "--new-key", "new"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = issue("new");
    assert!(
        out.status.success(),
        "the grant moved with the account: {}",
        text(&out)
    );
    let again = server.client(&lab, &["register", "--key", "new"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        kid,
        "same account"
    );
    let out = server.client(&lab, &["orders", "--key", "new"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out)
    );
    let out = issue("old");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the old key has no grant now: {}",
        text(&out)
    );

    // A key that already belongs to another account cannot be taken: 409 and its Location.
    key(&lab, "other", "ed25519");
    let out = server.client(&lab, &["register", "--key", "other"]);
    assert!(out.status.success());
    let mut c = Client::new(
        &server.url,
        PrivateKey::read_openssh_file(lab.path("new")).expect("key"),
    )
    .expect("client");
    let other = PrivateKey::read_openssh_file(lab.path("other")).expect("key");
    let p = problem(c.change_key(other));
    assert_eq!(p.http_status(), 409, "{p:?}");

    // Deactivation is final: the account's next request is unauthorized.
    let out = server.client(&lab, &["deactivate", "--key", "new"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = issue("new");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("deactivated"), "{}", text(&out));
}

/// EAB key ids and MAC keys are base64url, and one in 64 starts with '-': they are values.
#[test]
fn eab_values_that_start_with_a_hyphen_are_taken_as_values() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssh-acme"))
        .args([
            "--server",
            "http://127.0.0.1:9",
            "register",
            "--key",
            "/nonexistent/key",
        ])
        .args([
            "--eab-kid",
            "-Px_QVq1XwQG9pWr",
            "--eab-hmac-key",
            "-AAAAAAAAAAAAAAAA",
        ])
        .output()
        .expect("ssh-acme");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.contains("/nonexistent/key"), "{err}");
}

/// A CONNECT proxy on loopback (what ureq speaks to a proxy, for http:// and https:// alike):
/// reads the CONNECT head, connects to its target, answers 200 and pipes; counts tunnels.
fn counting_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).is_ok_and(|n| n == 1) {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let Some(target) = head
                .strip_prefix("CONNECT ")
                .and_then(|r| r.split(' ').next())
            else {
                let _ = c.write_all(b"HTTP/1.1 405 CONNECT only\r\n\r\n");
                continue;
            };
            let Ok(s) = std::net::TcpStream::connect(target) else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let _ = c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            let (mut c2, mut s2) = (c.try_clone().expect("clone"), s.try_clone().expect("clone"));
            let (mut c, mut s) = (c, s);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut s);
                let _ = s.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, seen)
}

#[test]
fn the_client_goes_through_http_proxy_unless_no_proxy_and_follows_no_redirect() {
    use std::sync::atomic::Ordering;
    let lab = Lab::new("ed25519");
    let server = AcmeServerProc::start(&lab);
    key(&lab, "acct", "ed25519");
    allow(&lab, &lab.path("acct.pub"), "deploy");
    let (proxy, seen) = counting_proxy();
    let proxy_url = format!("http://127.0.0.1:{proxy}");
    let issue = |env: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ssh-acme"))
            .args(["--server", &server.url, "issue", "user", "--key", "acct"])
            .args(["--principal", "deploy"])
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(env.iter().copied())
            .current_dir(&lab.dir)
            .output()
            .expect("ssh-acme")
    };
    let out = issue(&[("HTTP_PROXY", &proxy_url)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        seen.load(Ordering::SeqCst) > 0,
        "the request went through the proxy"
    );
    let before = seen.load(Ordering::SeqCst);
    let out = issue(&[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "127.0.0.1")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        before,
        "NO_PROXY bypasses the proxy"
    );

    // A directory that redirects is refused, naming the redirect.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut b = [0u8; 4096];
            let _ = c.read(&mut b);
            let _ = c.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.9:1/directory\r\nContent-Length: 0\r\n\r\n",
            );
        }
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssh-acme"))
        .args([
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "register",
            "--key",
            "acct",
        ])
        .current_dir(&lab.dir)
        .output()
        .expect("ssh-acme");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("follows no redirects"),
        "{}",
        text(&out)
    );
}

/// The renewal agent as a library, on an executor in this process: a due certificate is
/// renewed once its window opens, and a target whose server is down is retried with a
/// doubling backoff.
#[test]
fn the_agent_library_renews_when_due_and_backs_off_while_the_server_is_down() {
    use bitrot::acme::agent::{Pace, Target, start};
    use std::time::{Duration, Instant};
    let lab = Lab::new("ed25519");
    let config = lab.ca_dir().join("config.yaml");
    let policy = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, policy.replacen("backdate: 1d", "backdate: 1s", 1)).expect("config");
    let server = AcmeServerProc::start(&lab);
    key(&lab, "id_user", "ed25519");
    allow(&lab, &lab.path("id_user.pub"), "deploy");
    let out = server.client(
        &lab,
        &[
            "issue",
            "user",
            "--key",
            "id_user",
            "--principal",
            "deploy",
            "--validity",
            "3s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let cert_file = lab.path("id_user-cert.pub");
    let serial = || {
        let t = std::fs::read_to_string(&cert_file).expect("cert");
        ssh_key::Certificate::from_openssh(t.trim())
            .expect("cert")
            .serial()
    };
    let first = serial();
    let exec = bitrot::sched::Builder::new().build().expect("executor");
    let target = Target {
        key: lab.path("id_user"),
        cert: cert_file.clone(),
        host_key: None,
        force: false,
        reload: None,
    };
    let pace = Pace {
        check_every: Duration::from_millis(300),
        retry_min: Duration::from_millis(100),
    };
    let live = start(&exec, &server.url, vec![target.clone()], pace);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let down = start(&exec, &format!("http://{closed}"), vec![target], pace);
    let t0 = Instant::now();
    while live.snapshot()[0].renewed == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            live.snapshot()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = live.snapshot()[0].clone();
    assert!(s.checks >= 2, "checked before the window opened too: {s:?}");
    assert_eq!(s.failures, 0, "{s:?}");
    assert_ne!(serial(), first, "the certificate file was replaced");
    // Down: checks at 0, 0.1, 0.3, 0.7, 1.0, 1.3 … s (doubling up to check_every).
    let d = down.snapshot()[0].clone();
    let secs = t0.elapsed().as_secs_f64();
    let most = 2 + (secs / 0.3).ceil() as u64;
    assert!(
        d.failures >= 3 && d.failures <= most,
        "{d:?} in {secs:.1} s"
    );
    assert!(
        d.last_error
            .as_deref()
            .is_some_and(|e| e.contains(&closed.to_string())),
        "{d:?}"
    );
}
