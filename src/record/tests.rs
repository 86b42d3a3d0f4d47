use super::*;

fn sample() -> Record {
    Record {
        envelope: Envelope {
            format: FORMAT_VERSION,
            seq: 2,
            recorded_at_ms: 1_700_000_000_000,
            producer: "inventory".into(),
            idempotency_key: Some("k1".into()),
            causation: None,
            correlation: None,
            credential: None,
        },
        body: Body::Fact {
            entity: EntityRef::Other("store:eu".into()),
            attribute: "region".into(),
            value: Value::Int(50),
        },
    }
}

#[test]
fn round_trip_and_trailing_bytes() {
    let record = sample();
    let mut bytes = record.canonical_bytes().unwrap();
    assert_eq!(Record::decode(&bytes).unwrap(), record);
    bytes.push(0);
    assert!(matches!(
        Record::decode(&bytes),
        Err(RecordError::TrailingBytes { .. })
    ));
}

#[test]
fn hex_round_trip() {
    let h = chain_hash(&ZERO_HASH, b"x");
    assert_eq!(hash_from_hex(&to_hex(&h)), Some(h));
    assert_eq!(hash_from_hex("zz"), None);
}

#[test]
fn oversized_record_is_refused() {
    let mut record = sample();
    record.body = Body::Fact {
        entity: EntityRef::Other("e".into()),
        attribute: "a".into(),
        value: Value::Text("x".repeat(RECORD_BYTES_MAX)),
    };
    assert!(matches!(
        record.canonical_bytes(),
        Err(RecordError::TooLarge(_))
    ));
}
