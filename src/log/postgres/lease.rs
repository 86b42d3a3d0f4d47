//! The writer's lease on a ledger: one row per ledger, with an epoch that
//! grows at every takeover, timed by the database's clock (`clock_timestamp()`),
//! never a node's.
//!
//! A node takes the lease only when it is unheld or expired (a new epoch);
//! the writer renews it while it lives, and every append re-checks it under
//! the row's lock in the same statement that inserts the records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::PgStore;
use crate::log::LogError;

/// The lease's default length: a writer that stops renewing is replaced
/// this long after its last renewal (at most).
pub const LEASE_MS_DEFAULT: u64 = 3_000;
/// Bounds on the lease's length.
pub const LEASE_MS_MIN: u64 = 300;
pub const LEASE_MS_MAX: u64 = 60_000;

/// How a node writes a ledger on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The ledger's name (one database holds many).
    pub ledger: String,
    /// Who this node is, as the lease row shows it (unique per process).
    pub holder: String,
    /// Where this node serves, for other nodes to forward writes to ('' if nowhere).
    pub address: String,
    /// The lease's length, in milliseconds (`LEASE_MS_MIN..=LEASE_MS_MAX`).
    pub lease_ms: u64,
}

impl PgOptions {
    /// Options for `ledger`, as this process (host and pid name it).
    pub fn new(ledger: &str) -> PgOptions {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let nanos = crate::sequencer::wall_ns();
        PgOptions {
            ledger: ledger.to_owned(),
            holder: format!("{host}/{}/{nanos:x}", std::process::id()),
            address: String::new(),
            lease_ms: LEASE_MS_DEFAULT,
        }
    }
}

/// A lease row as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    pub epoch: i64,
    pub holder: String,
    pub address: String,
    /// Milliseconds until it expires by the database's clock (≤ 0: expired).
    pub remaining_ms: i64,
}

/// The lease's length as SQL's bigint (bounded above, so it fits).
pub(super) fn lease_ms_sql(opts: &PgOptions) -> i64 {
    debug_assert!((LEASE_MS_MIN..=LEASE_MS_MAX).contains(&opts.lease_ms));
    i64::try_from(opts.lease_ms.clamp(LEASE_MS_MIN, LEASE_MS_MAX)).unwrap_or(i64::MAX)
}

/// Takes the lease if it is free or expired: returns the new epoch, or
/// `LeaseHeld` naming the live holder.
pub(super) fn acquire(
    store: &PgStore,
    client: &mut postgres::Client,
    opts: &PgOptions,
) -> Result<i64, LogError> {
    if !(LEASE_MS_MIN..=LEASE_MS_MAX).contains(&opts.lease_ms) {
        return Err(LogError::BadLease(opts.lease_ms));
    }
    let row = client
        .query_opt(
            "INSERT INTO parley_lease (ledger, epoch, holder, address, expires_at)
             VALUES ($1, 1, $2, $3, clock_timestamp() + $4::bigint * interval '1 millisecond')
             ON CONFLICT (ledger) DO UPDATE
                SET epoch = parley_lease.epoch + 1, holder = EXCLUDED.holder,
                    address = EXCLUDED.address, expires_at = EXCLUDED.expires_at
                WHERE parley_lease.expires_at <= clock_timestamp()
             RETURNING epoch",
            &[
                &opts.ledger,
                &opts.holder,
                &opts.address,
                &lease_ms_sql(opts),
            ],
        )
        .map_err(|e| store.error("take the writer's lease", e))?;
    match row {
        Some(row) => Ok(row.get(0)),
        None => {
            let held = describe(store, client, &opts.ledger)?;
            Err(match held {
                Some(l) => LogError::LeaseHeld {
                    ledger: opts.ledger.clone(),
                    holder: l.holder,
                    epoch: l.epoch,
                    remaining_ms: l.remaining_ms,
                },
                // Released between the two statements: the caller may try again.
                None => LogError::Fenced {
                    ledger: opts.ledger.clone(),
                    epoch: 0,
                    why: "the lease changed hands while it was taken; try again".into(),
                },
            })
        }
    }
}

