//! Reading a ledger from PostgreSQL, every record checked: its frame (the
//! same bytes and checks as a segment's), the row's hash column against the
//! frame's, the link to the record before it and the gapless seq.

use super::PgStore;
use crate::log::fault::Fault;
use crate::log::frame::{parse_frame, Parsed};
use crate::log::{Head, LogError, LogReader, Visit};
use crate::record::{Hash, Record, StoredRecord};

/// Rows a query hands over ahead of the caller that checks and visits them.
const ROWS_IN_FLIGHT: usize = 256;

/// A stored row: (seq, hash, frame).
type RawRow = (i64, Vec<u8>, Vec<u8>);

/// What a reading thread is asked for.
enum Ask {
    /// Rows `from..=to`, ascending.
    Range(i64, i64),
    /// The rows of these seqs, ascending.
    Seqs(Vec<i64>),
    /// The last row.
    Head,
}

/// Reads one ledger; safe to share between threads and to call from async
/// code: queries run on the store's reading threads (`pool`), and rows
/// stream back through a bounded queue.
pub struct PgReader {
    store: PgStore,
    ledger: String,
}

/// A frame that passed its checks.
pub(super) struct Checked {
    pub prev_hash: Hash,
    pub hash: Hash,
    pub payload: Vec<u8>,
}

pub(super) fn seq_of(v: i64) -> Result<u64, LogError> {
    u64::try_from(v).map_err(|_| LogError::Corrupt {
        seq: 0,
        reason: format!("a row holds seq {v}"),
    })
}

fn corrupt(seq: u64, reason: impl ToString) -> LogError {
    LogError::Corrupt {
        seq,
        reason: reason.to_string(),
    }
}

/// Checks the stored frame of `seq`: self-valid, exactly one frame, the
/// row's hash is the frame's, its batch starts at or before it, and it links
/// to `prev` when that is known.
pub(super) fn check_frame(
    seq: u64,
    hash_col: &[u8],
    frame: &[u8],
    prev: Option<Hash>,
) -> Result<Checked, LogError> {
    let f = match parse_frame(frame) {
        Parsed::Frame(f) => f,
        Parsed::End => return Err(corrupt(seq, "the stored frame is empty")),
        Parsed::Bad(fault) => return Err(corrupt(seq, fault)),
    };
    if f.len != frame.len() {
        return Err(corrupt(seq, "the stored frame has bytes after its end"));
    }
    if !f.self_valid() {
        return Err(corrupt(seq, Fault::HashMismatch));
    }
    if f.hash.as_slice() != hash_col {
        return Err(corrupt(
            seq,
            "the row's hash column differs from its frame's",
        ));
    }
    if f.batch_first_seq > seq {
        return Err(corrupt(
            seq,
            Fault::BatchAfterSelf {
                batch_first_seq: f.batch_first_seq,
            },
        ));
    }
    if prev.is_some_and(|p| p != f.prev_hash) {
        return Err(corrupt(seq, Fault::Unlinked));
    }
    Ok(Checked {
        prev_hash: f.prev_hash,
        hash: f.hash,
        payload: f.payload.to_vec(),
    })
}

fn stored(seq: u64, c: Checked) -> Result<StoredRecord, LogError> {
    let record = Record::decode(&c.payload).map_err(|e| corrupt(seq, e))?;
    if record.envelope.seq != seq {
        return Err(corrupt(
            seq,
            format!("the row holds the record of seq {}", record.envelope.seq),
        ));
    }
    Ok(StoredRecord {
        prev_hash: c.prev_hash,
        hash: c.hash,
        record,
    })
}

impl PgReader {
    pub fn new(store: PgStore, ledger: &str) -> PgReader {
        PgReader {
            store,
            ledger: ledger.to_owned(),
        }
    }

