//! Challenge validation against peers that do not cooperate: real sshd for the honest cases,
//! loopback sockets that stall, lie or trickle for the rest. Every hostile case must end in
//! an `incorrectResponse` or `connection` problem within the deadline, and the CA's socket to
//! the peer must be closed by then (nothing it started keeps running).

use crate::acme::{AcmeServerProc, grant};
use crate::ssh_ca::{Lab, Sshd, text};
use bitrot::acme::problem::ProblemType;
use bitrot::acme::validate::{Check, Validator};
use ssh_key::PublicKey;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(2);

/// The validator the server runs, with the test deadline.
fn validator() -> Validator {
    Validator::new(DEADLINE).expect("validator")
}

fn public(path: &std::path::Path) -> PublicKey {
    PublicKey::read_openssh_file(path.with_extension("pub")).expect("public key")
}

fn ssh_check(port: u16, key: &PublicKey) -> Check {
    Check::SshHostkey {
        host: "127.0.0.1".into(),
        port,
        key: key.clone(),
    }
}

#[test]
fn ssh_hostkey_01_passes_only_when_sshd_proves_the_orders_key() {
    let lab = Lab::new("ed25519");
    let v = validator();
    for kind in ["ed25519", "rsa"] {
        let host_key = lab.keygen(&format!("host_{kind}"), kind);
        let sshd = Sshd::start(&lab, &host_key, None, "");
        let verdict = v.check_now(&ssh_check(sshd.port, &public(&host_key)));
        assert_eq!(verdict, Ok(()), "{kind} host key proven by a real sshd");

        let other = lab.keygen(&format!("other_{kind}"), kind);
        let p = v
            .check_now(&ssh_check(sshd.port, &public(&other)))
            .expect_err("another key of the same type");
        assert_eq!(p.kind, ProblemType::IncorrectResponse, "{p:?}");
        assert!(p.detail.contains("host key other than"), "{}", p.detail);
    }
    // The sshd holds only an Ed25519 key; an order for an ECDSA key finds no algorithm to
    // prove it with, and the CA says so instead of accepting the Ed25519 key.
    let sshd = Sshd::start(&lab, &lab.path("host_ed25519"), None, "");
    let ecdsa = lab.keygen("order_ecdsa", "ecdsa");
    let p = v
        .check_now(&ssh_check(sshd.port, &public(&ecdsa)))
        .expect_err("no common host-key algorithm");
    assert_eq!(p.kind, ProblemType::IncorrectResponse, "{p:?}");
    assert!(p.detail.contains("ecdsa-sha2-nistp256"), "{}", p.detail);
}

/// A peer's behaviour on one accepted connection.
type Behaviour = fn(&mut TcpStream);

/// Accepts one connection, runs `behave`, then waits for the CA to close it; sends how long
/// after the accept the CA's side closed.
fn hostile(behave: Behaviour) -> (u16, mpsc::Receiver<Duration>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let t0 = Instant::now();
        behave(&mut s);
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let mut buf = [0u8; 4096];
        // Reads until the CA closes (0 or an error); what it sends is ignored.
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(t0.elapsed());
    });
    (port, rx)
}

fn banner_then_silence(s: &mut TcpStream) {
    let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
}

fn silence(_: &mut TcpStream) {}

fn permission_denied(s: &mut TcpStream) {
    let _ = s.write_all(b"SSH-Permission denied\r\n");
    let _ = s.shutdown(std::net::Shutdown::Write);
}

fn accept_then_close(s: &mut TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Both);
}

/// Fixed-seed noise after a valid banner: a key exchange that cannot parse.
fn garbage(s: &mut TcpStream) {
    let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
    let mut x: u32 = 0x9e37_79b9;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let _ = s.write_all(&noise);
}

/// A banner at one byte a second, then more of the same, until the CA hangs up.
fn one_byte_per_second(s: &mut TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 4096];
    for b in b"SSH-2.0-OpenSSH_9.2\r\n".iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            return;
        }
        // Waits the second out on a read, which ends early when the CA hangs up.
        match s.read(&mut buf) {
            Ok(0) => return,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return,
            _ => {}
        }
    }
}

/// Lines before the banner (RFC 4253 allows some) without end.
fn endless_preamble(s: &mut TcpStream) {
    let line = [b'x'; 200];
    while s
        .write_all(&line)
        .and_then(|()| s.write_all(b"\r\n"))
        .is_ok()
    {}
}

#[test]
fn hostile_ssh_endpoints_fail_within_the_deadline_and_leave_nothing_running() {
    let v = validator();
    let lab = Lab::new("ed25519");
    let key = public(&lab.keygen("order_key", "ed25519"));
    let cases: [(&str, Behaviour); 7] = [
        ("banner then silence", banner_then_silence),
        ("silence", silence),
        ("SSH-Permission denied", permission_denied),
        ("accept then close", accept_then_close),
        ("garbage", garbage),
        ("one byte per second", one_byte_per_second),
        ("endless preamble", endless_preamble),
    ];
    for (name, behave) in cases {
        let (port, closed) = hostile(behave);
        let t0 = Instant::now();
        let verdict = v.check_now(&ssh_check(port, &key));
        let took = t0.elapsed();
        let p = verdict.expect_err(name);
        assert!(
            matches!(
                p.kind,
                ProblemType::Connection | ProblemType::IncorrectResponse
            ),
            "{name}: {p:?}"
        );
        assert!(
            took < DEADLINE + Duration::from_millis(500),
            "{name}: {took:?}"
        );
        let gone = closed
            .recv_timeout(DEADLINE + Duration::from_secs(2))
            .unwrap_or_else(|_| panic!("{name}: the CA still holds the connection"));
        assert!(gone < DEADLINE + Duration::from_secs(1), "{name}: {gone:?}");
        eprintln!("{name}: {took:?}: {}", p.detail);
    }
}

