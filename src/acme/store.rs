//! ssh-acme's tables in the CA store: accounts, principal grants and orders.
//!
//! Invariant: every state change is one SQLite transaction in the CA store, so a server killed
//! at any moment and restarted loses no account, order or serial (nonces live in memory; a
//! restart only costs clients a `badNonce` retry).

use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS acme_accounts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    fp TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    contact TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS acme_grants (
    fp TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('principal', 'host')),
    pattern TEXT NOT NULL,
    PRIMARY KEY (fp, kind, pattern)
);
CREATE TABLE IF NOT EXISTS acme_orders (
    id INTEGER PRIMARY KEY,
    account INTEGER NOT NULL REFERENCES acme_accounts (id),
    status TEXT NOT NULL,
    expires INTEGER NOT NULL,
    request TEXT NOT NULL,
    serial INTEGER,
    cert TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS acme_authz (
    order_id INTEGER NOT NULL REFERENCES acme_orders (id),
    idx INTEGER NOT NULL,
    account INTEGER NOT NULL,
    identifier TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    token TEXT NOT NULL,
    error TEXT,
    validated INTEGER,
    PRIMARY KEY (order_id, idx)
);
CREATE TABLE IF NOT EXISTS acme_eab (
    kid TEXT PRIMARY KEY,
    mac_key TEXT NOT NULL,
    principals TEXT NOT NULL,
    hosts TEXT NOT NULL,
    used_by TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS acme_authz_reuse ON acme_authz (account, identifier, key, validated);
";

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub key: String,
    pub fp: String,
    pub status: String,
    pub contact: Vec<String>,
}

/// An order row; `request` is the new-order payload as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub id: i64,
    pub account: i64,
    pub status: String,
    pub expires: u64,
    pub request: String,
    pub serial: Option<u64>,
    pub cert: Option<String>,
    pub error: Option<String>,
}

pub fn init(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let contact: String = r.get(4)?;
    Ok(Account {
        id: r.get(0)?,
        key: r.get(1)?,
        fp: r.get(2)?,
        status: r.get(3)?,
        contact: serde_json::from_str(&contact).unwrap_or_default(),
    })
}

const ACCOUNT_COLUMNS: &str = "id, key, fp, status, contact";

pub fn account_by_fp(conn: &Connection, fp: &str) -> rusqlite::Result<Option<Account>> {
    conn.query_row(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM acme_accounts WHERE fp = ?1"),
        [fp],
        account_row,
    )
    .optional()
}

pub fn account_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Account>> {
    conn.query_row(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM acme_accounts WHERE id = ?1"),
        [id],
        account_row,
    )
    .optional()
}

/// Creates the account for `key` unless one exists; returns it and whether it is new.
pub fn create_account(
    conn: &Connection,
    key: &str,
    fp: &str,
    contact: &[String],
    now: u64,
) -> rusqlite::Result<(Account, bool)> {
    if let Some(a) = account_by_fp(conn, fp)? {
        return Ok((a, false));
    }
    conn.execute(
        "INSERT INTO acme_accounts (key, fp, status, contact, created) VALUES (?1, ?2, 'valid', ?3, ?4)",
        params![key, fp, serde_json::to_string(contact).unwrap_or_default(), now as i64],
    )?;
    let a = account_by_fp(conn, fp)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok((a, true))
}

/// Sets an account's status (`deactivated` is final) and contact list.
pub fn update_account(
    conn: &Connection,
    id: i64,
    status: &str,
    contact: &[String],
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE acme_accounts SET status = ?2, contact = ?3 WHERE id = ?1",
        params![
            id,
            status,
            serde_json::to_string(contact).unwrap_or_default()
        ],
    )?;
    Ok(())
}

