//! bitrot's one integration-test binary: every module below is compiled into it, so the
//! crate and its dependencies link once for the whole suite.

mod acme;
mod acme_conformance;
mod acme_edge;
mod acme_hostile;
mod git_env;
mod harness;
mod logging;
mod sched;
mod ssh_ca;
mod surgery;
mod surgery_owner;
mod surgery_random;
mod surgery_remotes;
mod surgery_ux;
mod svn_dump_strict;
mod svn_migrate;
mod svn_resume;
mod svn_sync;
