//! The writer's side of the PostgreSQL engine: one statement per
//! group-committed batch, fenced by the lease and the head it continues.

use std::sync::Arc;

use super::lease::{self, OnLost, PgOptions, Renewer};
use super::reader::PgReader;
use super::{check_ledger_name, PgStore};
use crate::log::frame::write_frame;
use crate::log::{check_continues, EncodedRecord, Head, Location, LogEngine, LogError, LogReader};
use crate::record::ZERO_HASH;

/// Records one append statement carries at most (the sequencer's batches
/// are smaller; this bounds a caller that hands a larger one).
const APPEND_ROWS_MAX: usize = 4096;
/// The append: one statement (see `PgLog::insert`), prepared once per
/// connection.
const APPEND_SQL: &str = "WITH fence AS (
                    UPDATE parley_lease
                       SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
                     WHERE ledger = $1 AND epoch = $2 AND holder = $3
                       AND expires_at > clock_timestamp()
                       AND NOT EXISTS (SELECT 1 FROM parley_record WHERE ledger = $1 AND seq > $5)
                       AND ($5 = 0 OR EXISTS (SELECT 1 FROM parley_record
                                               WHERE ledger = $1 AND seq = $5 AND hash = $6))
                    RETURNING epoch, pg_notify('parley_append', $1)::text AS woken)
                 INSERT INTO parley_record (ledger, seq, hash, frame)
                 SELECT $1, t.seq, t.hash, t.frame
                   FROM fence, unnest($7::bigint[], $8::bytea[], $9::bytea[]) AS t(seq, hash, frame)";

/// How long a writer whose connection died waits between reconnections
/// (it tries for one lease length).
const RECONNECT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A ledger's log in PostgreSQL, held by this writer under a lease.
pub struct PgLog {
    store: PgStore,
    opts: PgOptions,
    client: postgres::Client,
    epoch: i64,
    head: Option<Head>,
    renewer: Option<Renewer>,
    on_lost: Option<OnLost>,
    frames: Vec<Vec<u8>>,
    /// `APPEND_SQL`, prepared on the current connection.
    append_statement: Option<postgres::Statement>,
}

impl PgLog {
    /// Takes the writer's lease on `opts.ledger` (refused while another
    /// writer's is live) and reads the ledger's head.
    pub fn open(store: &PgStore, opts: PgOptions) -> Result<PgLog, LogError> {
        check_ledger_name(&opts.ledger)?;
        let mut client = store.connect("open the ledger")?;
        store.ensure_schema(&mut client)?;
        let epoch = lease::acquire(store, &mut client, &opts)?;
        // Read after the lease is ours: a previous writer's last statement
        // either committed before our takeover statement got the row's lock,
        // or it fails its own check.
        let head = read_head(store, &mut client, &opts.ledger)?;
        Ok(PgLog {
            store: store.clone(),
            opts,
            client,
            epoch,
            head,
            renewer: None,
            on_lost: None,
            frames: Vec::new(),
            append_statement: None,
        })
    }

    /// Calls `f` (once, from the renewing thread) if a renewal finds the
    /// lease gone: the node can stop writing before a command shows it.
    pub fn on_lost(&mut self, f: OnLost) {
        self.on_lost = Some(f);
    }

    /// The lease epoch this writer holds.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    fn fenced(&mut self, why: String) -> LogError {
        LogError::Fenced {
            ledger: self.opts.ledger.clone(),
            epoch: self.epoch,
            why,
        }
    }

    /// Why an append statement inserted nothing: the lease or the head.
    fn why_refused(&mut self) -> LogError {
        let ledger = self.opts.ledger.clone();
        let lease = lease::describe(&self.store, &mut self.client, &ledger);
        let head = read_head(&self.store, &mut self.client, &ledger);
        let why = match (lease, head) {
            (Ok(Some(l)), _) if l.epoch != self.epoch || l.holder != self.opts.holder => {
                format!("{} took it (epoch {})", l.holder, l.epoch)
            }
            (Ok(Some(l)), _) if l.remaining_ms <= 0 => {
                "it expired by the database's clock (was this process paused?)".into()
            }
            (_, Ok(h)) if h != self.head => format!(
                "the ledger's last record is seq {}, not seq {} as this writer expected",
                h.map_or(0, |h| h.seq),
                self.head.map_or(0, |h| h.seq)
            ),
            (Err(e), _) | (_, Err(e)) => return e,
            _ => "the lease row is gone".into(),
        };
        self.fenced(why)
    }
}

/// The ledger's last record, checked, or `None` for an empty ledger.
pub(super) fn read_head(
    store: &PgStore,
    client: &mut postgres::Client,
    ledger: &str,
) -> Result<Option<Head>, LogError> {
    let row = match client.query_opt(super::reader::HEAD_SQL, &[&ledger]) {
        Ok(row) => row,
        // A database parley never wrote holds no ledger (readers create nothing).
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(store.error("read the ledger's head", e)),
    };
    row.map(|r| super::reader::head_of(r.get(0), r.get(1), r.get(2)))
        .transpose()
}

impl LogEngine for PgLog {
    fn head(&self) -> Option<Head> {
        self.head
    }

