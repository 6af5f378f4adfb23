//! Where request storage work runs: Kafka's request handler pool (`num.io.threads`) and
//! its bounded request queue (`queued.max.requests`).
//!
//! Produce appends (CRC checks, bounded decompression, `pwritev`) and fetch reads
//! (`pread`) can stall on a slow or failing disk, and a compacted topic's batch can take
//! a while to decompress. Run on tokio's async workers they would stall every connection
//! and the ZooKeeper session with them; here they run on tokio's blocking threads, at
//! most `num.io.threads` at a time. A request waiting for a thread takes one of
//! `queued.max.requests` queue slots; when the queue is full its connection waits, and
//! reads nothing more from its socket, until a slot frees (Kafka's network thread blocks
//! on a full request queue the same way). `block_in_place` was measured and rejected: it
//! hands the async worker's queue to a new thread on every call and doubled produce CPU
//! per GB.

use std::sync::Arc;

use tokio::sync::Semaphore;

#[derive(Debug)]
pub struct IoPool {
    /// One permit per I/O thread: storage jobs running now.
    threads: Arc<Semaphore>,
    /// One permit per queue slot: jobs waiting for a thread.
    queue: Semaphore,
}

impl IoPool {
    pub fn new(threads: usize, queue: usize) -> IoPool {
        assert!(threads > 0, "num.io.threads must be positive");
        assert!(queue > 0, "queued.max.requests must be positive");
        IoPool {
            threads: Arc::new(Semaphore::new(threads.min(Semaphore::MAX_PERMITS))),
            queue: Semaphore::new(queue.min(Semaphore::MAX_PERMITS)),
        }
    }

    /// Runs `job` on an I/O thread and returns its result. A panic in `job` is resumed
    /// here, in the caller, as if the job had run inline.
    pub async fn run<T, F>(&self, job: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        // The semaphores are never closed, so acquiring cannot fail.
        let queued = self
            .queue
            .acquire()
            .await
            .expect("io queue semaphore closed");
        let thread = self
            .threads
            .clone()
            .acquire_owned()
            .await
            .expect("io thread semaphore closed");
        drop(queued);
        let handle = tokio::task::spawn_blocking(move || {
            let _thread = thread;
            job()
        });
        match handle.await {
            Ok(value) => value,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Only a runtime shutting down cancels a blocking task.
            Err(err) => panic!("storage job cancelled: {err}"),
        }
    }

    /// Jobs that could start now without waiting (for tests and metrics).
    pub fn idle_threads(&self) -> usize {
        self.threads.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_threads_jobs_run_at_once() {
        let pool = Arc::new(IoPool::new(2, 100));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs = (0..8).map(|_| {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_threads(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_makes_callers_wait() {
        let pool = Arc::new(IoPool::new(1, 1));
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || blocked.recv().unwrap()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await; // first holds the thread
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await; // second holds the queue slot
        let third = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 3).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished() && !third.is_finished());
        assert_eq!(pool.queue.available_permits(), 0, "the queue slot is taken");
        release.send(()).unwrap();
        first.await.unwrap();
        assert_eq!(second.await.unwrap(), 2);
        assert_eq!(third.await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_panicking_job_panics_the_caller_and_frees_its_thread() {
        let pool = Arc::new(IoPool::new(1, 1));
        let p = pool.clone();
        let caller = tokio::spawn(async move { p.run(|| panic!("boom")).await });
        assert!(caller.await.unwrap_err().is_panic());
        assert_eq!(pool.run(|| 7).await, 7);
    }
}
