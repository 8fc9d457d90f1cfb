//! RFC 7807 problem documents with ACME's error types (RFC 8555 §6.7).

use serde::Serialize;

/// The ACME error types ssh-acme uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    BadNonce,
    Malformed,
    Unauthorized,
    BadSignatureAlgorithm,
    AccountDoesNotExist,
    OrderNotReady,
    RejectedIdentifier,
    RateLimited,
    ServerInternal,
    ExternalAccountRequired,
    /// A challenge's peer answered, but not with the proof.
    IncorrectResponse,
    /// A challenge's peer could not be reached or gave no usable answer in time.
    Connection,
    AlreadyRevoked,
    /// The subject key is refused (too weak, or of a refused type).
    BadPublicKey,
    /// Served with 409: the new key of a key change belongs to another account.
    Conflict,
}

impl ProblemType {
    /// The `urn:ietf:params:acme:error:` name.
    pub fn urn(self) -> &'static str {
        match self {
            ProblemType::BadNonce => "urn:ietf:params:acme:error:badNonce",
            ProblemType::Malformed => "urn:ietf:params:acme:error:malformed",
            ProblemType::Unauthorized => "urn:ietf:params:acme:error:unauthorized",
            ProblemType::BadSignatureAlgorithm => {
                "urn:ietf:params:acme:error:badSignatureAlgorithm"
            }
            ProblemType::AccountDoesNotExist => "urn:ietf:params:acme:error:accountDoesNotExist",
            ProblemType::OrderNotReady => "urn:ietf:params:acme:error:orderNotReady",
            ProblemType::RejectedIdentifier => "urn:ietf:params:acme:error:rejectedIdentifier",
            ProblemType::RateLimited => "urn:ietf:params:acme:error:rateLimited",
            ProblemType::ServerInternal => "urn:ietf:params:acme:error:serverInternal",
            ProblemType::ExternalAccountRequired => {
                "urn:ietf:params:acme:error:externalAccountRequired"
            }
            ProblemType::IncorrectResponse => "urn:ietf:params:acme:error:incorrectResponse",
            ProblemType::Connection => "urn:ietf:params:acme:error:connection",
            ProblemType::AlreadyRevoked => "urn:ietf:params:acme:error:alreadyRevoked",
            ProblemType::BadPublicKey => "urn:ietf:params:acme:error:badPublicKey",
            // RFC 8555 §7.3.5 answers a key conflict with 409 and a malformed-class problem.
            ProblemType::Conflict => "urn:ietf:params:acme:error:malformed",
        }
    }

    /// The type named by an `urn:ietf:params:acme:error:` URN, if it is one ssh-acme knows.
    pub fn from_urn(urn: &str) -> Option<ProblemType> {
        use ProblemType as P;
        [
            P::BadNonce,
            P::Malformed,
            P::Unauthorized,
            P::BadSignatureAlgorithm,
            P::AccountDoesNotExist,
            P::OrderNotReady,
            P::RejectedIdentifier,
            P::RateLimited,
            P::ServerInternal,
            P::ExternalAccountRequired,
            P::IncorrectResponse,
            P::Connection,
            P::AlreadyRevoked,
            P::BadPublicKey,
        ]
        .into_iter()
        .find(|p| p.urn() == urn)
    }

    /// The HTTP status a problem of this type is served with.
    pub fn status(self) -> u16 {
        match self {
            ProblemType::Unauthorized => 403,
            ProblemType::AccountDoesNotExist => 400,
            ProblemType::OrderNotReady => 403,
            ProblemType::RateLimited => 429,
            ProblemType::Conflict => 409,
            ProblemType::ServerInternal => 500,
            _ => 400,
        }
    }
}

/// A problem document: what went wrong, for the client to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {detail}", kind.urn(), self.http_status())]
pub struct Problem {
    pub kind: ProblemType,
    pub detail: String,
    /// An HTTP status other than the type's own (415 for a wrong media type, say).
    pub status: Option<u16>,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    detail: &'a str,
    status: u16,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            status: None,
        }
    }

    /// This problem, served with HTTP status `status`.
    pub fn with_status(mut self, status: u16) -> Problem {
        self.status = Some(status);
        self
    }

    /// The HTTP status it is served with.
    pub fn http_status(&self) -> u16 {
        self.status.unwrap_or(self.kind.status())
    }

    /// The `application/problem+json` body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Wire {
            kind: self.kind.urn(),
            detail: &self.detail,
            status: self.http_status(),
        })
        .unwrap_or_else(|_| "{}".into())
    }
}
