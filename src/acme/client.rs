//! The ssh-acme client: a small HTTP/1.1 client (plain HTTP on loopback, or HTTPS through
//! [`super::tls`]) and the account and user-certificate flows of
//! `docs/acme-protocol.md`, following URLs from the directory only.
//!
//! Invariant: a `badNonce` answer is retried (five attempts in all) with the nonce it
//! carries; every other problem is returned to the caller as is.

use super::envelope::{self, Protected};
use super::problem::{Problem, ProblemType};
use super::server::POP_NAMESPACE;
use super::tls;
use base64ct::{Base64UrlUnpadded, Encoding};
use ssh_key::encoding::Encode;
use ssh_key::{HashAlg, PrivateKey, PublicKey};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {why}")]
    Http { url: String, why: String },
    #[error("the server refused: {0}")]
    Problem(Problem),
}

/// A response: status, headers (lower-case names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Largest response body the client takes (certificates and KRLs are far smaller).
const MAX_REPLY: u64 = 8 << 20;

/// The process's HTTP agent (ureq): keep-alive connections, proxies as ureq reads them from
/// the environment (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`, the first set; `NO_PROXY`
/// honoured), redirects refused, one minute per request. TLS roots come from
/// [`tls::trust`] or the system bundle; if neither loads, `https://` requests fail with why.
fn agent() -> &'static (ureq::Agent, Option<String>) {
    static AGENT: std::sync::OnceLock<(ureq::Agent, Option<String>)> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        let (roots, why) = match tls::client_roots() {
            Ok(r) => (r, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let roots: Vec<ureq::tls::Certificate<'static>> = roots
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .proxy(ureq::Proxy::try_from_env())
            .user_agent(concat!("ssh-acme/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        (config.into(), why)
    })
}

/// One HTTP exchange: `GET`, `HEAD`, or `POST` with a `application/jose+json` body.
pub fn http(method: &str, url: &str, body: Option<&[u8]>) -> Result<Reply, ClientError> {
    let err = |why: String| ClientError::Http {
        url: url.into(),
        why,
    };
    let (agent, no_roots) = agent();
    if url.starts_with("https://") {
        if let Some(why) = no_roots {
            return Err(err(why.clone()));
        }
    } else if !url.starts_with("http://") {
        return Err(err("only http:// and https:// URLs are supported".into()));
    }
    let sent = match (method, body) {
        ("GET", None) => agent.get(url).call(),
        ("HEAD", None) => agent.head(url).call(),
        ("POST", Some(b)) => agent
            .post(url)
            .content_type("application/jose+json")
            .send(b),
        _ => return Err(err(format!("{method} is not a request this client makes"))),
    };
    let mut resp = sent.map_err(|e| err(e.to_string()))?;
    let status = resp.status().as_u16();
    if (300..400).contains(&status) {
        let to = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Err(err(format!(
            "the server redirected (HTTP {status}) to {to}; an ACME client follows no redirects"
        )));
    }
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        resp.body_mut()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_vec()
            .map_err(|e| err(format!("reading the reply: {e}")))?
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// How a host proves control of its names.
#[derive(Debug, Clone)]
pub enum Proof {
    /// `ssh-hostkey-01`: the CA checks the key the host's sshd presents.
    SshHostKey,
    /// `http-01`: the answers are written under this web root, which the host serves.
    Http01 { webroot: std::path::PathBuf },
}

/// A client bound to a server and an account key.
pub struct Client {
    directory: serde_json::Value,
    key: PrivateKey,
    kid: Option<String>,
    nonce: Option<String>,
}

fn problem_of(r: &Reply) -> Problem {
    if r.body.is_empty() {
        let kind = match r.status {
            429 => ProblemType::RateLimited,
            403 => ProblemType::Unauthorized,
            500.. => ProblemType::ServerInternal,
            _ => ProblemType::Malformed,
        };
        return Problem::new(kind, format!("HTTP status {}", r.status));
    }
    let v = r.json();
    let urn = v["type"].as_str().unwrap_or("");
    let Some(kind) = ProblemType::from_urn(urn) else {
        // A type this client does not know: keep its name in the detail.
        let detail = format!("{urn}: {}", v["detail"].as_str().unwrap_or("(no detail)"));
        return Problem::new(ProblemType::Malformed, detail).with_status(r.status);
    };
    let p = Problem::new(kind, v["detail"].as_str().unwrap_or("(no detail)"));
    if r.status == kind.status() {
        p
    } else {
        p.with_status(r.status)
    }
}

impl Client {
    /// Reads the directory at `server` (e.g. `http://127.0.0.1:14000`).
    pub fn new(server: &str, key: PrivateKey) -> Result<Client, ClientError> {
        let url = format!("{}/directory", server.trim_end_matches('/'));
        let r = http("GET", &url, None)?;
        if r.status != 200 {
            return Err(ClientError::Problem(problem_of(&r)));
        }
        Ok(Client {
            directory: r.json(),
            key,
            kid: None,
            nonce: None,
        })
    }

    fn dir(&self, name: &str) -> Result<String, ClientError> {
        self.directory[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Http {
                url: "directory".into(),
                why: format!("the directory has no {name}"),
            })
    }

    fn fresh_nonce(&mut self) -> Result<String, ClientError> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let r = http("HEAD", &self.dir("newNonce")?, None)?;
        if r.status >= 400 {
            return Err(ClientError::Problem(problem_of(&r)));
        }
        r.header("replay-nonce")
            .map(str::to_string)
            .ok_or_else(|| ClientError::Http {
                url: "newNonce".into(),
                why: "no Replay-Nonce".into(),
            })
    }

    /// A signed POST; retried on `badNonce` (five attempts in all).
    pub fn post(&mut self, url: &str, payload: &[u8]) -> Result<Reply, ClientError> {
        for attempt in 0..5 {
            let protected =
                Protected {
                    alg: envelope::ALG.into(),
                    nonce: self.fresh_nonce()?,
                    url: url.into(),
                    kid: self.kid.clone(),
                    key: match self.kid {
                        Some(_) => None,
                        None => Some(self.key.public_key().to_openssh().map_err(|e| {
                            ClientError::Http {
                                url: url.into(),
                                why: e.to_string(),
                            }
                        })?),
                    },
                };
            let env =
                envelope::sign(&self.key, &protected, payload).map_err(ClientError::Problem)?;
            let body = serde_json::to_vec(&env).map_err(|e| ClientError::Http {
                url: url.into(),
                why: e.to_string(),
            })?;
            let r = http("POST", url, Some(&body))?;
            self.nonce = r.header("replay-nonce").map(str::to_string);
            if r.status < 400 {
                return Ok(r);
            }
            let p = problem_of(&r);
            if p.kind != ProblemType::BadNonce || attempt == 4 {
                return Err(ClientError::Problem(p));
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Creates (or finds) the account for the key; returns its URL.
    pub fn register(&mut self, contact: &[String]) -> Result<String, ClientError> {
        self.register_with(contact, None)
    }

    /// [`Client::register`] with an external account binding: the operator's key id and
    /// base64url MAC key.
    pub fn register_with(
        &mut self,
        contact: &[String],
        eab: Option<(&str, &str)>,
    ) -> Result<String, ClientError> {
        self.kid = None;
        let url = self.dir("newAccount")?;
        let mut req = serde_json::json!({"contact": contact, "termsOfServiceAgreed": true});
        if let Some((kid, mac_key)) = eab {
            let key = Base64UrlUnpadded::decode_vec(mac_key)
                .map_err(|_| self.err(&url, "the EAB MAC key is not base64url"))?;
            let mac = super::validate::eab_mac(&key, self.key.public_key())
                .map_err(ClientError::Problem)?;
            req["externalAccountBinding"] =
                serde_json::json!({"keyId": kid, "mac": Base64UrlUnpadded::encode_string(&mac)});
        }
        let body = req.to_string();
        let r = self.post(&url, body.as_bytes())?;
        let kid = r
            .header("location")
            .map(str::to_string)
            .ok_or_else(|| ClientError::Http {
                url,
                why: "no Location for the account".into(),
            })?;
        self.kid = Some(kid.clone());
        Ok(kid)
    }

    /// The account's URL, once registered.
    pub fn account_url(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn account(&mut self) -> Result<String, ClientError> {
        match &self.kid {
            Some(k) => Ok(k.clone()),
            None => self.register(&[]),
        }
    }

    /// Deactivates the account (RFC 8555 §7.3.6): final; the CA refuses its requests after.
    pub fn deactivate(&mut self) -> Result<(), ClientError> {
        let kid = self.account()?;
        self.post(&kid, br#"{"status":"deactivated"}"#)?;
        Ok(())
    }

    /// The URLs of the account's orders that are not invalid (RFC 8555 §7.1.2.1).
    pub fn orders(&mut self) -> Result<Vec<String>, ClientError> {
        let kid = self.account()?;
        let account = self.post(&kid, b"")?.json();
        let url = account["orders"]
            .as_str()
            .ok_or_else(|| self.err(&kid, "the account has no orders URL"))?
            .to_string();
        let list = self.post(&url, b"")?.json();
        Ok(list["orders"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Moves the account to `new_key` (RFC 8555 §7.3.5): the request is signed by the current
    /// key, around an inner request signed by the new one. Afterwards this client signs with
    /// the new key; grants move with the account.
    pub fn change_key(&mut self, new_key: PrivateKey) -> Result<(), ClientError> {
        let kid = self.account()?;
        let url = self.dir("keyChange")?;
        let line = |k: &PrivateKey, url: &str| {
            let mut p = k.public_key().clone();
            p.set_comment("");
            p.to_openssh().map_err(|e| self.err(url, e))
        };
        let inner = Protected {
            alg: envelope::ALG.into(),
            nonce: String::new(),
            url: url.clone(),
            kid: None,
            key: Some(line(&new_key, &url)?),
        };
        let payload = serde_json::json!({"account": kid, "oldKey": line(&self.key, &url)?});
        let env = envelope::sign(&new_key, &inner, payload.to_string().as_bytes())
            .map_err(ClientError::Problem)?;
        let body = serde_json::to_vec(&env).map_err(|e| self.err(&url, e))?;
        self.post(&url, &body)?;
        self.key = new_key;
        Ok(())
    }

    /// Orders, finalizes and downloads a user certificate for `subject` (whose private key
    /// proves possession).
    pub fn issue_user(
        &mut self,
        subject: &PrivateKey,
        principals: &[String],
        validity: Option<&str>,
    ) -> Result<String, ClientError> {
        let (order_url, finalize) = self.order_user(subject.public_key(), principals, validity)?;
        self.finalize_and_download(&order_url, &finalize, subject)
    }

    /// Places a user-certificate order; returns the order URL and its `finalize` URL.
    pub fn order_user(
        &mut self,
        subject: &PublicKey,
        principals: &[String],
        validity: Option<&str>,
    ) -> Result<(String, serde_json::Value), ClientError> {
        if self.kid.is_none() {
            self.register(&[])?;
        }
        let new_order = self.dir("newOrder")?;
        let idents: Vec<serde_json::Value> = principals
            .iter()
            .map(|p| serde_json::json!({"type": "principal", "value": p}))
            .collect();
        let public = subject.to_openssh().map_err(|e| self.err(&new_order, e))?;
        let mut req =
            serde_json::json!({"certType": "user", "identifiers": idents, "publicKey": public});
        if let Some(v) = validity {
            req["validity"] = serde_json::json!(v);
        }
        let r = self.post(&new_order, req.to_string().as_bytes())?;
        let order_url = r.header("location").map(str::to_string).unwrap_or_default();
        Ok((order_url, r.json()["finalize"].clone()))
    }

    /// Orders a host certificate for `names` naming `host_key`'s public key: starts each
    /// `ssh-hostkey-01` challenge, waits for the authorizations, finalizes with a proof of
    /// possession signed by the host key and downloads the certificate.
    pub fn issue_host(
        &mut self,
        host_key: &PrivateKey,
        names: &[String],
        proof: &Proof,
    ) -> Result<String, ClientError> {
        if self.kid.is_none() {
            self.register(&[])?;
        }
        let new_order = self.dir("newOrder")?;
        let idents: Vec<serde_json::Value> = names
            .iter()
            .map(|n| {
                let kind = if n.parse::<std::net::IpAddr>().is_ok() {
                    "ip"
                } else {
                    "dns"
                };
                serde_json::json!({"type": kind, "value": n})
            })
            .collect();
        let public = host_key
            .public_key()
            .to_openssh()
            .map_err(|e| self.err(&new_order, e))?;
        let req =
            serde_json::json!({"certType": "host", "identifiers": idents, "publicKey": public});
        let r = self.post(&new_order, req.to_string().as_bytes())?;
        let order_url = r.header("location").map(str::to_string).unwrap_or_default();
        let order = r.json();
        for authz in order["authorizations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            self.complete_authorization(authz.as_str().unwrap_or_default(), proof)?;
        }
        self.finalize_and_download(&order_url, &order["finalize"], host_key)
    }

    /// Writes the http-01 key authorization where the host's web server serves it; the
    /// returned guard removes it again.
    fn publish_answer(
        &self,
        proof: &Proof,
        token: &str,
    ) -> Result<Option<RemoveOnDrop>, ClientError> {
        let Proof::Http01 { webroot } = proof else {
            return Ok(None);
        };
        let dir = webroot.join(".well-known/acme-challenge");
        let path = dir.join(token);
        let answer = super::validate::key_authorization(token, self.key.public_key())
            .map_err(ClientError::Problem)?;
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, answer))
            .map_err(|e| self.err(&path.display().to_string(), e))?;
        Ok(Some(RemoveOnDrop(path)))
    }

    fn err(&self, url: &str, e: impl std::fmt::Display) -> ClientError {
        ClientError::Http {
            url: url.into(),
            why: e.to_string(),
        }
    }

    /// Starts the authorization's challenge of the chosen kind (writing the http-01 answer
    /// first) and polls until it is decided.
    fn complete_authorization(
        &mut self,
        authz_url: &str,
        proof: &Proof,
    ) -> Result<(), ClientError> {
        let authz = self.post(authz_url, b"")?.json();
        if authz["status"] == "valid" {
            return Ok(());
        }
        let chall = authz["challenges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == proof.kind()))
            .cloned()
            .ok_or_else(|| self.err(authz_url, format!("no {} challenge offered", proof.kind())))?;
        let url = chall["url"].as_str().unwrap_or_default().to_string();
        let _answer = self.publish_answer(proof, chall["token"].as_str().unwrap_or_default())?;
        let mut wait = retry_after(&self.post(&url, b"{}")?);
        let give_up = std::time::Instant::now() + AUTHZ_PATIENCE;
        while std::time::Instant::now() < give_up {
            std::thread::sleep(wait);
            let reply = self.post(authz_url, b"")?;
            wait = retry_after(&reply);
            let a = reply.json();
            let mine = a["challenges"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == proof.kind()))
                .cloned()
                .unwrap_or_default();
            match (a["status"].as_str(), mine["status"].as_str()) {
                (Some("valid"), _) => return Ok(()),
                // Pending again: the server restarted mid-validation; ask once more.
                (Some("pending"), Some("pending")) => wait = retry_after(&self.post(&url, b"{}")?),
                (Some("pending"), _) => {}
                _ => {
                    let kind = mine["error"]["type"].as_str().unwrap_or_default();
                    let detail = mine["error"]["detail"]
                        .as_str()
                        .unwrap_or("the challenge failed");
                    let kind = ProblemType::from_urn(kind).unwrap_or(ProblemType::Unauthorized);
                    return Err(ClientError::Problem(Problem::new(kind, detail)));
                }
            }
        }
        Err(self.err(
            authz_url,
            format!(
                "the authorization was not decided within {} s",
                AUTHZ_PATIENCE.as_secs()
            ),
        ))
    }

    /// Finalizes with a proof of possession by `subject` and downloads the certificate.
    pub fn finalize_and_download(
        &mut self,
        order_url: &str,
        finalize: &serde_json::Value,
        subject: &PrivateKey,
    ) -> Result<String, ClientError> {
        let finalize = finalize.as_str().unwrap_or_default().to_string();
        let fp = self
            .key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        let pop = subject
            .sign(
                POP_NAMESPACE,
                HashAlg::Sha512,
                format!("{order_url}\n{fp}").as_bytes(),
            )
            .and_then(|s| s.encode_vec().map_err(Into::into))
            .map_err(|e| self.err(&finalize, e))?;
        let body = serde_json::json!({"pop": Base64UrlUnpadded::encode_string(&pop)}).to_string();
        let r = self.post(&finalize, body.as_bytes())?;
        let cert_url = r.json()["certificate"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let r = self.post(&cert_url, b"")?;
        Ok(String::from_utf8_lossy(&r.body).trim().to_string())
    }

    /// The renewal window the server suggests for `cert`, as Unix seconds.
    pub fn renewal_window(&self, cert: &ssh_key::Certificate) -> Result<(u64, u64), ClientError> {
        let ca = PublicKey::from(cert.signature_key().clone());
        let blob = ca.to_bytes().map_err(|e| self.err("renewalInfo", e))?;
        let url = format!(
            "{}/{}",
            self.dir("renewalInfo")?,
            super::order::cert_id(&blob, cert.serial())
        );
        let r = http("GET", &url, None)?;
        if r.status != 200 {
            return Err(ClientError::Problem(problem_of(&r)));
        }
        let v = r.json();
        let t = |k: &str| {
            v["suggestedWindow"][k]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .and_then(|d| u64::try_from(d.timestamp()).ok())
                .ok_or_else(|| self.err(&url, format!("no suggestedWindow.{k}")))
        };
        Ok((t("start")?, t("end")?))
    }

    /// Revokes a certificate this account ordered.
    pub fn revoke(&mut self, certificate: &str, reason: &str) -> Result<(), ClientError> {
        if self.kid.is_none() {
            self.register(&[])?;
        }
        let url = self.dir("revokeCert")?;
        let body = serde_json::json!({"certificate": certificate, "reason": reason}).to_string();
        self.post(&url, body.as_bytes()).map(|_| ())
    }

    /// The account key's public half.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }
}

impl Proof {
    fn kind(&self) -> &'static str {
        match self {
            Proof::SshHostKey => "ssh-hostkey-01",
            Proof::Http01 { .. } => "http-01",
        }
    }
}

/// How long the client polls an authorization for its verdict (the server's deadline is 10 s
/// by default).
const AUTHZ_PATIENCE: Duration = Duration::from_secs(60);

/// The wait a reply asks for with `Retry-After` (seconds), between 100 ms and 10 s; 500 ms
/// when it asks for none.
fn retry_after(r: &Reply) -> Duration {
    r.header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_millis(500), |s| {
            Duration::from_secs(s).clamp(Duration::from_millis(100), Duration::from_secs(10))
        })
}

/// Removes a published challenge answer when validation is over.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
