//! The writer's context snapshots, written off the write path. The writer
//! encodes its context (it is the only one that holds it) and hands the bytes
//! to a snapshot thread, which waits until the snapshot's seq is durable and
//! then stores it in the derived store. Before, the writer waited for the
//! syncer and wrote the file itself, and every command behind it waited too.
//!
//! At most one snapshot is in flight: a writer due for the next one while
//! the last is still being written waits for it (at the default of one
//! snapshot every 131,072 records, the file is long written by then). So
//! snapshots are taken at the same seqs as before, and at most one encoded
//! context is held besides the writer's own. A snapshot is derived state:
//! one that fails costs a longer fold at the next open, nothing else.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::derived::Derived;
use crate::record::Hash;
use crate::sequencer::Progress;

/// One encoded context: the seq and hash of the record it is folded to.
struct Snapshot {
    seq: u64,
    hash: Hash,
    bytes: Vec<u8>,
}

/// The snapshot thread's ends: snapshots in, one `()` out per snapshot done.
struct Thread {
    to: Sender<Snapshot>,
    done: Receiver<()>,
    handle: JoinHandle<()>,
}

/// The snapshot thread, started at the first snapshot the writer takes.
pub(crate) struct Snapshots {
    derived: Arc<Derived>,
    durable: Arc<Progress>,
    thread: Option<Thread>,
    /// A snapshot was handed over and its `done` not yet received.
    in_flight: bool,
}

impl Snapshots {
    /// Snapshots stored into `derived` once `durable` reaches their seq.
    pub(crate) fn new(derived: Arc<Derived>, durable: Arc<Progress>) -> Snapshots {
        Snapshots {
            derived,
            durable,
            thread: None,
            in_flight: false,
        }
    }

    /// Hands over the context `bytes` folded to (`seq`, `hash`), after the
    /// one in flight is done: stored once it is durable, dropped if
    /// the log fails first. `Err(bytes)` when no thread could take it (none
    /// could be started, or it stopped): the caller stores it itself.
    pub(crate) fn hand_over(
        &mut self,
        (seq, hash): (u64, Hash),
        bytes: Vec<u8>,
    ) -> Result<(), Vec<u8>> {
        assert!(seq > 0, "a snapshot of an empty log is never taken");
        if self.thread.is_none() {
            match start(Arc::clone(&self.derived), Arc::clone(&self.durable)) {
                Ok(t) => self.thread = Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "no snapshot thread: the writer stores snapshots itself");
                    return Err(bytes);
                }
            }
        }
        let Some(t) = &self.thread else {
            return Err(bytes);
        };
        if self.in_flight {
            // At most one in flight; a stopped thread answers Err at once.
            let _ = t.done.recv();
            self.in_flight = false;
        }
        debug_assert!(
            t.to.is_empty(),
            "the thread took every snapshot handed over"
        );
        // The channel holds one and the thread took the last: it has room.
        match t.to.try_send(Snapshot { seq, hash, bytes }) {
            Ok(()) => {
                self.in_flight = true;
                Ok(())
            }
            Err(e) => Err(e.into_inner().bytes),
        }
    }

    /// Waits until the snapshot in flight (if any) is stored, and stops the
    /// thread: a close stores its last snapshot after this.
    pub(crate) fn finish(&mut self) {
        if let Some(t) = self.thread.take() {
            drop(t.to);
            if t.handle.join().is_err() {
                tracing::warn!("the snapshot thread panicked; the next open folds more of the log");
            }
        }
        self.in_flight = false;
    }
}

fn start(derived: Arc<Derived>, durable: Arc<Progress>) -> std::io::Result<Thread> {
    let (to, rx) = bounded::<Snapshot>(1);
    // One in flight at a time: this send never waits.
    let (done_tx, done) = bounded::<()>(1);
    let handle = std::thread::Builder::new()
        .name("parley-snapshots".into())
        .spawn(move || {
            for s in rx {
                store(&derived, &durable, &s);
                let _ = done_tx.send(());
            }
        })?;
    Ok(Thread { to, done, handle })
}

/// Stores `s` once its seq is durable. Only a durable context is a
/// snapshot: a log that failed before `s.seq` was durable never gets it.
fn store(derived: &Derived, durable: &Progress, s: &Snapshot) {
    if durable.wait_for(s.seq).is_err() {
        return;
    }
    debug_assert!(durable.get() >= s.seq, "the snapshot's records are durable");
    if let Err(e) = derived.put_snapshot(s.seq, s.hash, &s.bytes) {
        // Derived state: a missed snapshot costs a longer fold at open.
        tracing::warn!(error = %e, seq = s.seq, "context snapshot not written");
    }
}
