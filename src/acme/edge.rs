//! The HTTP edge of `ssh-acme serve`: hyper's HTTP/1.1 server on a tokio runtime, plain or
//! with TLS (tokio-rustls), in front of [`AcmeServer::handle`].
//!
//! Why hyper: the edge faces peers that trickle, stall and lie; hyper's request parser and
//! connection state machine are used on the open internet, and its header timeout, header
//! size limit and keep-alive are what a hand-written reader got wrong (two slow POSTs used to
//! stop the CA).
//!
//! Invariants: a request reaches a `sched` worker only when its headers and its whole body
//! have arrived, within [`Limits::header_timeout`] and [`Limits::body_timeout`]; waiting peers
//! hold only a tokio task and a socket, never a worker. Past a limit the peer gets an answer at
//! once and nothing else waits: a body over [`MAX_BODY`] is 413 (refused from its
//! `Content-Length` before it is read), a body that does not arrive in time 408, a connection
//! over the per-address limit 429, over the total 503 (each with `Connection: close`). A
//! connection whose headers do not arrive in time, or that sits idle between keep-alive
//! requests that long, is closed. Every answer carries a fresh `Replay-Nonce`.

use super::problem::{Problem, ProblemType};
use super::server::{AcmeServer, HttpRequest, HttpResponse, MAX_BODY};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The edge's limits; [`Limits::default`] is what `serve` uses unless told otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_per_client: usize,
    /// Time for a request's headers to arrive, and for an idle keep-alive connection to send
    /// its next request.
    pub header_timeout: Duration,
    /// Time for a request's body to arrive once its headers have.
    pub body_timeout: Duration,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a complete request may wait for a worker before it is answered `rateLimited`.
    pub queue_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            max_per_client: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            queue_timeout: Duration::from_secs(10),
        }
    }
}

