//! TLS material for ssh-acme, with rustls and the ring provider: the server configuration of
//! `ssh-acme serve --tls-cert F --tls-key F` (served by [`super::edge`]) and the roots the
//! client ([`super::client`], on ureq) trusts for `https://` directories.
//!
//! Invariant: a client trusts only the certificates it is given (`--tls-ca`) or, without one,
//! the system bundle.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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

static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();

/// Sets the certificates the client trusts for `https://` URLs (a PEM file of CA or server
/// certificates). Without a call, the first request loads the system bundle
/// (`SSL_CERT_FILE`, else Debian's path).
pub fn trust(ca: &Path) -> Result<(), TlsError> {
    let roots = load_certs(ca)?;
    // A second call in one process keeps the first set of roots; the CLI calls this once.
    let _ = ROOTS.set(roots);
    Ok(())
}

/// The roots the client trusts: those given to [`trust`], else the system bundle.
pub(crate) fn client_roots() -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if let Some(r) = ROOTS.get() {
        return Ok(r.clone());
    }
    let bundle =
        std::env::var_os("SSL_CERT_FILE").map_or(PathBuf::from(SYSTEM_BUNDLE), PathBuf::from);
    if !bundle.is_file() {
        return Err(file_err(
            &bundle,
            "no system trust bundle here; give --tls-ca (or SSL_CERT_FILE)",
        ));
    }
    let roots = load_certs(&bundle)?;
    Ok(ROOTS.get_or_init(|| roots).clone())
}
