//! The executor: ready queue, workers, dispatch, cooperative preemption and shutdown.
//!
//! Invariants:
//! - The ready queue is ordered by (deadline, submission sequence): a free worker always takes
//!   the earliest deadline, and ties go to the earlier submission.
//! - A job is in at most one of: the ready queue, the timer queue, a worker.
//! - A yielded job re-enters the ready queue with its original deadline and sequence.
//! - An arrival that finds no idle worker flags at most one worker for preemption: the busy,
//!   not yet flagged worker running the latest deadline, and only if the arrival is earlier.
//! - Lock order: timers before ready; no lock is held while user code runs.

use super::Padded;
use super::bound::DeadlineBound;
use super::clock::{Clock, SystemClock};
use super::inbox::{Entry, Inbox};
use super::ready::ReadyQueue;
use super::task::{Body, CancelToken, DONE, Job, JoinError, OnMiss, Progress, QUEUED, Task};
use super::timer::{self, TimerItem, Timers};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a job's turn ended, for the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Cancelled,
    Expired,
    Panicked,
    Shutdown,
}

/// Options for one task.
#[derive(Clone, Debug)]
pub struct Opts {
    pub deadline: Instant,
    /// `None` takes the executor's default (firm unless configured otherwise).
    pub on_miss: Option<OnMiss>,
    /// Share a token to cancel a group of tasks at once.
    pub token: Option<CancelToken>,
}

impl Opts {
    pub fn new(deadline: Instant) -> Opts {
        Opts {
            deadline,
            on_miss: None,
            token: None,
        }
    }
    pub fn on_miss(mut self, m: OnMiss) -> Opts {
        self.on_miss = Some(m);
        self
    }
    pub fn token(mut self, t: CancelToken) -> Opts {
        self.token = Some(t);
        self
    }
}

/// What a checkpoint tells a running task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Continue,
    /// A queued task has an earlier deadline and no worker is idle: a resumable task should
    /// return `Step::Yield`.
    Yield,
    /// Cancelled, shut down, or (firm) past the deadline: stop and return.
    Cancelled,
}

/// A task that can be suspended at checkpoints and resumed later, possibly on another worker.
pub trait Resumable: Send + 'static {
    type Output: Send + 'static;
    /// Does a bounded amount of work; returns `Step::Yield` when a checkpoint says `Yield`.
    fn step(&mut self, ctx: &Ctx<'_>) -> Step<Self::Output>;
}

/// The result of one [`Resumable::step`].
pub enum Step<T> {
    Done(T),
    Yield,
}

/// Handed to every task: its deadline, cancellation and preemption checkpoints.
pub struct Ctx<'a> {
    pub(crate) job: &'a Job,
    pub(crate) inner: &'a Inner,
    slot: usize,
}

impl Ctx<'_> {
    pub fn deadline(&self) -> Instant {
        self.inner
            .instant(self.job.deadline.load(Ordering::Relaxed))
    }

    pub fn is_cancelled(&self) -> bool {
        self.job.is_cancelled() || self.inner.cancel_all.load(Ordering::Relaxed)
    }

    /// The task's cancellation token, to hand to child tasks or blocking calls.
    pub fn cancel_token(&self) -> CancelToken {
        self.job.cancel_token()
    }

    /// The cooperative preemption point. Costs a few atomic loads and, for firm tasks, a read
    /// of the CPU's timestamp counter (the clock itself only near the deadline).
    pub fn checkpoint(&self) -> Check {
        if self.is_cancelled() {
            return Check::Cancelled;
        }
        let deadline = self.job.deadline.load(Ordering::Relaxed);
        if self.job.on_miss == OnMiss::Firm && self.inner.passed(deadline) {
            self.job.expired.store(true, Ordering::Release);
            return Check::Cancelled;
        }
        let slot = &self.inner.slots[self.slot];
        if slot.preempt.load(Ordering::Relaxed) {
            // No preemption once shutdown began: the queue only drains from here on.
            let draining = self.inner.closed.load(Ordering::Acquire);
            if !draining
                && self.inner.queue_min.load(Ordering::Acquire) < deadline
                && self.inner.idle() == 0
            {
                return Check::Yield;
            }
            slot.preempt.store(false, Ordering::Relaxed);
        }
        Check::Continue
    }

    /// The outcome of a task that returned normally.
    pub(crate) fn outcome(&self) -> Outcome {
        if self.inner.cancel_all.load(Ordering::Acquire) {
            Outcome::Shutdown
        } else if self.job.is_cancelled() {
            Outcome::Cancelled
        } else if self.job.expired.load(Ordering::Acquire) {
            Outcome::Expired
        } else {
            Outcome::Ok
        }
    }
}

