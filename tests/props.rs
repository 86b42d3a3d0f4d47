//! Property tests: every record kind survives encode/decode and the JSON export;
//! any single changed byte of any stored record is reported by verify at exactly
//! that record's seq.

mod common;

use std::collections::BTreeMap;

use common::frame_map;
use parley::entity::EntityRef;
use parley::export::ExportedRecord;
use parley::log::segment::SegmentLog;
use parley::log::{encode_record, LogEngine};
use parley::record::{
    chain_hash, Body, Envelope, Record, StoredRecord, Timeline, FORMAT_VERSION, ZERO_HASH,
};
use parley::value::Value;
use parley::verify::verify_dir;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9:_-]{0,15}"
}

fn entity() -> impl Strategy<Value = EntityRef> {
    prop_oneof![
        id().prop_map(EntityRef::Sku),
        id().prop_map(|i| EntityRef::Other(format!("e-{i}"))),
        (1u64..1_000_000).prop_map(EntityRef::Intention),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        ".{0,24}".prop_map(Value::Text),
    ]
}

/// One recorded example of every kind: the golden ledger's records, and the
/// kinds it lacks built here.
fn corpus() -> Vec<Body> {
    let export = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/export.jsonl"
    ))
    .unwrap();
    let mut out: Vec<Body> = export
        .lines()
        .map(|l| serde_json::from_str::<ExportedRecord>(l).unwrap().body)
        .collect();
    out.push(Body::StepTimedOut {
        run: "sale-1".into(),
        step: "update-prices".into(),
        deadline_ms: 1_764_150_000_000,
    });
    out.push(Body::ResolverAdopted { version: 2 });
    out.push(Body::Outcome {
        outcome: Box::new(parley::vocab::Observed::Sales {
            sku: "sku-1".into(),
            from_ms: 1_764_140_000_000,
            to_ms: 1_764_150_000_000,
            units: 12,
            revenue_minor: 120_000,
            margin_minor: -3_000,
        }),
    });
    out.push(Body::IntentionWithdrawn { intention: 42 });
    out.push(Body::CredentialExpires {
        grant: 5,
        expires_at_ms: 1_764_150_000_000,
    });
    out.push(Body::Checkpoint {
        checkpoint: Box::new(parley::record::Checkpoint {
            ledger_id: "ldg-prop".into(),
            seq: 41,
            head_hash: parley::record::Digest([7; 32]),
            public_key: parley::record::HexBytes([9; 32]),
            signature: parley::record::HexBytes([3; 64]),
        }),
    });
    out.push(Body::Synced {
        synced: Box::new(parley::vocab::Synced {
            platform: parley::vocab::Platform::Shopify,
            updated_at_ms: 1_764_150_000_000,
            object: parley::vocab::SyncedObject::Product {
                id: 1001,
                category: "footwear".into(),
                lifecycle: parley::vocab::Lifecycle::Active,
                variants: vec![parley::vocab::synced::Variant {
                    sku: "sku-1".into(),
                    price_minor: 8_499,
                    cost_minor: None,
                    stock: Some(40),
                    item: Some(5_001),
                }],
            },
        }),
    });
    out
}

/// The position of a body's kind. No wildcard: a kind added to `Body`
/// does not compile here until it is given a place (and an example in
/// `corpus`, which `every_kind_is_generated` checks).
fn kind_index(b: &Body) -> usize {
    match b {
        Body::Genesis { .. } => 0,
        Body::Fact { .. } => 1,
        Body::Broadcast { .. } => 2,
        Body::Catalog { .. } => 3,
        Body::StockChanged { .. } => 4,
        Body::CompetitorPrice { .. } => 5,
        Body::SupplierDelay { .. } => 6,
        Body::TrafficSpike { .. } => 7,
        Body::OrderPlaced { .. } => 8,
        Body::OrderDelayed { .. } => 9,
        Body::OrderFlagged { .. } => 10,
        Body::CustomerContacted { .. } => 11,
        Body::AgentRegistered { .. } => 12,
        Body::HumanRegistered { .. } => 13,
        Body::Intend { .. } => 14,
        Body::Decision { .. } => 15,
        Body::RulesInstalled { .. } => 16,
        Body::HumanResolution { .. } => 17,
        Body::Clock => 18,
        Body::WorkflowDefined { .. } => 19,
        Body::WorkflowStarted { .. } => 20,
        Body::StepCompleted { .. } => 21,
        Body::StepFailed { .. } => 22,
        Body::StepReady { .. } => 23,
        Body::StepTimedOut { .. } => 24,
        Body::RunFinished { .. } => 25,
        Body::AdminRegistered { .. } => 26,
        Body::ResolverAdopted { .. } => 27,
        Body::CredentialGranted { .. } => 28,
        Body::CredentialRevoked { .. } => 29,
        Body::Outcome { .. } => 30,
        Body::Synced { .. } => 31,
        Body::IntentionWithdrawn { .. } => 32,
        Body::Checkpoint { .. } => 33,
        Body::CredentialExpires { .. } => 34,
    }
}

