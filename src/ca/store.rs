//! The CA store: one SQLite file (WAL mode) with the serial counter, issued certificates,
//! revocations and the hash-chained audit log. ssh-acme adds its tables to the same file.
//!
//! Invariants:
//! - Serials come from the store, start at 1, are never 0 and never reused: a serial is taken
//!   and its certificate recorded in one `BEGIN IMMEDIATE` transaction, so concurrent
//!   processes serialise and a crash rolls both back.
//! - Every change writes an audit record in the same transaction; each record's hash covers
//!   the previous record's hash, and `meta.audit_head` holds the last one, so an edited,
//!   deleted or truncated record is found by [`Store::verify_audit`], which also holds the
//!   certificate and revocation tables to the chain (a row edited, deleted or added outside
//!   it is found too). A log cut after its recorded head is never extended.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS serial_counter (id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL CHECK (next > 0));
INSERT OR IGNORE INTO serial_counter (id, next) VALUES (1, 1);
CREATE TABLE IF NOT EXISTS certs (
    serial INTEGER PRIMARY KEY CHECK (serial > 0),
    cert_type TEXT NOT NULL CHECK (cert_type IN ('user', 'host')),
    key_id TEXT NOT NULL,
    principals TEXT NOT NULL,
    valid_after INTEGER NOT NULL,
    valid_before INTEGER NOT NULL,
    subject_fp TEXT NOT NULL,
    ca_fp TEXT NOT NULL,
    profile TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    cert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certs_key_id ON certs (key_id);
CREATE INDEX IF NOT EXISTS certs_subject ON certs (subject_fp);
CREATE TABLE IF NOT EXISTS revocations (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('serial', 'key_id', 'key')),
    value TEXT NOT NULL,
    ca_fp TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    UNIQUE (kind, value, ca_fp)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
";

/// Bumped when the schema changes.
const SCHEMA_VERSION: i64 = 1;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Maps a SQLite error on the store at `path` to a [`StoreError`] (see [`classify`]).
fn sqlite_at(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |e| classify(path, e)
}

/// Turns a SQLite error on the store at `path` into what its user can act on, by SQLite's
/// primary result code; only errors no user can do anything about stay [`StoreError::Sqlite`].
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    let path = path.to_path_buf();
    match code {
        Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy { path },
        Some(C::ReadOnly) => StoreError::ReadOnly { path },
        Some(C::DiskFull) => StoreError::DiskFull { path },
        Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            detail: e.to_string(),
        },
        Some(C::CannotOpen | C::PermissionDenied | C::SystemIoFailure) => StoreError::CannotOpen {
            path,
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite { path, source: e },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A SQLite failure no user can act on (a bug or an unknown condition).
    #[error("CA store {}: internal SQLite error: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "CA store {} is busy: another ssh-ca or ssh-acme process has been writing to it for 30 s; nothing was recorded, try again when it has finished",
        path.display()
    )]
    Busy { path: PathBuf },
    #[error(
        "CA store {} cannot be written (a read-only mount, or files this user may not change); nothing was recorded: run as the CA's owner, or make the filesystem writable",
        path.display()
    )]
    ReadOnly { path: PathBuf },
    #[error("CA store {}: the disk is full; nothing was recorded: free some space and try again", path.display())]
    DiskFull { path: PathBuf },
    #[error(
        "CA store {} cannot be opened ({detail}): check that the CA directory is complete and that its owner runs ssh-ca",
        path.display()
    )]
    CannotOpen { path: PathBuf, detail: String },
    #[error("CA store {} is not an ssh-ca store or is damaged: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("serial {0} is already used by an issued certificate")]
    SerialTaken(u64),
    #[error("serial {0} is out of range: serials are 1 to 9223372036854775807")]
    SerialRange(u64),
    #[error("internal error: the signed certificates do not carry the serials the store allotted")]
    SerialMismatch,
    #[error(
        "the audit log in {} does not end where the store recorded its end (its last record, {seq}, does not hash to the recorded head): records were deleted or edited; `ssh-ca audit verify` shows where, and nothing more is recorded until the log is restored from a backup",
        path.display()
    )]
    AuditTailMismatch { path: PathBuf, seq: u64 },
}

