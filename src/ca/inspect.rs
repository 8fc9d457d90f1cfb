//! Reading certificates back: the `ssh-keygen -L` view, what this CA knows about one, and
//! whether it would be accepted for a principal now.
//!
//! Invariant: verification checks everything sshd checks that a CA can know: signature, that
//! the signing key is one of ours and of the right type, time, principal, critical options we
//! understand, and our revocations.

use super::options::KNOWN_CRITICAL;
use super::store::{CertRecord, Revocation};
use super::validity::display_bound;
use super::{Ca, CaError, CertType, fingerprint};
use serde::Serialize;
use ssh_key::{Certificate, HashAlg, PublicKey};
use std::fmt::Write as _;
use std::path::Path;

/// Reads a certificate file, with an error that says what the file is instead.
pub fn read_cert(path: &Path) -> Result<Certificate, CaError> {
    let text = std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?;
    Certificate::from_openssh(text.trim()).map_err(|e| CaError::BadInput {
        path: path.to_path_buf(),
        why: if text.contains("PRIVATE KEY") {
            "this is a private key, not a certificate".into()
        } else {
            format!("not an OpenSSH certificate ({e})")
        },
    })
}

fn key_type_label(alg: &ssh_key::Algorithm) -> String {
    match alg {
        ssh_key::Algorithm::Ed25519 => "ED25519".into(),
        ssh_key::Algorithm::Ecdsa { .. } => "ECDSA".into(),
        ssh_key::Algorithm::Rsa { .. } => "RSA".into(),
        other => other.as_str().to_ascii_uppercase(),
    }
}

/// The text `ssh-keygen -L -f` prints for `cert`.
pub fn render_like_ssh_keygen(name: &str, cert: &Certificate) -> String {
    let mut s = String::new();
    let subject = PublicKey::from(cert.public_key().clone());
    let ca = PublicKey::from(cert.signature_key().clone());
    let kind = match CertType::from(cert.cert_type()) {
        CertType::User => "user",
        CertType::Host => "host",
    };
    let _ = writeln!(s, "{name}:");
    let _ = writeln!(
        s,
        "        Type: {}-cert-v01@openssh.com {kind} certificate",
        cert.public_key().algorithm().as_str()
    );
    let _ = writeln!(
        s,
        "        Public key: {}-CERT {}",
        key_type_label(&subject.algorithm()),
        subject.fingerprint(HashAlg::Sha256)
    );
    let _ = writeln!(
        s,
        "        Signing CA: {} {} (using {})",
        key_type_label(&ca.algorithm()),
        ca.fingerprint(HashAlg::Sha256),
        cert.signature().algorithm().as_str()
    );
    let _ = writeln!(s, "        Key ID: \"{}\"", cert.key_id());
    let _ = writeln!(s, "        Serial: {}", cert.serial());
    let valid = match (cert.valid_after(), cert.valid_before()) {
        (0, u64::MAX) => "forever".to_string(),
        (a, b) => format!(
            "from {} to {}",
            display_bound(a, true),
            display_bound(b, false)
        ),
    };
    let _ = writeln!(s, "        Valid: {valid}");
    let principals = cert.valid_principals();
    if principals.is_empty() {
        let _ = writeln!(s, "        Principals: (none)");
    } else {
        let _ = writeln!(s, "        Principals: ");
        principals.iter().for_each(|p| {
            let _ = writeln!(s, "                {p}");
        });
    }
    option_block(
        &mut s,
        "Critical Options",
        true,
        cert.critical_options().iter(),
    );
    option_block(&mut s, "Extensions", false, cert.extensions().iter());
    s
}

/// Options as ssh-keygen prints them: the ones OpenSSH knows by name and value, any other
/// with its raw data in hex.
fn option_block<'a>(
    s: &mut String,
    title: &str,
    critical: bool,
    opts: impl Iterator<Item = (&'a String, &'a String)>,
) {
    let opts: Vec<_> = opts.collect();
    if opts.is_empty() {
        let _ = writeln!(s, "        {title}: (none)");
        return;
    }
    let _ = writeln!(s, "        {title}: ");
    for (k, v) in opts {
        let known_value = critical && (k == "force-command" || k == "source-address");
        let known_flag = if critical {
            k == "verify-required"
        } else {
            k.starts_with("permit-") && super::options::PERMIT.contains(&k.as_str())
                || k == "no-touch-required"
        };
        if known_value {
            let _ = writeln!(s, "                {k} {v}");
        } else if known_flag {
            let _ = writeln!(s, "                {k}");
        } else if v.is_empty() {
            let _ = writeln!(s, "                {k} UNKNOWN FLAG OPTION");
        } else {
            let _ = writeln!(
                s,
                "                {k} UNKNOWN OPTION: {} (len {})",
                unknown_hex(v),
                raw_len(v)
            );
        }
    }
}