    /// Runs `ask` on a reading thread and streams its rows back.
    fn ask(
        &self,
        ask: Ask,
    ) -> Result<crossbeam_channel::Receiver<Result<RawRow, LogError>>, LogError> {
        let (tx, rx) = crossbeam_channel::bounded(ROWS_IN_FLIGHT);
        let (store, ledger) = (self.store.clone_without_pool(), self.ledger.clone());
        self.store.read_job(Box::new(move |client| {
            let client = match client {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            if let Err(e) = run_ask(client, &ledger, &ask, &tx) {
                if e.code() != Some(&postgres::error::SqlState::UNDEFINED_TABLE) {
                    let _ = tx.send(Err(store.error("read the ledger", e)));
                } // else no parley tables: no rows
            }
        }))?;
        Ok(rx)
    }

    /// The ledger's last record, checked (`None`: empty, or a database
    /// parley never wrote).
    pub fn head(&self) -> Result<Option<crate::log::Head>, LogError> {
        match self.ask(Ask::Head)?.recv() {
            Ok(row) => {
                let (seq, hash, frame) = row?;
                head_of(seq, &hash, &frame).map(Some)
            }
            Err(_) => Ok(None),
        }
    }
}

fn run_ask(
    client: &mut postgres::Client,
    ledger: &str,
    ask: &Ask,
    out: &crossbeam_channel::Sender<Result<RawRow, LogError>>,
) -> Result<(), postgres::Error> {
    use postgres::fallible_iterator::FallibleIterator as _;
    let params: Vec<&(dyn postgres::types::ToSql + Sync)>;
    let (sql, range, seqs);
    match ask {
        Ask::Range(from, to) => {
            range = [*from, *to];
            sql = "SELECT seq, hash, frame FROM parley_record
                    WHERE ledger = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq";
            params = vec![&ledger, &range[0], &range[1]];
        }
        Ask::Seqs(s) => {
            seqs = s;
            sql = "SELECT seq, hash, frame FROM parley_record
                    WHERE ledger = $1 AND seq = ANY($2) ORDER BY seq";
            params = vec![&ledger, seqs];
        }
        Ask::Head => {
            sql = HEAD_SQL;
            params = vec![&ledger];
        }
    }
    let mut rows = client.query_raw(sql, params)?;
    while let Some(row) = rows.next()? {
        let raw: RawRow = (row.get(0), row.get(1), row.get(2));
        if out.send(Ok(raw)).is_err() {
            break; // the caller stopped reading
        }
    }
    Ok(())
}

fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl LogReader for PgReader {
    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        let from = from.max(1);
        if from > to {
            return Ok(());
        }
        // The record before `from` is read and checked too, for the link.
        let (mut next, mut prev) = match from - 1 {
            0 => (1, Some(crate::record::ZERO_HASH)),
            before => (before, None),
        };
        for row in self.ask(Ask::Range(sql_seq(next), sql_seq(to)))? {
            let (seq, hash, frame) = row?;
            let seq = seq_of(seq)?;
            if seq != next {
                return Err(corrupt(
                    next,
                    "the record is missing from the ledger's rows",
                ));
            }
            let checked = check_frame(seq, &hash, &frame, prev)?;
            prev = Some(checked.hash);
            next = seq + 1;
            if seq >= from {
                visit(stored(seq, checked)?)?;
            }
        }
        if next <= to {
            return Err(LogError::NotInLog(next));
        }
        Ok(())
    }

    fn read(&self, seqs: &[u64], head: u64) -> Result<Vec<StoredRecord>, LogError> {
        if let Some(s) = seqs.iter().find(|s| **s > head || **s == 0) {
            return Err(LogError::NotInLog(*s));
        }
        let wanted: Vec<i64> = seqs.iter().map(|s| sql_seq(*s)).collect();
        let mut rows = self.ask(Ask::Seqs(wanted))?.into_iter().peekable();
        let mut out = Vec::with_capacity(seqs.len());
        for s in seqs {
            // Rows come ascending; `seqs` is ascending and may repeat a seq.
            while rows
                .peek()
                .is_some_and(|r| r.as_ref().is_ok_and(|r| r.0 < sql_seq(*s)))
            {
                rows.next();
            }
            let row = match rows.peek() {
                Some(Err(_)) => {
                    return Err(rows
                        .next()
                        .and_then(Result::err)
                        .unwrap_or(LogError::NotInLog(*s)))
                }
                Some(Ok(r)) if r.0 == sql_seq(*s) => r,
                _ => return Err(LogError::NotInLog(*s)),
            };
            let checked = check_frame(*s, &row.1, &row.2, None)?;
            out.push(stored(*s, checked)?);
        }
        Ok(out)
    }

    fn entity_seqs(&self, entity: &str, head: u64) -> Result<Vec<u64>, LogError> {
        let mut out = Vec::new();
        self.scan(1, head, &mut crate::log::entity_collector(entity, &mut out))?;
        Ok(out)
    }
}

/// The ledger's last row.
pub(super) const HEAD_SQL: &str =
    "SELECT seq, hash, frame FROM parley_record WHERE ledger = $1 ORDER BY seq DESC LIMIT 1";

/// The head a stored last row stands for, once its frame is checked.
pub(super) fn head_of(seq: i64, hash: &[u8], frame: &[u8]) -> Result<Head, LogError> {
    let seq = seq_of(seq)?;
    let checked = check_frame(seq, hash, frame, None)?;
    let record = Record::decode(&checked.payload).map_err(|e| LogError::Corrupt {
        seq,
        reason: e.to_string(),
    })?;
    Ok(Head {
        seq,
        hash: checked.hash,
        recorded_at_ms: record.envelope.recorded_at_ms,
    })
}