pub(crate) fn error_for(o: Outcome) -> Option<JoinError> {
    match o {
        Outcome::Ok | Outcome::Panicked => None,
        Outcome::Cancelled => Some(JoinError::Cancelled),
        Outcome::Expired => Some(JoinError::Expired),
        Outcome::Shutdown => Some(JoinError::Shutdown),
    }
}

type Out<T> = Option<Result<T, JoinError>>;

struct OnceBody<F, T> {
    f: Option<F>,
    out: Out<T>,
}

impl<F, T> Body for OnceBody<F, T>
where
    F: FnOnce(&Ctx<'_>) -> T + Send,
    T: Send,
{
    fn run(&mut self, ctx: &Ctx<'_>) -> Progress {
        let Some(f) = self.f.take() else {
            return Progress::Done(Outcome::Ok);
        };
        let r = catch_unwind(AssertUnwindSafe(|| f(ctx)));
        Progress::Done(complete(&mut self.out, ctx, r))
    }

    fn fail(&mut self, err: JoinError) {
        self.f = None;
        self.out = Some(Err(err));
    }

    fn outcome(&mut self) -> *mut () {
        (&mut self.out as *mut Out<T>).cast()
    }

    fn release_user_data(&mut self) -> bool {
        self.f = None;
        self.out = None;
        true
    }
}

/// Stores a task's return (or panic) as its outcome and says how it ended.
fn complete<T>(out: &mut Out<T>, ctx: &Ctx<'_>, r: std::thread::Result<T>) -> Outcome {
    match r {
        Ok(v) => {
            let o = ctx.outcome();
            *out = Some(error_for(o).map_or(Ok(v), Err));
            o
        }
        Err(p) => {
            crate::warn!("task panicked", task = ctx.job.seq);
            *out = Some(Err(JoinError::Panicked(p)));
            Outcome::Panicked
        }
    }
}

struct ResumableBody<R: Resumable> {
    job: R,
    out: Out<R::Output>,
}

impl<R: Resumable> Body for ResumableBody<R> {
    fn run(&mut self, ctx: &Ctx<'_>) -> Progress {
        match catch_unwind(AssertUnwindSafe(|| self.job.step(ctx))) {
            Ok(Step::Yield) if !ctx.is_cancelled() => Progress::Yield,
            Ok(Step::Yield) => {
                // Yielding after cancellation ends the task.
                let o = ctx.outcome();
                self.out = Some(Err(error_for(o).unwrap_or(JoinError::Cancelled)));
                Progress::Done(o)
            }
            Ok(Step::Done(v)) => Progress::Done(complete(&mut self.out, ctx, Ok(v))),
            Err(p) => Progress::Done(complete(&mut self.out, ctx, Err(p))),
        }
    }

    fn fail(&mut self, err: JoinError) {
        self.out = Some(Err(err));
    }

    fn outcome(&mut self) -> *mut () {
        (&mut self.out as *mut Out<R::Output>).cast()
    }
}

/// One worker's shared state. Submitters read `busy`, `deadline` and `preempt` on every spawn,
/// so the worker writes them only when they change (a stream of jobs with one deadline leaves
/// the line untouched), and its counters, written on every job, sit on lines of their own.
#[repr(align(128))]
struct WorkerSlot {
    /// Set from taking a job until the worker finds the queue empty; it stays set from one
    /// job to the next.
    busy: AtomicBool,
    deadline: AtomicU64,
    preempt: AtomicBool,
    /// Outcomes of the jobs this worker ran.
    counters: Padded<Counters>,
}

struct Ready {
    map: ReadyQueue,
    /// Empty between absorbs; swapped with the inbox's vector to take its jobs.
    spare: Vec<Entry>,
    stop: bool,
    /// Someone waits in `Drain` for the queue to empty and the workers to go idle.
    draining: bool,
    /// `wake_for_more` woke a parked worker that has not taken the lock since.
    wake_pending: bool,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    cancelled: AtomicU64,
    expired: AtomicU64,
    panicked: AtomicU64,
    shutdown: AtomicU64,
    misses: AtomicU64,
    yields: AtomicU64,
}

impl Counters {
    fn counter(&self, o: Outcome) -> &AtomicU64 {
        match o {
            Outcome::Ok => &self.completed,
            Outcome::Cancelled => &self.cancelled,
            Outcome::Expired => &self.expired,
            Outcome::Panicked => &self.panicked,
            Outcome::Shutdown => &self.shutdown,
        }
    }

    /// Counts an outcome in counters that any thread may write.
    fn count(&self, o: Outcome) {
        self.counter(o).fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an outcome in a worker's own counters, which only that worker writes: a plain
    /// load and store instead of a locked read-modify-write.
    fn count_own(&self, o: Outcome) {
        bump_own(self.counter(o));
    }
}

/// Adds one to a counter that only the calling thread writes (others only read it).
fn bump_own(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> SchedStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SchedStats {
            submitted: 0,
            completed: l(&self.completed),
            cancelled: l(&self.cancelled),
            expired: l(&self.expired),
            panicked: l(&self.panicked),
            shutdown: l(&self.shutdown),
            deadline_misses: l(&self.misses),
            yields: l(&self.yields),
            queued: 0,
            running: 0,
        }
    }
}

impl SchedStats {
    fn add(&mut self, o: &SchedStats) {
        self.completed += o.completed;
        self.cancelled += o.cancelled;
        self.expired += o.expired;
        self.panicked += o.panicked;
        self.shutdown += o.shutdown;
        self.deadline_misses += o.deadline_misses;
        self.yields += o.yields;
    }
}

/// Counters of an executor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStats {
    pub submitted: u64,
    /// Finished with a value.
    pub completed: u64,
    pub cancelled: u64,
    pub expired: u64,
    pub panicked: u64,
    pub shutdown: u64,
    /// Finished with a value after their deadline (run-late tasks, or firm ones that never
    /// reached a checkpoint in time).
    pub deadline_misses: u64,
    /// Times a resumable task yielded to an earlier deadline.
    pub yields: u64,
    /// Jobs in the ready queue.
    pub queued: usize,
    /// Workers running a job or about to take the next one (a worker counts as running from
    /// one job to the next until it finds the queue empty).
    pub running: usize,
}

