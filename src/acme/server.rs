//! The ssh-acme server: request routing and handlers over the CA and its store. The HTTP edge
//! ([`serve`]) reads a request, hands it to [`AcmeServer::handle`] as a task with a deadline on
//! `bitrot::sched`, and writes the response.
//!
//! Built so far: directory, nonces, accounts, user-certificate orders authorized by operator
//! grants (`ssh-acme account allow --principal`), host-certificate orders for granted names
//! (`--host`) validated by `ssh-hostkey-01`, finalize with proof of possession, certificate
//! download, revocation, KRL and CA keys.
//!
//! Invariants: every POST passes [`super::envelope::verify`] before it changes anything; every
//! response carries a fresh nonce; every state change is a transaction in the CA store.

use super::envelope::{self, Signer};
use super::order::cert_id;
use super::problem::{Problem, ProblemType};
use super::store;
use crate::ca::policy::glob;
use crate::ca::store::Revocation;
use crate::ca::{Ca, CaSigner, CertType, SignRequest, fingerprint};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;
use serde_json::json;
use ssh_key::{PublicKey, SshSig};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// The SSHSIG namespace of the finalize proof of possession.
pub const POP_NAMESPACE: &str = "ssh-acme-pop-v1";
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
const SSH_HOSTKEY: &str = "ssh-hostkey-01";
const HTTP_01: &str = "http-01";
const NONCES_KEPT: usize = 100_000;
const ORDER_LIFETIME: u64 = 7 * 86_400;
/// How long a proven name stays proven for the same account (renewals skip the challenge).
const AUTHZ_REUSE: u64 = 7 * 86_400;
/// Orders listed by an account's `orders` URL.
const MAX_ORDERS_LISTED: usize = 1000;

/// A request as the handlers see it.
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A response before it is written.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn json(status: u16, v: serde_json::Value) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    pub(crate) fn problem(p: &Problem) -> HttpResponse {
        HttpResponse {
            status: p.http_status(),
            headers: vec![("Content-Type".into(), "application/problem+json".into())],
            body: p.to_json().into_bytes(),
        }
    }

    fn text(status: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub(crate) fn with(mut self, name: &str, value: String) -> HttpResponse {
        self.headers.push((name.into(), value));
        self
    }
}

/// Nonces: issued ones are good once; the oldest are forgotten beyond a bound.
#[derive(Default)]
struct Nonces {
    live: HashSet<String>,
    order: VecDeque<String>,
    /// Test switch: this share of valid nonces is refused anyway, spread evenly.
    reject_percent: u64,
    taken: u64,
}

impl Nonces {
    fn issue(&mut self) -> String {
        let mut b = [0u8; 16];
        getrandom_fill(&mut b);
        let n = Base64UrlUnpadded::encode_string(&b);
        self.live.insert(n.clone());
        self.order.push_back(n.clone());
        while self.order.len() > NONCES_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.live.remove(&old);
            }
        }
        n
    }

    fn take(&mut self, n: &str) -> bool {
        if !self.live.remove(n) {
            return false;
        }
        self.taken += 1;
        let p = self.reject_percent.min(100);
        (self.taken * p / 100) == ((self.taken - 1) * p / 100)
    }
}

fn getrandom_fill(b: &mut [u8]) {
    use ssh_key::rand_core::Rng;
    ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng).fill_bytes(b);
}

/// The server's state.
pub struct AcmeServer {
    /// Shared with the validator, which records verdicts when checks finish.
    ca: Arc<Mutex<Ca>>,
    validator: super::validate::Validator,
    user_signer: CaSigner,
    host_signer: CaSigner,
    nonces: Mutex<Nonces>,
    /// The base URL clients use, e.g. `http://127.0.0.1:14000`.
    pub base: String,
    opts: ServerOptions,
    /// Recent order times per account, for the per-account rate limit.
    recent_orders: Mutex<std::collections::HashMap<i64, VecDeque<u64>>>,
}

/// Server settings, including Pebble-style test switches (off by default).
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// The port `ssh-hostkey-01` connects to (22; another for tests).
    pub ssh_port: u16,
    /// Orders one account may place per minute.
    pub orders_per_minute: usize,
    /// The port `http-01` fetches from (80; another for tests).
    pub http_port: u16,
    /// New accounts must present an external account binding.
    pub eab_required: bool,
    /// Test switch: every challenge passes without being checked.
    pub always_valid: bool,
    /// Test switch: refuse this percentage of valid nonces with `badNonce`.
    pub nonce_reject_percent: u8,
    /// One challenge validation's deadline, connect to verdict.
    pub challenge_timeout: std::time::Duration,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            ssh_port: 22,
            http_port: 80,
            orders_per_minute: 300,
            eab_required: false,
            always_valid: false,
            nonce_reject_percent: 0,
            challenge_timeout: super::validate::DEFAULT_DEADLINE,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccount {
    #[serde(default)]
    contact: Vec<String>,
    #[serde(default)]
    terms_of_service_agreed: bool,
    #[serde(default)]
    external_account_binding: Option<ExternalAccountBinding>,
    /// Look the account up only; never create one (RFC 8555 §7.3.1).
    #[serde(default)]
    only_return_existing: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalAccountBinding {
    key_id: String,
    mac: String,
}

#[derive(Deserialize)]
struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    cert_type: CertType,
    identifiers: Vec<Identifier>,
    public_key: String,
    #[serde(default)]
    validity: Option<String>,
}

#[derive(Deserialize)]
struct Finalize {
    pop: String,
}

#[derive(Deserialize)]
struct RevokeCert {
    certificate: String,
    #[serde(default)]
    reason: Option<String>,
}