/// The lease row of `ledger`, if any (none in a database without parley's tables).
pub(super) fn describe(
    store: &PgStore,
    client: &mut postgres::Client,
    ledger: &str,
) -> Result<Option<LeaseInfo>, LogError> {
    let row = match client.query_opt(
        "SELECT epoch, holder, address,
                    (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint
             FROM parley_lease WHERE ledger = $1",
        &[&ledger],
    ) {
        Ok(row) => row,
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(store.error("read the writer's lease", e)),
    };
    Ok(row.map(|r| LeaseInfo {
        epoch: r.get(0),
        holder: r.get(1),
        address: r.get(2),
        remaining_ms: r.get(3),
    }))
}

/// The ledger's last seq (0: none) and its lease row, in one statement.
pub(super) fn follow_point(
    store: &PgStore,
    client: &mut postgres::Client,
    ledger: &str,
) -> Result<(u64, Option<LeaseInfo>), LogError> {
    let row = match client.query_one(
        "SELECT (SELECT max(seq) FROM parley_record WHERE ledger = $1),
                l.epoch, l.holder, l.address,
                (extract(epoch FROM l.expires_at - clock_timestamp()) * 1000)::bigint
         FROM (SELECT 1) AS one LEFT JOIN parley_lease AS l ON l.ledger = $1",
        &[&ledger],
    ) {
        Ok(row) => row,
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Ok((0, None))
        }
        Err(e) => return Err(store.error("read the ledger's head and lease", e)),
    };
    let head = super::reader::seq_of(row.get::<_, Option<i64>>(0).unwrap_or(0))?;
    let lease = row.get::<_, Option<i64>>(1).map(|epoch| LeaseInfo {
        epoch,
        holder: row.get(2),
        address: row.get(3),
        remaining_ms: row.get(4),
    });
    Ok((head, lease))
}

/// Extends the lease if this writer still holds it, unexpired. `false`: lost.
pub(super) fn renew(
    store: &PgStore,
    client: &mut postgres::Client,
    opts: &PgOptions,
    epoch: i64,
) -> Result<bool, LogError> {
    let n = client
        .execute(
            "UPDATE parley_lease
                SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
              WHERE ledger = $1 AND epoch = $2 AND holder = $3 AND expires_at > clock_timestamp()",
            &[&opts.ledger, &epoch, &opts.holder, &lease_ms_sql(opts)],
        )
        .map_err(|e| store.error("renew the writer's lease", e))?;
    Ok(n == 1)
}

/// Ends the lease now (a clean close), if this writer still holds it: the
/// next node need not wait for it to expire.
pub(super) fn release(
    store: &PgStore,
    client: &mut postgres::Client,
    opts: &PgOptions,
    epoch: i64,
) -> Result<(), LogError> {
    client
        .execute(
            "UPDATE parley_lease SET expires_at = clock_timestamp()
              WHERE ledger = $1 AND epoch = $2 AND holder = $3",
            &[&opts.ledger, &epoch, &opts.holder],
        )
        .map_err(|e| store.error("release the writer's lease", e))?;
    Ok(())
}

/// Renews the lease every third of its length on its own connection, so an
/// idle writer keeps it. It only ever extends a lease this writer holds; it
/// cannot make an append succeed that the append's own check refuses.
pub(super) struct Renewer {
    stop: crossbeam_channel::Sender<()>,
    lost: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Called once when a renewal finds the lease gone.
pub type OnLost = Box<dyn Fn(String) + Send + Sync>;

impl Renewer {
    pub(super) fn start(
        store: PgStore,
        opts: PgOptions,
        epoch: i64,
        on_lost: Option<OnLost>,
    ) -> Result<Renewer, LogError> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        let every = Duration::from_millis(opts.lease_ms / 3);
        let thread = std::thread::Builder::new()
            .name("parley-lease".into())
            .spawn(move || {
                let mut client = None;
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    if client.is_none() {
                        client = store.connect("renew the writer's lease").ok();
                    }
                    let Some(c) = client.as_mut() else { continue };
                    match renew(&store, c, &opts, epoch) {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(ledger = %opts.ledger, epoch, "the writer's lease was lost");
                            flag.store(true, Ordering::SeqCst);
                            if let Some(f) = &on_lost {
                                f(format!("its lease on ledger {} (epoch {epoch}) was taken or ran out", opts.ledger));
                            }
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "renewing the writer's lease");
                            client = None;
                        }
                    }
                }
            })
            .map_err(|source| LogError::io("spawn thread", "parley-lease", source))?;
        Ok(Renewer {
            stop,
            lost,
            thread: Some(thread),
        })
    }

    /// True once a renewal found the lease gone.
    pub(super) fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
