//! Challenge validation. `http-01` (RFC 8555 §8.3, with an SSH key's thumbprint) proves
//! control of a name; `ssh-hostkey-01` asks whether the named host presents the order's key
//! in a real SSH key exchange.
//!
//! It runs the stock OpenSSH client with authentication method `none` and a known-hosts file
//! that holds only the expected key: the client completes the key exchange and checks the
//! host's signature over it, then fails authentication ("Permission denied": the host proved
//! it holds the key) or refuses the host first ("Host key verification failed": another key).
//! A key scan would not do: ssh-keyscan stops before the signature is checked.

use super::problem::{Problem, ProblemType};
use ssh_key::{Algorithm, PublicKey};
use std::process::{Command, Stdio};

/// Checks that `host:port` presents `key`.
pub fn ssh_hostkey(host: &str, port: u16, key: &PublicKey) -> Result<(), Problem> {
    let fail = |d: String| Problem::new(ProblemType::Unauthorized, d);
    let dir =
        tempfile::tempdir().map_err(|e| fail(format!("cannot make a temporary directory: {e}")))?;
    let known = dir.path().join("known_hosts");
    let pattern = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let line = key.to_openssh().map_err(|e| fail(e.to_string()))?;
    std::fs::write(&known, format!("{pattern} {line}\n")).map_err(|e| fail(e.to_string()))?;
    let algs = match key.algorithm() {
        Algorithm::Rsa { .. } => "rsa-sha2-512,rsa-sha2-256".to_string(),
        a => a.as_str().to_string(),
    };
    let out = Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &port.to_string()])
        .args(["-o", "BatchMode=yes", "-o", "PreferredAuthentications=none"])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args([
            "-o",
            &format!("HostKeyAlgorithms={algs}"),
            "-o",
            "ConnectTimeout=5",
        ])
        .args([
            "-o",
            "IdentityAgent=none",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("ssh-acme-probe@{host}"))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Problem::new(ProblemType::ServerInternal, format!("cannot run ssh: {e}")))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") {
        return Ok(());
    }
    if err.contains("Host key verification failed")
        || err.contains("HOST IDENTIFICATION HAS CHANGED")
    {
        return Err(fail(format!(
            "{host}:{port} presented a host key other than the order's publicKey"
        )));
    }
    Err(fail(format!(
        "cannot complete an SSH key exchange with {host}:{port}: {}",
        err.trim()
    )))
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

/// `http-01`: `GET http://host:port/.well-known/acme-challenge/<token>` must answer the key
/// authorization (surrounding whitespace ignored).
pub fn http01(host: &str, port: u16, token: &str, expected: &str) -> Result<(), Problem> {
    let fail = |d: String| Problem::new(ProblemType::Unauthorized, d);
    let url = format!("http://{host}:{port}/.well-known/acme-challenge/{token}");
    let r = super::client::http("GET", &url, None)
        .map_err(|e| fail(format!("cannot fetch {url}: {e}")))?;
    if r.status != 200 {
        return Err(fail(format!("{url} answered HTTP {}", r.status)));
    }
    if String::from_utf8_lossy(&r.body).trim() != expected {
        return Err(fail(format!("{url} did not answer the key authorization")));
    }
    Ok(())
}

/// HMAC-SHA256 (RFC 2104), for external account binding.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
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
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let mac = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
