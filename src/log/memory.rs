//! The in-memory engine: the same contract without a disk, for tests and what-if.

use std::sync::{Arc, RwLock};

use super::{
    check_continues, EncodedRecord, Head, Location, LogEngine, LogError, LogReader, Visit,
};
use crate::record::{chain_hash, Record, StoredRecord};

/// Records kept in memory, shared with readers.
#[derive(Default)]
pub struct MemoryLog {
    records: Arc<RwLock<Vec<EncodedRecord>>>,
    head: Option<Head>,
}

impl MemoryLog {
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }
}

fn poisoned() -> LogError {
    LogError::Poisoned("in-memory log")
}

impl LogEngine for MemoryLog {
    fn head(&self) -> Option<Head> {
        self.head
    }

    fn append(&mut self, batch: &[EncodedRecord], at: &mut Vec<Location>) -> Result<(), LogError> {
        check_continues(self.head, batch)?;
        let mut records = self.records.write().map_err(|_| poisoned())?;
        for r in batch {
            at.push((0, records.len() as u64));
            records.push(r.clone());
        }
        if let Some(last) = batch.last() {
            self.head = Some(Head {
                seq: last.seq,
                hash: last.hash,
                recorded_at_ms: last.recorded_at_ms,
            });
        }
        Ok(())
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        Arc::new(MemoryReader {
            records: Arc::clone(&self.records),
        })
    }
}

struct MemoryReader {
    records: Arc<RwLock<Vec<EncodedRecord>>>,
}

fn decode(r: &EncodedRecord) -> Result<StoredRecord, LogError> {
    if chain_hash(&r.prev_hash, &r.payload) != r.hash {
        return Err(LogError::Corrupt {
            seq: r.seq,
            reason: super::fault::Fault::HashMismatch.to_string(),
        });
    }
    let record = Record::decode(&r.payload).map_err(|e| LogError::Corrupt {
        seq: r.seq,
        reason: e.to_string(),
    })?;
    Ok(StoredRecord {
        prev_hash: r.prev_hash,
        hash: r.hash,
        record,
    })
}

impl LogReader for MemoryReader {
    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        let records = self.records.read().map_err(|_| poisoned())?;
        let start = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
        for r in records.iter().skip(start) {
            if r.seq > to {
                break;
            }
            visit(decode(r)?)?;
        }
        Ok(())
    }

    fn read(&self, seqs: &[u64], head: u64) -> Result<Vec<StoredRecord>, LogError> {
        let records = self.records.read().map_err(|_| poisoned())?;
        seqs.iter()
            .map(|s| {
                let r = records
                    .get(usize::try_from(s.saturating_sub(1)).unwrap_or(usize::MAX))
                    .filter(|r| r.seq == *s && *s <= head)
                    .ok_or(LogError::NotInLog(*s))?;
                decode(r)
            })
            .collect()
    }

    fn entity_seqs(&self, entity: &str, head: u64) -> Result<Vec<u64>, LogError> {
        let mut out = Vec::new();
        self.scan(1, head, &mut super::entity_collector(entity, &mut out))?;
        Ok(out)
    }
}
