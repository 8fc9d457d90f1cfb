//! Subversion to git: `dump` parses the dump stream (no git knowledge), `convert` turns the
//! revisions into git objects, branches, tags and merges.

pub mod convert;
pub mod dump;