/// Replaces an account's key (RFC 8555 §7.3.5); false if another account holds `fp`.
/// Grants follow the account: they are keyed by fingerprint, so they move to the new key.
pub fn change_key(
    conn: &Connection,
    id: i64,
    old_fp: &str,
    key: &str,
    fp: &str,
) -> rusqlite::Result<bool> {
    if account_by_fp(conn, fp)?.is_some() {
        return Ok(false);
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "UPDATE acme_accounts SET key = ?2, fp = ?3 WHERE id = ?1",
        params![id, key, fp],
    )?;
    tx.execute(
        "UPDATE acme_grants SET fp = ?2 WHERE fp = ?1",
        params![old_fp, fp],
    )?;
    tx.commit()?;
    Ok(true)
}

/// Ids of an account's orders that are not invalid (RFC 8555 §7.1.2.1), newest first.
pub fn account_orders(conn: &Connection, account: i64, limit: usize) -> rusqlite::Result<Vec<i64>> {
    let mut st = conn.prepare(
        "SELECT id FROM acme_orders WHERE account = ?1 AND status != 'invalid' ORDER BY id DESC LIMIT ?2",
    )?;
    st.query_map(params![account, limit as i64], |r| r.get(0))?
        .collect()
}

/// Globs the account key `fp` may get: `kind` is `principal` (user certificates) or `host`
/// (host names and addresses).
pub fn grants(conn: &Connection, fp: &str, kind: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn
        .prepare("SELECT pattern FROM acme_grants WHERE fp = ?1 AND kind = ?2 ORDER BY pattern")?;
    st.query_map([fp, kind], |r| r.get(0))?.collect()
}

pub fn grant(conn: &Connection, fp: &str, kind: &str, patterns: &[String]) -> rusqlite::Result<()> {
    for p in patterns {
        conn.execute(
            "INSERT OR IGNORE INTO acme_grants (fp, kind, pattern) VALUES (?1, ?2, ?3)",
            params![fp, kind, p],
        )?;
    }
    Ok(())
}

/// One authorization of a host order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRow {
    pub idx: i64,
    pub status: String,
    pub token: String,
    pub error: Option<String>,
}

/// What a host authorization is about: the account, the name and the host key.
pub struct AuthzFor<'a> {
    pub account: i64,
    pub identifier: &'a str,
    pub key: &'a str,
}

/// A new authorization of a host order: already `valid` when the same account proved the same
/// name for the same host key at or after `reuse_since` (RFC 8555 lets a CA reuse
/// authorizations; the key is part of what `ssh-hostkey-01` proved), else `pending`.
/// Returns its status.
pub fn create_authz(
    conn: &Connection,
    order_id: i64,
    idx: i64,
    what: &AuthzFor<'_>,
    token: &str,
    reuse_since: u64,
) -> rusqlite::Result<&'static str> {
    let proven: Option<i64> = conn.query_row(
        "SELECT max(validated) FROM acme_authz WHERE account = ?1 AND identifier = ?2 AND key = ?3 AND status = 'valid' AND validated >= ?4",
        params![what.account, what.identifier, what.key, reuse_since as i64],
        |r| r.get(0),
    )?;
    let status = if proven.is_some() { "valid" } else { "pending" };
    conn.execute(
        "INSERT INTO acme_authz (order_id, idx, account, identifier, key, status, token, validated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![order_id, idx, what.account, what.identifier, what.key, status, token, proven],
    )?;
    Ok(status)
}

pub fn authzs(conn: &Connection, order_id: i64) -> rusqlite::Result<Vec<AuthzRow>> {
    let mut st = conn.prepare(
        "SELECT idx, status, token, error FROM acme_authz WHERE order_id = ?1 ORDER BY idx",
    )?;
    st.query_map([order_id], |r| {
        Ok(AuthzRow {
            idx: r.get(0)?,
            status: r.get(1)?,
            token: r.get(2)?,
            error: r.get(3)?,
        })
    })?
    .collect()
}

/// Records a challenge verdict; `validated` is the time of a successful one.
pub fn set_authz(
    conn: &Connection,
    order_id: i64,
    idx: i64,
    status: &str,
    error: Option<&str>,
    validated: Option<u64>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE acme_authz SET status = ?3, error = ?4, validated = ?5 WHERE order_id = ?1 AND idx = ?2",
        params![order_id, idx, status, error, validated.map(|v| v as i64)],
    )?;
    Ok(())
}