#[test]
fn every_kind_is_generated() {
    let mut seen = vec![false; Body::KINDS.len()];
    for b in corpus() {
        assert_eq!(
            Body::KINDS[kind_index(&b)],
            b.kind(),
            "kind_index is in KINDS' order"
        );
        seen[kind_index(&b)] = true;
    }
    let missing: Vec<&str> = Body::KINDS
        .iter()
        .zip(&seen)
        .filter(|(_, s)| !**s)
        .map(|(k, _)| *k)
        .collect();
    assert!(
        missing.is_empty(),
        "no example of {missing:?} in the corpus"
    );
}

fn body() -> impl Strategy<Value = Body> {
    let corpus = corpus();
    let n = corpus.len();
    prop_oneof![
        (0..n).prop_map(move |i| corpus[i].clone()),
        (id(), any::<u16>(), id(), any::<u32>()).prop_map(
            |(ledger_id, format, first_admin, resolver)| Body::Genesis {
                ledger_id,
                format,
                timeline: Timeline::Wall,
                first_admin,
                resolver,
            }
        ),
        (entity(), id(), value()).prop_map(|(entity, attribute, value)| Body::Fact {
            entity,
            attribute,
            value
        }),
        (
            id(),
            proptest::option::of(entity()),
            proptest::collection::btree_map(id(), value(), 0..4)
        )
            .prop_map(|(topic, entity, detail)| Body::Broadcast {
                topic,
                entity,
                detail
            }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        1u64..u64::MAX / 2,
        any::<u64>(),
        id(),
        proptest::option::of(id()),
        proptest::option::of(1u64..1_000_000),
        proptest::option::of(id()),
        proptest::option::of(1u64..1_000_000),
    )
        .prop_map(
            |(
                seq,
                recorded_at_ms,
                producer,
                idempotency_key,
                causation,
                correlation,
                credential,
            )| Envelope {
                format: FORMAT_VERSION,
                seq,
                recorded_at_ms,
                producer,
                idempotency_key,
                causation,
                correlation,
                credential,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_record_kind_round_trips(envelope in envelope(), body in body()) {
        let record = Record { envelope, body };
        let bytes = record.canonical_bytes().unwrap();
        prop_assert_eq!(Record::decode(&bytes).unwrap(), record.clone());
        // The JSON export form carries the same record.
        let stored = StoredRecord { prev_hash: ZERO_HASH, hash: chain_hash(&ZERO_HASH, &bytes), record: record.clone() };
        let line = serde_json::to_string(&ExportedRecord::from(&stored)).unwrap();
        let back: ExportedRecord = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(back.body, record.body);
        prop_assert_eq!(back.seq, record.envelope.seq);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Record::decode(&bytes);
    }
}

/// Writes `bodies` as a log of small segments (so records span several
/// files), in batches of three, and closes it cleanly.
fn write_log(dir: &std::path::Path, bodies: &[Body]) {
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let (mut log, _) = SegmentLog::open(
        &dir.join("log"),
        4096,
        Default::default(),
        &dir.join("index"),
        None,
        parley::log::disk::OsDisk::shared(),
    )
    .unwrap();
    let mut prev = ZERO_HASH;
    let mut all = vec![Body::Genesis {
        ledger_id: "ldg-prop".into(),
        format: FORMAT_VERSION,
        timeline: Timeline::Wall,
        first_admin: "admin".into(),
        resolver: 1,
    }];
    all.extend_from_slice(bodies);
    let mut batch = Vec::new();
    for (i, body) in all.into_iter().enumerate() {
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq: i as u64 + 1,
                recorded_at_ms: 1_000 + i as u64,
                producer: "p".into(),
                idempotency_key: None,
                causation: None,
                correlation: None,
                credential: None,
            },
            body,
        };
        let enc = encode_record(&record, &prev).unwrap();
        prev = enc.hash;
        batch.push(enc);
        if batch.len() == 3 {
            log.append(&batch, &mut Vec::new()).unwrap();
            batch.clear();
        }
    }
    log.append(&batch, &mut Vec::new()).unwrap();
    log.record_evidence(true).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_changed_byte_is_reported_at_its_seq(
        bodies in proptest::collection::vec(
            (entity(), id(), value()).prop_map(|(entity, attribute, value)| Body::Fact { entity, attribute, value }),
            1..60),
        pick in any::<proptest::sample::Index>(),
        byte in any::<proptest::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &bodies);
        prop_assert!(verify_dir(dir.path()).unwrap().ok);
        let frames = frame_map(&dir.path().join("log"));
        prop_assert_eq!(frames.len(), bodies.len() + 1);
        let (seq, path, at, len) = frames[pick.index(frames.len())].clone();
        let offset = at + byte.index(len);
        let mut data = std::fs::read(&path).unwrap();
        data[offset] ^= xor;
        std::fs::write(&path, data).unwrap();
        let report = verify_dir(dir.path()).unwrap();
        prop_assert!(!report.ok);
        prop_assert_eq!(report.first_bad_seq, Some(seq), "{:?}", report.reason);
    }
}

#[test]
fn a_changed_segment_header_is_reported_at_its_first_seq() {
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Body> = (0..40)
        .map(|i| Body::Broadcast {
            topic: format!("t{i}"),
            entity: None,
            detail: BTreeMap::new(),
        })
        .collect();
    write_log(dir.path(), &bodies);
    let segments = parley::log::scan::list_segments(&dir.path().join("log")).unwrap();
    let (first_seq, path) = segments[1].clone();
    common::flip_byte(&path, 20);
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!(report.first_bad_seq, Some(first_seq));
}