/// Finished jobs a worker collects before handing them back to the submitters at once.
const RETURN_BATCH: usize = 32;

/// The executors still alive, by id. A [`Task`] names its executor by id rather than holding
/// a `Weak` on it, so a spawn touches no shared reference count; `cancel` and `set_deadline`
/// look the executor up here.
static LIVE: Mutex<BTreeMap<u64, Weak<Inner>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn live() -> MutexGuard<'static, BTreeMap<u64, Weak<Inner>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Inner {
    /// This executor's key in `LIVE`.
    id: u64,
    pub(crate) clock: Arc<dyn Clock>,
    /// Answers "is the clock past this deadline?" mostly without reading the clock.
    bound: DeadlineBound,
    epoch: Instant,
    default_on_miss: OnMiss,
    /// The next sequence number; every job takes one, so it also counts submissions.
    next_seq: Padded<AtomicU64>,
    /// Sequence numbers taken by periodic tasks rather than jobs.
    periodic_seqs: AtomicU64,
    ready: Padded<Mutex<Ready>>,
    ready_cv: Condvar,
    quiet_cv: Condvar,
    queue_min: Padded<AtomicU64>,
    /// Workers blocked on `ready_cv`.
    parked: AtomicUsize,
    inbox: Inbox,
    slots: Box<[WorkerSlot]>,
    pub(crate) cancel_all: AtomicBool,
    closed: AtomicBool,
    counters: Padded<Counters>,
    pub(crate) timers: Mutex<Timers>,
    pub(crate) timer_cv: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Configures and starts an [`Executor`].
