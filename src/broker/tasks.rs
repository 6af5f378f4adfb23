//! Owners for the broker's tasks: every task a broker starts is spawned through a
//! [`Tasks`] group, so shutdown can stop it and wait for it (no detached `tokio::spawn`).
//! A group is a cancellation token plus a tracker of the tasks spawned in it; groups form
//! a tree (a child is cancelled with its parent), and the broker stops them in Kafka's
//! order (see `Broker::shutdown`): the network first, then the background work, then the
//! logs and the ZooKeeper session.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// A group stopped with this one (and on its own).
    pub fn child(&self) -> Tasks {
        Tasks {
            token: self.token.child_token(),
            tracker: TaskTracker::new(),
        }
    }

    /// Runs `task` until it finishes or the group is stopped (it is then dropped at its
    /// next await point).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Runs `task` to completion even when the group is stopped: for a task that watches
    /// [`Tasks::stopping`] itself to finish what it is doing (a connection finishing its
    /// request). Shutdown still waits for it.
    pub fn spawn_draining<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Resolves when the group is being stopped.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// An owned handle on the stop signal, for tasks that outlive a borrow of the group.
    pub fn stop_signal(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Stops the group and waits for its tasks, at most `grace`; returns the number of
    /// tasks still running then (left to be dropped with the runtime).
    pub async fn stop(&self, grace: Duration) -> usize {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            return self.tracker.len();
        }
        0
    }

    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_cancels_and_awaits_every_task_of_the_group_and_its_children() {
        let root = Tasks::new();
        let child = root.child();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(4);
        for group in [&root, &child] {
            let tx = tx.clone();
            group.spawn(async move {
                let _keep = tx;
                std::future::pending::<()>().await;
            });
        }
        drop(tx);
        assert_eq!(root.len() + child.len(), 2);
        assert_eq!(child.stop(Duration::from_secs(5)).await, 0);
        assert!(!root.is_stopping(), "a child stops alone");
        assert_eq!(root.stop(Duration::from_secs(5)).await, 0);
        assert!(rx.recv().await.is_none(), "every task dropped its sender");
    }

    #[tokio::test]
    async fn a_draining_task_finishes_its_work_before_stop_returns() {
        let group = Tasks::new();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, d) = (group.clone(), done.clone());
        group.spawn_draining(async move {
            g.stopping().await;
            tokio::time::sleep(Duration::from_millis(50)).await; // the last request
            d.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(group.stop(Duration::from_secs(5)).await, 0);
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_stop_is_reported_after_the_grace() {
        let group = Tasks::new();
        group.spawn_draining(std::future::pending());
        assert_eq!(group.stop(Duration::from_millis(20)).await, 1);
    }
}
