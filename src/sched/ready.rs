//! The ready queue: queued jobs in (deadline, submission sequence) order.
//!
//! Jobs are kept in one FIFO per distinct deadline, the FIFOs in a map ordered by deadline.
//! Work is usually submitted in groups that share a deadline (the chunks of one parallel map,
//! a burst of requests), so most inserts append to an existing FIFO and most pops take from
//! the front of the first one, without the per-job tree search and node churn of one map
//! entry per job.
//!
//! Removing a job from the middle of a FIFO (a cancellation, a deadline change) shifts the
//! FIFO: linear in its length, where the common operations are constant.
//!
//! Invariants:
//! - Within a FIFO, jobs are sorted by sequence number: an insert appends when its sequence is
//!   the highest (the common case) and otherwise goes to its sorted place (a yielded job going
//!   back ahead of later submissions, or submitters whose pushes crossed).
//! - No FIFO is empty; `len` is the number of jobs held.

use super::task::Job;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// (deadline, sequence): the order in which jobs are taken.
pub(crate) type Key = (u64, u64);

#[derive(Default)]
pub(crate) struct ReadyQueue {
    /// Each FIFO holds (sequence, job): ordering never reads the jobs themselves, whose
    /// memory was last written by the submitting thread.
    by_deadline: BTreeMap<u64, VecDeque<(u64, Arc<Job>)>>,
    len: usize,
}

impl ReadyQueue {
    /// Queues `job` under `key`; a job already queued under the same key is replaced.
    pub(crate) fn insert(&mut self, key: Key, job: Arc<Job>) {
        let (deadline, seq) = key;
        let fifo = self.by_deadline.entry(deadline).or_default();
        if fifo.back().is_none_or(|last| last.0 < seq) {
            fifo.push_back((seq, job));
            self.len += 1;
            return;
        }
        let at = fifo.partition_point(|j| j.0 < seq);
        if fifo.get(at).is_some_and(|j| j.0 == seq) {
            fifo[at].1 = job;
        } else {
            fifo.insert(at, (seq, job));
            self.len += 1;
        }
    }

    /// Takes the job queued under `key`, if there is one.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Arc<Job>> {
        let fifo = self.by_deadline.get_mut(&key.0)?;
        let at = fifo.partition_point(|j| j.0 < key.1);
        if fifo.get(at).is_none_or(|j| j.0 != key.1) {
            return None;
        }
        let (_, job) = fifo.remove(at)?;
        if fifo.is_empty() {
            self.by_deadline.remove(&key.0);
        }
        self.len -= 1;
        Some(job)
    }

    /// Takes the job with the earliest deadline, the earliest submitted among equals, with
    /// that deadline.
    pub(crate) fn pop_first(&mut self) -> Option<(u64, Arc<Job>)> {
        let mut first = self.by_deadline.first_entry()?;
        let deadline = *first.key();
        let (_, job) = first.get_mut().pop_front()?;
        if first.get().is_empty() {
            first.remove();
        }
        self.len -= 1;
        Some((deadline, job))
    }

    /// The earliest queued deadline.
    pub(crate) fn first_deadline(&self) -> Option<u64> {
        self.by_deadline.first_key_value().map(|(d, _)| *d)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the queue, returning its jobs in order.
    pub(crate) fn take_all(&mut self) -> Vec<Arc<Job>> {
        self.len = 0;
        std::mem::take(&mut self.by_deadline)
            .into_values()
            .flatten()
            .map(|(_, job)| job)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::task::{Body, JoinError, OnMiss, Progress};
    use proptest::prelude::*;

    struct Nop;
    impl Body for Nop {
        fn run(&mut self, _: &crate::sched::Ctx<'_>) -> Progress {
            Progress::Yield
        }
        fn fail(&mut self, _: JoinError) {}
        fn outcome(&mut self) -> *mut () {
            std::ptr::null_mut()
        }
    }

    fn job(seq: u64, deadline: u64) -> Arc<Job> {
        Arc::new(Job::new(seq, deadline, OnMiss::Firm, None, Nop))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        /// Queue an already inserted key again (a replacement, as a map insert).
        Reinsert(usize),
        Remove(usize),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..4).prop_map(Op::Insert),
            1 => (0usize..64).prop_map(Op::Reinsert),
            1 => (0usize..64).prop_map(Op::Remove),
            2 => Just(Op::Pop),
        ]
    }

    proptest! {
        /// Any mix of inserts (sequences arriving slightly out of order, as from racing
        /// submitters), removals and pops gives what one ordered map keyed by
        /// (deadline, sequence) would.
        #[test]
        fn behaves_like_an_ordered_map(ops in proptest::collection::vec(op(), 0..200), swap in any::<bool>()) {
            let (mut q, mut model) = (ReadyQueue::default(), BTreeMap::new());
            let mut seqs: Vec<u64> = (0..ops.len() as u64).collect();
            if swap {
                for pair in seqs.chunks_mut(2) {
                    pair.reverse();
                }
            }
            let mut next = seqs.into_iter();
            let mut keys = Vec::new();
            for o in ops {
                match o {
                    Op::Insert(d) => {
                        let seq = next.next().expect("one sequence per op");
                        q.insert((d, seq), job(seq, d));
                        model.insert((d, seq), seq);
                        keys.push((d, seq));
                    }
                    Op::Reinsert(i) if !keys.is_empty() => {
                        let (d, seq) = keys[i % keys.len()];
                        q.insert((d, seq), job(seq, d));
                        model.insert((d, seq), seq);
                    }
                    Op::Reinsert(_) => {}
                    Op::Remove(i) if !keys.is_empty() => {
                        let k = keys[i % keys.len()];
                        prop_assert_eq!(q.remove(&k).map(|j| j.seq), model.remove(&k));
                    }
                    Op::Remove(_) => {}
                    Op::Pop => {
                        let got = q.pop_first().map(|(d, j)| (d, j.seq));
                        let want = model.pop_first().map(|((d, _), seq)| (d, seq));
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.first_deadline(), model.keys().next().map(|k| k.0));
            }
            let rest: Vec<u64> = q.take_all().iter().map(|j| j.seq).collect();
            prop_assert_eq!(rest, model.into_values().collect::<Vec<_>>());
        }
    }
}