pub struct Builder {
    workers: usize,
    name: String,
    on_miss: OnMiss,
    clock: Arc<dyn Clock>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// As many workers as the machine has cores, firm deadlines, the system clock.
    pub fn new() -> Builder {
        Builder {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            name: "bitrot-sched".into(),
            on_miss: OnMiss::Firm,
            clock: Arc::new(SystemClock),
        }
    }
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = n.max(1);
        self
    }
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.name = name.into();
        self
    }
    pub fn default_on_miss(mut self, m: OnMiss) -> Builder {
        self.on_miss = m;
        self
    }
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Builder {
        self.clock = clock;
        self
    }

    /// Starts the workers and the timer thread.
    pub fn build(self) -> std::io::Result<Executor> {
        let epoch = self.clock.now();
        // After the epoch: the counter's start must not precede time 0 (see `DeadlineBound`).
        let bound = DeadlineBound::new(self.clock.is_instant_now());
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bound,
            epoch,
            clock: self.clock,
            default_on_miss: self.on_miss,
            next_seq: Padded(AtomicU64::new(0)),
            periodic_seqs: AtomicU64::new(0),
            ready: Padded(Mutex::new(Ready {
                map: ReadyQueue::default(),
                spare: Vec::new(),
                stop: false,
                draining: false,
                wake_pending: false,
            })),
            ready_cv: Condvar::new(),
            quiet_cv: Condvar::new(),
            queue_min: Padded(AtomicU64::new(u64::MAX)),
            parked: AtomicUsize::new(0),
            inbox: Inbox::new(),
            slots: (0..self.workers)
                .map(|_| WorkerSlot {
                    busy: AtomicBool::new(false),
                    deadline: AtomicU64::new(u64::MAX),
                    preempt: AtomicBool::new(false),
                    counters: Padded::default(),
                })
                .collect(),
            cancel_all: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            counters: Padded::default(),
            timers: Mutex::new(Timers::default()),
            timer_cv: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        live().insert(inner.id, Arc::downgrade(&inner));
        let mut threads = Vec::with_capacity(self.workers + 1);
        for i in 0..self.workers {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{}-{i}", self.name))
                    .spawn(move || inner.worker_main(i))?,
            );
        }
        threads.push(timer::spawn(inner.clone(), &self.name)?);
        *inner.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
        let weak = Arc::downgrade(&inner);
        inner.clock.subscribe(Arc::new(move || {
            if let Some(i) = weak.upgrade() {
                i.wake_timer();
            }
        }));
        Ok(Executor {
            _owner: Arc::new(Owner(inner.clone())),
            inner,
        })
    }
}

/// Shuts the executor down when the last user handle is dropped.
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown(Shutdown::CancelAll);
    }
}

/// How to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Run the queued tasks for at most `timeout`, then cancel what is left.
    Drain { timeout: Duration },
    /// Remove every queued task and cancel every running one now.
    CancelAll,
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The queue emptied and every worker went idle within the drain timeout.
    pub drained: bool,
    /// Queued tasks that never ran.
    pub cancelled_queued: usize,
    /// Workers running (as in [`SchedStats::running`]) when the cancellation was signalled.
    pub signalled_running: usize,
    /// Tasks and periodic tasks still waiting for their release time.
    pub cancelled_timers: usize,
    pub stats: SchedStats,
}

/// A deadline-first executor. Cloning gives another handle to the same pool; dropping the
/// last handle cancels everything and waits for the running tasks to return.
#[derive(Clone)]
pub struct Executor {
    pub(crate) inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

impl Executor {
    /// Runs `f` as soon as a worker is free, earliest deadline first.
    pub fn spawn<F, T>(&self, deadline: Instant, f: F) -> Task<T>
    where
        F: FnOnce(&Ctx<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_with(Opts::new(deadline), f)
    }

    pub fn spawn_with<F, T>(&self, opts: Opts, f: F) -> Task<T>
    where
        F: FnOnce(&Ctx<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let job = self.inner.new_job(
            &opts,
            OnceBody {
                f: Some(f),
                out: None,
            },
        );
        self.inner.submit(job.clone());
        self.task(job)
    }

    /// Runs a resumable task: it can yield at checkpoints to earlier deadlines and is then
    /// requeued with its original deadline and sequence.
    pub fn spawn_resumable<R: Resumable>(&self, opts: Opts, job: R) -> Task<R::Output> {
        let job = self.inner.new_job(&opts, ResumableBody { job, out: None });
        self.inner.submit(job.clone());
        self.task(job)
    }

    /// Releases `f` at `release` (by the timer thread); it then competes by `opts.deadline`.
    pub fn spawn_at<F, T>(&self, release: Instant, opts: Opts, f: F) -> Task<T>
    where
        F: FnOnce(&Ctx<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let job = self.inner.new_job(
            &opts,
            OnceBody {
                f: Some(f),
                out: None,
            },
        );
        let at = self.inner.ns(release);
        if at <= self.inner.now_ns() {
            self.inner.submit(job.clone());
        } else {
            job.release.store(at, Ordering::Release);
            self.inner
                .add_timer(at, job.seq, TimerItem::Job(job.clone()));
        }
        self.task(job)
    }

    /// The handle for a job whose body keeps an `Out<T>` (see `Task::take`).
    fn task<T>(&self, job: Arc<Job>) -> Task<T> {
        Task {
            job,
            exec: self.inner.id,
            _out: std::marker::PhantomData,
        }
    }

    /// The executor's clock (what deadlines are measured against).
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    pub fn workers(&self) -> usize {
        self.inner.slots.len()
    }

    pub fn stats(&self) -> SchedStats {
        self.inner.stats()
    }