/// Moves a pending authorization's challenge to `processing`; false when it was not pending
/// (another request started it, or it is decided).
pub fn start_processing(conn: &Connection, order_id: i64, idx: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE acme_authz SET status = 'processing' WHERE order_id = ?1 AND idx = ?2 AND status = 'pending'",
        params![order_id, idx],
    )?;
    Ok(n == 1)
}

/// At start-up: validations that a stopped server left running are pending again, for the
/// client to post the challenge anew.
pub fn reset_processing(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE acme_authz SET status = 'pending' WHERE status = 'processing'",
        [],
    )?;
    Ok(())
}

pub fn set_order_status(conn: &Connection, id: i64, status: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE acme_orders SET status = ?2 WHERE id = ?1",
        params![id, status],
    )?;
    Ok(())
}

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        id: r.get(0)?,
        account: r.get(1)?,
        status: r.get(2)?,
        expires: r.get::<_, i64>(3)? as u64,
        request: r.get(4)?,
        serial: r.get::<_, Option<i64>>(5)?.map(|s| s as u64),
        cert: r.get(6)?,
        error: r.get(7)?,
    })
}

pub fn order(conn: &Connection, id: i64) -> rusqlite::Result<Option<OrderRow>> {
    conn.query_row(
        "SELECT id, account, status, expires, request, serial, cert, error FROM acme_orders WHERE id = ?1",
        [id],
        order_row,
    )
    .optional()
}

pub fn order_by_serial(conn: &Connection, serial: u64) -> rusqlite::Result<Option<OrderRow>> {
    conn.query_row(
        "SELECT id, account, status, expires, request, serial, cert, error FROM acme_orders WHERE serial = ?1",
        [serial as i64],
        order_row,
    )
    .optional()
}

pub fn create_order(
    conn: &Connection,
    account: i64,
    status: &str,
    expires: u64,
    request: &str,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO acme_orders (account, status, expires, request) VALUES (?1, ?2, ?3, ?4)",
        params![account, status, expires as i64, request],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn set_order(
    conn: &Connection,
    id: i64,
    status: &str,
    serial: Option<u64>,
    cert: Option<&str>,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE acme_orders SET status = ?2, serial = ?3, cert = ?4, error = ?5 WHERE id = ?1",
        params![id, status, serial.map(|s| s as i64), cert, error],
    )?;
    Ok(())
}

/// An external account binding key made by the operator: the grants it carries and the
/// account that used it (each key binds one account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eab {
    pub kid: String,
    pub mac_key: String,
    pub principals: Vec<String>,
    pub hosts: Vec<String>,
    pub used_by: Option<String>,
}

pub fn create_eab(conn: &Connection, e: &Eab, now: u64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO acme_eab (kid, mac_key, principals, hosts, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            e.kid,
            e.mac_key,
            serde_json::to_string(&e.principals).unwrap_or_default(),
            serde_json::to_string(&e.hosts).unwrap_or_default(),
            now as i64
        ],
    )?;
    Ok(())
}

pub fn eab(conn: &Connection, kid: &str) -> rusqlite::Result<Option<Eab>> {
    conn.query_row(
        "SELECT kid, mac_key, principals, hosts, used_by FROM acme_eab WHERE kid = ?1",
        [kid],
        |r| {
            let p: String = r.get(2)?;
            let h: String = r.get(3)?;
            Ok(Eab {
                kid: r.get(0)?,
                mac_key: r.get(1)?,
                principals: serde_json::from_str(&p).unwrap_or_default(),
                hosts: serde_json::from_str(&h).unwrap_or_default(),
                used_by: r.get(4)?,
            })
        },
    )
    .optional()
}

pub fn use_eab(conn: &Connection, kid: &str, fp: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE acme_eab SET used_by = ?2 WHERE kid = ?1",
        params![kid, fp],
    )?;
    Ok(())
}
