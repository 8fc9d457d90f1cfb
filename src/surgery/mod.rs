//! git-surgery: scan → quarantine → salvage → recover → rebuild → verify → report.
//!
//! Invariants: `scan` is read-only. `repair` never deletes: every file it takes out of the
//! repository is moved into `.git/surgery/quarantine/<timestamp>/` with a manifest, and every
//! file it adds is complete before it becomes visible (temp + fsync + rename). Each step is
//! safe to repeat, so a repair killed at any point and run again converges. Success is only
//! reported when the final scan is clean and `git fsck --full --strict` agrees.

pub mod quarantine;
pub mod recover;
pub mod repair;
pub mod scan;
