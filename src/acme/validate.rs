//! Challenge validation, off the request path.
//!
//! `ssh-hostkey-01` asks whether the named host holds the order's host key: the CA speaks the
//! SSH transport protocol itself (russh), offers only the host-key algorithms the order's key
//! can sign with, and passes only when the key exchange completes, which means the server's
//! signature over the exchange hash verified with the key it presented, and that key is the
//! order's. `http-01` (RFC 8555 §8.3, with an SSH key's thumbprint) fetches the key
//! authorization over HTTP/1.1 with hyper's client connection.
//!
//! Invariants: one deadline covers everything a validation does (name lookup, connect,
//! banner, key exchange, request, body); the socket itself refuses to read or write past it
//! ([`DeadlineStream`]), so nothing a validation started outlives it, not even a task a
//! library spawned. A verdict is `Ok` only on positive proof; every failure is a problem of
//! type `incorrectResponse` (the peer answered, wrongly) or `connection` (no usable answer).
//! [`Validator`] runs validations on its own runtime, at most [`MAX_CONCURRENT`] at once.

use super::problem::{Problem, ProblemType};
use ssh_key::{Algorithm, HashAlg, PublicKey};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The default deadline of one validation, connect to verdict.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Validations running at once; more wait for a slot (their deadline starts in the slot).
pub const MAX_CONCURRENT: usize = 64;
/// The largest `http-01` body read; the key authorization is about 90 bytes.
pub const MAX_HTTP01_BODY: usize = 4096;
/// Same-host redirects an `http-01` fetch follows.
const MAX_REDIRECTS: usize = 3;

/// What one challenge asks to be checked.
#[derive(Debug, Clone)]
pub enum Check {
    /// `host:port` must complete an SSH key exchange proving it holds `key`.
    SshHostkey {
        host: String,
        port: u16,
        key: PublicKey,
    },
    /// `http://host:port/.well-known/acme-challenge/<token>` must answer `expected`.
    Http01 {
        host: String,
        port: u16,
        token: String,
        expected: String,
    },
}

/// Runs checks in the background with one deadline each.
pub struct Validator {
    rt: tokio::runtime::Runtime,
    slots: Arc<tokio::sync::Semaphore>,
    deadline: Duration,
}

impl Validator {
    /// A validator whose checks each get `deadline`, on one thread of its own.
    pub fn new(deadline: Duration) -> std::io::Result<Validator> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("acme-validate")
            .enable_all()
            .build()?;
        Ok(Validator {
            rt,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT)),
            deadline,
        })
    }

    /// Starts `check` and returns at once; `done` gets the verdict, on the validator's thread,
    /// within the deadline of the check's start.
    pub fn start(&self, check: Check, done: impl FnOnce(Result<(), Problem>) + Send + 'static) {
        let (slots, deadline) = (self.slots.clone(), self.deadline);
        self.rt.spawn(async move {
            let _slot = slots.acquire_owned().await;
            done(run(&check, deadline).await);
        });
    }

    /// Runs `check` to its verdict, blocking the calling thread (not for use inside the
    /// validator's own runtime).
    pub fn check_now(&self, check: &Check) -> Result<(), Problem> {
        self.rt.block_on(run(check, self.deadline))
    }
}

/// Runs one check under one deadline.
pub async fn run(check: &Check, deadline: Duration) -> Result<(), Problem> {
    let until = Instant::now() + deadline;
    let (what, work): (String, Pin<Box<dyn Future<Output = _> + Send + '_>>) = match check {
        Check::SshHostkey { host, port, key } => (
            format!("an SSH key exchange with {}", authority(host, *port)),
            Box::pin(ssh_hostkey(host, *port, key, until)),
        ),
        Check::Http01 {
            host,
            port,
            token,
            expected,
        } => (
            format!("the http-01 answer from {}", authority(host, *port)),
            Box::pin(http01(host, *port, token, expected, until)),
        ),
    };
    match tokio::time::timeout_at(until, work).await {
        Ok(verdict) => verdict,
        Err(_) => Err(connection(format!(
            "no {what} within {} ms",
            deadline.as_millis()
        ))),
    }
}

fn connection(d: String) -> Problem {
    Problem::new(ProblemType::Connection, d)
}

fn incorrect(d: String) -> Problem {
    Problem::new(ProblemType::IncorrectResponse, d)
}

/// `host:port`, with brackets around an IPv6 address.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connects to `host:port` with a socket that stops working at `until`.
async fn dial(host: &str, port: u16, until: Instant) -> Result<DeadlineStream, Problem> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| connection(format!("cannot connect to {}: {e}", authority(host, port))))?;
    Ok(DeadlineStream::new(tcp, until))
}

