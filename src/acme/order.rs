//! Orders, authorizations and challenges: RFC 8555 §7.1.6's state machines, plus the renewal
//! window and certificate ids of renewal information (RFC 9773 shape).
//!
//! Invariants: statuses only move along the edges below; `valid` and `invalid` orders never
//! change again; an order is `ready` only when every authorization is `valid`, and any
//! authorization that can no longer become valid makes its order `invalid`. Time is an argument.
//!
//! ```text
//! challenge      pending -> processing -> valid | invalid
//! authorization  pending -> valid | invalid | expired | deactivated;  valid -> expired | deactivated | revoked
//! order          pending -> ready -> processing -> valid;  pending | ready | processing -> invalid
//! ```

use super::problem::{Problem, ProblemType};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    Pending,
    Processing,
    Valid,
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    Pending,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
}

/// A challenge's state (its type and token live with it in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub status: ChallengeStatus,
    /// Unix seconds of a successful validation.
    pub validated: Option<u64>,
    pub error: Option<Problem>,
}

impl Default for Challenge {
    fn default() -> Challenge {
        Challenge {
            status: ChallengeStatus::Pending,
            validated: None,
            error: None,
        }
    }
}

fn not_allowed(what: &str, from: impl std::fmt::Debug) -> Problem {
    Problem::new(
        ProblemType::Malformed,
        format!("{what} is not possible while the status is {from:?}"),
    )
}

impl Challenge {
    /// The client asked for validation (`POST {}` to the challenge URL). Repeating it while
    /// processing is harmless, as RFC 8555 allows.
    pub fn start(&mut self) -> Result<(), Problem> {
        match self.status {
            ChallengeStatus::Pending | ChallengeStatus::Processing => {
                self.status = ChallengeStatus::Processing;
                Ok(())
            }
            s => Err(not_allowed("starting validation", s)),
        }
    }

    /// The validator's verdict.
    pub fn finish(&mut self, result: Result<(), Problem>, now: u64) -> Result<(), Problem> {
        if self.status != ChallengeStatus::Processing {
            return Err(not_allowed("finishing validation", self.status));
        }
        match result {
            Ok(()) => {
                self.status = ChallengeStatus::Valid;
                self.validated = Some(now);
            }
            Err(p) => {
                self.status = ChallengeStatus::Invalid;
                self.error = Some(p);
            }
        }
        Ok(())
    }
}

/// An authorization's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub status: AuthzStatus,
    /// Unix seconds.
    pub expires: u64,
    pub challenges: Vec<Challenge>,
}

impl Authorization {
    pub fn new(expires: u64, challenges: usize) -> Authorization {
        Authorization {
            status: AuthzStatus::Pending,
            expires,
            challenges: vec![Challenge::default(); challenges],
        }
    }

    /// An authorization granted by policy (user certificates), valid from the start.
    pub fn prevalidated(expires: u64) -> Authorization {
        Authorization {
            status: AuthzStatus::Valid,
            expires,
            challenges: Vec::new(),
        }
    }

    /// Recomputes the status from the challenges and the clock.
    pub fn refresh(&mut self, now: u64) -> AuthzStatus {
        match self.status {
            AuthzStatus::Pending | AuthzStatus::Valid if now >= self.expires => {
                self.status = AuthzStatus::Expired;
            }
            AuthzStatus::Pending => {
                if self
                    .challenges
                    .iter()
                    .any(|c| c.status == ChallengeStatus::Valid)
                {
                    self.status = AuthzStatus::Valid;
                } else if !self.challenges.is_empty()
                    && self
                        .challenges
                        .iter()
                        .all(|c| c.status == ChallengeStatus::Invalid)
                {
                    self.status = AuthzStatus::Invalid;
                }
            }
            _ => {}
        }
        self.status
    }

    /// The client gives the authorization up.
    pub fn deactivate(&mut self) -> Result<(), Problem> {
        match self.status {
            AuthzStatus::Pending | AuthzStatus::Valid => {
                self.status = AuthzStatus::Deactivated;
                Ok(())
            }
            s => Err(not_allowed("deactivating", s)),
        }
    }

    /// The certificate it backed was revoked.
    pub fn revoke(&mut self) -> Result<(), Problem> {
        match self.status {
            AuthzStatus::Valid => {
                self.status = AuthzStatus::Revoked;
                Ok(())
            }
            s => Err(not_allowed("revoking", s)),
        }
    }
}

/// An order's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub status: OrderStatus,
    /// Unix seconds.
    pub expires: u64,
    pub error: Option<Problem>,
}

impl Order {
    pub fn new(expires: u64) -> Order {
        Order {
            status: OrderStatus::Pending,
            expires,
            error: None,
        }
    }

    /// Recomputes the status from the authorizations' statuses and the clock.
    pub fn refresh(&mut self, authz: &[AuthzStatus], now: u64) -> OrderStatus {
        if !matches!(self.status, OrderStatus::Pending | OrderStatus::Ready) {
            return self.status;
        }
        if now >= self.expires {
            return self.fail(Problem::new(ProblemType::Malformed, "the order expired"));
        }
        if let Some(bad) = authz
            .iter()
            .find(|s| !matches!(s, AuthzStatus::Pending | AuthzStatus::Valid))
        {
            return self.fail(Problem::new(
                ProblemType::Unauthorized,
                format!("an authorization is {bad:?}"),
            ));
        }
        if !authz.is_empty() && authz.iter().all(|s| *s == AuthzStatus::Valid) {
            self.status = OrderStatus::Ready;
        }
        self.status
    }

    fn fail(&mut self, p: Problem) -> OrderStatus {
        self.status = OrderStatus::Invalid;
        self.error = Some(p);
        self.status
    }

    /// The client finalizes; only a ready order may.
    pub fn finalize(&mut self) -> Result<(), Problem> {
        if self.status != OrderStatus::Ready {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                format!("the order is {:?}, not ready", self.status),
            ));
        }
        self.status = OrderStatus::Processing;
        Ok(())
    }

    /// Issuance finished: valid with a certificate, or invalid with why.
    pub fn issued(&mut self, result: Result<(), Problem>) -> Result<(), Problem> {
        if self.status != OrderStatus::Processing {
            return Err(not_allowed("completing issuance", self.status));
        }
        match result {
            Ok(()) => self.status = OrderStatus::Valid,
            Err(p) => {
                self.fail(p);
            }
        }
        Ok(())
    }
}

/// When a client should renew: the last third of the validity, as `(start, end)` Unix seconds.
pub fn renewal_window(valid_after: u64, valid_before: u64) -> (u64, u64) {
    let span = valid_before.saturating_sub(valid_after);
    (valid_after + span - span / 3, valid_before)
}

/// The renewal-information id of a certificate: base64url(SHA-256 of the CA key blob) "."
/// base64url(the serial as 8 big-endian bytes).
pub fn cert_id(ca_key_blob: &[u8], serial: u64) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(&Sha256::digest(ca_key_blob)),
        Base64UrlUnpadded::encode_string(&serial.to_be_bytes())
    )
}
