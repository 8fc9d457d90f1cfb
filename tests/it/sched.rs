//! sched tests