/// The host-key algorithms a server may prove `key` with: the key's own, and for RSA the
/// SHA-2 signature variants (never SHA-1).
fn host_key_algorithms(key: &PublicKey) -> Vec<Algorithm> {
    match key.algorithm() {
        Algorithm::Rsa { .. } => vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ],
        a => vec![a],
    }
}

/// Accepts exactly one host key. russh calls it only after the server's signature over the
/// exchange hash verified with the key it presented.
struct ExpectKey(PublicKey);

impl russh::client::Handler for ExpectKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, russh::Error> {
        // A certificate is never accepted in place of the bare key (none is asked for).
        Ok(match presented {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.key_data() == self.0.key_data()
            }
            russh::keys::PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

/// `ssh-hostkey-01`: completes a key exchange with `host:port` restricted to `key`'s type.
async fn ssh_hostkey(
    host: &str,
    port: u16,
    key: &PublicKey,
    until: Instant,
) -> Result<(), Problem> {
    let at = authority(host, port);
    let stream = dial(host, port, until).await?;
    let config = russh::client::Config {
        preferred: russh::Preferred {
            key: host_key_algorithms(key).into(),
            ..russh::Preferred::default()
        },
        ..russh::client::Config::default()
    };
    let result =
        russh::client::connect_stream(Arc::new(config), stream, ExpectKey(key.clone())).await;
    match result {
        Ok(handle) => {
            // Proven; leave politely, but the verdict does not wait for the peer.
            let bye = handle.disconnect(russh::Disconnect::ByApplication, "validated", "en");
            let _ = tokio::time::timeout(Duration::from_millis(100), bye).await;
            Ok(())
        }
        Err(e) => Err(ssh_problem(&at, key, e)),
    }
}

/// Says what went wrong in a failed key exchange, in terms of the challenge.
fn ssh_problem(at: &str, key: &PublicKey, e: russh::Error) -> Problem {
    use russh::Error as E;
    match e {
        E::UnknownKey => incorrect(format!(
            "{at} presented a host key other than the order's publicKey ({})",
            key.fingerprint(HashAlg::Sha256)
        )),
        E::WrongServerSig => incorrect(format!(
            "{at}'s signature over the key exchange does not verify with the key it presented"
        )),
        E::NoCommonAlgo { kind, theirs, .. } => incorrect(format!(
            "{at} offers no {kind:?} algorithm the order's {} key can prove (it offers {})",
            key.algorithm(),
            theirs.join(",")
        )),
        E::Version => incorrect(format!("{at} did not answer with an SSH version line")),
        E::IO(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            connection(format!("{at} did not complete the key exchange in time"))
        }
        E::Disconnect | E::HUP => connection(format!(
            "{at} closed the connection before the key exchange completed"
        )),
        other => connection(format!("no SSH key exchange with {at}: {other}")),
    }
}

/// `http-01`: `GET http://host:port/.well-known/acme-challenge/<token>` must answer the key
/// authorization (surrounding whitespace ignored). Redirects are followed only to another
/// path on the same host and port.
async fn http01(
    host: &str,
    port: u16,
    token: &str,
    expected: &str,
    until: Instant,
) -> Result<(), Problem> {
    let at = authority(host, port);
    let mut path = format!("/.well-known/acme-challenge/{token}");
    for _ in 0..=MAX_REDIRECTS {
        let url = format!("http://{at}{path}");
        let (status, location, body) = http_get(host, port, &path, until).await?;
        match (status, location) {
            (200, _) => {
                return if String::from_utf8_lossy(&body).trim() == expected {
                    Ok(())
                } else {
                    Err(incorrect(format!(
                        "{url} did not answer the key authorization"
                    )))
                };
            }
            (300..=399, Some(loc)) => path = same_host_path(&loc, host, port, &url)?,
            (s, _) => return Err(incorrect(format!("{url} answered HTTP {s}"))),
        }
    }
    Err(incorrect(format!(
        "http://{at}/.well-known/acme-challenge/{token} redirected more than {MAX_REDIRECTS} times"
    )))
}

/// The path a redirect leads to, if it stays on `host:port` (an absolute `http:` URL may leave
/// out port 80).
fn same_host_path(location: &str, host: &str, port: u16, from: &str) -> Result<String, Problem> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Ok(location.to_string());
    }
    let mut prefixes = vec![format!("http://{}/", authority(host, port))];
    if port == 80 {
        prefixes.push(format!(
            "http://{}/",
            authority(host, port).trim_end_matches(":80")
        ));
    }
    match prefixes
        .iter()
        .find_map(|p| location.strip_prefix(p.as_str()))
    {
        Some(rest) => Ok(format!("/{rest}")),
        None => Err(incorrect(format!(
            "{from} redirected to {location}: http-01 follows redirects only on the same host"
        ))),
    }
}

