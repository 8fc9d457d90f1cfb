//! ssh-acme load benchmark: C concurrent clients (default 100) complete user-certificate
//! orders (new-order, finalize with proof of possession, download) against one `ssh-acme
//! serve` on loopback for D seconds (default 10) per phase:
//! 1. closed loop (each client issues back to back): the server's capacity;
//! 2. paced at 500 issuances/s in total (the goal's rate): latency below capacity;
//! 3. four times as many clients (four times the requests in flight) with the server's request
//!    timeout at 50 ms: what waits longer than that must be refused fast (`rateLimited`), not
//!    queued forever;
//! 4. closed loop again over HTTPS (`--tls-cert`, a certificate made with openssl): what TLS,
//!    with a new connection per request, costs;
//! 5. hostile: closed loop again while 200 slow connections trickle headers or bodies at a
//!    byte a second (from five other loopback addresses, reconnecting when cut off) and 10
//!    clients keep posting host orders whose `ssh-hostkey-01` peer sends a banner and then
//!    nothing: honest throughput should stay at least 80% of phase 1, p99 under 100 ms.
//!
//! Reports issuances per second, p50/p99 latency of a whole issuance, errors (split into
//! rate-limited and other) and whether every serial is unique.
//! Run: `cargo bench --bench acmebench` (`BENCH_CLIENTS=20 BENCH_SECS=5` for a quick run).

mod common;

use bitrot::acme::client::Client;
use common::{Row, env_n, hist, loadavg, ns, pcts, print_table};
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, PrivateKey, getrandom::SysRng};
use std::collections::HashSet;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Phase {
    issued: usize,
    rate: f64,
    hist: hdrhistogram::Histogram<u64>,
    limited: usize,
    other_errors: Vec<String>,
    unique: bool,
}

/// Starts `ssh-acme serve` on `ca` (with `extra` flags) and returns the process and its URL.
fn start_server(
    ca: &std::path::Path,
    timeout_ms: u64,
    extra: &[&str],
) -> (std::process::Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_ssh-acme"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--timeout-ms",
            &timeout_ms.to_string(),
            "--dir",
        ])
        .arg(ca)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh-acme serve");
    let mut banner = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut banner)
        .expect("banner");
    (
        server,
        banner
            .trim()
            .trim_start_matches("listening on ")
            .to_string(),
    )
}