    fn append(&mut self, batch: &[EncodedRecord], at: &mut Vec<Location>) -> Result<(), LogError> {
        check_continues(self.head, batch)?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        if batch.len() > APPEND_ROWS_MAX {
            return Err(LogError::UnitTooLarge(batch.len()));
        }
        if self.renewer.as_ref().is_some_and(Renewer::lost) {
            return Err(self.fenced("a renewal found it taken or expired".into()));
        }
        let first_seq = batch[0].seq;
        self.frames.clear();
        let mut seqs = Vec::with_capacity(batch.len());
        let mut hashes = Vec::with_capacity(batch.len());
        for r in batch {
            let mut frame = Vec::with_capacity(r.frame_len());
            write_frame(&mut frame, first_seq, r);
            self.frames.push(frame);
            seqs.push(i64::try_from(r.seq).map_err(|_| {
                LogError::OutOfOrder(format!("seq {} is beyond PostgreSQL's bigint", r.seq))
            })?);
            hashes.push(r.hash.to_vec());
        }
        let (head_seq, head_hash) = match self.head {
            Some(h) => (i64::try_from(h.seq).unwrap_or(i64::MAX), h.hash.to_vec()),
            None => (0, ZERO_HASH.to_vec()),
        };
        let inserted = match self.insert(head_seq, &head_hash, &seqs, &hashes) {
            Ok(n) => n,
            Err(e) if connection_lost(&e) => {
                self.recover(e, batch, head_seq, &head_hash, &seqs, &hashes)?
            }
            Err(e) => return Err(self.store.error("append", e)),
        };
        if inserted == 0 {
            return Err(self.why_refused());
        }
        if inserted != batch.len() as u64 {
            return Err(LogError::OutOfOrder(format!(
                "PostgreSQL inserted {inserted} of {} records",
                batch.len()
            )));
        }
        for r in batch {
            at.push((0, r.seq));
        }
        self.head = Some(Head {
            seq: last.seq,
            hash: last.hash,
            recorded_at_ms: last.recorded_at_ms,
        });
        Ok(())
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        Arc::new(PgReader::new(self.store.clone(), &self.opts.ledger))
    }

    fn begin(&mut self) -> Result<(), LogError> {
        if self.renewer.is_none() {
            self.renewer = Some(Renewer::start(
                self.store.clone(),
                self.opts.clone(),
                self.epoch,
                self.on_lost.take(),
            )?);
        }
        Ok(())
    }
}

/// True when `e` says the connection (or the server behind it) went away,
/// rather than that the statement was refused.
fn connection_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    match e.code() {
        None => true, // closed, or an I/O error: no answer from the server
        Some(code) => {
            code.code().starts_with("08") // connection exception
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::READ_ONLY_SQL_TRANSACTION, // a demoted primary
                ]
                .contains(code)
        }
    }
}

impl PgLog {
    /// One statement, one transaction: the lease is checked and extended
    /// under its row's lock, the head is checked, then the rows go in.
    /// Zero rows inserted means a check failed and nothing was written.
    /// Followers are notified (`notify`) when, and only if, it commits.
    fn insert(
        &mut self,
        head_seq: i64,
        head_hash: &Vec<u8>,
        seqs: &Vec<i64>,
        hashes: &Vec<Vec<u8>>,
    ) -> Result<u64, postgres::Error> {
        let statement = match &self.append_statement {
            Some(st) => st.clone(),
            None => {
                let st = self.client.prepare(APPEND_SQL)?;
                self.append_statement = Some(st.clone());
                st
            }
        };
        self.client.execute(
            &statement,
            &[
                &self.opts.ledger,
                &self.epoch,
                &self.opts.holder,
                &lease::lease_ms_sql(&self.opts),
                &head_seq,
                head_hash,
                seqs,
                hashes,
                &self.frames,
            ],
        )
    }

    /// The connection died during an append (the database restarted or
    /// failed over): whether the statement committed is unknown. Reconnects
    /// (a multi-host address finds the new primary), for at most one lease
    /// length; then the batch's last row answers: there with this batch's
    /// hash, it committed (one statement: all rows or none); absent, the
    /// fenced statement runs again, and its checks hold as on any append.
    fn recover(
        &mut self,
        first: postgres::Error,
        batch: &[EncodedRecord],
        head_seq: i64,
        head_hash: &Vec<u8>,
        seqs: &Vec<i64>,
        hashes: &Vec<Vec<u8>>,
    ) -> Result<u64, LogError> {
        let (Some(last_seq), Some(last)) = (seqs.last(), batch.last()) else {
            return Ok(0);
        };
        tracing::warn!(ledger = %self.opts.ledger, error = %first, "the writer's connection was lost; reconnecting");
        let tries = self.opts.lease_ms / RECONNECT_WAIT.as_millis() as u64;
        let mut error = self.store.error("append", first);
        for _ in 0..tries.max(1) {
            std::thread::sleep(RECONNECT_WAIT);
            let client = match self.store.connect("reconnect the writer") {
                Ok(c) => c,
                Err(e) => {
                    error = e;
                    continue;
                }
            };
            self.client = client;
            self.append_statement = None;
            let stored = self
                .client
                .query_opt(
                    "SELECT hash FROM parley_record WHERE ledger = $1 AND seq = $2",
                    &[&self.opts.ledger, last_seq],
                )
                .map_err(|e| self.store.error("check an append whose answer was lost", e))?;
            return match stored {
                Some(row) if row.get::<_, Vec<u8>>(0) == last.hash.to_vec() => {
                    tracing::info!(ledger = %self.opts.ledger, seq = last.seq, "the append had committed before the connection was lost");
                    Ok(batch.len() as u64)
                }
                Some(_) => Err(self.fenced(format!(
                    "seq {} holds another record after the connection was lost",
                    last.seq
                ))),
                None => self
                    .insert(head_seq, head_hash, seqs, hashes)
                    .map_err(|e| self.store.error("append", e)),
            };
        }
        Err(error)
    }
}

impl Drop for PgLog {
    fn drop(&mut self) {
        self.renewer = None;
        if let Err(e) = lease::release(&self.store, &mut self.client, &self.opts, self.epoch) {
            tracing::warn!(error = %e, "releasing the writer's lease");
        }
    }
}
