//! The reading connections of one process: a few threads, each with its own
//! connection, shared by every ledger the process reads from one store.
//!
//! The blocking client may not run inside a tokio runtime, and a node
//! serving many ledgers must not open connections per ledger: every read
//! (record ranges, the head, the lease) is a job queued here. Jobs stream
//! their rows back through bounded queues, so a slow caller holds one
//! thread, never memory.
//!
//! Architecture invariant: a job never queues another job (a caller that
//! reads rows never waits on a second read while it holds the first), so the
//! threads cannot all wait on each other.

use std::sync::{Arc, OnceLock};

use super::PgStore;
use crate::log::LogError;

/// Threads (and connections) reading for one process.
pub const READ_THREADS: usize = 4;
/// Jobs waiting for a reading thread.
const JOBS_QUEUED_MAX: usize = 256;

/// A job: runs on a reading thread with its connection (or the error that
/// made one impossible).
pub(super) type Job = Box<dyn FnOnce(Result<&mut postgres::Client, LogError>) + Send>;

/// Started on first use; shared by every clone of a `PgStore`.
#[derive(Clone, Default)]
pub(super) struct ReadPool {
    jobs: Arc<OnceLock<Result<crossbeam_channel::Sender<Job>, String>>>,
}

impl ReadPool {
    /// Queues `job` on the pool of `store`, starting the pool if needed.
    pub(super) fn run(&self, store: &PgStore, job: Job) -> Result<(), LogError> {
        let started = self.jobs.get_or_init(|| {
            let (tx, rx) = crossbeam_channel::bounded::<Job>(JOBS_QUEUED_MAX);
            for i in 0..READ_THREADS {
                let (store, rx) = (store.clone_without_pool(), rx.clone());
                std::thread::Builder::new()
                    .name(format!("parley-pg-read-{i}"))
                    .spawn(move || serve(&store, &rx))
                    .map_err(|e| e.to_string())?;
            }
            Ok(tx)
        });
        let tx = started.as_ref().map_err(|e| {
            LogError::io(
                "spawn thread",
                "parley-pg-read",
                std::io::Error::other(e.clone()),
            )
        })?;
        tx.send(job)
            .map_err(|_| LogError::ThreadPanicked("a PostgreSQL reading thread"))
    }
}

/// A reading thread: runs each job on its connection, made again after a
/// failure. Ends when every `PgStore` sharing the pool is gone.
fn serve(store: &PgStore, jobs: &crossbeam_channel::Receiver<Job>) {
    let mut client: Option<postgres::Client> = None;
    for job in jobs {
        match client.take().filter(|c| !c.is_closed()) {
            Some(c) => job(Ok(client.insert(c))),
            None => match store.connect("read the ledger") {
                Ok(c) => job(Ok(client.insert(c))),
                Err(e) => job(Err(e)),
            },
        }
    }
}