/// Every client issues until `secs` pass; with `rate` > 0 the clients together start at most
/// `rate` issuances per second (each client paced at rate / clients).
fn phase(url: &str, keys: &[PrivateKey], secs: u64, rate: f64) -> Phase {
    let lat = Arc::new(Mutex::new(hist()));
    let certs = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(secs);
    let gap = (rate > 0.0).then(|| Duration::from_secs_f64(keys.len() as f64 / rate));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for (i, k) in keys.iter().enumerate() {
            let (lat, certs, errors) = (lat.clone(), certs.clone(), errors.clone());
            s.spawn(move || {
                let mut c = match Client::new(url, k.clone()) {
                    Ok(c) => c,
                    Err(e) => return errors.lock().expect("errors").push(e.to_string()),
                };
                let principals = vec!["bench".to_string()];
                // Spread the paced clients' start times over one gap.
                let mut next = Instant::now()
                    + gap.map_or(Duration::ZERO, |g| g.mul_f64(i as f64 / keys.len() as f64));
                while Instant::now() < until {
                    if let Some(g) = gap {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += g;
                    }
                    let a = Instant::now();
                    match c.issue_user(k, &principals, Some("1h")) {
                        Ok(cert) => {
                            lat.lock()
                                .expect("lat")
                                .saturating_record(ns(a.elapsed()).max(1));
                            certs.lock().expect("certs").push(cert);
                        }
                        Err(e) => errors.lock().expect("errors").push(e.to_string()),
                    }
                }
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let certs = certs.lock().expect("certs").clone();
    let serials: HashSet<u64> = certs
        .iter()
        .map(|c| {
            ssh_key::Certificate::from_openssh(c)
                .expect("cert")
                .serial()
        })
        .collect();
    let errors = errors.lock().expect("errors").clone();
    let (limited, other): (Vec<String>, Vec<String>) =
        errors.into_iter().partition(|e| e.contains("rateLimited"));
    let h = lat.lock().expect("lat").clone();
    Phase {
        issued: certs.len(),
        rate: certs.len() as f64 / wall,
        hist: h,
        limited: limited.len(),
        other_errors: other,
        unique: serials.len() == certs.len(),
    }
}

fn row(name: String, p: &Phase) -> Row {
    let mut cols = vec![format!("{:.0}", p.rate), p.issued.to_string()];
    cols.extend(
        pcts(&p.hist)
            .into_iter()
            .map(|v| format!("{:.1}", v.parse::<f64>().unwrap_or(0.0) / 1e6)),
    );
    cols.push(p.limited.to_string());
    cols.push(p.other_errors.len().to_string());
    cols.push(p.unique.to_string());
    Row { name, cols }
}

/// One slow peer: connects from `source`, trickles a request (headers, or with `body` the
/// body of a large POST) a byte a second, and reconnects when cut off, until `until`.
async fn slow_peer(
    source: std::net::Ipv4Addr,
    to: std::net::SocketAddr,
    body: bool,
    until: Instant,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while Instant::now() < until {
        let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
            return;
        };
        if sock.bind((source, 0).into()).is_err() {
            return;
        }
        let Ok(mut s) = sock.connect(to).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (head, trickled): (&[u8], &[u8]) = if body {
            (
                b"POST /acme/new-order HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose+json\r\nContent-Length: 60000\r\n\r\n",
                b"{\"protected\":",
            )
        } else {
            (b"", b"GET /directory HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        };
        if s.write_all(head).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        for b in trickled.iter().cycle() {
            if Instant::now() >= until || s.write_all(&[*b]).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
    }
}

/// Accepts SSH connections, sends a banner and then nothing.
fn silent_ssh_peer() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
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

/// Runs a closed-loop phase while 200 slow connections and 10 stalled host challenges are
/// active; returns the honest phase and the number of host orders that failed as they should.
fn hostile_phase(
    url: &str,
    keys: &[PrivateKey],
    hostile: &[PrivateKey],
    secs: u64,
) -> (Phase, usize) {
    let to: std::net::SocketAddr = url.trim_start_matches("http://").parse().expect("address");
    let until = Instant::now() + Duration::from_secs(secs + 1);
    let slow = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let peers: Vec<_> = (0..200)
                .map(|i| {
                    let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % 5) as u8);
                    tokio::spawn(slow_peer(source, to, i % 2 == 1, until))
                })
                .collect();
            for p in peers {
                let _ = p.await;
            }
        });
    });
    let failed_as_expected = Arc::new(Mutex::new(0usize));
    let challengers: Vec<_> = hostile
        .iter()
        .map(|k| {
            let (url, k, count) = (url.to_string(), k.clone(), failed_as_expected.clone());
            std::thread::spawn(move || {
                let Ok(mut c) = Client::new(&url, k.clone()) else {
                    return;
                };
                let names = vec!["127.0.0.1".to_string()];
                while Instant::now() < until {
                    match c.issue_host(&k, &names, &bitrot::acme::client::Proof::SshHostKey) {
                        Err(e) if e.to_string().contains("key exchange") => {
                            *count.lock().expect("count") += 1
                        }
                        Ok(_) => panic!("a stalled challenge passed"),
                        // Refused or rate-limited: the challenge never started; try again.
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let honest = phase(url, keys, secs, 0.0);
    let _ = slow.join();
    for c in challengers {
        let _ = c.join();
    }
    let n = *failed_as_expected.lock().expect("count");
    (honest, n)
}

/// A CA and a server certificate for 127.0.0.1 made with openssl; returns the serve flags.
fn tls_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::write(
        dir.join("tls.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1";
    let steps = [
        format!("req -x509 {ec} -keyout ca.key -out ca.pem"),
        format!("req {ec} -keyout tls.key -out tls.csr"),
        "x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -out tls.pem -days 1 -extfile tls.ext"
            .to_string(),
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args}");
    }
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    vec![
        "--tls-cert".into(),
        path("tls.pem"),
        "--tls-key".into(),
        path("tls.key"),
    ]
}

fn main() {
    let clients = env_n("BENCH_CLIENTS", 100) as usize;
    let secs = env_n("BENCH_SECS", 10);
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = tmp.path().join("ca");
    let ok = Command::new(env!("CARGO_BIN_EXE_ssh-ca"))
        .args(["init", "--dir"])
        .arg(&ca)
        .output()
        .expect("ssh-ca init");
    assert!(ok.status.success());
    println!(
        "# acmebench: {clients} clients, {secs} s per phase; loadavg at start {}",
        loadavg()
    );
    // One account key per client, granted the principal "bench".
    let keys: Vec<PrivateKey> = (0..clients)
        .map(|_| PrivateKey::random(&mut UnwrapErr(SysRng), Algorithm::Ed25519).expect("key"))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let p = tmp.path().join(format!("k{i}.pub"));
        std::fs::write(&p, k.public_key().to_openssh().expect("pub")).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_ssh-acme"))
            .args(["account", "allow", "--dir"])
            .arg(&ca)
            .arg("--key")
            .arg(&p)
            .args(["--principal", "bench"])
            .output()
            .expect("allow");
        assert!(out.status.success());
    }
    // Ten more accounts, granted host names, for the stalled challenges of phase 5.
    let hostile: Vec<PrivateKey> = (0..10)
        .map(|_| PrivateKey::random(&mut UnwrapErr(SysRng), Algorithm::Ed25519).expect("key"))
        .collect();
    for (i, k) in hostile.iter().enumerate() {
        let p = tmp.path().join(format!("h{i}.pub"));
        std::fs::write(&p, k.public_key().to_openssh().expect("pub")).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_ssh-acme"))
            .args(["account", "allow", "--dir"])
            .arg(&ca)
            .arg("--key")
            .arg(&p)
            .args(["--host", "127.0.0.1"])
            .output()
            .expect("allow");
        assert!(out.status.success());
    }
    let (mut server, url) = start_server(&ca, 10_000, &[]);
    let closed = phase(&url, &keys, secs, 0.0);
    let paced = phase(&url, &keys, secs, 500.0);
    let _ = server.kill();
    let _ = server.wait();
    // All 400 clients come from 127.0.0.1: lift the per-address connection limit so that this
    // phase measures the request timeout, not that limit.
    let (mut server, url) = start_server(&ca, 50, &["--max-connections-per-client", "1000"]);
    // Four clients per account, closed loop: four times the in-flight requests of phase 1.
    let crowd: Vec<PrivateKey> = keys.iter().cycle().take(4 * keys.len()).cloned().collect();
    let over = phase(&url, &crowd, secs, 0.0);
    let _ = server.kill();
    let _ = server.wait();
    let ssh_port = silent_ssh_peer().to_string();
    let (mut server, url) = start_server(
        &ca,
        10_000,
        &[
            "--challenge-ssh-port",
            &ssh_port,
            "--challenge-timeout-ms",
            "2000",
        ],
    );
    let (hostile_run, stalled_failed) = hostile_phase(&url, &keys, &hostile, secs);
    let _ = server.kill();
    let _ = server.wait();
    let tls = tls_files(tmp.path());
    bitrot::acme::tls::trust(&tmp.path().join("ca.pem")).expect("trust the test CA");
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let (mut server, url) = start_server(&ca, 10_000, &tls);
    assert!(url.starts_with("https://"), "{url}");
    let closed_tls = phase(&url, &keys, secs, 0.0);
    let _ = server.kill();
    let _ = server.wait();
    print_table(
        &format!("user-certificate issuances (loadavg {})", loadavg()),
        &[
            "phase",
            "issuances/s",
            "issued",
            "p50 ms",
            "p90",
            "p99",
            "p99.9",
            "max",
            "rate-limited",
            "other errors",
            "serials unique",
        ],
        &[
            row(format!("closed loop, {clients} clients"), &closed),
            row("paced at 500/s".into(), &paced),
            row(
                format!("{} clients (overload), request timeout 50 ms", crowd.len()),
                &over,
            ),
            row(
                format!("closed loop over TLS, {clients} clients"),
                &closed_tls,
            ),
            row(
                format!("hostile: {clients} clients, 200 slow peers, 10 stalled challenges"),
                &hostile_run,
            ),
        ],
    );
    println!("stalled host challenges failed as they should: {stalled_failed}");
    for p in [&closed, &paced, &over, &closed_tls, &hostile_run] {
        if let Some(e) = p.other_errors.first() {
            println!("first other error: {e}");
        }
    }
    let ms = |p: &Phase, q: f64| p.hist.value_at_quantile(q) as f64 / 1e6;
    println!(
        "\nRESULT capacity_per_s={:.0} capacity_tls_per_s={:.0} paced500_p50_ms={:.1} paced500_p99_ms={:.1} overload_p99_ms={:.1} overload_rate_limited={} hostile_per_s={:.0} hostile_ratio={:.2} hostile_p99_ms={:.1} hostile_errors={} stalled_challenges_failed={} errors={} serials_unique={} loadavg={}",
        closed.rate,
        closed_tls.rate,
        ms(&paced, 0.5),
        ms(&paced, 0.99),
        ms(&over, 0.99),
        over.limited,
        hostile_run.rate,
        hostile_run.rate / closed.rate.max(1e-9),
        ms(&hostile_run, 0.99),
        hostile_run.limited + hostile_run.other_errors.len(),
        stalled_failed,
        closed.other_errors.len()
            + paced.other_errors.len()
            + over.other_errors.len()
            + closed_tls.other_errors.len()
            + hostile_run.other_errors.len(),
        closed.unique && paced.unique && over.unique && closed_tls.unique && hostile_run.unique,
        loadavg()
    );
}
