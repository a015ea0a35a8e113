//! The store's writer thread: a commit of held changes runs beside the event loop, which
//! goes on checking answers and asking for more while the disk is written.
//!
//! Rules it keeps: one commit at a time, in the order they were started; what a commit holds
//! is handed back with its result, and the loop reports nothing of it before then. The thread
//! ends when its handle is dropped, after the commit it is running (if any).

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::Notify;

use crate::ledger::chain::{Accepted, UnstoredMark};
use crate::ledger::{Store, StoreError};

/// Changes handed to the writer, each with what the loop owes once it is stored.
pub(super) struct Commit<T> {
    /// The changes, oldest first, and what is owed for each.
    pub(super) items: Vec<(Accepted, T)>,
    /// The chain's mark when the changes were taken: their bodies may go once stored.
    pub(super) mark: UnstoredMark,
}

/// A commit the writer ran, with its outcome.
pub(super) struct Committed<T> {
    /// What was handed over.
    pub(super) commit: Commit<T>,
    /// The store's answer: on an error nothing of the commit was written.
    pub(super) result: Result<(), StoreError>,
}

/// The loop's handle on the writer thread.
pub(super) struct Writer<T> {
    jobs: Option<mpsc::Sender<Commit<T>>>,
    done: mpsc::Receiver<Committed<T>>,
    ready: Arc<Notify>,
    /// The mark of the running commit, if one runs.
    running: Option<UnstoredMark>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Writer<T> {
    /// Starts a writer committing through `store` (a handle on the node's database).
    ///
    /// # Errors
    /// The operating system's error when the thread cannot be started.
    pub(super) fn spawn(store: Store) -> std::io::Result<Self> {
        let (jobs, inbox) = mpsc::channel::<Commit<T>>();
        let (finished, done) = mpsc::channel();
        let ready = Arc::new(Notify::new());
        let wake = Arc::clone(&ready);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for commit in inbox {
                    let result = store.commit_all(commit.items.iter().map(|(a, _)| a));
                    if finished.send(Committed { commit, result }).is_err() {
                        return;
                    }
                    wake.notify_one();
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            ready,
            running: None,
            thread: Some(thread),
        })
    }

    /// Whether a commit is running.
    pub(super) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Woken (a permit is kept if nobody waits) each time a commit finishes.
    pub(super) fn ready(&self) -> Arc<Notify> {
        Arc::clone(&self.ready)
    }

    /// Hands a commit to the thread. Only when none is running: the caller waits for the one
    /// before ([`Writer::finished`], [`Writer::wait`]) so that commits keep their order.
    pub(super) fn start(&mut self, commit: Commit<T>) -> Result<(), Committed<T>> {
        debug_assert!(self.running.is_none(), "one commit at a time");
        let mark = commit.mark;
        let Some(jobs) = &self.jobs else {
            return Err(gone(commit.mark, commit.items));
        };
        match jobs.send(commit) {
            Ok(()) => {
                self.running = Some(mark);
                Ok(())
            }
            Err(mpsc::SendError(commit)) => Err(gone(mark, commit.items)),
        }
    }

    /// The running commit, if it has finished.
    pub(super) fn finished(&mut self) -> Option<Committed<T>> {
        let mark = self.running?;
        let done = match self.done.try_recv() {
            Ok(done) => done,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => gone(mark, Vec::new()),
        };
        self.running = None;
        Some(done)
    }

    /// Blocks until the running commit finishes, if one runs.
    pub(super) fn wait(&mut self) -> Option<Committed<T>> {
        let mark = self.running.take()?;
        Some(self.done.recv().unwrap_or_else(|_| gone(mark, Vec::new())))
    }
}

impl<T> Drop for Writer<T> {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A commit the thread did not finish (it is gone): nothing of it was written.
fn gone<T>(mark: UnstoredMark, items: Vec<(Accepted, T)>) -> Committed<T> {
    Committed {
        commit: Commit { items, mark },
        result: Err(StoreError::WriterGone),
    }
}
