//! The HTTP edge of `ssh-acme serve` against peers that do not cooperate, over real loopback
//! sockets: hundreds of connections trickling headers or bodies, idle keep-alive connections,
//! one address opening too many. Honest clients must keep being answered and every slow peer
//! must be cut off by the read timeout. (How fast honest clients are answered under attack is
//! measured in benches/acmebench.rs, not here.)

use crate::acme::{AcmeServerProc, allow, fetch};
use crate::ssh_ca::{Lab, text};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const READ_TIMEOUT_MS: u64 = 3000;

fn addr(server: &AcmeServerProc) -> SocketAddr {
    server
        .url
        .strip_prefix("http://")
        .expect("http url")
        .parse()
        .expect("socket address")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// One slow peer from `source`: trickles a request's headers (or, with `body`, complete
/// headers of a large POST and then its body) at one byte a second, until the server hangs
/// up. Returns how long the server let it stay, or None if it was never cut off.
async fn trickle(source: Ipv4Addr, to: SocketAddr, body: bool) -> Option<Duration> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(source.into(), 0)).ok()?;
    let mut s = sock.connect(to).await.ok()?;
    let t0 = Instant::now();
    let head: &[u8] = if body {
        s.write_all(
            b"POST /acme/new-order HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose+json\r\nContent-Length: 60000\r\n\r\n",
        )
        .await
        .ok()?;
        b"{\"protected\":"
    } else {
        b"GET /directory HTTP/1.1\r\nHost: x\r\nX-Slow: "
    };
    let mut buf = [0u8; 1024];
    for b in head.iter().cycle() {
        if s.write_all(&[*b]).await.is_err() {
            return Some(t0.elapsed());
        }
        // A second between bytes, unless the server answers or hangs up first.
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {} // a 408 for the body, say; keep going until it closes
            Err(_) => {}
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return None;
        }
    }
    None
}

#[test]
fn five_hundred_slow_connections_stop_no_honest_client_and_are_all_cut_off() {
    let lab = Lab::new("ed25519");
    let ms = READ_TIMEOUT_MS.to_string();
    let server = AcmeServerProc::start_with(&lab, &["--read-timeout-ms", &ms]);
    let to = addr(&server);
    let key = lab.keygen("acct", "ed25519");
    allow(&lab, &key.with_extension("pub"), "alice");
    let rss_before = rss_kib(server.pid());

    // 500 slow peers from ten loopback addresses (50 each, under the per-address limit of
    // 64), half trickling headers and half bodies.
    let attack = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let peers: Vec<_> = (0..500)
                .map(|i| {
                    let source = Ipv4Addr::new(127, 0, 0, 2 + (i % 10) as u8);
                    tokio::spawn(trickle(source, to, i % 2 == 1))
                })
                .collect();
            let mut stayed = Vec::new();
            for p in peers {
                stayed.push(p.await.expect("peer task"));
            }
            stayed
        })
    });
    std::thread::sleep(Duration::from_millis(500));

    // While they trickle, 20 honest clients fetch the directory and two issue certificates.
    let url = server.url.clone();
    let honest: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut worst = Duration::ZERO;
                for _ in 0..10 {
                    let t = Instant::now();
                    assert!(!fetch(&format!("{url}/directory")).is_empty());
                    worst = worst.max(t.elapsed());
                    std::thread::sleep(Duration::from_millis(50));
                }
                worst
            })
        })
        .collect();
    for i in 0..2 {
        let out = server.client(
            &lab,
            &["issue", "user", "--key", "acct", "--principal", "alice"],
        );
        assert!(
            out.status.success(),
            "issuance {i} under attack: {}",
            text(&out)
        );
    }
    let rss_during = rss_kib(server.pid());
    let worst = honest
        .into_iter()
        .map(|h| h.join().expect("honest client"))
        .max()
        .expect("20 clients");
    // Generous: the machine is shared; the bench measures p99.
    assert!(
        worst < Duration::from_secs(2),
        "an honest request took {worst:?}"
    );

    let stayed = attack.join().expect("attack");
    let cut = Duration::from_millis(READ_TIMEOUT_MS) + Duration::from_secs(2);
    let never = stayed.iter().filter(|s| s.is_none()).count();
    assert_eq!(never, 0, "{never} slow peers were never cut off");
    let longest = stayed.iter().flatten().max().copied().unwrap_or_default();
    assert!(longest < cut, "a slow peer stayed {longest:?}");
    assert!(
        rss_during < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_during} KiB under 500 slow peers"
    );
    eprintln!(
        "worst honest {worst:?}; slow peers cut after at most {longest:?}; RSS {rss_before} -> {rss_during} KiB"
    );
}

fn request(s: &mut TcpStream, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Reads one response: headers plus Content-Length bytes.
    loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed before an answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[test]
fn keep_alive_serves_many_requests_and_idle_or_crowding_connections_are_refused() {
    let lab = Lab::new("ed25519");
    let ms = READ_TIMEOUT_MS.to_string();
    let server = AcmeServerProc::start_with(
        &lab,
        &[
            "--read-timeout-ms",
            &ms,
            "--max-connections-per-client",
            "8",
        ],
    );
    let to = addr(&server);

    // Keep-alive: several requests on one connection, then the idle connection is closed.
    let mut s = TcpStream::connect(to).expect("connect");
    for _ in 0..3 {
        let r = request(&mut s, "/directory");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut b = [0u8; 16];
    assert!(
        matches!(s.read(&mut b), Ok(0) | Err(_)),
        "idle connection closed"
    );
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(READ_TIMEOUT_MS - 500)
            && idle < Duration::from_millis(READ_TIMEOUT_MS + 2000),
        "closed after {idle:?}"
    );

    // One address holds 8 connections; the 9th is answered 429 at once; another address is
    // still served.
    let from = |last: u8| {
        let sock = socket_from(Ipv4Addr::new(127, 0, 0, last), to);
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        sock
    };
    let held: Vec<TcpStream> = (0..8).map(|_| from(20)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = from(20);
    let t0 = Instant::now();
    let r = request(&mut ninth, "/directory");
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 1"), "{r}");
    assert!(r.contains("rateLimited"), "{r}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // A refused connection that sends nothing is not kept for the full read timeout.
    let mut silent = from(20);
    let t0 = Instant::now();
    let mut b = [0u8; 16];
    assert!(matches!(silent.read(&mut b), Ok(0) | Err(_)), "closed");
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    let r = request(&mut from(21), "/directory");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let r = request(&mut from(20), "/directory");
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "slots come back when connections close: {r}"
    );
}

/// A blocking connection from a chosen loopback source address.
fn socket_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(SocketAddr::new(source.into(), 0))
            .expect("bind source");
        sock.connect(to).await.expect("connect")
    })
    .into_std()
    .and_then(|s| {
        s.set_nonblocking(false)?;
        Ok(s)
    })
    .expect("std socket")
}