/// One issued certificate as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertRecord {
    pub serial: u64,
    pub cert_type: String,
    pub key_id: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub subject_fp: String,
    pub ca_fp: String,
    pub profile: String,
    pub issued_at: u64,
    /// The certificate in OpenSSH one-line form.
    pub cert: String,
}

/// A revocation as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revocation {
    /// `serial`, `key_id` or `key` (a public key in OpenSSH form).
    pub kind: String,
    pub value: String,
    pub ca_fp: String,
    pub reason: String,
    pub revoked_at: u64,
}

/// The outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    Intact { records: u64 },
    Broken { seq: u64, why: String },
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn to_i64(v: u64) -> i64 {
    // Validity bounds use the full u64 range ("forever"); keep the bit pattern.
    v as i64
}

fn to_u64(v: i64) -> u64 {
    v as u64
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let sq = sqlite_at(path);
        let conn = Connection::open(path).map_err(sq)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(sq)?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.init().map_err(|e| store.classify(e))?;
        Ok(store)
    }

    /// Sets the connection up and creates the schema once (tracked by `user_version`), so an
    /// open of an existing store writes nothing.
    fn init(&self) -> rusqlite::Result<()> {
        // The checkpoint SQLite runs when the last connection closes is kept: without it the
        // next open rebuilds the WAL index by reading the whole WAL (measured 2.5x slower for
        // one-certificate runs).
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        // 32 MiB of page cache (the default is 2 MiB): a batch of thousands of certificates
        // then stays in memory until its commit instead of spilling pages to the WAL midway.
        self.conn.pragma_update(None, "cache_size", -32768)?;
        self.keep_wal_files()?;
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version >= SCHEMA_VERSION {
            return Ok(());
        }
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
    }

    /// Keeps the `-wal` and `-shm` files when the last connection closes (the WAL truncated to
    /// zero after its checkpoint) instead of deleting them. Creating the two files on every run
    /// and deleting them again cost a one-certificate `ssh-ca sign` a directory fsync and an
    /// ext4 inode allocation each, about a third of its time.
    fn keep_wal_files(&self) -> rusqlite::Result<()> {
        self.conn.pragma_update(None, "journal_size_limit", 0)?;
        let mut on: std::ffi::c_int = 1;
        // SAFETY: the handle is this open connection's, used on this thread only while `self`
        // borrows it; SQLITE_FCNTL_PERSIST_WAL reads and writes the one `int` passed by pointer.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_file_control(
                self.conn.handle(),
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
                (&raw mut on).cast(),
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rc),
                Some("setting SQLITE_FCNTL_PERSIST_WAL".into()),
            ));
        }
        Ok(())
    }

    /// Maps SQLite's "not a database" errors to a readable message.
    fn classify(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    fn tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))
    }

    /// Takes `count` serials (the next ones, or `wanted`, `wanted + 1`, …), lets `sign` build
    /// the certificates for them (one record per serial, in order), and records the
    /// certificates, their audit records and whatever `also` writes (ssh-acme's order update),
    /// all in one transaction. If `sign` fails, nothing is recorded and no serial is used.
    pub fn issue_batch<E>(
        &mut self,
        wanted: Option<u64>,
        count: usize,
        now: u64,
        sign: impl FnOnce(&[u64]) -> Result<Vec<CertRecord>, E>,
        also: &dyn Fn(&Connection, &CertRecord) -> rusqlite::Result<()>,
    ) -> Result<Result<Vec<CertRecord>, E>, StoreError> {
        let path = self.path.clone();
        let tx = self.tx()?;
        let sq = sqlite_at(&path);
        let next: i64 = tx
            .query_row("SELECT next FROM serial_counter WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(sq)?;
        let first = wanted.unwrap_or(to_u64(next));
        let mut serials = Vec::with_capacity(count);
        for i in 0..count {
            let serial = first.saturating_add(i as u64);
            if serial == 0 || serial > i64::MAX as u64 {
                return Err(StoreError::SerialRange(serial));
            }
            if wanted.is_some() && serial_taken(&tx, serial).map_err(sq)? {
                return Err(StoreError::SerialTaken(serial));
            }
            serials.push(serial);
        }
        let records = match sign(&serials) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if !records.iter().map(|r| r.serial).eq(serials.iter().copied()) {
            return Err(StoreError::SerialMismatch);
        }
        let mut audit = AuditTail::open(&tx, &path)?;
        for record in &records {
            insert_cert(&tx, record).map_err(sq)?;
            audit.append(&tx, now, "issue", record).map_err(sq)?;
            also(&tx, record).map_err(sq)?;
        }
        audit.close(&tx).map_err(sq)?;
        if let Some(last) = records.last() {
            tx.execute(
                "UPDATE serial_counter SET next = max(next, ?1 + 1) WHERE id = 1",
                [last.serial as i64],
            )
            .map_err(sq)?;
        }
        tx.commit().map_err(sq)?;
        Ok(Ok(records))
    }

    /// Records a refused request in the audit log.
    pub fn audit_refusal(&mut self, now: u64, detail: &impl Serialize) -> Result<(), StoreError> {
        self.audit_only(now, "refuse", detail)
    }

    pub fn audit_only(
        &mut self,
        now: u64,
        kind: &str,
        detail: &impl Serialize,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sq = sqlite_at(&path);
        let tx = self.tx()?;
        append_audit(&tx, &path, now, kind, detail)?;
        tx.commit().map_err(sq)
    }

    /// Records revocations (ignoring ones already present); returns how many were new.
    pub fn revoke(&mut self, now: u64, items: &[Revocation]) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let sq = sqlite_at(&path);
        let tx = self.tx()?;
        let mut new = 0;
        let mut audit = AuditTail::open(&tx, &path)?;
        for r in items {
            new += tx
                .execute(
                    "INSERT OR IGNORE INTO revocations (kind, value, ca_fp, reason, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![r.kind, r.value, r.ca_fp, r.reason, to_i64(r.revoked_at)],
                )
                .map_err(sq)?;
            audit.append(&tx, now, "revoke", r).map_err(sq)?;
        }
        audit.close(&tx).map_err(sq)?;
        tx.commit().map_err(sq)?;
        Ok(new)
    }

    pub fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT kind, value, ca_fp, reason, revoked_at FROM revocations ORDER BY id")
            .map_err(|e| self.classify(e))?;
        st.query_map([], |r| {
            Ok(Revocation {
                kind: r.get(0)?,
                value: r.get(1)?,
                ca_fp: r.get(2)?,
                reason: r.get(3)?,
                revoked_at: to_u64(r.get(4)?),
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.classify(e))
    }

    /// All issued certificates, oldest first.
    pub fn certs(&self) -> Result<Vec<CertRecord>, StoreError> {
        self.certs_where("1 = 1", [])
    }

    pub fn certs_by_key_id(&self, key_id: &str) -> Result<Vec<CertRecord>, StoreError> {
        self.certs_where("key_id = ?1", [key_id])
    }

    pub fn cert_by_serial(&self, serial: u64) -> Result<Option<CertRecord>, StoreError> {
        Ok(self
            .certs_where("serial = ?1", [(serial as i64).to_string()])?
            .into_iter()
            .next())
    }

    fn certs_where<P: rusqlite::Params>(
        &self,
        cond: &str,
        p: P,
    ) -> Result<Vec<CertRecord>, StoreError> {
        let sql = format!(
            "SELECT serial, cert_type, key_id, principals, valid_after, valid_before, subject_fp, ca_fp, profile, issued_at, cert FROM certs WHERE {cond} ORDER BY serial"
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.classify(e))?;
        st.query_map(p, row_to_cert)
            .and_then(Iterator::collect)
            .map_err(|e| self.classify(e))
    }

    /// Bumps and returns the KRL version, recording the bump in the audit chain.
    pub fn next_krl_version(&mut self, now: u64) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let sq = sqlite_at(&path);
        let tx = self.tx()?;
        let v: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'krl_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sq)?;
        let next = v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('krl_version', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [next.to_string()],
        )
        .map_err(sq)?;
        append_audit(
            &tx,
            &path,
            now,
            "krl",
            &serde_json::json!({ "version": next }),
        )?;
        tx.commit().map_err(sq)?;
        Ok(next)
    }

    /// Walks the audit chain and checks every hash, the sequence and the recorded head.
    pub fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        // One read transaction: every table is read from the same snapshot, so a process
        // issuing or revoking meanwhile cannot make the tables and the chain disagree.
        let _snapshot = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.classify(e))?;
        let mut st = self
            .conn
            .prepare("SELECT seq, ts, kind, record, prev_hash, hash FROM audit ORDER BY seq")
            .map_err(|e| self.classify(e))?;
        let rows: Vec<(i64, i64, String, String, String, String)> = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .and_then(Iterator::collect)
            .map_err(|e| self.classify(e))?;
        let mut prev = GENESIS.to_string();
        for (i, (seq, ts, kind, record, prev_hash, hash)) in rows.iter().enumerate() {
            let seq = to_u64(*seq);
            if seq != i as u64 + 1 {
                return Ok(AuditCheck::Broken {
                    seq,
                    why: format!("record {} is missing", i + 1),
                });
            }
            if *prev_hash != prev {
                return Ok(AuditCheck::Broken {
                    seq,
                    why: "its previous-hash does not match the record before it".into(),
                });
            }
            if *hash != chain_hash(&prev, seq, to_u64(*ts), kind, record) {
                return Ok(AuditCheck::Broken {
                    seq,
                    why: "its content does not match its hash (edited)".into(),
                });
            }
            prev = hash.clone();
        }
        let head: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'audit_head'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.classify(e))?;
        let head = head.unwrap_or_else(|| GENESIS.to_string());
        if head != prev {
            return Ok(AuditCheck::Broken {
                seq: rows.len() as u64,
                why:
                    "the last records were removed (the recorded head hash is not the chain's end)"
                        .into(),
            });
        }
        let audited = rows
            .iter()
            .map(|(seq, _, kind, record, _, _)| (to_u64(*seq), kind.as_str(), record.as_str()));
        if let Some(broken) = self.check_inventory(audited)? {
            return Ok(broken);
        }
        if let Some(broken) = self.check_serial_counter(rows.len() as u64)? {
            return Ok(broken);
        }
        Ok(AuditCheck::Intact {
            records: rows.len() as u64,
        })
    }

    /// The next serial must lie above every serial issued: a counter set back would hand out
    /// a serial again, and a revocation by serial would then revoke two certificates.
    fn check_serial_counter(&self, records: u64) -> Result<Option<AuditCheck>, StoreError> {
        let next: i64 = self
            .conn
            .query_row("SELECT next FROM serial_counter WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.classify(e))?;
        let highest: Option<i64> = self
            .conn
            .query_row("SELECT max(serial) FROM certs", [], |r| r.get(0))
            .map_err(|e| self.classify(e))?;
        match highest {
            Some(h) if next <= h => Ok(Some(AuditCheck::Broken {
                seq: records,
                why: format!(
                    "the serial counter ({next}) is not above the highest issued serial ({h}): \
                     serials would be reused"
                ),
            })),
            _ => Ok(None),
        }
    }

    /// Checks the certificate and revocation tables against the (already verified) audit
    /// chain: every issued certificate and every revocation must be exactly what its audit
    /// record says, and nothing may be in the tables without one. The tables are what `list`,
    /// `inspect` and `krl` read, so an edited row (other principals, a deleted revocation)
    /// would otherwise change what the CA reports and revokes without a trace.
    fn check_inventory<'a>(
        &self,
        audited: impl Iterator<Item = (u64, &'a str, &'a str)>,
    ) -> Result<Option<AuditCheck>, StoreError> {
        let broken = |seq: u64, why: String| Ok(Some(AuditCheck::Broken { seq, why }));
        let mut certs: std::collections::BTreeMap<u64, CertRecord> =
            self.certs()?.into_iter().map(|c| (c.serial, c)).collect();
        let mut revoked: std::collections::HashMap<(String, String, String), Revocation> = self
            .revocations()?
            .into_iter()
            .map(|r| ((r.kind.clone(), r.value.clone(), r.ca_fp.clone()), r))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut last_seq = 0;
        for (seq, kind, record) in audited {
            last_seq = seq;
            match kind {
                "issue" => {
                    let Ok(want) = serde_json::from_str::<CertRecord>(record) else {
                        return broken(seq, "its issuance record is not readable".into());
                    };
                    match certs.remove(&want.serial) {
                        Some(got) if got == want => {}
                        Some(_) => {
                            return broken(
                                seq,
                                format!(
                                    "certificate serial {} in the inventory differs from this record (edited)",
                                    want.serial
                                ),
                            );
                        }
                        None => {
                            return broken(
                                seq,
                                format!(
                                    "certificate serial {} is missing from the inventory (deleted)",
                                    want.serial
                                ),
                            );
                        }
                    }
                }
                "revoke" => {
                    let Ok(want) = serde_json::from_str::<Revocation>(record) else {
                        return broken(seq, "its revocation record is not readable".into());
                    };
                    let key = (want.kind.clone(), want.value.clone(), want.ca_fp.clone());
                    // A repeated revocation leaves the first row as it was: the first record
                    // for a key is the one the row must match.
                    let first = seen.insert(key.clone());
                    match revoked.remove(&key) {
                        // Rows written before the row took the record's own time carry the
                        // transaction's, up to a second apart: the time is not compared.
                        Some(got) if got.reason == want.reason => {}
                        Some(_) => {
                            return broken(
                                seq,
                                format!(
                                    "the revocation of {} {} differs from this record (edited)",
                                    want.kind, want.value
                                ),
                            );
                        }
                        None if !first => {}
                        None => {
                            return broken(
                                seq,
                                format!(
                                    "the revocation of {} {} is missing from the store (deleted: certificates it revoked would pass again)",
                                    want.kind, want.value
                                ),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(serial) = certs.keys().next() {
            return broken(
                last_seq,
                format!("certificate serial {serial} is in the inventory without an audit record"),
            );
        }
        if let Some(r) = revoked.values().next() {
            return broken(
                last_seq,
                format!(
                    "a revocation of {} {} is in the store without an audit record",
                    r.kind, r.value
                ),
            );
        }
        Ok(None)
    }

    /// The SQLite connection, for modules that add their own tables (ssh-acme).
    pub fn connection_ref(&self) -> &Connection {
        &self.conn
    }
}

fn serial_taken(tx: &Transaction<'_>, serial: u64) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM certs WHERE serial = ?1)",
        [serial as i64],
        |r| r.get(0),
    )
}

fn row_to_cert(r: &rusqlite::Row<'_>) -> rusqlite::Result<CertRecord> {
    let principals: String = r.get(3)?;
    Ok(CertRecord {
        serial: to_u64(r.get(0)?),
        cert_type: r.get(1)?,
        key_id: r.get(2)?,
        principals: serde_json::from_str(&principals).unwrap_or_default(),
        valid_after: to_u64(r.get(4)?),
        valid_before: to_u64(r.get(5)?),
        subject_fp: r.get(6)?,
        ca_fp: r.get(7)?,
        profile: r.get(8)?,
        issued_at: to_u64(r.get(9)?),
        cert: r.get(10)?,
    })
}

fn insert_cert(tx: &Transaction<'_>, c: &CertRecord) -> rusqlite::Result<usize> {
    let principals = serde_json::to_string(&c.principals).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "INSERT INTO certs (serial, cert_type, key_id, principals, valid_after, valid_before, subject_fp, ca_fp, profile, issued_at, cert)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
            c.serial as i64,
            c.cert_type,
            c.key_id,
            principals,
            to_i64(c.valid_after),
            to_i64(c.valid_before),
            c.subject_fp,
            c.ca_fp,
            c.profile,
            to_i64(c.issued_at),
            c.cert
        ])
}

fn chain_hash(prev: &str, seq: u64, ts: u64, kind: &str, record: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), &ts.to_string(), kind, record] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

pub(crate) fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

/// The end of the audit chain while a transaction appends to it: records are chained in
/// memory and `meta.audit_head` is written once, by [`AuditTail::close`].
struct AuditTail {
    seq: u64,
    head: String,
}

impl AuditTail {
    /// Reads the last record's sequence number and hash (the genesis hash for an empty log),
    /// and refuses to extend a log whose last record is not the head the store recorded: a
    /// chain continued from a cut would hide the cut from `audit verify`.
    fn open(tx: &Transaction<'_>, path: &Path) -> Result<AuditTail, StoreError> {
        let sq = sqlite_at(path);
        let (seq, head, recorded): (i64, String, Option<String>) = tx
            .prepare_cached(
                "SELECT coalesce(max(seq), 0), coalesce((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1), ?1), (SELECT value FROM meta WHERE key = 'audit_head') FROM audit",
            )
            .and_then(|mut st| {
                st.query_row([GENESIS], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            })
            .map_err(sq)?;
        if recorded.is_some_and(|r| r != head) {
            return Err(StoreError::AuditTailMismatch {
                path: path.to_path_buf(),
                seq: to_u64(seq),
            });
        }
        Ok(AuditTail {
            seq: to_u64(seq),
            head,
        })
    }

    /// Appends one record chained to the previous one.
    fn append(
        &mut self,
        tx: &Transaction<'_>,
        now: u64,
        kind: &str,
        detail: &impl Serialize,
    ) -> rusqlite::Result<()> {
        let record = serde_json::to_string(detail).unwrap_or_else(|_| "null".into());
        let seq = self.seq + 1;
        let hash = chain_hash(&self.head, seq, now, kind, &record);
        tx.prepare_cached(
            "INSERT INTO audit (seq, ts, kind, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![seq as i64, to_i64(now), kind, record, self.head, hash])?;
        (self.seq, self.head) = (seq, hash);
        Ok(())
    }

    /// Records the new end of the chain in `meta.audit_head`.
    fn close(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('audit_head', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute([self.head])?;
        Ok(())
    }
}

/// Appends one audit record in its own chain step (for transactions that write one).
fn append_audit(
    tx: &Transaction<'_>,
    path: &Path,
    now: u64,
    kind: &str,
    detail: &impl Serialize,
) -> Result<(), StoreError> {
    let mut tail = AuditTail::open(tx, path)?;
    tail.append(tx, now, kind, detail)
        .and_then(|()| tail.close(tx))
        .map_err(sqlite_at(path))
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_failures_become_what_a_user_can_act_on() {
        let p = Path::new("/ca/ca.db");
        let cases: [(i32, &str); 6] = [
            (rusqlite::ffi::SQLITE_BUSY, "is busy"),
            (rusqlite::ffi::SQLITE_LOCKED, "is busy"),
            (rusqlite::ffi::SQLITE_READONLY, "cannot be written"),
            (rusqlite::ffi::SQLITE_FULL, "the disk is full"),
            (
                rusqlite::ffi::SQLITE_NOTADB,
                "is not an ssh-ca store or is damaged",
            ),
            (rusqlite::ffi::SQLITE_CANTOPEN, "cannot be opened"),
        ];
        for (code, words) in cases {
            let e = classify(p, failure(code));
            assert!(e.to_string().contains(words), "{code}: {e}");
            assert!(e.to_string().contains("/ca/ca.db"), "{e}");
            assert!(!matches!(e, StoreError::Sqlite { .. }), "{code}");
        }
    }
}
