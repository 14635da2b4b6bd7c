//! [`EngineQueue`]: a fixed set of OS threads per engine, fed by a bounded queue.
//!
//! Admission is decided at once: a full queue refuses ([`RuntimeError::Overloaded`], HTTP 429) instead of
//! letting callers pile up. A queued job that has not started by its deadline is abandoned
//! ([`RuntimeError::QueueTimeout`], HTTP 503). Every job carries a [`CancelToken`] that the caller's handle
//! trips when it is dropped (the HTTP client disconnected): a queued job is then skipped, a running one sees it
//! through [`CancelToken::is_cancelled`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::RuntimeError;

/// Sizing of one engine's queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Threads running the engine at once (each runs one request at a time).
    pub workers: usize,
    /// Requests that may wait for a thread; one more is refused with 429.
    pub max_queued: usize,
    /// How long a request may wait before it starts; past it, 503.
    pub queue_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            workers: 1,
            max_queued: 16,
            queue_timeout: Duration::from_secs(30),
        }
    }
}

/// A flag shared by a job and its caller: set when the caller no longer wants the result.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Cancels the token when dropped: the caller's future or stream went away.
#[derive(Debug)]
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Counters for metrics and `/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Waiting for a thread.
    pub queued: usize,
    /// On a thread now.
    pub running: usize,
    /// Refused because the queue was full, since start.
    pub rejected: u64,
    /// Abandoned at the queue deadline, since start.
    pub timed_out: u64,
    /// Dropped unstarted because the caller went away, since start.
    pub cancelled: u64,
}

type Work = Box<dyn FnOnce(&CancelToken) + Send>;

struct Job {
    cancel: CancelToken,
    started: oneshot::Sender<()>,
    work: Work,
}

struct Shared {
    name: String,
    queued: AtomicUsize,
    running: AtomicUsize,
    rejected: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
    /// Moving average of job run time in milliseconds, for Retry-After.
    avg_ms: AtomicU64,
}

/// One engine's threads and queue. Cloning shares them; the threads end when the last clone is dropped and the
/// queue has drained.
#[derive(Clone)]
pub struct EngineQueue {
    tx: Sender<Job>,
    shared: Arc<Shared>,
    cfg: QueueConfig,
}

/// A started job: await [`Running::finish`] for its result. Dropping it cancels the job.
pub struct Running<T> {
    result: oneshot::Receiver<T>,
    guard: CancelOnDrop,
    engine: String,
}

impl<T> Running<T> {
    /// The job's result. `Stopped` if the job ended without one (it panicked).
    pub async fn finish(mut self) -> Result<T, RuntimeError> {
        (&mut self.result).await.map_err(|_| RuntimeError::Stopped {
            engine: self.engine.clone(),
        })
    }

    /// The job's cancel token (tripped when this handle is dropped).
    pub fn token(&self) -> &CancelToken {
        &self.guard.0
    }
}

impl EngineQueue {
    /// Starts `cfg.workers` threads named `vox-<name>-<i>`.
    pub fn new(name: &str, cfg: QueueConfig) -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(cfg.max_queued);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            avg_ms: AtomicU64::new(1000),
        });
        for i in 0..cfg.workers.max(1) {
            let rx = rx.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("vox-{name}-{i}"))
                .spawn(move || worker(rx, shared))
                .expect("spawn an engine thread");
        }
        EngineQueue { tx, shared, cfg }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    pub fn stats(&self) -> QueueStats {
        QueueStats {
            queued: self.shared.queued.load(Ordering::Relaxed),
            running: self.shared.running.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            timed_out: self.shared.timed_out.load(Ordering::Relaxed),
            cancelled: self.shared.cancelled.load(Ordering::Relaxed),
        }
    }

    /// Queues `work` and waits until a thread starts it (or refuses at once when the queue is full, or gives up
    /// at the queue deadline). The work's return value arrives through [`Running::finish`].
    pub async fn start<T, F>(&self, work: F) -> Result<Running<T>, RuntimeError>
    where
        T: Send + 'static,
        F: FnOnce(&CancelToken) -> T + Send + 'static,
    {
        let cancel = CancelToken::new();
        let guard = CancelOnDrop(cancel.clone());
        let (result_tx, result_rx) = oneshot::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let job = Job {
            cancel,
            started: started_tx,
            work: Box::new(move |c: &CancelToken| {
                let _ = result_tx.send(work(c));
            }),
        };
        let enqueued = Instant::now();
        // Count before sending so a worker's decrement never underflows.
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.tx.try_send(job) {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(match e {
                TrySendError::Full(_) => {
                    self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                    RuntimeError::Overloaded {
                        engine: self.shared.name.clone(),
                        capacity: self.cfg.workers + self.cfg.max_queued,
                        retry_after: self.retry_after(),
                    }
                }
                TrySendError::Disconnected(_) => RuntimeError::Stopped {
                    engine: self.shared.name.clone(),
                },
            });
        }
        match tokio::time::timeout(self.cfg.queue_timeout, started_rx).await {
            Ok(Ok(())) => Ok(Running {
                result: result_rx,
                guard,
                engine: self.shared.name.clone(),
            }),
            Ok(Err(_)) => Err(RuntimeError::Stopped {
                engine: self.shared.name.clone(),
            }),
            Err(_) => {
                // `guard` drops here and cancels: the worker skips the job when it reaches it.
                self.shared.timed_out.fetch_add(1, Ordering::Relaxed);
                Err(RuntimeError::QueueTimeout {
                    engine: self.shared.name.clone(),
                    waited: enqueued.elapsed(),
                })
            }
        }
    }

    /// Runs `work` to completion (start, then finish).
    pub async fn run<T, F>(&self, work: F) -> Result<T, RuntimeError>
    where
        T: Send + 'static,
        F: FnOnce(&CancelToken) -> T + Send + 'static,
    {
        self.start(work).await?.finish().await
    }

    /// An estimate of when a slot frees up: the average job time times the jobs ahead, per thread (≥ 1 s).
    fn retry_after(&self) -> Duration {
        let avg = self.shared.avg_ms.load(Ordering::Relaxed);
        let ahead = (self.shared.queued.load(Ordering::Relaxed) + 1) as u64;
        let ms = avg * ahead / self.cfg.workers.max(1) as u64;
        Duration::from_secs(ms.div_ceil(1000).max(1))
    }
}

fn worker(rx: Receiver<Job>, shared: Arc<Shared>) {
    while let Ok(job) = rx.recv() {
        shared.queued.fetch_sub(1, Ordering::AcqRel);
        // Count the job as running before its caller hears it started, so `stats()` never shows a started job
        // as neither queued nor running.
        shared.running.fetch_add(1, Ordering::AcqRel);
        // A caller that gave up (deadline or disconnect) has dropped its receiver: skip the job.
        if job.cancel.is_cancelled() || job.started.send(()).is_err() {
            shared.running.fetch_sub(1, Ordering::AcqRel);
            shared.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let t0 = Instant::now();
        let cancel = job.cancel;
        let work = job.work;
        // A panicking engine must not take the thread (and the queue) down with it.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&cancel))).is_err() {
            tracing::error!(engine = %shared.name, "engine panicked; the request fails, the thread goes on");
        }
        let ms = t0.elapsed().as_millis() as u64;
        let old = shared.avg_ms.load(Ordering::Relaxed);
        shared.avg_ms.store((old * 7 + ms) / 8, Ordering::Relaxed);
        shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn cfg(workers: usize, max_queued: usize, timeout_ms: u64) -> QueueConfig {
        QueueConfig {
            workers,
            max_queued,
            queue_timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// A job that blocks its thread until the test releases it.
    fn gate() -> (
        mpsc::Sender<()>,
        impl FnOnce(&CancelToken) -> u32 + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel::<()>();
        (tx, move |_: &CancelToken| {
            let _ = rx.recv();
            7
        })
    }

    #[tokio::test]
    async fn runs_work_off_the_runtime_thread() {
        let q = EngineQueue::new("t", cfg(1, 1, 5000));
        let name = q
            .run(|_| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("vox-t-0"));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_a_retry_hint() {
        let q = EngineQueue::new("t", cfg(1, 1, 60_000));
        let (release1, job1) = gate();
        let running = q.start(job1).await.unwrap();
        assert_eq!(q.stats().running, 1);
        // One may wait…
        let (release2, job2) = gate();
        let q2 = q.clone();
        let waiting = tokio::spawn(async move { q2.run(job2).await });
        while q.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
        // …the next is refused.
        let (_r3, job3) = gate();
        match q.start(job3).await {
            Err(RuntimeError::Overloaded {
                capacity,
                retry_after,
                ..
            }) => {
                assert_eq!(capacity, 2);
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("expected Overloaded, got {:?}", other.err()),
        }
        assert_eq!(q.stats().rejected, 1);
        release1.send(()).unwrap();
        assert_eq!(running.finish().await.unwrap(), 7);
        release2.send(()).unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 7);
    }

    #[tokio::test]
    async fn a_job_that_cannot_start_by_its_deadline_times_out_and_is_skipped() {
        let q = EngineQueue::new("t", cfg(1, 4, 50));
        let (release, job1) = gate();
        let running = q.start(job1).await.unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        let r = q.start(move |_| ran2.store(true, Ordering::SeqCst)).await;
        assert!(
            matches!(r, Err(RuntimeError::QueueTimeout { .. })),
            "{:?}",
            r.err()
        );
        release.send(()).unwrap();
        running.finish().await.unwrap();
        // The abandoned job is skipped, not run.
        q.run(|_| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(q.stats().timed_out, 1);
        assert_eq!(q.stats().cancelled, 1);
    }

    #[tokio::test]
    async fn dropping_the_caller_cancels_queued_and_running_work() {
        let q = EngineQueue::new("t", cfg(1, 4, 60_000));
        let (release, job1) = gate();
        let running = q.start(job1).await.unwrap();
        // A queued job whose caller disconnects is never run.
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        let q2 = q.clone();
        let waiter =
            tokio::spawn(async move { q2.run(move |_| ran2.store(true, Ordering::SeqCst)).await });
        while q.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        release.send(()).unwrap();
        running.finish().await.unwrap();
        // A running job sees its token tripped when the handle is dropped.
        let (seen_tx, seen_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let handle = q
            .start(move |c: &CancelToken| {
                let _ = go_rx.recv();
                seen_tx.send(c.is_cancelled()).unwrap();
            })
            .await
            .unwrap();
        drop(handle);
        go_tx.send(()).unwrap();
        assert!(
            seen_rx.recv().unwrap(),
            "the running job saw its cancellation"
        );
        q.run(|_| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(q.stats().cancelled, 1);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_request_but_not_the_queue() {
        let q = EngineQueue::new("t", cfg(1, 1, 5000));
        let r = q.run(|_| -> u32 { panic!("boom") }).await;
        assert!(matches!(r, Err(RuntimeError::Stopped { .. })));
        assert_eq!(q.run(|_| 3).await.unwrap(), 3);
    }
}
