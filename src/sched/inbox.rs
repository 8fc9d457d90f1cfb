//! The lock-free inbox where submitters drop jobs for the workers to sort.
//!
//! Submitters push without taking the ready-queue lock; a worker holding that lock takes
//! everything and inserts it into the ordered map, where (deadline, sequence) order is
//! restored. Each job travels with its key, read when it was pushed, so sorting it does not
//! touch the job's memory (in the submitter's cache). The callers pair `push`/`is_empty` with sequentially consistent operations on
//! their own flags (see `Inner::submit` and `Inner::next_job`); the fences here make the
//! queue's own accesses take part in that order.

use super::ready::Key;
use super::task::Job;
use crossbeam_queue::SegQueue;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

pub(crate) struct Inbox {
    queue: SegQueue<(Key, Arc<Job>)>,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            queue: SegQueue::new(),
        }
    }

    pub(crate) fn push(&self, key: Key, job: Arc<Job>) {
        self.queue.push((key, job));
        fence(Ordering::SeqCst);
    }

    pub(crate) fn is_empty(&self) -> bool {
        fence(Ordering::SeqCst);
        self.queue.is_empty()
    }

    /// Takes every job pushed so far.
    pub(crate) fn take_all(&self) -> impl Iterator<Item = (Key, Arc<Job>)> + '_ {
        std::iter::from_fn(|| self.queue.pop())
    }
}
