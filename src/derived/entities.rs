//! The entity index of a derived store, for engines without index files of
//! their own (a ledger in PostgreSQL): one key per (entity, seq) a record
//! names (`Record::index_entities`), looked up by prefix. Like every derived
//! entry it is a pure function of the log, rebuilt from it when missing.

use super::{key, Derived, DerivedError};
use crate::record::StoredRecord;

/// The tag of entity keys: `e \0 entity \0 seq(8, big-endian)`.
const TAG: u8 = b'e';
/// Set in a store that keeps the entity index (one built without it is
/// rebuilt before it is used with it).
pub(super) const META_ENTITIES: &[u8] = b"m\0entities";

/// The entity entries `stored` adds.
pub(super) fn entries(stored: &StoredRecord) -> Vec<(Vec<u8>, Vec<u8>)> {
    let seq = stored.record.envelope.seq.to_be_bytes();
    stored
        .record
        .index_entities()
        .iter()
        .map(|e| (key(TAG, &[e.to_string().as_bytes(), &seq]), Vec::new()))
        .collect()
}

/// The key prefix of `entity`'s entries (its name is followed by the
/// separator, so `sku:A` never matches `sku:AB`).
fn prefix(entity: &str) -> Vec<u8> {
    let mut p = key(TAG, &[entity.as_bytes()]);
    p.push(0);
    p
}

/// The seq a key of `prefix` ends with.
fn seq_of(k: &[u8], prefix_len: usize) -> Option<u64> {
    let tail: [u8; 8] = k.get(prefix_len..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

impl Derived {
    /// True when this store keeps the entity index.
    pub fn indexes_entities(&self) -> bool {
        self.entities
    }

    /// The seqs of the records naming `entity`, ascending (applied records
    /// only: the caller waits until the store holds the head it reads at).
    pub fn entity_seqs(&self, entity: &str) -> Result<Vec<u64>, DerivedError> {
        debug_assert!(self.entities, "asked for an entity index it does not keep");
        let p = prefix(entity);
        let bad = || self.err("entity index entry is malformed");
        let mut seqs = Vec::new();
        for item in self.tree.scan_prefix(&p) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            seqs.push(seq_of(&k, p.len()).ok_or_else(bad)?);
        }
        {
            let layer = self.layer()?;
            for k in layer.kv.range(p.clone()..).map(|(k, _)| k) {
                if !k.starts_with(&p) {
                    break;
                }
                seqs.push(seq_of(k, p.len()).ok_or_else(bad)?);
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }
}

#[cfg(test)]
mod tests {
    use crate::derived::Derived;
    use crate::entity::EntityRef;
    use crate::log::memory::MemoryLog;
    use crate::log::{encode_record, LogEngine};
    use crate::record::{Body, Envelope, Record, FORMAT_VERSION, ZERO_HASH};
    use crate::value::Value;

    /// A log of facts on skus A, B, A, AB (seqs 1..=4).
    fn log() -> MemoryLog {
        let mut log = MemoryLog::new();
        let mut prev = ZERO_HASH;
        for (i, sku) in ["A", "B", "A", "AB"].iter().enumerate() {
            let seq = i as u64 + 1;
            let record = Record {
                envelope: Envelope {
                    format: FORMAT_VERSION,
                    seq,
                    recorded_at_ms: 1_000 + seq,
                    producer: "pricing".into(),
                    idempotency_key: None,
                    causation: None,
                    correlation: None,
                    credential: None,
                },
                body: Body::Fact {
                    entity: EntityRef::parse(&format!("sku:{sku}")).unwrap(),
                    attribute: "n".into(),
                    value: Value::Int(1),
                },
            };
            let encoded = encode_record(&record, &prev).unwrap();
            prev = encoded.hash;
            log.append(&[encoded], &mut Vec::new()).unwrap();
        }
        log
    }

    #[test]
    fn a_store_built_without_the_entity_index_is_rebuilt_with_it() {
        let log = log();
        let reader = log.reader();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("derived");
        {
            let plain = Derived::open(&path).unwrap().0;
            let report = plain
                .catch_up(reader.as_ref(), log.head(), ZERO_HASH)
                .unwrap();
            assert_eq!(report.rebuilt_because, None);
            plain.flush().unwrap();
        }
        let indexed = Derived::open(&path).unwrap().0.with_entity_index();
        let report = indexed
            .catch_up(reader.as_ref(), log.head(), ZERO_HASH)
            .unwrap();
        assert_eq!(
            report.rebuilt_because.as_deref(),
            Some("it keeps no entity index")
        );
        assert_eq!(indexed.entity_seqs("sku:A").unwrap(), vec![1, 3]);
        assert_eq!(indexed.entity_seqs("sku:AB").unwrap(), vec![4]);
        assert_eq!(indexed.entity_seqs("sku:C").unwrap(), Vec::<u64>::new());
        assert_eq!(indexed.differences(reader.as_ref(), 4).unwrap(), None);
        indexed.flush().unwrap();
        drop(indexed);
        // Reopened with the index: kept as it is.
        let again = Derived::open(&path).unwrap().0.with_entity_index();
        let report = again
            .catch_up(reader.as_ref(), log.head(), ZERO_HASH)
            .unwrap();
        assert_eq!(report.rebuilt_because, None);
        assert_eq!(again.entity_seqs("sku:B").unwrap(), vec![2]);
    }
}
