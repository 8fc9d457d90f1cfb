//! ssh-acme's protocol layer: ACME (RFC 8555) resources and state machines with SSH keys and
//! certificates in place of JWS and X.509. The protocol is written down in
//! `docs/acme-protocol.md`; this module is its executable form.
//!
//! Built so far: problem documents ([`problem`]), the SSHSIG request envelope that replaces
//! flattened JWS ([`envelope`]), the order / authorization / challenge state machines
//! ([`order`]), the server's tables in the CA store ([`store`]), the server for accounts and
//! user certificates authorized by operator grants ([`server`]) and the client ([`client`]).
//! Host orders are validated by `ssh-hostkey-01` or `http-01` ([`validate`]), in the background;
//! [`edge`] is the HTTP(S) server in front of [`server`]; [`tls`] holds the TLS material of
//! both sides; [`agent`] keeps certificates renewed through [`client`].
//!
//! Invariants: everything here is pure (no I/O, time is an argument); a request is accepted
//! only after its URL, nonce and signature check out; state machines only move along the edges
//! RFC 8555 §7.1.6 allows.

pub mod agent;
pub mod client;
pub mod edge;
pub mod envelope;
pub mod order;
pub mod problem;
pub mod server;
pub mod store;
pub mod tls;
pub mod validate;
