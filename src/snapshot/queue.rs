//! The queue of committed unpacks whose uppers are still to be stored as layers: jobs in
//! commit order, the one that runs, and those that failed. Only the bookkeeping; storing a
//! job is `ingest`'s.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A committed unpack to store: its key and its directory (a key may be removed and used
/// again; the directory tells the snapshots apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Job {
    pub key: String,
    pub dir: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    running: bool,
    /// Jobs that failed, in the order they ran, with why: queued again by
    /// [`IngestQueue::retry_failed`] (a container waiting for one) and at the next start.
    failed: Vec<(Job, String)>,
}

/// The queue of pending snapshots, in commit order.
#[derive(Default)]
pub(super) struct IngestQueue {
    state: Mutex<State>,
    changed: Condvar,
}

impl IngestQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, job: Job) {
        self.state().queue.push_back(job);
        self.changed.notify_all();
    }

    /// The next job, unless one is running or none waits; [`IngestQueue::finish`] ends it.
    pub fn take(&self) -> Option<Job> {
        let mut state = self.state();
        if state.running {
            return None;
        }
        let job = state.queue.pop_front()?;
        state.running = true;
        Some(job)
    }

    pub fn finish(&self, job: &Job, result: Result<(), String>) {
        let mut state = self.state();
        state.running = false;
        if let Err(reason) = result {
            state.failed.push((job.clone(), reason));
        }
        self.changed.notify_all();
    }

    /// Whether nothing is queued or running.
    pub fn idle(&self) -> bool {
        let state = self.state();
        !state.running && state.queue.is_empty()
    }

    pub fn failure(&self, dir: u64) -> Option<String> {
        let state = self.state();
        let failed = state.failed.iter().find(|(job, _)| job.dir == dir);
        failed.map(|(_, reason)| reason.clone())
    }

    /// Queues the failed jobs again, first and in their order (parents before children).
    pub fn retry_failed(&self) {
        let mut state = self.state();
        let failed = std::mem::take(&mut state.failed);
        for (job, _) in failed.into_iter().rev() {
            state.queue.push_front(job);
        }
        self.changed.notify_all();
    }

    /// Waits until a job ends or is queued, or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let state = self.state();
        let _ = self.changed.wait_timeout(state, timeout);
    }

    /// Waits until a job could be taken.
    pub fn wait_for_work(&self) {
        let mut state = self.state();
        while state.running || state.queue.is_empty() {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}