/// The largest header block hyper buffers for one request.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Headers in one request.
const MAX_HEADERS: usize = 64;
/// How long a connection refused over a limit may take to send its request.
const REFUSED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How much of an oversized body is read and dropped before the 413, and for how long.
const LINGER_BYTES: usize = 1 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Serves `listener` until the process ends (or the listener fails): plain HTTP, or HTTPS
/// with `tls`. Each complete request runs as a task with a deadline on `exec`.
pub fn serve(
    server: Arc<AcmeServer>,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    exec: &crate::sched::Executor,
    limits: Limits,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ssh-acme-edge")
        .enable_all()
        .build()?;
    listener.set_nonblocking(true)?;
    let edge = Arc::new(Edge {
        server,
        exec: exec.clone(),
        limits,
        tls: tls.map(tokio_rustls::TlsAcceptor::from),
        open: Mutex::new(Open::default()),
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(edge.clone().connection(tcp, peer.ip()));
                }
                Err(e) => {
                    // Out of descriptors, most likely: do not spin on accept.
                    crate::warn!("accept failed", error = e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection is refused before any request is read.
#[derive(Clone, Copy)]
enum Refusal {
    /// Over the per-address limit: 429.
    Client,
    /// Over the total: 503.
    Total,
}

struct Edge {
    server: Arc<AcmeServer>,
    exec: crate::sched::Executor,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    open: Mutex<Open>,
}

/// A counted connection; uncounted on drop.
struct Slot {
    edge: Arc<Edge>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.edge.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

impl Edge {
    /// Counts a new connection from `client`, or says why it is refused.
    fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.limits.max_connections {
            return Err(Refusal::Total);
        }
        let mine = open.per_client.entry(client).or_default();
        if *mine >= self.limits.max_per_client {
            return Err(Refusal::Client);
        }
        *mine += 1;
        open.total += 1;
        Ok(Slot {
            edge: self.clone(),
            client,
        })
    }

    async fn connection(self: Arc<Self>, tcp: tokio::net::TcpStream, client: IpAddr) {
        let admitted = self.admit(client);
        if let Err(refusal) = admitted {
            crate::debug!(
                "connection refused over a limit",
                client = client.to_string(),
                total = matches!(refusal, Refusal::Total)
            );
        }
        match &self.tls {
            None => self.http(TokioIo::new(tcp), admitted).await,
            Some(acceptor) => {
                let shake = acceptor.accept(tcp);
                match tokio::time::timeout(self.limits.handshake_timeout, shake).await {
                    Ok(Ok(tls)) => self.http(TokioIo::new(tls), admitted).await,
                    Ok(Err(e)) => crate::debug!("TLS handshake failed", error = e.to_string()),
                    Err(_) => crate::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    /// Runs HTTP/1.1 on an accepted connection: requests to the server, or, for a refused
    /// connection, one fast refusal.
    async fn http<I>(self: Arc<Self>, io: TokioIo<I>, admitted: Result<Slot, Refusal>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // A refused connection is not counted, so it must not linger: it gets one second to
        // send the request it is refused for (a flood of silent ones then costs little).
        let header_timeout = match admitted {
            Ok(_) => self.limits.header_timeout,
            Err(_) => self.limits.header_timeout.min(REFUSED_HEADER_TIMEOUT),
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEADER_BYTES.max(8192))
            .max_headers(MAX_HEADERS)
            .keep_alive(admitted.is_ok());
        let edge = self.clone();
        let refused = admitted.as_ref().err().copied();
        let service = hyper::service::service_fn(move |req| {
            let edge = edge.clone();
            async move {
                let resp = match refused {
                    Some(r) => edge.refusal(r),
                    None => edge.request(req).await,
                };
                Ok::<_, std::convert::Infallible>(to_hyper(resp, refused.is_some()))
            }
        });
        if let Err(e) = builder.serve_connection(io, service).await {
            crate::debug!("HTTP connection ended", error = e.to_string());
        }
        drop(admitted);
    }

    fn problem(&self, status: u16, p: Problem) -> HttpResponse {
        HttpResponse::problem(&p.with_status(status)).with("Replay-Nonce", self.server.nonce())
    }

    fn refusal(&self, r: Refusal) -> HttpResponse {
        let (status, what) = match r {
            Refusal::Client => (429, "too many connections from your address"),
            Refusal::Total => (503, "too many connections"),
        };
        self.problem(status, Problem::new(ProblemType::RateLimited, what))
            .with("Retry-After", "1".into())
    }

    /// Reads the whole request within its limits, then runs it on the executor.
    async fn request(&self, req: hyper::Request<Incoming>) -> HttpResponse {
        let (parts, body) = req.into_parts();
        let too_big = || {
            let d = format!("the body is over {MAX_BODY} bytes");
            self.problem(413, Problem::new(ProblemType::Malformed, d))
        };
        let declared = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            // Closing on an unread body makes the kernel reset the connection, and the client
            // may lose the answer: read and drop a bounded amount, for a bounded time, first.
            let drain = Limited::new(body, LINGER_BYTES).collect();
            let _ = tokio::time::timeout(LINGER_TIME, drain).await;
            return too_big();
        }
        let read = Limited::new(body, MAX_BODY).collect();
        let body = match tokio::time::timeout(self.limits.body_timeout, read).await {
            Ok(Ok(b)) => b.to_bytes().to_vec(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_big(),
            Ok(Err(e)) => {
                let d = format!("cannot read the body: {e}");
                return self.problem(400, Problem::new(ProblemType::Malformed, d));
            }
            Err(_) => {
                let d = format!(
                    "the body did not arrive within {} s",
                    self.limits.body_timeout.as_secs()
                );
                return self.problem(408, Problem::new(ProblemType::Malformed, d));
            }
        };
        let content_type = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
        let req = HttpRequest {
            method: parts.method.as_str().to_string(),
            path,
            content_type,
            body,
        };
        self.run(req).await
    }

    /// Runs `handle` as a task with a deadline on the executor and waits for its answer.
    async fn run(&self, req: HttpRequest) -> HttpResponse {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (server, clock) = (self.server.clone(), self.exec.clone());
        let deadline = self.exec.now() + self.limits.queue_timeout;
        // Run late on purpose: a request that waited past its deadline still gets an answer,
        // a fast `rateLimited`, instead of a dropped connection.
        let opts = crate::sched::Opts::new(deadline).on_miss(crate::sched::OnMiss::RunLate);
        drop(self.exec.spawn_with(opts, move |ctx| {
            let resp = if clock.now() > ctx.deadline() {
                super::server::overloaded().with("Replay-Nonce", server.nonce())
            } else {
                server.handle(&req, crate::ca::unix_now())
            };
            let _ = tx.send(resp);
        }));
        rx.await.unwrap_or_else(|_| {
            let p = Problem::new(ProblemType::ServerInternal, "the request was dropped");
            self.problem(500, p)
        })
    }
}

fn to_hyper(resp: HttpResponse, close: bool) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            headers.append(k, v);
        }
    }
    if close {
        headers.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    out
}
