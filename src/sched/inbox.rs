//! The inbox where submitters drop jobs for the workers to sort.
//!
//! Submitters append to a vector under a lock held for a push; a worker holding the
//! ready-queue lock swaps the whole vector for its empty spare and inserts the jobs into the
//! ordered map, where (deadline, sequence) order is restored. Each job travels with its key,
//! read when it was pushed, so sorting it does not touch the job's memory (in the submitter's
//! cache). The two vectors keep their capacity, so a steady stream allocates nothing here.
//!
//! Workers hand finished jobs back here in batches when theirs was the last reference, and
//! each push frees one. A job is allocated by the submitting thread; freed there too, its
//! memory serves the next spawn from that thread's allocator cache instead of crossing
//! threads twice. Only jobs whose user data the worker already dropped come back, so freeing
//! one runs no user code (the timer thread pushes too, and must not). An idle worker frees
//! whatever is still waiting.
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
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) type Entry = (Key, Arc<Job>);

/// At most this many finished jobs wait in the inbox for a submitter to free them.
const MAX_RETURNED: usize = 4096;

struct Queues {
    jobs: Vec<Entry>,
    /// Finished jobs whose last reference a worker handed back (see `give_back`).
    returned: Vec<Arc<Job>>,
}

pub(crate) struct Inbox {
    queues: Padded<Mutex<Queues>>,
    /// Whether `jobs` is non-empty; changed only under its lock.
    nonempty: Padded<AtomicBool>,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            queues: Padded(Mutex::new(Queues {
                jobs: Vec::new(),
                returned: Vec::new(),
            })),
            nonempty: Padded(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job, and frees one finished job a worker handed back, if any.
    pub(crate) fn push(&self, key: Key, job: Arc<Job>) {
        let returned = {
            let mut q = self.lock();
            q.jobs.push((key, job));
            if q.jobs.len() == 1 {
                self.nonempty.store(true, Ordering::SeqCst);
            }
            q.returned.pop()
        };
        // Freed on the submitting thread, outside the lock: its allocator serves the next
        // spawn from the memory just freed, where a free on the worker would have sent it
        // across threads.
        drop(returned);
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.nonempty.load(Ordering::SeqCst)
    }

    /// Moves every job pushed so far into `spare`, which must be empty.
    pub(crate) fn take_into(&self, spare: &mut Vec<Entry>) {
        if !self.nonempty.load(Ordering::Relaxed) {
            return;
        }
        let mut q = self.lock();
        std::mem::swap(&mut q.jobs, spare);
        // Relaxed: the next push's set is ordered after this by the lock.
        self.nonempty.store(false, Ordering::Relaxed);
    }

    /// Hands finished jobs (each the last reference) to the submitters to free; what does not
    /// fit stays in `dead` for the caller.
    pub(crate) fn give_back(&self, dead: &mut Vec<Arc<Job>>) {
        let mut q = self.lock();
        let room = MAX_RETURNED.saturating_sub(q.returned.len());
        let n = dead.len().min(room);
        q.returned.extend(dead.drain(..n));
    }

    /// Takes back every handed-back job, for an idle worker to free.
    pub(crate) fn take_returned(&self) -> Vec<Arc<Job>> {
        std::mem::take(&mut self.lock().returned)
    }
}