    /// Shuts down (idempotent); returns once the worker and timer threads have exited.
    pub fn shutdown(&self, how: Shutdown) -> ShutdownReport {
        self.inner.shutdown(how)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        live().remove(&self.id);
    }
}

impl Inner {
    /// The executor with this id, if it is still alive.
    pub(crate) fn find(id: u64) -> Option<Arc<Inner>> {
        live().get(&id).and_then(Weak::upgrade)
    }

    pub(crate) fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.ns(self.clock.now())
    }

    /// Whether the clock is past `deadline` (executor nanoseconds).
    #[inline]
    fn passed(&self, deadline: u64) -> bool {
        self.bound.passed(deadline, || self.now_ns())
    }

    pub(crate) fn instant(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }

    /// A job's sequence number; the count of them is the `submitted` statistic.
    fn new_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A sequence number for a periodic task (unique among the timer's items, like a job's),
    /// kept out of the `submitted` count.
    pub(crate) fn new_periodic_seq(&self) -> u64 {
        let seq = self.new_seq();
        self.periodic_seqs.fetch_add(1, Ordering::Relaxed);
        seq
    }

    pub(crate) fn new_job<B: Body + 'static>(&self, opts: &Opts, body: B) -> Arc<Job> {
        self.new_job_raw(
            self.ns(opts.deadline),
            opts.on_miss.unwrap_or(self.default_on_miss),
            opts.token.clone(),
            body,
        )
    }

    /// One allocation per job: header, body and outcome together.
    pub(crate) fn new_job_raw<B: Body + 'static>(
        &self,
        deadline: u64,
        on_miss: OnMiss,
        token: Option<CancelToken>,
        body: B,
    ) -> Arc<Job> {
        Arc::new(Job::new(self.new_seq(), deadline, on_miss, token, body))
    }

    /// Locks the ready queue and moves everything waiting in the inbox into it, so whoever
    /// holds the lock sees every submitted job in (deadline, sequence) order.
    fn lock_ready(&self) -> MutexGuard<'_, Ready> {
        let mut r = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        self.absorb(&mut r);
        r
    }

    /// Moves the inbox into the map and publishes the earliest queued deadline (written only
    /// when it changes). Submitters lower it with `fetch_min` after pushing when their
    /// deadline is below it; if one pushed after we took the inbox, the loop takes its job too,
    /// so a published minimum never hides a queued job.
    fn absorb(&self, r: &mut Ready) {
        loop {
            // A job cancelled while in the inbox is queued all the same: `cancel_queued`
            // removes it next, or a worker skips it when its claim fails.
            self.inbox.take_into(&mut r.spare);
            for (key, job) in r.spare.drain(..) {
                r.map.insert(key, job);
            }
            let min = r.map.first_deadline().unwrap_or(u64::MAX);
            // Written only when it changes: submitters read this line on every spawn. Without
            // a write no submitter's `fetch_min` was overwritten, so there is nothing to
            // re-check.
            if self.queue_min.load(Ordering::Relaxed) == min {
                return;
            }
            self.queue_min.store(min, Ordering::SeqCst);
            if self.inbox.is_empty() {
                return;
            }
        }
    }

    /// Hands a queued job to the workers: one push into the inbox (a short lock), then a
    /// wake-up only if every idle worker is parked, or a preemption flag if no worker is idle.
    pub(crate) fn submit(&self, job: Arc<Job>) {
        if self.closed.load(Ordering::SeqCst) {
            self.fail_unstarted(&job, JoinError::Shutdown);
            return;
        }
        self.enqueue(job);
    }

    /// Queues a job whatever the shutdown state: a task that yielded was admitted before
    /// shutdown began, so a draining shutdown must still run it to the end.
    fn enqueue(&self, job: Arc<Job>) {
        let deadline = job.deadline.load(Ordering::Relaxed);
        let key = (deadline, job.seq);
        self.inbox.push(key, job);
        // Only a lower deadline writes the shared minimum. Skipping the write is safe: a
        // worker that published a higher value after this load re-checks the inbox (SeqCst,
        // after its store) and takes this job; see `absorb`.
        if deadline < self.queue_min.load(Ordering::SeqCst) {
            self.queue_min.fetch_min(deadline, Ordering::SeqCst);
        }
        if self.closed.load(Ordering::SeqCst) {
            self.strand_check(key);
        }
        let idle = self.idle();
        let parked = self.parked.load(Ordering::SeqCst);
        if parked > 0 && idle <= parked {
            // Taking the lock orders this wake-up after a parking worker's last inbox check.
            drop(self.ready.lock().unwrap_or_else(|p| p.into_inner()));
            self.ready_cv.notify_one();
        } else if idle == 0 {
            self.preempt_for(deadline);
        }
    }

    /// A job pushed while shutdown began: once the workers have been told to stop, nobody
    /// will take it from the queue, so complete it here.
    fn strand_check(&self, key: (u64, u64)) {
        let stranded = {
            let mut r = self.lock_ready();
            if !r.stop {
                return;
            }
            let job = r.map.remove(&key);
            self.absorb(&mut r);
            job
        };
        if let Some(job) = stranded {
            self.fail_unstarted(&job, JoinError::Shutdown);
        }
    }

    /// Flags the busy, unflagged worker with the latest deadline if `deadline` is earlier.
    fn preempt_for(&self, deadline: u64) {
        let victim = self
            .slots
            .iter()
            .filter(|s| s.busy.load(Ordering::Acquire) && !s.preempt.load(Ordering::Relaxed))
            .max_by_key(|s| s.deadline.load(Ordering::Relaxed));
        if let Some(s) = victim
            && deadline < s.deadline.load(Ordering::Relaxed)
        {
            s.preempt.store(true, Ordering::Release);
        }
    }

    /// Completes a job that never started, if it is still queued.
    pub(crate) fn fail_unstarted(&self, job: &Job, err: JoinError) -> bool {
        if !job.claim_cancel() {
            return false;
        }
        self.count(match err {
            JoinError::Expired => Outcome::Expired,
            JoinError::Shutdown => Outcome::Shutdown,
            _ => Outcome::Cancelled,
        });
        // SAFETY: `claim_cancel` gave this thread the claim.
        unsafe { job.body() }.fail(err);
        job.finish();
        true
    }

    /// `Task::cancel` on a job that may still be queued: completes it as cancelled and takes it
    /// out of whichever queue holds it. False if it had already started.
    pub(crate) fn cancel_queued(&self, job: &Job) -> bool {
        if !self.fail_unstarted(job, JoinError::Cancelled) {
            return false;
        }
        {
            let mut r = self.lock_ready();
            // The key is read under the lock: a `set_deadline` that won the lock first has
            // moved the job to its new deadline, and the old key would miss it (leaving a
            // cancelled job in the queue until a worker popped and skipped it).
            let key = (job.deadline.load(Ordering::Relaxed), job.seq);
            if r.map.remove(&key).is_some() {
                self.absorb(&mut r);
                return true;
            }
        }
        let release = job.release.load(Ordering::Acquire);
        let mut t = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        t.map.remove(&(release, job.seq));
        true
    }

    /// Moves a queued job to a new deadline; false if it is not in the ready or timer queue.
    pub(crate) fn requeue_with_deadline(&self, job: &Arc<Job>, deadline: Instant) -> bool {
        let new = self.ns(deadline);
        let mut r = self.lock_ready();
        if job.state.load(Ordering::Acquire) != QUEUED {
            return false;
        }
        let old = (job.deadline.load(Ordering::Relaxed), job.seq);
        if r.map.remove(&old).is_some() {
            job.deadline.store(new, Ordering::Relaxed);
            r.map.insert((new, job.seq), job.clone());
            self.absorb(&mut r);
            return true;
        }
        // Still waiting in the timer queue: its deadline only matters once released.
        drop(r);
        let t = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        let in_timer = t
            .map
            .contains_key(&(job.release.load(Ordering::Acquire), job.seq));
        if in_timer {
            job.deadline.store(new, Ordering::Relaxed);
        }
        in_timer
    }

    /// Runs jobs until the executor stops. Workers are counted idle from `build` on.
    fn worker_main(&self, idx: usize) {
        let mut dead = Vec::new();
        while let Some(job) = self.next_job(idx, &mut dead) {
            self.run_job(idx, &job);
            self.retire(job, &mut dead);
        }
        self.slots[idx].busy.store(false, Ordering::Release);
    }

    /// Keeps a finished job whose last reference this is, to hand back to the submitters in
    /// a batch (see `Inbox::give_back`), once its user data is dropped here, on the worker;
    /// other references are simply dropped.
    fn retire(&self, mut job: Arc<Job>, dead: &mut Vec<Arc<Job>>) {
        let Some(only) = Arc::get_mut(&mut job) else {
            return;
        };
        if !only.body_mut().release_user_data() {
            return;
        }
        dead.push(job);
        if dead.len() >= RETURN_BATCH {
            self.inbox.give_back(dead);
            dead.clear();
        }
    }

    /// Blocks until a job is claimed (or the executor stops). Before parking, a worker polls
    /// the queue's minimum for a short while, so a stream of short tasks does not pay a futex
    /// wake-up per task.
    fn next_job(&self, idx: usize, dead: &mut Vec<Arc<Job>>) -> Option<Arc<Job>> {
        let mut r = self.lock_ready();
        let mut searched = false;
        loop {
            if let Some((deadline, job)) = r.map.pop_first() {
                self.absorb(&mut r);
                // Under the lock, so that `wait_quiet` cannot find the queue empty and every
                // worker idle while a popped job is on its way to running, and so that a
                // preemption flag set from here on is judged by the new deadline.
                self.start(idx, deadline);
                self.wake_for_more(&mut r);
                drop(r);
                // Claimed outside the lock: the job's memory is usually in the submitter's
                // cache, and the other workers need not wait for it to arrive.
                if job.claim() {
                    return Some(job);
                }
                // Cancelled while queued: skip it.
                r = self.lock_ready();
                continue;
            }
            if r.stop {
                return None;
            }
            // Cleared under the lock, where `wait_quiet` looks for idle workers.
            let slot = &self.slots[idx];
            if slot.busy.load(Ordering::Relaxed) {
                slot.busy.store(false, Ordering::Release);
            }
            if r.draining && self.running() == 0 {
                self.quiet_cv.notify_all();
            }
            if !searched {
                searched = true;
                drop(r);
                // Idle: free the finished jobs waiting to be freed rather than keep them while
                // parked (memory only: their user data was dropped in `retire`).
                dead.clear();
                drop(self.inbox.take_returned());
                self.search();
                r = self.lock_ready();
                continue;
            }
            searched = false;
            self.parked.fetch_add(1, Ordering::SeqCst);
            // A submitter that pushed before our increment is seen here; one that pushes
            // after it sees us parked and wakes us (see `submit`).
            if self.inbox.is_empty() {
                r = self.ready_cv.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            self.parked.fetch_sub(1, Ordering::SeqCst);
            // Whichever worker was woken, one has the lock now and will take what is left.
            r.wake_pending = false;
            self.absorb(&mut r);
        }
    }

    /// Spins, then yields, until the queue looks non-empty or a bounded number of rounds pass.
    fn search(&self) {
        for step in 0..16u32 {
            if self.queue_min.load(Ordering::Acquire) != u64::MAX || !self.inbox.is_empty() {
                return;
            }
            if step < 7 {
                for _ in 0..(1u32 << step) {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Publishes in the worker's slot that it takes a job with `deadline`, writing only what
    /// changed: a flag left from the previous job is cleared before the new deadline shows.
    fn start(&self, idx: usize, deadline: u64) {
        let slot = &self.slots[idx];
        if slot.preempt.load(Ordering::Relaxed) {
            slot.preempt.store(false, Ordering::Relaxed);
        }
        if slot.deadline.load(Ordering::Relaxed) != deadline {
            slot.deadline.store(deadline, Ordering::Relaxed);
        }
        if !slot.busy.load(Ordering::Relaxed) {
            // Sequentially consistent, paired with `enqueue`: see `wake_for_more`.
            slot.busy.store(true, Ordering::SeqCst);
        }
    }

    /// Wakes a parked worker when work is left after this worker took a job. A submitter that
    /// counted this worker idle (it read `busy` before `start` set it) did not wake anyone,
    /// expecting this worker to take its job; either that submitter saw `busy`, or this
    /// check sees its job in the inbox (both sides sequentially consistent).
    ///
    /// One wake-up at a time: until the woken worker takes the lock (and then takes work,
    /// waking the next one if more is left), further pops do not wake again. Otherwise a
    /// worker draining a long queue would make a futex call per job while the woken one
    /// waits for a core.
    fn wake_for_more(&self, r: &mut Ready) {
        if r.wake_pending {
            return;
        }
        if self.parked.load(Ordering::SeqCst) > 0 && (!r.map.is_empty() || !self.inbox.is_empty()) {
            r.wake_pending = true;
            self.ready_cv.notify_one();
        }
    }

    fn run_job(&self, idx: usize, job: &Arc<Job>) {
        let deadline = job.deadline.load(Ordering::Relaxed);
        let ctx = Ctx {
            job,
            inner: self,
            slot: idx,
        };
        let refuse = if self.cancel_all.load(Ordering::Acquire) {
            Some(JoinError::Shutdown)
        } else if job.is_cancelled() {
            Some(JoinError::Cancelled)
        } else if job.on_miss == OnMiss::Firm && self.passed(deadline) {
            Some(JoinError::Expired)
        } else {
            None
        };
        // SAFETY: this worker won `claim` in `next_job` and has not finished the job.
        let body = unsafe { job.body() };
        let counters = &self.slots[idx].counters;
        if let Some(err) = refuse {
            counters.count_own(match err {
                JoinError::Shutdown => Outcome::Shutdown,
                JoinError::Expired => Outcome::Expired,
                _ => Outcome::Cancelled,
            });
            body.fail(err);
            job.state.store(DONE, Ordering::Release);
            job.finish();
            return;
        }
        match body.run(&ctx) {
            Progress::Done(outcome) => {
                counters.count_own(outcome);
                if outcome == Outcome::Ok && self.passed(deadline) {
                    bump_own(&counters.misses);
                }
                job.state.store(DONE, Ordering::Release);
                job.finish();
            }
            Progress::Yield => {
                bump_own(&counters.yields);
                job.state.store(QUEUED, Ordering::Release);
                self.enqueue(job.clone());
            }
        }
    }

    fn count(&self, o: Outcome) {
        self.counters.count(o);
    }

    /// Workers holding a job or about to take one (`busy` stays set from one job to the next).
    fn running(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.busy.load(Ordering::SeqCst))
            .count()
    }

    /// Workers without a job (searching the queue or parked).
    fn idle(&self) -> usize {
        self.slots.len() - self.running()
    }

    fn stats(&self) -> SchedStats {
        let mut s = self.counters.snapshot();
        for slot in self.slots.iter() {
            s.add(&slot.counters.snapshot());
        }
        let periodic = self.periodic_seqs.load(Ordering::Relaxed);
        s.submitted = self
            .next_seq
            .load(Ordering::Relaxed)
            .saturating_sub(periodic);
        s.queued = self.lock_ready().map.len();
        s.running = self.running();
        s
    }

    fn wait_quiet(&self, timeout: Duration) -> bool {
        let limit = Instant::now() + timeout;
        let mut r = self.lock_ready();
        r.draining = true;
        loop {
            // A yielded task passes through the inbox on its way back to the ready map.
            if r.map.is_empty() && self.inbox.is_empty() && self.running() == 0 {
                r.draining = false;
                return true;
            }
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                r.draining = false;
                return false;
            }
            r = self
                .quiet_cv
                .wait_timeout(r, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> ShutdownReport {
        self.closed.store(true, Ordering::Release);
        let mut report = ShutdownReport::default();
        let cancelled_timers = self.cancel_timers();
        if let Shutdown::Drain { timeout } = how {
            report.drained = self.wait_quiet(timeout);
        }
        report.cancelled_timers = cancelled_timers;
        report.signalled_running = self.running();
        self.cancel_all.store(true, Ordering::Release);
        let queued: Vec<Arc<Job>> = {
            let mut r = self.lock_ready();
            r.stop = true;
            let queued = r.map.take_all();
            self.absorb(&mut r);
            queued
        };
        self.ready_cv.notify_all();
        report.cancelled_queued = queued
            .iter()
            .filter(|j| self.fail_unstarted(j, JoinError::Shutdown))
            .count();
        self.stop_timer();
        self.join_threads();
        report.stats = self.stats();
        report
    }

    fn join_threads(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job whose closure holds a boxed callback (16 bytes) and returns nothing must stay
    /// within 120 bytes with its `Arc` counts: glibc then serves it from a fast bin, and the
    /// cross-thread free of every job stays cheap (one more word made dispatch ~30 % slower).
    /// A finished job is handed back to be freed on a submitting or the timer thread only
    /// after this: its closure and its untaken outcome must be gone, so that no user `Drop`
    /// runs there.
    #[test]
    fn releasing_a_body_drops_its_closure_and_outcome_at_once() {
        use std::sync::atomic::AtomicUsize;
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let captured = Counted(drops.clone());
        let mut body = OnceBody {
            f: Some(move |_: &Ctx<'_>| captured),
            out: Some(Ok(Counted(drops.clone()))),
        };
        assert!(body.release_user_data());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "closure and outcome dropped"
        );
    }

    #[test]
    fn a_dropped_executor_leaves_the_registry() {
        let exec = Builder::new().workers(1).build().expect("executor starts");
        let id = exec.inner.id;
        assert!(Inner::find(id).is_some_and(|i| i.id == id));
        drop(exec);
        assert!(
            Inner::find(id).is_none(),
            "no live executor under a dropped id"
        );
    }

    #[test]
    fn a_small_job_fits_a_glibc_fast_bin() {
        type Callback = Box<dyn FnOnce(&Ctx<'_>) + Send>;
        let arc_counts = 2 * std::mem::size_of::<usize>();
        let job = std::mem::size_of::<Job<OnceBody<Callback, ()>>>();
        assert!(arc_counts + job <= 120, "job header grew: {job} bytes");
    }
}
