//! The PostgreSQL engine: the log of many ledgers in one database, each
//! written by one fenced writer at a time.
//!
//! Tables (created on first use, under an advisory lock so that nodes
//! starting together do not race):
//!
//! ```text
//! parley_record (ledger text, seq bigint, hash bytea, frame bytea)  PRIMARY KEY (ledger, seq)
//! parley_lease  (ledger text PRIMARY KEY, epoch bigint, holder text, address text, expires_at timestamptz)
//! ```
//!
//! Each append notifies channel `parley_append` with the ledger's name, in
//! its own transaction (delivered only if it commits): followers wake on it
//! (`notify`), and poll as well.
//!
//! `frame` holds exactly the bytes the segment engine writes for the record
//! (`log::frame`), so an export from either engine is the same file.
//!
//! Architecture invariant: a record is acknowledged only after the one
//! statement that inserted it committed with `synchronous_commit = on`, and
//! that statement inserts nothing unless, under the lease row's lock and by
//! the database's clock, this writer's lease epoch is the current one and
//! unexpired and the ledger's last record is the head this writer continues.
//! A writer whose lease was taken or ran out (a paused process, a partition)
//! cannot append one more record, whatever its own clock says.

mod engine;
mod lease;
mod notify;
mod pool;
mod reader;

use std::str::FromStr;

pub use engine::PgLog;
pub use lease::{LeaseInfo, OnLost, PgOptions, LEASE_MS_DEFAULT, LEASE_MS_MAX, LEASE_MS_MIN};
pub use pool::READ_THREADS;
pub use reader::PgReader;

use super::LogError;

/// Where the ledgers live: a libpq connection string (`postgres://…` or
/// `host=… dbname=…`), with its password kept out of every message.
#[derive(Clone)]
pub struct PgStore {
    config: postgres::Config,
    shown: String,
    /// The reading threads every clone shares.
    reads: pool::ReadPool,
    /// The commit listener every clone shares.
    listener: notify::Listener,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgStore {
    /// Parses a connection string. The error never repeats the string (it
    /// may hold a password).
    pub fn parse(url: &str) -> Result<PgStore, LogError> {
        let config = postgres::Config::from_str(url).map_err(|_| LogError::StoreAddress)?;
        let shown = shown(&config);
        Ok(PgStore {
            config,
            shown,
            reads: pool::ReadPool::default(),
            listener: notify::Listener::default(),
        })
    }

    /// The same store without the shared reading threads (what those
    /// threads and their jobs hold, so that the pool ends with its users).
    pub(crate) fn clone_without_pool(&self) -> PgStore {
        PgStore {
            config: self.config.clone(),
            shown: self.shown.clone(),
            reads: pool::ReadPool::default(),
            listener: notify::Listener::default(),
        }
    }

    /// Wakes `wake` (a bounded channel, sent to without blocking) soon
    /// after each commit to `ledger`: a hint that spares a follower its
    /// poll's wait, never a substitute for reading.
    pub fn on_commit(&self, ledger: &str, wake: crossbeam_channel::Sender<()>) {
        self.listener.register(self, ledger, wake);
    }

    /// Runs `job` on one of the store's reading threads.
    pub(crate) fn read_job(&self, job: pool::Job) -> Result<(), LogError> {
        self.reads.run(self, job)
    }

    /// Opens a connection with parley's session settings: every commit
    /// waits for the WAL flush (and for a synchronous standby, where the
    /// cluster has one).
    pub(crate) fn connect(&self, op: &'static str) -> Result<postgres::Client, LogError> {
        let mut config = self.config.clone();
        if config.get_application_name().is_none() {
            config.application_name("parley");
        }
        let mut client = config
            .connect(postgres::NoTls)
            .map_err(|source| self.error(op, source))?;
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(|source| self.error(op, source))?;
        Ok(client)
    }

    pub(crate) fn error(&self, op: &'static str, source: postgres::Error) -> LogError {
        LogError::Postgres {
            op,
            store: self.shown.clone(),
            source,
        }
    }

    /// Creates parley's tables if they are missing.
    pub(crate) fn ensure_schema(&self, client: &mut postgres::Client) -> Result<(), LogError> {
        let err = |e| self.error("create parley's tables", e);
        let mut tx = client.transaction().map_err(err)?;
        // One key for every parley node: concurrent first starts serialize here.
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7420);
             CREATE TABLE IF NOT EXISTS parley_record (
                 ledger text NOT NULL,
                 seq bigint NOT NULL CHECK (seq >= 1),
                 hash bytea NOT NULL CHECK (length(hash) = 32),
                 frame bytea NOT NULL,
                 PRIMARY KEY (ledger, seq));
             CREATE TABLE IF NOT EXISTS parley_lease (
                 ledger text PRIMARY KEY,
                 epoch bigint NOT NULL CHECK (epoch >= 1),
                 holder text NOT NULL,
                 address text NOT NULL DEFAULT '',
                 expires_at timestamptz NOT NULL);",
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// What a follower polls, in one query on the shared reading threads:
    /// the ledger's last seq (0 when empty) and its lease as it stands.
    pub fn follow_point(&self, ledger: &str) -> Result<(u64, Option<LeaseInfo>), LogError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (store, ledger) = (self.clone_without_pool(), ledger.to_owned());
        self.read_job(Box::new(move |client| {
            let _ = tx.send(client.and_then(|c| lease::follow_point(&store, c, &ledger)));
        }))?;
        rx.recv()
            .map_err(|_| LogError::ThreadPanicked("a PostgreSQL reading thread"))?
    }

    /// The ledgers the database holds, by name.
    pub fn ledgers(&self) -> Result<Vec<String>, LogError> {
        let mut client = self.connect("list ledgers")?;
        self.ensure_schema(&mut client)?;
        let rows = client
            .query(
                "SELECT DISTINCT ledger FROM parley_record WHERE seq = 1 ORDER BY ledger",
                &[],
            )
            .map_err(|e| self.error("list ledgers", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// `postgres://user@host:port,host2:port/dbname`, without the password.
fn shown(config: &postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(p) => format!("{host}:{p}"),
                None => host,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

/// Checks a ledger's name as the database keys it.
pub fn check_ledger_name(name: &str) -> Result<(), LogError> {
    crate::bounds::check_id("ledger", name).map_err(|e| LogError::BadLedgerName(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        for url in [
            "postgres://alice:s3cret-pw@db1:5433,db2/shop?target_session_attrs=read-write",
            "host=db1 port=5433 user=alice password=s3cret-pw dbname=shop",
        ] {
            let store = PgStore::parse(url).unwrap();
            let text = format!("{store} {store:?}");
            assert!(!text.contains("s3cret-pw"), "{text}");
            assert!(text.contains("alice@db1:5433"), "{text}");
            assert!(text.ends_with("/shop"), "{text}");
        }
        let err = PgStore::parse("postgres://alice:s3cret-pw@db1:notaport/shop").unwrap_err();
        assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    }
}
