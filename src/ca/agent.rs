//! Signing with a CA key held in ssh-agent (like `ssh-keygen -U`), so the private key never
//! touches the CA directory.
//!
//! Protocol (draft-miller-ssh-agent): `SSH_AGENTC_SIGN_REQUEST` (13) with the key blob, the
//! data and flags (`SSH_AGENT_RSA_SHA2_512` for RSA keys), answered by
//! `SSH_AGENT_SIGN_RESPONSE` (14) with the signature, or `SSH_AGENT_FAILURE` (5).
//! Invariant: one request per connection; errors name the socket.

use ssh_key::public::KeyData;
use ssh_key::{PublicKey, Signature};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
const FAILURE: u8 = 5;
const RSA_SHA2_512: u32 = 4;

/// A CA public key whose private half is in the agent at `socket`.
pub struct AgentSigner {
    socket: PathBuf,
    key: PublicKey,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("ssh-agent at {socket}: {source}")]
    Io {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("ssh-agent at {socket} refused to sign with {key}: is the CA key added (ssh-add)?")]
    Refused { socket: PathBuf, key: String },
    #[error("ssh-agent at {socket} sent a malformed answer: {why}")]
    Protocol { socket: PathBuf, why: String },
}

use super::wire::put_string;

impl AgentSigner {
    pub fn new(socket: &Path, key: PublicKey) -> AgentSigner {
        AgentSigner {
            socket: socket.to_path_buf(),
            key,
        }
    }

    /// Fails unless the agent holds the CA key (so a missing key is reported before any
    /// serial is taken).
    pub fn check(&self) -> Result<(), AgentError> {
        let blob = self
            .key
            .to_bytes()
            .map_err(|e| self.proto(&e.to_string()))?;
        let reply = self.exchange(&[REQUEST_IDENTITIES])?;
        if reply.first() != Some(&IDENTITIES_ANSWER) {
            return Err(self.proto("no identities answer"));
        }
        let mut rest = &reply[1..];
        let take = |rest: &mut &[u8]| -> Option<Vec<u8>> {
            let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let v = rest.get(4..4 + n)?.to_vec();
            *rest = &rest[4 + n..];
            Some(v)
        };
        let count = u32::from_be_bytes(
            rest.get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| self.proto("short identities answer"))?,
        );
        rest = &rest[4..];
        for _ in 0..count {
            let key = take(&mut rest).ok_or_else(|| self.proto("short identity"))?;
            take(&mut rest).ok_or_else(|| self.proto("short identity comment"))?;
            if key == blob {
                return Ok(());
            }
        }
        Err(AgentError::Refused {
            socket: self.socket.clone(),
            key: self.key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        })
    }

    fn proto(&self, why: &str) -> AgentError {
        AgentError::Protocol {
            socket: self.socket.clone(),
            why: why.into(),
        }
    }

    /// Sends one message and reads one answer.
    fn exchange(&self, body: &[u8]) -> Result<Vec<u8>, AgentError> {
        let io = |source| AgentError::Io {
            socket: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let mut msg = (body.len() as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(body);
        stream.write_all(&msg).map_err(io)?;
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > 1 << 20 {
            return Err(self.proto("bad message length"));
        }
        let mut reply = vec![0u8; len];
        stream.read_exact(&mut reply).map_err(io)?;
        Ok(reply)
    }

    fn request(&self, data: &[u8]) -> Result<Signature, AgentError> {
        let proto = |why: &str| AgentError::Protocol {
            socket: self.socket.clone(),
            why: why.into(),
        };
        let blob = self.key.to_bytes().map_err(|e| proto(&e.to_string()))?;
        let mut body = vec![SIGN_REQUEST];
        put_string(&mut body, &blob);
        put_string(&mut body, data);
        let flags = if self.key.algorithm().is_rsa() {
            RSA_SHA2_512
        } else {
            0
        };
        body.extend_from_slice(&flags.to_be_bytes());
        let reply = self.exchange(&body)?;
        match reply[0] {
            SIGN_RESPONSE => {
                let rest = &reply[1..];
                if rest.len() < 4 {
                    return Err(proto("short signature"));
                }
                let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let sig = rest.get(4..4 + n).ok_or_else(|| proto("short signature"))?;
                Signature::try_from(sig).map_err(|e| proto(&e.to_string()))
            }
            FAILURE => Err(AgentError::Refused {
                socket: self.socket.clone(),
                key: self.key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
            }),
            other => Err(proto(&format!("unexpected message type {other}"))),
        }
    }
}

impl signature::Signer<Signature> for AgentSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Signature, signature::Error> {
        self.request(msg).map_err(signature::Error::from_source)
    }
}

impl From<&AgentSigner> for KeyData {
    fn from(s: &AgentSigner) -> KeyData {
        s.key.key_data().clone()
    }
}
