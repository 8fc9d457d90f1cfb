//! A CA private key prepared once to sign many certificates.
//!
//! ssh-key signs with an Ed25519 `PrivateKey` by rebuilding the signing key from its bytes for
//! every signature: it derives the public point and decodes the stored one to compare them,
//! two curve operations on top of the signature's own, about two thirds of its cost.
//! [`KeySigner`] does that check once, when it is built, and then signs with the prepared key.
//! Other key types sign through ssh-key unchanged.
//!
//! Invariants: the prepared Ed25519 key is the one derived from `key` and checked against its
//! public half (a key whose halves disagree is signed through ssh-key, which refuses it), so
//! both paths produce signatures by the same key. Key material never appears in `Debug`.

use ssh_key::public::KeyData;
use ssh_key::{Algorithm, PrivateKey, Signature};

/// A private key ready to sign certificates.
#[derive(Clone)]
pub struct KeySigner {
    key: PrivateKey,
    ed25519: Option<ed25519_dalek::SigningKey>,
}

impl KeySigner {
    pub fn new(key: PrivateKey) -> KeySigner {
        let ed25519 = key
            .key_data()
            .ed25519()
            .and_then(|pair| ed25519_dalek::SigningKey::try_from(pair).ok());
        KeySigner { key, ed25519 }
    }
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySigner(<key material not shown>)")
    }
}

impl signature::Signer<Signature> for KeySigner {
    fn try_sign(&self, message: &[u8]) -> signature::Result<Signature> {
        match &self.ed25519 {
            Some(k) => {
                let sig = ed25519_dalek::Signer::sign(k, message);
                Signature::new(Algorithm::Ed25519, sig.to_bytes().to_vec())
                    .map_err(|_| signature::Error::new())
            }
            None => self.key.try_sign(message),
        }
    }
}

impl From<&KeySigner> for KeyData {
    fn from(s: &KeySigner) -> KeyData {
        s.key.public_key().key_data().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::{Signer, Verifier};
    use ssh_key::getrandom::SysRng;
    use ssh_key::rand_core::UnwrapErr;

    #[test]
    fn prepared_ed25519_signatures_verify_with_the_keys_public_half() {
        let key = PrivateKey::random(&mut UnwrapErr(SysRng), Algorithm::Ed25519).expect("key");
        let signer = KeySigner::new(key.clone());
        assert!(signer.ed25519.is_some(), "the fast path is taken");
        let sig = signer.try_sign(b"to be signed").expect("sign");
        assert_eq!(sig.algorithm(), Algorithm::Ed25519);
        key.public_key()
            .key_data()
            .verify(b"to be signed", &sig)
            .expect("verifies");
        assert!(
            key.public_key()
                .key_data()
                .verify(b"something else", &sig)
                .is_err()
        );
        assert_eq!(
            sig,
            key.try_sign(b"to be signed").expect("ssh-key signs"),
            "Ed25519 is deterministic: the same signature as ssh-key's own path"
        );
    }
}