/// The raw option data: empty for a flag, else the value as an SSH string.
fn raw(v: &str) -> Vec<u8> {
    if v.is_empty() {
        return Vec::new();
    }
    let mut b = Vec::new();
    super::wire::put_string(&mut b, v.as_bytes());
    b
}

fn unknown_hex(v: &str) -> String {
    raw(v).iter().map(|x| format!("{x:02x}")).collect()
}

fn raw_len(v: &str) -> usize {
    raw(v).len()
}

/// What this CA knows about a certificate.
#[derive(Debug, Serialize)]
pub struct Provenance {
    pub issued_here: bool,
    pub record: Option<CertRecord>,
    pub revoked: Vec<Revocation>,
}

impl Ca {
    /// Whether we issued `cert`, and every revocation that covers it.
    pub fn provenance(&self, cert: &Certificate) -> Result<Provenance, CaError> {
        let ca_fp = fingerprint(&PublicKey::from(cert.signature_key().clone()));
        let ours = self.ca_kind(&ca_fp).is_some();
        let record = if ours {
            self.store
                .cert_by_serial(cert.serial())?
                .filter(|r| r.cert == cert.to_openssh().unwrap_or_default())
        } else {
            None
        };
        let subject_fp = fingerprint(&PublicKey::from(cert.public_key().clone()));
        let revoked = self
            .store
            .revocations()?
            .into_iter()
            .filter(|r| covers(r, &ca_fp, cert.serial(), cert.key_id(), &subject_fp))
            .collect();
        Ok(Provenance {
            issued_here: record.is_some(),
            record,
            revoked,
        })
    }

    /// Every reason `cert` would be refused for `principal` at `now`; empty means valid.
    pub fn verify(
        &self,
        cert: &Certificate,
        principal: &str,
        now: u64,
    ) -> Result<Vec<String>, CaError> {
        let mut problems = Vec::new();
        let ca_fp = fingerprint(&PublicKey::from(cert.signature_key().clone()));
        match self.ca_kind(&ca_fp) {
            None => problems.push(format!("signed by {ca_fp}, which is not this CA")),
            Some(k) if k != CertType::from(cert.cert_type()) => problems.push(format!(
                "a {} certificate signed by the {k} CA",
                CertType::from(cert.cert_type())
            )),
            Some(_) => {}
        }
        if cert.verify_signature().is_err() {
            problems.push("the signature does not verify".into());
        }
        if now < cert.valid_after() {
            problems.push(format!(
                "not yet valid (from {})",
                display_bound(cert.valid_after(), true)
            ));
        }
        if now >= cert.valid_before() {
            problems.push(format!(
                "expired (at {})",
                display_bound(cert.valid_before(), false)
            ));
        }
        let ps = cert.valid_principals();
        if ps.is_empty() && CertType::from(cert.cert_type()) == CertType::User {
            problems
                .push("no principals (sshd refuses user certificates without principals)".into());
        } else if !ps.is_empty() && !ps.iter().any(|p| p == principal) {
            problems.push(format!(
                "{principal:?} is not a listed principal ({})",
                ps.join(", ")
            ));
        }
        for name in cert.critical_options().keys() {
            if !KNOWN_CRITICAL.contains(&name.as_str()) {
                problems.push(format!(
                    "unknown critical option {name:?} (sshd refuses it)"
                ));
            }
        }
        for r in self.provenance(cert)?.revoked {
            problems.push(format!("revoked by {} {} ({})", r.kind, r.value, r.reason));
        }
        Ok(problems)
    }
}

/// Whether revocation `r` covers a certificate with this issuing CA, serial, key id and
/// subject key (fingerprints as [`fingerprint`] writes them). Serial and key-id revocations
/// belong to one CA; a key revocation covers every certificate of that key and, as in
/// OpenSSH's KRL check, every certificate signed by that key.
pub fn covers(r: &Revocation, ca_fp: &str, serial: u64, key_id: &str, subject_fp: &str) -> bool {
    match r.kind.as_str() {
        "serial" => r.ca_fp == ca_fp && r.value == serial.to_string(),
        "key_id" => r.ca_fp == ca_fp && r.value == key_id,
        "key" => PublicKey::from_openssh(&r.value).is_ok_and(|k| {
            let fp = fingerprint(&k);
            fp == subject_fp || fp == ca_fp
        }),
        _ => false,
    }
}
