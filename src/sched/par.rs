//! Running per-item work in parallel on the executor: chunks of a list become tasks with one
//! shared deadline, and their results come back in order (used by git-surgery's scan and by
//! ssh-ca's batch signing).
//!
//! Invariant: results come back in input order. A chunk whose task panicked is run again on
//! the calling thread, so no result is silently dropped; a second panic there ends the run
//! (the callers' work returns errors for bad input, so a panic is a bug, not bad data).

use crate::sched::Executor;
use indicatif::ProgressBar;
use std::sync::Arc;
use std::time::Duration;

/// Runs `f` on each chunk of `items` (at most `chunk` long) on `exec`'s workers; results in
/// input order. A chunk whose task panicked is run again on the calling thread.
pub fn par_chunks<T, R, F>(exec: &Executor, items: Vec<T>, chunk: usize, f: F) -> Vec<R>
where
    T: Send + Clone + 'static,
    R: Send + 'static,
    F: Fn(Vec<T>) -> R + Send + Sync + 'static,
{
    let f = Arc::new(f);
    // One deadline for the whole batch: EDF then runs the chunks in submission order.
    let deadline = exec.now() + Duration::from_secs(3600);
    let mut tasks = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        let part: Vec<T> = it.by_ref().take(chunk.max(1)).collect();
        let (g, keep) = (f.clone(), part.clone());
        tasks.push((exec.spawn(deadline, move |_ctx| g(part)), keep));
    }
    tasks
        .into_iter()
        .map(|(t, keep)| t.join().unwrap_or_else(|_| f(keep)))
        .collect()
}

/// Maps `f` over `items` in chunks of `chunk`, on `exec`'s workers, in order, counting each
/// finished chunk on `bar`.
pub fn par_map<T, R, F>(
    exec: &Executor,
    items: Vec<T>,
    chunk: usize,
    f: F,
    bar: Option<ProgressBar>,
) -> Vec<R>
where
    T: Send + Clone + 'static,
    R: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
{
    let per_chunk = move |part: Vec<T>| {
        let n = part.len() as u64;
        let out: Vec<R> = part.into_iter().map(&f).collect();
        if let Some(b) = &bar {
            b.inc(n);
        }
        out
    };
    par_chunks(exec, items, chunk, per_chunk)
        .into_iter()
        .flatten()
        .collect()
}
