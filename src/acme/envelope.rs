//! The request envelope: flattened JWS's shape (`protected`, `payload`, `signature`, all
//! base64url without padding) with an SSHSIG in place of the JWS signature.
//!
//! The signature is the binary SSHSIG blob (the base64 inside `ssh-keygen -Y sign`'s armour)
//! over the ASCII string `protected "." payload`, namespace [`NAMESPACE`], hash sha512, so a
//! client can be `curl` plus `ssh-keygen -Y sign` (and ssh-agent keys, host keys, FIDO keys).
//!
//! Invariants: [`verify`] accepts a request only if the protected header parses, names the
//! request URL exactly, carries exactly one of `kid` and `key`, the SSHSIG verifies under that
//! key and namespace, and then its nonce is accepted (once) by the caller; otherwise it returns
//! the RFC 8555 problem a client can act on. A forged request consumes nothing, not even the
//! nonce it carries.

use super::problem::{Problem, ProblemType};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Serialize};
use ssh_key::encoding::{Decode, Encode};
use ssh_key::{HashAlg, PrivateKey, PublicKey, SshSig};

/// The SSHSIG namespace of every request.
pub const NAMESPACE: &str = "ssh-acme-v1";
/// The only `alg` value.
pub const ALG: &str = "sshsig";

/// The wire form of a request body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub protected: String,
    pub payload: String,
    pub signature: String,
}

/// The protected header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    pub alg: String,
    pub nonce: String,
    pub url: String,
    /// The account URL, for requests by an existing account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The OpenSSH public key, for new-account and revoke-by-certificate-key requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// An existing account (its URL), whose key the caller looked up.
    Account(String),
    /// A key given inline (new account, revocation by the certificate's key).
    Key(PublicKey),
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub protected: Protected,
    /// The decoded payload; empty for POST-as-GET.
    pub payload: Vec<u8>,
    pub signer: Signer,
    pub key: PublicKey,
}

fn malformed(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::Malformed, detail)
}

/// Builds a signed request (the client side).
pub fn sign(key: &PrivateKey, protected: &Protected, payload: &[u8]) -> Result<Envelope, Problem> {
    let p = serde_json::to_vec(protected).map_err(|e| malformed(e.to_string()))?;
    let protected = Base64UrlUnpadded::encode_string(&p);
    let payload = Base64UrlUnpadded::encode_string(payload);
    let input = format!("{protected}.{payload}");
    let sig = key
        .sign(NAMESPACE, HashAlg::Sha512, input.as_bytes())
        .map_err(|e| malformed(format!("cannot sign: {e}")))?;
    let blob = sig.encode_vec().map_err(|e| malformed(e.to_string()))?;
    Ok(Envelope {
        protected,
        payload,
        signature: Base64UrlUnpadded::encode_string(&blob),
    })
}

fn decode_b64(field: &str, s: &str) -> Result<Vec<u8>, Problem> {
    Base64UrlUnpadded::decode_vec(s)
        .map_err(|_| malformed(format!("{field} is not base64url without padding")))
}

/// Checks a request body posted to `url`. `take_nonce` consumes a nonce (true if it was valid
/// and unused); `account_key` finds an account's key by its URL.
pub fn verify(
    body: &[u8],
    url: &str,
    take_nonce: impl FnOnce(&str) -> bool,
    account_key: impl FnOnce(&str) -> Option<PublicKey>,
) -> Result<Verified, Problem> {
    let env: Envelope = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not a request envelope: {e}")))?;
    let protected: Protected = serde_json::from_slice(&decode_b64("protected", &env.protected)?)
        .map_err(|e| malformed(format!("the protected header is not valid: {e}")))?;
    if protected.alg != ALG {
        return Err(Problem::new(
            ProblemType::BadSignatureAlgorithm,
            format!("alg {:?} is not supported; use \"{ALG}\"", protected.alg),
        ));
    }
    if protected.url != url {
        return Err(Problem::new(
            ProblemType::Unauthorized,
            format!(
                "the signed url {:?} is not this request's url {url:?}",
                protected.url
            ),
        ));
    }
    let (signer, key) = match (&protected.kid, &protected.key) {
        (Some(kid), None) => {
            let key = account_key(kid).ok_or_else(|| {
                Problem::new(
                    ProblemType::AccountDoesNotExist,
                    format!("no account {kid}"),
                )
            })?;
            (Signer::Account(kid.clone()), key)
        }
        (None, Some(k)) => {
            let key = PublicKey::from_openssh(k)
                .map_err(|e| malformed(format!("key is not an OpenSSH public key: {e}")))?;
            (Signer::Key(key.clone()), key)
        }
        _ => {
            return Err(malformed(
                "the protected header needs exactly one of kid and key",
            ));
        }
    };
    let blob = decode_b64("signature", &env.signature)?;
    let sig = SshSig::decode(&mut blob.as_slice())
        .map_err(|e| malformed(format!("the signature is not an SSHSIG blob: {e}")))?;
    let input = format!("{}.{}", env.protected, env.payload);
    key.verify(NAMESPACE, input.as_bytes(), &sig).map_err(|e| {
        Problem::new(
            ProblemType::Unauthorized,
            format!("the signature does not verify under the account key: {e}"),
        )
    })?;
    let payload = decode_b64("payload", &env.payload)?;
    if !take_nonce(&protected.nonce) {
        return Err(Problem::new(
            ProblemType::BadNonce,
            "the nonce is unknown or was already used; get a new one",
        ));
    }
    Ok(Verified {
        protected,
        payload,
        signer,
        key,
    })
}