/// One GET: status, `Location`, and at most [`MAX_HTTP01_BODY`] bytes of body.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    until: Instant,
) -> Result<(u16, Option<String>, Vec<u8>), Problem> {
    use http_body_util::BodyExt;
    let at = authority(host, port);
    let stream = dial(host, port, until).await?;
    let fail = |e: hyper::Error| connection(format!("http://{at}{path}: {e}"));
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(fail)?;
    // The connection task ends with the socket, which ends at the deadline.
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, &at)
        .header(hyper::header::USER_AGENT, "ssh-acme-validator")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| incorrect(format!("bad challenge URL http://{at}{path}: {e}")))?;
    let resp = send.send_request(req).await.map_err(fail)?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = http_body_util::Limited::new(resp.into_body(), MAX_HTTP01_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                incorrect(format!(
                    "http://{at}{path}: the body is over {MAX_HTTP01_BODY} bytes"
                ))
            } else {
                connection(format!("http://{at}{path}: cannot read the body: {e}"))
            }
        })?
        .to_bytes()
        .to_vec();
    Ok((status, location, body))
}

/// A TCP stream that fails every read and write once its deadline has passed, waking a
/// reader blocked on a silent peer. Why not a timeout around the caller: russh runs the
/// session in a task of its own, which a dropped caller leaves behind, reading forever from a
/// peer that sends a byte a second; failing the socket ends that task too.
pub struct DeadlineStream {
    inner: tokio::net::TcpStream,
    expiry: Pin<Box<Sleep>>,
}

impl DeadlineStream {
    pub fn new(inner: tokio::net::TcpStream, until: Instant) -> DeadlineStream {
        DeadlineStream {
            inner,
            expiry: Box::pin(tokio::time::sleep_until(until)),
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> Option<std::io::Error> {
        self.expiry.as_mut().poll(cx).is_ready().then(|| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "validation deadline passed")
        })
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The key authorization of RFC 8555 §8.1 with an SSH account key: `token "." base64url(
/// SHA-256(the key's SSH wire blob))`.
pub fn key_authorization(token: &str, account_key: &PublicKey) -> Result<String, Problem> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use sha2::{Digest, Sha256};
    let blob = account_key
        .to_bytes()
        .map_err(|e| Problem::new(ProblemType::ServerInternal, e.to_string()))?;
    Ok(format!(
        "{token}.{}",
        Base64UrlUnpadded::encode_string(&Sha256::digest(&blob))
    ))
}

/// HMAC-SHA256 (RFC 2104), for external account binding.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // HMAC takes keys of any length, so new_from_slice cannot fail here.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// The external account binding MAC: HMAC-SHA256 with the operator's key over the account
/// key's OpenSSH line (`type base64`, no comment).
pub fn eab_mac(mac_key: &[u8], account_key: &PublicKey) -> Result<[u8; 32], Problem> {
    let mut plain = account_key.clone();
    plain.set_comment("");
    let line = plain
        .to_openssh()
        .map_err(|e| Problem::new(ProblemType::ServerInternal, e.to_string()))?;
    Ok(hmac_sha256(mac_key, line.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hmac_sha256_matches_rfc_4231_cases_2_and_6() {
        let hex = |m: [u8; 32]| m.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mac = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a 131-byte key, longer than the block, is hashed first.
        let mac = super::hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn redirects_stay_on_the_challenge_host() {
        let from = "http://example.org/x";
        let go = |loc: &str, port: u16| super::same_host_path(loc, "example.org", port, from);
        assert_eq!(go("/y", 80).unwrap(), "/y");
        assert_eq!(go("http://example.org:80/z", 80).unwrap(), "/z");
        assert_eq!(go("http://example.org/z", 80).unwrap(), "/z");
        assert!(go("http://example.org/z", 8080).is_err());
        let other_hosts = [
            "//evil.example/",
            "http://evil.example/",
            "https://example.org/z",
            "http://example.org.evil.example/",
            "http://example.org:80@evil.example/",
        ];
        for bad in other_hosts {
            assert!(go(bad, 80).is_err(), "{bad}");
        }
    }
}
