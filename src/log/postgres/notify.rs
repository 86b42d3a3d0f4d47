//! Followers woken by commits: every append statement notifies channel
//! `parley_append` with the ledger's name (`pg_notify` in the statement, so
//! a notification is delivered only if the records committed). One listening connection per process wakes the
//! followers of that ledger at once instead of at their next poll.
//!
//! Notifications are a hint, never the truth: a follower still polls (a
//! lost connection or a missed notification delays it by one poll at most),
//! and what it reads is checked as every read is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::PgStore;

/// The channel writers' commits notify.
pub(super) const CHANNEL: &str = "parley_append";
/// How long the listener waits for a notification before it checks that
/// it still has followers to wake.
const LISTEN_TICK: Duration = Duration::from_secs(1);
/// How long it waits before reconnecting after its connection failed.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

/// Who to wake per ledger.
type Registry = BTreeMap<String, Vec<Sender<()>>>;

/// The process's listener, started on first use; shared by every clone of
/// a `PgStore`.
#[derive(Clone, Default)]
pub(super) struct Listener {
    registry: Arc<Mutex<Registry>>,
    started: Arc<std::sync::OnceLock<()>>,
}

impl Listener {
    /// Wakes `wake` (without blocking) whenever a commit to `ledger` is
    /// notified, for as long as its receiver lives.
    pub(super) fn register(&self, store: &PgStore, ledger: &str, wake: Sender<()>) {
        if let Ok(mut r) = self.registry.lock() {
            r.entry(ledger.to_owned()).or_default().push(wake);
        }
        self.started.get_or_init(|| {
            let (store, registry) = (store.clone_without_pool(), Arc::downgrade(&self.registry));
            let spawned = std::thread::Builder::new()
                .name("parley-pg-listen".into())
                .spawn(move || listen(&store, &registry));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no listener for commits: followers poll");
            }
        });
    }
}

/// Listens until no `PgStore` holds the registry any more.
fn listen(store: &PgStore, registry: &Weak<Mutex<Registry>>) {
    use postgres::fallible_iterator::FallibleIterator as _;
    while registry.strong_count() > 0 {
        let mut client = match store.connect("listen for commits") {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "listening for commits");
                std::thread::sleep(RECONNECT_WAIT);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(error = %store.error("listen for commits", e), "listening for commits");
            std::thread::sleep(RECONNECT_WAIT);
            continue;
        }
        // Each tick: wake per notification as it arrives; on a quiet
        // second, check that someone still listens.
        'ticks: loop {
            let Some(registry) = registry.upgrade() else {
                return;
            };
            let mut notes = client.notifications();
            let mut arriving = notes.timeout_iter(LISTEN_TICK);
            loop {
                match arriving.next() {
                    Ok(Some(n)) => wake(&registry, n.payload()),
                    Ok(None) => continue 'ticks,
                    Err(e) => {
                        tracing::warn!(error = %store.error("listen for commits", e), "listening for commits");
                        break 'ticks;
                    }
                }
            }
        }
        std::thread::sleep(RECONNECT_WAIT);
    }
}

/// Wakes the followers of `ledger`; forgets those that are gone.
fn wake(registry: &Mutex<Registry>, ledger: &str) {
    let Ok(mut r) = registry.lock() else { return };
    if let Some(wakes) = r.get_mut(ledger) {
        wakes.retain(|w| {
            !matches!(
                w.try_send(()),
                Err(crossbeam_channel::TrySendError::Disconnected(_))
            )
        });
    }
}
