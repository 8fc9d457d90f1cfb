//! TLS for ssh-acme, with rustls and the ring provider: the server side of
//! `ssh-acme serve --tls-cert F --tls-key F` and the client side of `https://` directories.
//!
//! The HTTPS listener reads each request with a minimal HTTP/1.1 reader (request line, headers,
//! `Content-Length` body) and hands it to the same [`AcmeServer::handle`] as the plain
//! listener, on the executor, with the same deadline rule.
//!
//! Invariants: a body over [`MAX_BODY`] is refused before it is read; a header block over
//! 16 KiB is refused; one request per connection (every response says `Connection: close`);
//! a client trusts only the certificates it is given (`--tls-ca`) or, without one, the
//! system bundle.

use super::problem::{Problem, ProblemType};
use super::server::{AcmeServer, HttpRequest, HttpResponse, MAX_BODY};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How much of a refused request's body is read and dropped before the connection closes,
/// and for how long at most.
const LINGER_BYTES: u64 = 1 << 20;
const LINGER_LIMIT: Duration = Duration::from_secs(2);
/// Time a client has for the TLS handshake and the whole request.
const READ_LIMIT: Duration = Duration::from_secs(30);
/// Time a client has to take in the response.
const WRITE_LIMIT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 512;
/// Where Debian and its kin keep the system trust bundle.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn file_err(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| match e {
            rustls::pki_types::pem::Error::Io(io) => file_err(path, io),
            e => file_err(path, e),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The server configuration from a PEM certificate chain and its PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(io) => file_err(key, io),
        e => file_err(key, format!("not a PEM private key: {e}")),
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

