//! bitrot: an ops toolkit for people who run their own git servers, SSH fleets and shells.
//!
//! The library holds everything the binaries do; `bin/` only calls into [`cli`]. Read the
//! modules in this order: [`logging`] and [`sched`] are the shared foundation every tool
//! stands on; [`ca`] is the SSH certificate authority (ssh-ca, later ssh-acme); [`cli`] is the
//! only module that knows about argv, the environment and exit codes.

pub mod logging;
pub mod sched;

pub mod acme;
pub mod ca;
pub mod git;
pub mod surgery;
pub mod svn;

pub mod cli;
