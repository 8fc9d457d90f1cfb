//! The inbox where submitters drop jobs for the workers to sort.
//!
//! Submitters append to a vector under a lock held for a push; a worker holding the
//! ready-queue lock swaps the whole vector for its empty spare and inserts the jobs into the
//! ordered map, where (deadline, sequence) order is restored. Each job travels with its key,
//! read when it was pushed, so sorting it does not touch the job's memory (in the submitter's
//! cache). The two vectors keep their capacity, so a steady stream allocates nothing here.
//!
//! Idle workers poll `is_empty`. It reads a flag on a line of its own that only the push
//! finding the inbox empty sets and only the take clears, so polling does not pull the
//! submitter's lock away from it on every push.
//!
//! The callers pair `push`/`is_empty` with sequentially consistent operations on their own
//! flags (see `Inner::enqueue` and `Inner::next_job`). The flag's set and its reads are
//! sequentially consistent too, so either a submitter sees the worker's flag or the worker
//! sees the job. A push that finds the flag already set needs no store: the job that set it
//! is still in the inbox, and whoever takes it takes this one too.

use super::Padded;
use super::ready::Key;
use super::task::Job;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) type Entry = (Key, Arc<Job>);

pub(crate) struct Inbox {
    jobs: Padded<Mutex<Vec<Entry>>>,
    /// Whether `jobs` is non-empty; changed only under its lock.
    nonempty: Padded<AtomicBool>,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            jobs: Padded(Mutex::new(Vec::new())),
            nonempty: Padded(AtomicBool::new(false)),
        }
    }

    pub(crate) fn push(&self, key: Key, job: Arc<Job>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.push((key, job));
        if jobs.len() == 1 {
            self.nonempty.store(true, Ordering::SeqCst);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.nonempty.load(Ordering::SeqCst)
    }

    /// Moves every job pushed so far into `spare`, which must be empty.
    pub(crate) fn take_into(&self, spare: &mut Vec<Entry>) {
        if !self.nonempty.load(Ordering::Relaxed) {
            return;
        }
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *jobs, spare);
        // Relaxed: the next push's set is ordered after this by the lock.
        self.nonempty.store(false, Ordering::Relaxed);
    }
}
