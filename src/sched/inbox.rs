//! The lock-free inbox where submitters drop jobs for the workers to sort.
//!
//! A Treiber stack of `Arc<Job>` linked through `Job::next`. Submitters push with one
//! compare-and-swap; a worker holding the ready-queue lock takes the whole stack with one swap
//! and inserts the jobs into the ordered map, where (deadline, sequence) order is restored.
//! Invariant: only `take_all` removes nodes, and it removes all of them at once, so there is
//! no ABA problem; every pushed `Arc` is turned back into exactly one `Arc` by `take_all`
//! (or by `Drop`).

use super::task::Job;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

pub(crate) struct Inbox {
    head: AtomicPtr<Job>,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn push(&self, job: Arc<Job>) {
        let node = Arc::into_raw(job).cast_mut();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` came from `Arc::into_raw` and is not shared until the swap below.
            unsafe { (*node).next.store(head, Ordering::Relaxed) };
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::SeqCst).is_null()
    }

    /// Takes every job pushed so far (in no particular order).
    pub(crate) fn take_all(&self) -> Vec<Arc<Job>> {
        let mut node = self.head.swap(ptr::null_mut(), Ordering::SeqCst);
        let mut jobs = Vec::new();
        while !node.is_null() {
            // SAFETY: every node on the stack came from `Arc::into_raw` in `push`, and the swap
            // made this thread its only owner.
            let job = unsafe { Arc::from_raw(node) };
            node = job.next.load(Ordering::Relaxed);
            jobs.push(job);
        }
        jobs
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}