/// Serves one HTTP answer per connection, `answer(path)` deciding it; counts connections.
fn http_peer(
    answer: fn(&str, u16) -> Vec<u8>,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).is_ok_and(|n| n == 1) {
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let _ = s.write_all(&answer(&path, port));
                std::thread::sleep(Duration::from_secs(5));
            });
        }
    });
    (port, seen)
}

const TOKEN: &str = "tok123";
const KEYAUTH: &str = "tok123.thumbprint";

fn http_check(port: u16) -> Check {
    Check::Http01 {
        host: "127.0.0.1".into(),
        port,
        token: TOKEN.into(),
        expected: KEYAUTH.into(),
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn http_01_holds_one_deadline_caps_the_body_and_stays_on_the_host() {
    let v = validator();
    let go = |port| v.check_now(&http_check(port));

    let (port, _) = http_peer(|_, _| ok(&format!("{KEYAUTH}\n")));
    assert_eq!(go(port), Ok(()), "the right answer passes");

    let (port, _) = http_peer(|_, _| ok("something else"));
    let p = go(port).expect_err("wrong answer");
    assert_eq!(p.kind, ProblemType::IncorrectResponse);

    // Same-host redirect to another path is followed.
    let (port, _) = http_peer(|path, _| {
        if path.starts_with("/.well-known/") {
            b"HTTP/1.1 302 Found\r\nLocation: /moved\r\nContent-Length: 0\r\n\r\n".to_vec()
        } else {
            ok(KEYAUTH)
        }
    });
    assert_eq!(go(port), Ok(()), "same-host redirect followed");

    // A redirect to another host is refused without contacting it.
    let (elsewhere, contacted) = http_peer(|_, _| ok(KEYAUTH));
    static ELSEWHERE: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    ELSEWHERE.set(elsewhere).expect("once");
    let (port, _) = http_peer(|_, _| {
        format!(
            "HTTP/1.1 301 Moved\r\nLocation: http://localhost:{}/x\r\nContent-Length: 0\r\n\r\n",
            ELSEWHERE.get().expect("set")
        )
        .into_bytes()
    });
    let p = go(port).expect_err("redirect to another host");
    assert!(p.detail.contains("same host"), "{}", p.detail);
    assert_eq!(contacted.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A body over the cap is refused, not read to its end.
    let (port, _) = http_peer(|_, _| {
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(b'a', 1 << 20));
        r
    });
    let t0 = Instant::now();
    let p = go(port).expect_err("oversized body");
    assert_eq!(p.kind, ProblemType::IncorrectResponse, "{p:?}");
    assert!(t0.elapsed() < DEADLINE, "{:?}", t0.elapsed());

    // Headers promising more body than ever comes: the deadline ends it.
    let (port, _) = http_peer(|_, _| b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ntok".to_vec());
    let t0 = Instant::now();
    let p = go(port).expect_err("stalled body");
    assert_eq!(p.kind, ProblemType::Connection, "{p:?}");
    assert!(t0.elapsed() < DEADLINE + Duration::from_millis(500));
}

/// Accepts every connection and keeps each silent until the peer hangs up.
fn silent_listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
                let mut b = [0u8; 1024];
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

#[test]
fn stalled_challenges_do_not_stop_the_ca_and_a_fake_ssh_server_gets_no_certificate() {
    let lab = Lab::new("ed25519");
    let port = silent_listener().to_string();
    let server = AcmeServerProc::start_with(
        &lab,
        &[
            "--challenge-ssh-port",
            &port,
            "--challenge-timeout-ms",
            "3000",
        ],
    );
    let acct = lab.keygen("acct", "ed25519");
    grant(&lab, &acct.with_extension("pub"), &["--host", "127.0.0.*"]);
    for i in 0..4 {
        lab.keygen(&format!("host{i}"), "ed25519");
    }
    // Register once so the parallel clients do not race to create the account.
    assert!(
        server
            .client(&lab, &["register", "--key", "acct"])
            .status
            .success()
    );
    let url = server.url.clone();
    let dir = lab.dir.clone();
    let t0 = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (url, dir) = (url.clone(), dir.clone());
            std::thread::spawn(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_ssh-acme"))
                    .args(["--server", &url, "issue", "host", "--key", "acct"])
                    .args(["--host-key", &format!("host{i}"), "--name", "127.0.0.1"])
                    .current_dir(&dir)
                    .output()
                    .expect("client")
            })
        })
        .collect();
    // While four validations hang on a silent peer, the directory answers at once.
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(2) {
        let q = Instant::now();
        crate::acme::fetch(&format!("{url}/directory"));
        worst = worst.max(q.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worst < Duration::from_millis(500),
        "directory took {worst:?}"
    );
    for c in clients {
        let out = c.join().expect("client thread");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("key exchange"), "{}", text(&out));
    }
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());

    // An endpoint that only prints "SSH-Permission denied" proves nothing.
    let fake = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fake_port = fake.local_addr().expect("addr").port().to_string();
    std::thread::spawn(move || {
        for s in fake.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let _ = s.write_all(b"SSH-Permission denied\r\n");
                let mut b = [0u8; 1024];
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    drop(server);
    let server = AcmeServerProc::start_with(
        &lab,
        &[
            "--challenge-ssh-port",
            &fake_port,
            "--challenge-timeout-ms",
            "2000",
        ],
    );
    let out = server.client(
        &lab,
        &[
            "issue",
            "host",
            "--key",
            "acct",
            "--host-key",
            "host0",
            "--name",
            "127.0.0.1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("key exchange"), "{}", text(&out));
    assert!(
        !lab.path("host0-cert.pub").exists(),
        "no certificate issued"
    );
}