fn malformed(d: impl Into<String>) -> Problem {
    Problem::new(ProblemType::Malformed, d)
}

/// Turns order `id` invalid with `p` as its error; returns `p` to send, or the store's error.
fn fail_order(conn: &rusqlite::Connection, id: i64, p: Problem) -> Problem {
    match store::set_order(conn, id, "invalid", None, None, Some(&p.to_json())) {
        Ok(()) => p,
        Err(e) => internal(e),
    }
}

fn not_ready(status: &str) -> Problem {
    Problem::new(ProblemType::OrderNotReady, format!("the order is {status}"))
}

fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::new(ProblemType::ServerInternal, e.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(payload).map_err(|e| malformed(format!("payload: {e}")))
}

impl AcmeServer {
    pub fn new(
        ca: Ca,
        signers: (CaSigner, CaSigner),
        base: String,
        opts: ServerOptions,
    ) -> Result<AcmeServer, Problem> {
        store::init(ca.store_connection()).map_err(internal)?;
        // A validation cut short by a restart is started again when the client re-posts.
        store::reset_processing(ca.store_connection()).map_err(internal)?;
        let validator = super::validate::Validator::new(opts.challenge_timeout)
            .map_err(|e| internal(format!("cannot start the challenge validator: {e}")))?;
        let nonces = Nonces {
            reject_percent: u64::from(opts.nonce_reject_percent),
            ..Nonces::default()
        };
        Ok(AcmeServer {
            ca: Arc::new(Mutex::new(ca)),
            validator,
            user_signer: signers.0,
            host_signer: signers.1,
            nonces: Mutex::new(nonces),
            base,
            opts,
            recent_orders: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Counts an order against the account's per-minute limit.
    fn rate_limit(&self, account: i64, now: u64) -> Result<(), Problem> {
        let mut recent = self.recent_orders.lock().unwrap_or_else(|p| p.into_inner());
        let times = recent.entry(account).or_default();
        while times.front().is_some_and(|t| now >= t + 60) {
            times.pop_front();
        }
        if times.len() >= self.opts.orders_per_minute {
            let wait = times.front().map_or(60, |t| t + 60 - now);
            return Err(Problem::new(
                ProblemType::RateLimited,
                format!(
                    "more than {} orders in a minute; retry in {wait} s",
                    self.opts.orders_per_minute
                ),
            ));
        }
        times.push_back(now);
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn nonce(&self) -> String {
        self.nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .issue()
    }

    /// Answers one request; every answer carries a fresh `Replay-Nonce`.
    pub fn handle(&self, req: &HttpRequest, now: u64) -> HttpResponse {
        let resp = match self.route(req, now) {
            Ok(r) => r,
            Err(p) if p.kind == ProblemType::RateLimited => {
                HttpResponse::problem(&p).with("Retry-After", "60".into())
            }
            Err(p) => HttpResponse::problem(&p),
        };
        resp.with("Replay-Nonce", self.nonce())
            .with("Cache-Control", "no-store".into())
    }

    fn route(&self, req: &HttpRequest, now: u64) -> Result<HttpResponse, Problem> {
        let path = req.path.split('?').next().unwrap_or("");
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), segs.as_slice()) {
            ("GET", ["directory"]) => Ok(self.directory()),
            ("HEAD", ["new-nonce"]) => Ok(HttpResponse::text(200, "text/plain", Vec::new())),
            ("GET", ["new-nonce"]) => Ok(HttpResponse::text(204, "text/plain", Vec::new())),
            ("GET", ["krl"]) => self.krl(now),
            ("GET", ["ca", which]) => self.ca_material(which),
            ("GET", ["renewal-info", id]) => self.renewal_info(id),
            ("POST", _) => self.post(req, path, &segs, now),
            _ => Err(Problem::new(
                ProblemType::Malformed,
                format!("no resource {} {path}", req.method),
            )),
        }
    }

    fn directory(&self) -> HttpResponse {
        HttpResponse::json(
            200,
            json!({
                "newNonce": self.url("/new-nonce"),
                "newAccount": self.url("/new-account"),
                "newOrder": self.url("/new-order"),
                "revokeCert": self.url("/revoke-cert"),
                "keyChange": self.url("/key-change"),
                "renewalInfo": self.url("/renewal-info"),
                "meta": {
                    "userCA": self.url("/ca/user.pub"),
                    "hostCA": self.url("/ca/host.pub"),
                    "knownHosts": self.url("/ca/known_hosts"),
                    "krl": self.url("/krl"),
                    "externalAccountRequired": self.opts.eab_required,
                }
            }),
        )
    }

    fn post(
        &self,
        req: &HttpRequest,
        path: &str,
        segs: &[&str],
        now: u64,
    ) -> Result<HttpResponse, Problem> {
        let media = req.content_type.as_deref().map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        // RFC 8555 §6.2 names application/jose+json; the envelope is JSON either way.
        if !matches!(
            media.as_deref(),
            Some("application/jose+json" | "application/json")
        ) {
            return Err(malformed(
                "POST bodies must be application/jose+json (or application/json) request envelopes",
            )
            .with_status(415));
        }
        if req.body.len() > MAX_BODY {
            return Err(
                malformed(format!("the body is larger than {MAX_BODY} bytes")).with_status(413),
            );
        }
        let url = self.url(path);
        let verified = {
            let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
            envelope::verify(
                &req.body,
                &url,
                |n| {
                    self.nonces
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take(n)
                },
                |kid| self.account_key(&ca, kid),
            )?
        };
        match (segs, &verified.signer) {
            (["new-account"], Signer::Key(k)) => self.new_account(k, &verified.payload, now),
            (["revoke-cert"], _) => {
                self.revoke(&verified.signer, &verified.key, &verified.payload, now)
            }
            (_, Signer::Key(_)) => {
                Err(malformed("this request must be signed by an account (kid)"))
            }
            (_, Signer::Account(kid)) => {
                let account = self.account_id(kid)?;
                self.refuse_if_deactivated(account)?;
                match segs {
                    ["account", id] if *id == account.to_string() => {
                        if verified.payload.is_empty() {
                            self.account_json(account)
                        } else {
                            self.update_account(account, &verified.payload)
                        }
                    }
                    ["account", id, "orders"] if *id == account.to_string() => {
                        self.orders_json(account)
                    }
                    ["key-change"] => self.key_change(account, kid, &verified.payload),
                    ["new-order"] => self.new_order(account, &verified.payload, now),
                    ["order", id] => self.order_json(account, id),
                    ["order", id, "finalize"] => self.finalize(account, id, &verified.payload, now),
                    ["cert", id] => self.certificate(account, id),
                    ["authz", id, n] => self.authz_json(account, id, n),
                    ["chall", id, n] => self.challenge(account, id, n, SSH_HOSTKEY),
                    ["chall", id, n, "http-01"] => self.challenge(account, id, n, HTTP_01),
                    _ => Err(Problem::new(
                        ProblemType::Unauthorized,
                        format!("no resource {path} for this account"),
                    )),
                }
            }
        }
    }

    /// The key of account `kid`, whatever its status (a deactivated account's requests are
    /// refused after their signature is checked, with `unauthorized`).
    fn account_key(&self, ca: &Ca, kid: &str) -> Option<PublicKey> {
        let id: i64 = kid.strip_prefix(&self.url("/account/"))?.parse().ok()?;
        let a = store::account_by_id(ca.store_connection(), id).ok()??;
        PublicKey::from_openssh(&a.key).ok()
    }

    fn refuse_if_deactivated(&self, account: i64) -> Result<(), Problem> {
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        match store::account_by_id(ca.store_connection(), account).map_err(internal)? {
            Some(a) if a.status == "valid" => Ok(()),
            Some(a) => Err(Problem::new(
                ProblemType::Unauthorized,
                format!("the account is {}; it can make no more requests", a.status),
            )),
            None => Err(Problem::new(
                ProblemType::AccountDoesNotExist,
                "no such account",
            )),
        }
    }

    /// `POST <account URL>` with a payload: a new `contact` list, or `"status":
    /// "deactivated"` (RFC 8555 §7.3.2, §7.3.6). Deactivation is final.
    fn update_account(&self, account: i64, payload: &[u8]) -> Result<HttpResponse, Problem> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Update {
            #[serde(default)]
            status: Option<String>,
            #[serde(default)]
            contact: Option<Vec<String>>,
        }
        let u: Update = parse(payload)?;
        let status = match u.status.as_deref() {
            None | Some("valid") => "valid",
            Some("deactivated") => "deactivated",
            Some(other) => {
                return Err(malformed(format!(
                    "status {other:?}: an account can only be deactivated"
                )));
            }
        };
        {
            let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
            let conn = ca.store_connection();
            let a = store::account_by_id(conn, account)
                .map_err(internal)?
                .ok_or_else(|| Problem::new(ProblemType::AccountDoesNotExist, "no such account"))?;
            let contact = u.contact.unwrap_or(a.contact);
            store::update_account(conn, account, status, &contact).map_err(internal)?;
        }
        crate::info!("account updated", account = account, status = status);
        self.account_json(account)
    }

    /// `POST-as-GET <account URL>/orders`: the account's orders that are not invalid.
    fn orders_json(&self, account: i64) -> Result<HttpResponse, Problem> {
        let ids = {
            let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
            store::account_orders(ca.store_connection(), account, MAX_ORDERS_LISTED)
                .map_err(internal)?
        };
        let urls: Vec<String> = ids
            .iter()
            .map(|id| self.url(&format!("/order/{id}")))
            .collect();
        Ok(HttpResponse::json(200, json!({ "orders": urls })))
    }

    /// `POST keyChange` (RFC 8555 §7.3.5): the payload is an envelope signed by the new key
    /// (`key`, not `kid`, no nonce) for the same URL, whose payload names the account and its
    /// current key. The account's grants move with it.
    fn key_change(&self, account: i64, kid: &str, payload: &[u8]) -> Result<HttpResponse, Problem> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyChange {
            account: String,
            old_key: String,
        }
        let url = self.url("/key-change");
        let inner = envelope::verify(payload, &url, |_| true, |_| None)?;
        let Signer::Key(new_key) = &inner.signer else {
            return Err(malformed(
                "the inner request must be signed with the new key (key, not kid)",
            ));
        };
        let kc: KeyChange = parse(&inner.payload)?;
        if kc.account != kid {
            return Err(malformed(
                "the inner account is not the account signing the request",
            ));
        }
        let mut new_plain = new_key.clone();
        new_plain.set_comment("");
        let new_text = new_plain.to_openssh().map_err(internal)?;
        let new_fp = fingerprint(new_key);
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let conn = ca.store_connection();
        let a = store::account_by_id(conn, account)
            .map_err(internal)?
            .ok_or_else(|| Problem::new(ProblemType::AccountDoesNotExist, "no such account"))?;
        let old = PublicKey::from_openssh(kc.old_key.trim())
            .map_err(|e| malformed(format!("oldKey: {e}")))?;
        if fingerprint(&old) != a.fp {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "oldKey is not the account's current key",
            ));
        }
        if let Some(other) = store::account_by_fp(conn, &new_fp).map_err(internal)? {
            let p = Problem::new(
                ProblemType::Conflict,
                "the new key already belongs to an account",
            );
            let at = self.url(&format!("/account/{}", other.id));
            return Ok(HttpResponse::problem(&p).with("Location", at));
        }
        if !store::change_key(conn, account, &a.fp, &new_text, &new_fp).map_err(internal)? {
            return Err(Problem::new(
                ProblemType::Conflict,
                "the new key already belongs to an account",
            ));
        }
        drop(ca);
        crate::info!(
            "account key changed",
            account = account,
            from = a.fp,
            to = new_fp
        );
        self.account_json(account)
    }

    fn account_id(&self, kid: &str) -> Result<i64, Problem> {
        kid.strip_prefix(&self.url("/account/"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Problem::new(
                    ProblemType::AccountDoesNotExist,
                    format!("no account {kid}"),
                )
            })
    }

    fn new_account(
        &self,
        key: &PublicKey,
        payload: &[u8],
        now: u64,
    ) -> Result<HttpResponse, Problem> {
        let req: NewAccount = parse(payload)?;
        let _ = req.terms_of_service_agreed;
        let mut plain = key.clone();
        plain.set_comment("");
        let text = plain.to_openssh().map_err(internal)?;
        let fp = fingerprint(key);
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let existing = store::account_by_fp(ca.store_connection(), &fp).map_err(internal)?;
        if existing.is_none() && req.only_return_existing {
            return Err(Problem::new(
                ProblemType::AccountDoesNotExist,
                "no account has this key (onlyReturnExisting)",
            ));
        }
        if existing.is_none() && self.opts.eab_required && req.external_account_binding.is_none() {
            return Err(Problem::new(
                ProblemType::ExternalAccountRequired,
                "this server needs an external account binding (ask the operator for a key id and MAC key)",
            ));
        }
        // The account and the grants its binding carries are created together.
        let tx = ca
            .store_connection()
            .unchecked_transaction()
            .map_err(internal)?;
        if let Some(eab) = &req.external_account_binding {
            self.bind(&tx, eab, key, &fp)?;
        }
        let (a, created) =
            store::create_account(&tx, &text, &fp, &req.contact, now).map_err(internal)?;
        tx.commit().map_err(internal)?;
        if created {
            crate::info!("acme account created", account = a.id, key = a.fp);
        }
        Ok(HttpResponse::json(if created { 201 } else { 200 }, {
            let mut v = account_value(&a);
            v["orders"] = json!(self.url(&format!("/account/{}/orders", a.id)));
            v
        })
        .with("Location", self.url(&format!("/account/{}", a.id))))
    }

    /// Checks an external account binding and gives the account its grants; each binding key
    /// binds one account.
    fn bind(
        &self,
        conn: &rusqlite::Connection,
        eab: &ExternalAccountBinding,
        key: &PublicKey,
        fp: &str,
    ) -> Result<(), Problem> {
        let unauthorized = |d: &str| Problem::new(ProblemType::Unauthorized, d);
        let e = store::eab(conn, &eab.key_id)
            .map_err(internal)?
            .ok_or_else(|| unauthorized("unknown external account binding key id"))?;
        if e.used_by.as_deref().is_some_and(|u| u != fp) {
            return Err(unauthorized(
                "this external account binding already bound another account",
            ));
        }
        let mac_key = Base64UrlUnpadded::decode_vec(&e.mac_key).map_err(internal)?;
        let want = super::validate::eab_mac(&mac_key, key)?;
        let got = Base64UrlUnpadded::decode_vec(&eab.mac)
            .map_err(|_| malformed("mac is not base64url"))?;
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(want.iter())
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                == 0;
        if !same {
            return Err(unauthorized(
                "the external account binding MAC does not match this account key",
            ));
        }
        store::grant(conn, fp, "principal", &e.principals).map_err(internal)?;
        store::grant(conn, fp, "host", &e.hosts).map_err(internal)?;
        store::use_eab(conn, &e.kid, fp).map_err(internal)
    }

    fn account_json(&self, id: i64) -> Result<HttpResponse, Problem> {
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let a = store::account_by_id(ca.store_connection(), id)
            .map_err(internal)?
            .ok_or_else(|| Problem::new(ProblemType::AccountDoesNotExist, "no such account"))?;
        let mut v = account_value(&a);
        v["orders"] = json!(self.url(&format!("/account/{id}/orders")));
        Ok(HttpResponse::json(200, v))
    }

    fn new_order(&self, account: i64, payload: &[u8], now: u64) -> Result<HttpResponse, Problem> {
        let req: NewOrder = parse(payload)?;
        let subject = PublicKey::from_openssh(&req.public_key)
            .map_err(|e| malformed(format!("publicKey: {e}")))?;
        self.rate_limit(account, now)?;
        let (kinds, grant_kind): (&[&str], &str) = match req.cert_type {
            CertType::User => (&["principal"], "principal"),
            CertType::Host => (&["dns", "ip"], "host"),
        };
        if req.identifiers.is_empty()
            || req
                .identifiers
                .iter()
                .any(|i| !kinds.contains(&i.kind.as_str()))
        {
            return Err(malformed(format!(
                "{} orders need one or more identifiers of type {}",
                req.cert_type,
                kinds.join(" or ")
            )));
        }
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        self.precheck(&ca, account, &req, &subject, now)?;
        let conn = ca.store_connection();
        let acct = store::account_by_id(conn, account)
            .map_err(internal)?
            .ok_or_else(|| Problem::new(ProblemType::AccountDoesNotExist, "no such account"))?;
        let grants = store::grants(conn, &acct.fp, grant_kind).map_err(internal)?;
        if let Some(bad) = req
            .identifiers
            .iter()
            .find(|i| !grants.iter().any(|g| glob(g, &i.value)))
        {
            return Err(Problem::new(
                ProblemType::RejectedIdentifier,
                format!(
                    "{grant_kind} {:?} is not granted to this account (ssh-acme account allow)",
                    bad.value
                ),
            ));
        }
        let request = String::from_utf8_lossy(payload).into_owned();
        let status = if req.cert_type == CertType::User {
            "ready"
        } else {
            "pending"
        };
        // The order and its authorizations are created together or not at all.
        let tx = conn.unchecked_transaction().map_err(internal)?;
        let id = store::create_order(&tx, account, status, now + ORDER_LIFETIME, &request)
            .map_err(internal)?;
        if req.cert_type == CertType::Host {
            let mut all_valid = true;
            for (i, ident) in req.identifiers.iter().enumerate() {
                let mut t = [0u8; 16];
                getrandom_fill(&mut t);
                let token = Base64UrlUnpadded::encode_string(&t);
                let since = now.saturating_sub(AUTHZ_REUSE);
                let what = store::AuthzFor {
                    account,
                    identifier: &ident.value,
                    key: &req.public_key,
                };
                let status = store::create_authz(&tx, id, i as i64, &what, &token, since)
                    .map_err(internal)?;
                all_valid &= status == "valid";
            }
            if all_valid {
                store::set_order_status(&tx, id, "ready").map_err(internal)?;
            }
        }
        tx.commit().map_err(internal)?;
        drop(ca);
        let body = self.order_value(id)?;
        Ok(HttpResponse::json(201, body).with("Location", self.url(&format!("/order/{id}"))))
    }

    /// What finalize will ask the CA to sign for an order (`order` 0 while it is placed).
    fn sign_request(
        &self,
        ca: &Ca,
        account: i64,
        order: i64,
        req: &NewOrder,
        subject: &PublicKey,
    ) -> Result<SignRequest, Problem> {
        // A requested validity starts the policy's backdate ago, as a default one does.
        let validity = match &req.validity {
            Some(v) => Some(format!(
                "-{}:+{v}",
                ca.backdate(req.cert_type).map_err(internal)?
            )),
            None => None,
        };
        Ok(SignRequest {
            cert_type: req.cert_type,
            key_id: format!("acct-{account}/order-{order}"),
            principals: req.identifiers.iter().map(|i| i.value.clone()).collect(),
            validity,
            options: Vec::new(),
            profile: None,
            serial: None,
            subject: subject.clone(),
        })
    }

    /// Refuses at newOrder what finalize would refuse: identifiers (`rejectedIdentifier`),
    /// the subject key (`badPublicKey`) and the validity (`unauthorized`), each with the rule.
    fn precheck(
        &self,
        ca: &Ca,
        account: i64,
        req: &NewOrder,
        subject: &PublicKey,
        now: u64,
    ) -> Result<(), Problem> {
        for i in &req.identifiers {
            if i.kind == "ip" && i.value.parse::<std::net::IpAddr>().is_err() {
                return Err(Problem::new(
                    ProblemType::RejectedIdentifier,
                    format!("identifier {:?} of type ip is not an IP address", i.value),
                ));
            }
        }
        if let Some(v) = &req.validity {
            let ok = crate::ca::validity::interval(v, v).is_ok_and(|secs| secs > 0);
            if !ok {
                return Err(malformed(format!(
                    "validity {v:?}: give an interval such as 8h or 30d"
                )));
            }
        }
        let mut sign = self.sign_request(ca, account, 0, req, subject)?;
        let validity = sign.validity.take();
        let refused = |e: crate::ca::CaError| match e {
            crate::ca::CaError::Policy(p) => Some(p.rule),
            _ => None,
        };
        if let Err(e) = ca.precheck(&sign, now) {
            let Some(rule) = refused(e) else {
                return Err(internal("policy check failed"));
            };
            let kind = if rule.starts_with("subject key") {
                ProblemType::BadPublicKey
            } else {
                ProblemType::RejectedIdentifier
            };
            return Err(Problem::new(kind, rule));
        }
        sign.validity = validity;
        if let Err(e) = ca.precheck(&sign, now) {
            let rule = refused(e).unwrap_or_else(|| "the validity is refused".into());
            return Err(Problem::new(ProblemType::Unauthorized, rule));
        }
        Ok(())
    }

    fn load_order(&self, account: i64, id: &str) -> Result<store::OrderRow, Problem> {
        let id: i64 = id.parse().map_err(|_| malformed("bad order id"))?;
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let o = store::order(ca.store_connection(), id).map_err(internal)?;
        o.filter(|o| o.account == account).ok_or_else(|| {
            Problem::new(ProblemType::Unauthorized, "no such order for this account")
        })
    }

    /// Refuses to move an order that has expired, turning it `invalid` first if it was still
    /// pending or ready (one transaction: the status with its error).
    fn refuse_if_expired(&self, o: &store::OrderRow, now: u64) -> Result<(), Problem> {
        if now < o.expires {
            return Ok(());
        }
        let p = Problem::new(
            ProblemType::Malformed,
            "the order has expired; place a new one",
        );
        if matches!(o.status.as_str(), "pending" | "ready") {
            let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
            return Err(fail_order(ca.store_connection(), o.id, p));
        }
        Err(p)
    }

    fn order_value(&self, id: i64) -> Result<serde_json::Value, Problem> {
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let o = store::order(ca.store_connection(), id)
            .map_err(internal)?
            .ok_or_else(|| malformed("no such order"))?;
        let req: serde_json::Value = serde_json::from_str(&o.request).map_err(internal)?;
        let n = req["identifiers"].as_array().map_or(0, Vec::len);
        let mut v = json!({
            "status": o.status,
            "expires": rfc3339(o.expires),
            "certType": req["certType"],
            "identifiers": req["identifiers"],
            "publicKey": req["publicKey"],
            "authorizations": (0..n).map(|i| self.url(&format!("/authz/{id}/{i}"))).collect::<Vec<_>>(),
            "finalize": self.url(&format!("/order/{id}/finalize")),
        });
        if o.cert.is_some() {
            v["certificate"] = json!(self.url(&format!("/cert/{id}")));
        }
        if let Some(e) = &o.error {
            v["error"] = serde_json::from_str(e).unwrap_or(json!(e));
        }
        Ok(v)
    }

    fn order_json(&self, account: i64, id: &str) -> Result<HttpResponse, Problem> {
        let o = self.load_order(account, id)?;
        Ok(HttpResponse::json(200, self.order_value(o.id)?))
    }

    /// An authorization: user orders' are granted by the operator and valid from the start;
    /// host orders' carry an `ssh-hostkey-01` challenge.
    fn authz_json(&self, account: i64, id: &str, n: &str) -> Result<HttpResponse, Problem> {
        let o = self.load_order(account, id)?;
        let req: serde_json::Value = serde_json::from_str(&o.request).map_err(internal)?;
        let i: usize = n
            .parse()
            .map_err(|_| malformed("bad authorization index"))?;
        let ident = req["identifiers"]
            .get(i)
            .cloned()
            .ok_or_else(|| malformed("no such authorization"))?;
        if req["certType"] == "user" {
            return Ok(HttpResponse::json(
                200,
                json!({"status": "valid", "expires": rfc3339(o.expires), "identifier": ident, "challenges": []}),
            ));
        }
        let a = self.authz_row(o.id, i)?;
        let challenges: Vec<serde_json::Value> = [SSH_HOSTKEY, HTTP_01]
            .iter()
            .map(|kind| {
                let mut c = self.challenge_value(o.id, i, kind, &a);
                if let Some(e) = &a.error {
                    c["error"] = serde_json::from_str(e).unwrap_or(json!(e));
                }
                c
            })
            .collect();
        // A challenge being validated leaves its authorization pending (RFC 8555 §7.1.6).
        let status = if a.status == "processing" {
            "pending"
        } else {
            a.status.as_str()
        };
        Ok(HttpResponse::json(
            200,
            json!({"status": status, "expires": rfc3339(o.expires), "identifier": ident, "challenges": challenges}),
        ))
    }

    fn challenge_value(
        &self,
        order: i64,
        i: usize,
        kind: &str,
        a: &store::AuthzRow,
    ) -> serde_json::Value {
        let path = match kind {
            HTTP_01 => format!("/chall/{order}/{i}/http-01"),
            _ => format!("/chall/{order}/{i}"),
        };
        json!({"type": kind, "url": self.url(&path), "status": a.status, "token": a.token})
    }

    fn authz_row(&self, order: i64, i: usize) -> Result<store::AuthzRow, Problem> {
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        store::authzs(ca.store_connection(), order)
            .map_err(internal)?
            .into_iter()
            .find(|a| a.idx == i as i64)
            .ok_or_else(|| malformed("no such authorization"))
    }

    /// `POST {}` to a challenge: starts validation in the background and answers at once
    /// with the challenge `processing` and `Retry-After` (RFC 8555 §7.5.1); the verdict is
    /// recorded when the check ends, within the challenge deadline. Posting again while
    /// processing changes nothing.
    fn challenge(
        &self,
        account: i64,
        id: &str,
        n: &str,
        kind: &str,
    ) -> Result<HttpResponse, Problem> {
        let o = self.load_order(account, id)?;
        let i: usize = n.parse().map_err(|_| malformed("bad challenge index"))?;
        let a = self.authz_row(o.id, i)?;
        if a.status == "pending" {
            self.refuse_if_expired(&o, crate::ca::unix_now())?;
            let req: NewOrder = serde_json::from_str(&o.request).map_err(internal)?;
            let host = req
                .identifiers
                .get(i)
                .ok_or_else(|| malformed("no such challenge"))?
                .value
                .clone();
            if self.opts.always_valid {
                record_verdict(&self.ca, o.id, i, &Ok(()), crate::ca::unix_now())?;
            } else {
                let check = self.check_for(account, kind, &host, &a.token, &req)?;
                self.start_validation(o.id, i, kind, host, check)?;
            }
        }
        let a = self.authz_row(o.id, i)?;
        let up = format!("<{}>;rel=\"up\"", self.url(&format!("/authz/{}/{i}", o.id)));
        let mut resp =
            HttpResponse::json(200, self.challenge_value(o.id, i, kind, &a)).with("Link", up);
        if a.status == "processing" {
            resp = resp.with("Retry-After", "1".into());
        }
        Ok(resp)
    }

    /// What a challenge of `kind` for `host` checks.
    fn check_for(
        &self,
        account: i64,
        kind: &str,
        host: &str,
        token: &str,
        req: &NewOrder,
    ) -> Result<super::validate::Check, Problem> {
        use super::validate::Check;
        let host = host.to_string();
        Ok(if kind == HTTP_01 {
            let account_key = self.account_public_key(account)?;
            Check::Http01 {
                host,
                port: self.opts.http_port,
                token: token.to_string(),
                expected: super::validate::key_authorization(token, &account_key)?,
            }
        } else {
            Check::SshHostkey {
                host,
                port: self.opts.ssh_port,
                key: PublicKey::from_openssh(&req.public_key).map_err(internal)?,
            }
        })
    }

    /// Marks the challenge processing and hands the check to the validator.
    fn start_validation(
        &self,
        order: i64,
        i: usize,
        kind: &str,
        host: String,
        check: super::validate::Check,
    ) -> Result<(), Problem> {
        {
            let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
            if !store::start_processing(ca.store_connection(), order, i as i64).map_err(internal)? {
                return Ok(()); // another request started it first
            }
        }
        let ca = self.ca.clone();
        let kind = kind.to_string();
        self.validator.start(check, move |verdict| {
            let recorded = record_verdict(&ca, order, i, &verdict, crate::ca::unix_now());
            crate::info!(
                "challenge validated",
                kind = kind,
                order = order,
                host = host,
                ok = verdict.is_ok(),
                detail = verdict
                    .as_ref()
                    .err()
                    .map(|p| p.detail.clone())
                    .unwrap_or_default(),
                recorded = recorded.is_ok()
            );
        });
        Ok(())
    }

    fn account_public_key(&self, account: i64) -> Result<PublicKey, Problem> {
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let a = store::account_by_id(ca.store_connection(), account)
            .map_err(internal)?
            .ok_or_else(|| Problem::new(ProblemType::AccountDoesNotExist, "no such account"))?;
        PublicKey::from_openssh(&a.key).map_err(internal)
    }

    fn finalize(
        &self,
        account: i64,
        id: &str,
        payload: &[u8],
        now: u64,
    ) -> Result<HttpResponse, Problem> {
        let o = self.load_order(account, id)?;
        self.refuse_if_expired(&o, now)?;
        if o.status != "ready" {
            return Err(not_ready(&o.status));
        }
        let req: NewOrder = serde_json::from_str(&o.request).map_err(internal)?;
        let subject = PublicKey::from_openssh(&req.public_key).map_err(internal)?;
        let fin: Finalize = parse(payload)?;
        let acct_fp = {
            let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
            store::account_by_id(ca.store_connection(), account)
                .map_err(internal)?
                .map(|a| a.fp)
                .unwrap_or_default()
        };
        let blob = Base64UrlUnpadded::decode_vec(&fin.pop)
            .map_err(|_| malformed("pop is not base64url"))?;
        let sig = {
            use ssh_key::encoding::Decode;
            SshSig::decode(&mut blob.as_slice())
                .map_err(|e| malformed(format!("pop is not an SSHSIG: {e}")))?
        };
        let message = format!("{}\n{acct_fp}", self.url(&format!("/order/{}", o.id)));
        subject
            .verify(POP_NAMESPACE, message.as_bytes(), &sig)
            .map_err(|e| {
                Problem::new(
                    ProblemType::Unauthorized,
                    format!(
                        "the proof of possession does not verify with the order's publicKey: {e}"
                    ),
                )
            })?;
        let mut ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let sign = self.sign_request(&ca, account, o.id, &req, &subject)?;
        // Checked again under the lock every state change takes: of two finalize requests
        // racing past the check above, only the first signs.
        let now_status = store::order(ca.store_connection(), o.id)
            .map_err(internal)?
            .map(|r| r.status)
            .unwrap_or_default();
        if now_status != "ready" {
            return Err(not_ready(&now_status));
        }
        let signer = match req.cert_type {
            CertType::User => &self.user_signer,
            CertType::Host => &self.host_signer,
        };
        // The order becomes valid in the same store transaction that records the certificate.
        let order_id = o.id;
        let mark_valid = move |conn: &rusqlite::Connection, rec: &crate::ca::store::CertRecord| {
            store::set_order(
                conn,
                order_id,
                "valid",
                Some(rec.serial),
                Some(&rec.cert),
                None,
            )
        };
        match ca.sign_batch_with(std::slice::from_ref(&sign), signer, now, &mark_valid) {
            Ok(_) => {}
            Err(e) => {
                let p = Problem::new(ProblemType::Unauthorized, e.to_string());
                return Err(fail_order(ca.store_connection(), o.id, p));
            }
        }
        drop(ca);
        Ok(HttpResponse::json(200, self.order_value(o.id)?)
            .with("Location", self.url(&format!("/order/{}", o.id))))
    }

    fn certificate(&self, account: i64, id: &str) -> Result<HttpResponse, Problem> {
        let o = self.load_order(account, id)?;
        let cert = o
            .cert
            .ok_or_else(|| Problem::new(ProblemType::OrderNotReady, "no certificate yet"))?;
        Ok(HttpResponse::text(
            200,
            "text/plain",
            format!("{cert}\n").into_bytes(),
        ))
    }

    fn revoke(
        &self,
        signer: &Signer,
        key: &PublicKey,
        payload: &[u8],
        now: u64,
    ) -> Result<HttpResponse, Problem> {
        let req: RevokeCert = parse(payload)?;
        let cert = ssh_key::Certificate::from_openssh(req.certificate.trim())
            .map_err(|e| malformed(format!("certificate: {e}")))?;
        let mut ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let order =
            store::order_by_serial(ca.store_connection(), cert.serial()).map_err(internal)?;
        let allowed = match signer {
            Signer::Account(kid) => order
                .as_ref()
                .is_some_and(|o| self.account_id(kid).ok() == Some(o.account)),
            Signer::Key(_) => key.key_data() == cert.public_key(),
        };
        let record = ca.store.cert_by_serial(cert.serial()).map_err(internal)?;
        let Some(record) = record.filter(|r| r.cert == cert.to_openssh().unwrap_or_default())
        else {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "this CA did not issue that certificate",
            ));
        };
        if !allowed {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "only the ordering account or the certificate's key may revoke it",
            ));
        }
        let rev = Revocation {
            kind: "serial".into(),
            value: record.serial.to_string(),
            ca_fp: record.ca_fp,
            reason: req.reason.unwrap_or_else(|| "unspecified".into()),
            revoked_at: now,
        };
        if ca.revoke(&[rev], now).map_err(internal)? == 0 {
            return Err(Problem::new(
                ProblemType::AlreadyRevoked,
                format!("certificate serial {} is already revoked", record.serial),
            ));
        }
        Ok(HttpResponse::text(200, "text/plain", Vec::new()))
    }

    fn krl(&self, now: u64) -> Result<HttpResponse, Problem> {
        let mut ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let krl = ca.krl(now).map_err(internal)?;
        Ok(HttpResponse::text(
            200,
            "application/octet-stream",
            krl.encode(),
        ))
    }

    fn ca_material(&self, which: &str) -> Result<HttpResponse, Problem> {
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let line = match which {
            "user.pub" => ca.user_ca.to_openssh(),
            "host.pub" => ca.host_ca.to_openssh(),
            "known_hosts" => ca
                .host_ca
                .to_openssh()
                .map(|k| format!("@cert-authority * {k}")),
            _ => return Err(malformed(format!("no CA resource {which}"))),
        }
        .map_err(internal)?;
        Ok(HttpResponse::text(
            200,
            "text/plain",
            format!("{line}\n").into_bytes(),
        ))
    }

    /// When to renew the certificate `id` (a certID): the last third of its validity.
    fn renewal_info(&self, id: &str) -> Result<HttpResponse, Problem> {
        let (_, serial) = id
            .split_once('.')
            .ok_or_else(|| malformed("certID is ca.serial"))?;
        let bytes = Base64UrlUnpadded::decode_vec(serial)
            .map_err(|_| malformed("certID serial is not base64url"))?;
        let serial = u64::from_be_bytes(
            bytes
                .try_into()
                .map_err(|_| malformed("certID serial is not 8 bytes"))?,
        );
        let ca = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        let rec = ca
            .store
            .cert_by_serial(serial)
            .map_err(internal)?
            .ok_or_else(|| malformed(format!("no certificate with serial {serial}")))?;
        let kind = ca
            .ca_kind(&rec.ca_fp)
            .ok_or_else(|| internal("certificate of an unknown CA"))?;
        let expected = cert_id(&crate::ca::blob(ca.ca_key(kind)).map_err(internal)?, serial);
        if expected != id {
            return Err(malformed("certID does not name a certificate of this CA"));
        }
        let (start, end) = super::order::renewal_window(rec.valid_after, rec.valid_before);
        Ok(HttpResponse::json(
            200,
            json!({"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}),
        )
        .with("Retry-After", "21600".into()))
    }
}

/// Records a challenge's verdict and moves the order: ready when every authorization is
/// valid, invalid as soon as one is invalid.
fn record_verdict(
    ca: &Mutex<Ca>,
    order: i64,
    i: usize,
    verdict: &Result<(), Problem>,
    now: u64,
) -> Result<(), Problem> {
    let ca = ca.lock().unwrap_or_else(|p| p.into_inner());
    let tx = ca
        .store_connection()
        .unchecked_transaction()
        .map_err(internal)?;
    let conn: &rusqlite::Connection = &tx;
    // A verdict that lost a race with another challenge of the same authorization, or that
    // arrives after the order moved on, changes nothing.
    let still_pending = |a: Option<&store::AuthzRow>| {
        a.is_some_and(|a| a.status == "pending" || a.status == "processing")
    };
    let order_row = store::order(conn, order).map_err(internal)?;
    let authz = store::authzs(conn, order).map_err(internal)?;
    if !still_pending(authz.get(i)) || order_row.is_none_or(|o| o.status != "pending") {
        return Ok(());
    }
    match verdict {
        Ok(()) => store::set_authz(conn, order, i as i64, "valid", None, Some(now)),
        Err(p) => store::set_authz(conn, order, i as i64, "invalid", Some(&p.to_json()), None),
    }
    .map_err(internal)?;
    let all = store::authzs(conn, order).map_err(internal)?;
    if all.iter().any(|a| a.status == "invalid") {
        // The order says why, with the failed challenge's problem (RFC 8555 §7.1.3).
        let error = verdict.as_ref().err().map(Problem::to_json);
        store::set_order(conn, order, "invalid", None, None, error.as_deref()).map_err(internal)?;
    } else if all.iter().all(|a| a.status == "valid") {
        store::set_order_status(conn, order, "ready").map_err(internal)?;
    }
    tx.commit().map_err(internal)
}

fn rfc3339(t: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(t).unwrap_or(i64::MAX), 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn account_value(a: &store::Account) -> serde_json::Value {
    json!({"status": a.status, "key": a.key, "contact": a.contact})
}

/// The answer to a request whose deadline passed while it waited: `rateLimited`, retry in 1 s.
pub(crate) fn overloaded() -> HttpResponse {
    let p = Problem::new(
        ProblemType::RateLimited,
        "the server is overloaded; retry later",
    );
    HttpResponse::problem(&p).with("Retry-After", "1".into())
}
