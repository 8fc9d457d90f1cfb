//! What the tools need from a git repository beyond parsing objects: object ids and hashing,
//! loose objects, packs and their indexes (read entry by entry, tolerant of damage), pack
//! writing, and the repository's other files (refs, reflogs, index, commit-graph).
//!
//! Invariant: everything here reads without changing the repository, except `packwrite`,
//! which only ever adds a complete pack through temp-file + fsync + rename.

pub mod files;
pub mod loose;
pub mod object;
pub mod pack;
pub mod packwrite;
pub mod refs;
pub mod repo;
pub mod store;