static CLIENT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Sets the certificates the client trusts for `https://` URLs (a PEM file of CA or server
/// certificates). Without a call, the first `https://` request loads the system bundle
/// (`SSL_CERT_FILE`, else Debian's path).
pub fn trust(ca: &Path) -> Result<(), TlsError> {
    let config = client_config(ca)?;
    // A second call in one process keeps the first set of roots; the CLI calls this once.
    let _ = CLIENT.set(config);
    Ok(())
}

fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots
            .add(c)
            .map_err(|e| file_err(ca, format!("unusable certificate: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn client() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let bundle =
        std::env::var_os("SSL_CERT_FILE").map_or(PathBuf::from(SYSTEM_BUNDLE), PathBuf::from);
    if !bundle.is_file() {
        return Err(file_err(
            &bundle,
            "no system trust bundle here; give --tls-ca (or SSL_CERT_FILE)",
        ));
    }
    let c = client_config(&bundle)?;
    Ok(CLIENT.get_or_init(|| c).clone())
}

/// A byte stream to an ACME server: plain or TLS.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Opens a TLS connection over `tcp`, checking the certificate against `host` (a DNS name or
/// an IP address, without port or brackets).
pub fn connect(host: &str, tcp: TcpStream) -> Result<Box<dyn Stream>, TlsError> {
    let server = ServerName::try_from(host.to_string()).map_err(|e| {
        TlsError::Config(rustls::Error::General(format!(
            "{host} is not a server name: {e}"
        )))
    })?;
    let conn = rustls::ClientConnection::new(client()?, server)?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

/// Serves HTTPS on `listener` until the process ends: one thread per connection (at most
/// [`MAX_CONNECTIONS`]; more are closed at once) for the TLS handshake and I/O, the request
/// itself on `exec` with a deadline `timeout` from the moment it has been read.
pub fn serve(
    server: Arc<AcmeServer>,
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    exec: &crate::sched::Executor,
    timeout: Duration,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for tcp in listener.incoming() {
        let tcp = match tcp {
            Ok(t) => t,
            Err(e) => {
                // Out of descriptors, most likely: do not spin on accept.
                crate::warn!("accept failed", error = e.to_string());
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::AcqRel);
            crate::warn!(
                "too many connections; closing a new one",
                limit = MAX_CONNECTIONS
            );
            continue;
        }
        let slot = Slot(open.clone());
        let (server, config, exec) = (server.clone(), config.clone(), exec.clone());
        let spawned = std::thread::Builder::new()
            .name("ssh-acme-tls".into())
            .spawn(move || {
                let _slot = slot;
                connection(server, tcp, config, &exec, timeout)
            });
        if let Err(e) = spawned {
            crate::warn!("cannot start a connection thread", error = e.to_string());
        }
    }
}

/// One open connection counted against [`MAX_CONNECTIONS`]; released on drop.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket whose reads and writes fail once `until` has passed, however slowly the peer
/// trickles bytes: the whole exchange has one deadline, not each read.
struct Timed {
    sock: TcpStream,
    until: Instant,
}

impl Timed {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.set_read_timeout(Some(self.left()?))?;
        self.sock.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.set_write_timeout(Some(self.left()?))?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

fn connection(
    server: Arc<AcmeServer>,
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    exec: &crate::sched::Executor,
    timeout: Duration,
) {
    let conn = match rustls::ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => return crate::warn!("TLS session refused", error = e.to_string()),
    };
    let sock = Timed {
        sock: tcp,
        until: Instant::now() + READ_LIMIT,
    };
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, sock));
    let (resp, refused) = match read_request(&mut tls) {
        Ok(req) => (run(server, req, exec, exec.now() + timeout), false),
        Err(ReadError::Io(e)) => {
            return crate::debug!("HTTPS connection ended early", error = e.to_string());
        }
        Err(ReadError::Bad(p)) => (
            HttpResponse::problem(&p).with("Replay-Nonce", server.nonce()),
            true,
        ),
    };
    let tls = tls.get_mut();
    tls.sock.until = Instant::now() + WRITE_LIMIT;
    let _ = write_response(tls, &resp);
    tls.conn.send_close_notify();
    let _ = tls.flush();
    if refused {
        // Closing with an unread body makes the kernel reset the connection, and the client
        // may lose the answer; read (and drop) a bounded amount, for a bounded time, first.
        tls.sock.until = Instant::now() + LINGER_LIMIT;
        let _ = std::io::copy(&mut tls.take(LINGER_BYTES), &mut std::io::sink());
    }
}

/// Runs `handle` on the executor and waits for its answer.
fn run(
    server: Arc<AcmeServer>,
    req: HttpRequest,
    exec: &crate::sched::Executor,
    deadline: std::time::Instant,
) -> HttpResponse {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let clock = exec.clone();
    let opts = crate::sched::Opts::new(deadline).on_miss(crate::sched::OnMiss::RunLate);
    drop(exec.spawn_with(opts, move |ctx| {
        let resp = if clock.now() > ctx.deadline() {
            super::server::overloaded()
        } else {
            server.handle(&req, crate::ca::unix_now())
        };
        let _ = tx.send(resp);
    }));
    rx.recv().unwrap_or_else(|_| {
        let p = Problem::new(ProblemType::ServerInternal, "the request was dropped");
        HttpResponse::problem(&p)
    })
}

enum ReadError {
    /// The connection failed (handshake, reset, timeout): nobody to answer.
    Io(std::io::Error),
    /// The request is malformed or too large: answered with this problem.
    Bad(Problem),
}

fn bad(detail: impl Into<String>) -> ReadError {
    ReadError::Bad(Problem::new(ProblemType::Malformed, detail))
}

fn read_request(r: &mut impl BufRead) -> Result<HttpRequest, ReadError> {
    let mut head = Vec::new();
    let mut line = Vec::new();
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = r
            .take((MAX_HEAD - head.len()) as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(bad("the request head is over 16 KiB"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| bad("the request head is not UTF-8"))?;
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        headers.push(text.to_string());
    }
    let request_line = headers.first().ok_or_else(|| bad("no request line"))?;
    let (method, path) = match request_line.split(' ').collect::<Vec<_>>()[..] {
        [m, p, "HTTP/1.1" | "HTTP/1.0"] if !m.is_empty() && p.starts_with('/') => {
            (m.to_string(), p.to_string())
        }
        _ => {
            return Err(bad(format!(
                "not an HTTP/1.x request line: {request_line:?}"
            )));
        }
    };
    let mut fields = Vec::new();
    for h in &headers[1..] {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| bad(format!("not a header line: {h:?}")))?;
        if k.is_empty() || k.ends_with([' ', '\t']) || k.starts_with([' ', '\t']) {
            return Err(bad(format!("malformed header name in {h:?}")));
        }
        fields.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let all = |name: &'static str| {
        fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if all("transfer-encoding").next().is_some() {
        return Err(bad("chunked bodies are not accepted; send Content-Length"));
    }
    let mut lengths = all("content-length").collect::<Vec<_>>();
    lengths.dedup();
    let len = match lengths[..] {
        [] => 0,
        [v] if !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse::<usize>()
            .map_err(|_| bad(format!("Content-Length {v:?} is not a number")))?,
        [v] => return Err(bad(format!("Content-Length {v:?} is not a number"))),
        _ => return Err(bad("conflicting Content-Length headers")),
    };
    if len > MAX_BODY {
        return Err(bad(format!("the body is over {MAX_BODY} bytes")));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(ReadError::Io)?;
    Ok(HttpRequest {
        method,
        path,
        content_type: all("content-type").next().map(str::to_string),
        body,
    })
}

fn write_response(w: &mut impl Write, resp: &HttpResponse) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(&resp.body)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_and_refuses_oversized_ones() {
        let raw = b"POST /acme/new-order HTTP/1.1\r\nHost: x\r\ncontent-type: application/jose+json\r\nContent-Length: 2\r\n\r\n{}";
        let req = read_request(&mut &raw[..]).ok().expect("parsed");
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/acme/new-order")
        );
        assert_eq!(req.content_type.as_deref(), Some("application/jose+json"));
        assert_eq!(req.body, b"{}");

        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(matches!(
            read_request(&mut big.as_bytes()),
            Err(ReadError::Bad(_))
        ));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            read_request(&mut long.as_bytes()),
            Err(ReadError::Bad(_))
        ));
        for bad in [
            "hello\r\n\r\n",
            "GET / HTTP/1.1 extra\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
            "POST / HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}",
            "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert!(
                matches!(read_request(&mut bad.as_bytes()), Err(ReadError::Bad(_))),
                "{bad:?}"
            );
        }
        let same_twice = "POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n{}";
        assert!(read_request(&mut same_twice.as_bytes()).is_ok());
        let cut = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}";
        assert!(matches!(
            read_request(&mut cut.as_bytes()),
            Err(ReadError::Io(_))
        ));
    }
}
