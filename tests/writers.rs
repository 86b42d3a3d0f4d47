//! Who may write which kind of record (resolver version 2): the rule set's
//! `[writers]` table, by agent domain and role, checked at admission and
//! again by replay; its defaults; an unregistered producer on a ledger with
//! credentials; clock records as parley's alone; version 1 ledgers as they
//! were.

use parley::command::Command;
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::{Body, Timeline};
use parley::sequencer::AppendError;

const T0: u64 = 1_764_147_600_000;

fn cmd(json: serde_json::Value) -> Command {
    Command::parse(&json.to_string()).unwrap()
}

fn ledger(resolver_version: u32) -> Ledger {
    let ledger = Ledger::in_memory(Options {
        first_admin: "ops".into(),
        genesis_at_ms: Some(T0),
        timeline: Timeline::Scripted,
        resolver_version,
        ..Options::default()
    })
    .unwrap();
    for (agent, domain) in [
        ("inventory", "inventory"),
        ("fraud", "fraud"),
        ("orders", "orders"),
        ("merchandising", "merchandising"),
    ] {
        ledger
            .append(cmd(serde_json::json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":agent,"domain":domain,"priority":1}})))
            .unwrap();
    }
    ledger
        .append(cmd(serde_json::json!({"producer":"orders","at_ms":T0,"kind":"order_placed","order":"O-1","customer":"C-1","total_minor":5000})))
        .unwrap();
    ledger
}

fn flag(producer: &str) -> Command {
    cmd(
        serde_json::json!({"producer":producer,"at_ms":T0,"kind":"order_flagged","order":"O-1","reason":"x"}),
    )
}

fn refusal(r: Result<parley::sequencer::Ack, AppendError>) -> String {
    match r {
        Err(AppendError::Refused(r)) => r.code().name().to_owned(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn fraud_flags_come_from_the_fraud_domain() {
    let l = ledger(2);
    let err = l.append(flag("inventory")).unwrap_err();
    assert!(
        err.to_string()
            .contains("`inventory` (an agent of domain inventory) may not write `order_flagged`")
            && err.to_string().contains("domain:fraud"),
        "{err}"
    );
    assert_eq!(parley::answer::code(&err).name(), "not-a-writer");
    l.append(flag("fraud")).unwrap();
    // Catalog prices from merchandising (or an integration), not from an
    // unregistered producer, even on a ledger without credentials.
    let catalog = |p: &str| {
        cmd(
            serde_json::json!({"producer":p,"at_ms":T0,"kind":"catalog","sku":"S","category":"c","cost_minor":1,"price_minor":2,"stock":1,"lifecycle":"active"}),
        )
    };
    assert_eq!(refusal(l.append(catalog("rogue"))), "not-a-writer");
    l.append(catalog("merchandising")).unwrap();
    // Generic facts from anyone, while the ledger has no credential…
    let fact = |p: &str| {
        cmd(
            serde_json::json!({"producer":p,"at_ms":T0,"kind":"fact","entity":"shelf:1","attribute":"n","value":1}),
        )
    };
    l.append(fact("rogue")).unwrap();
    // …and from nobody unregistered once it has one.
    l.append(cmd(serde_json::json!({"producer":"ops","at_ms":T0,"kind":"credential_granted","identity":"fraud","role":"agent","token_hash":"00".repeat(32)})))
        .unwrap();
    assert_eq!(refusal(l.append(fact("rogue"))), "unregistered-producer");
    l.append(fact("inventory")).unwrap();
}

#[test]
fn an_admin_changes_who_may_write_by_installing_a_rule_set() {
    let l = ledger(2);
    assert_eq!(refusal(l.append(flag("inventory"))), "not-a-writer");
    let rules = parley::rules::DEFAULT_RULES.replace(
        "order_flagged = [\"domain:fraud\"]",
        "order_flagged = [\"domain:fraud\", \"domain:inventory\"]",
    );
    assert_ne!(rules, parley::rules::DEFAULT_RULES);
    let install = |p: &str| {
        cmd(serde_json::json!({"producer":p,"at_ms":T0,"kind":"rules_installed","text":rules}))
    };
    assert_eq!(refusal(l.append(install("fraud"))), "not-admin");
    l.append(install("ops")).unwrap();
    l.append(flag("inventory")).unwrap();
    // A table that names no such writer is refused with its line.
    let bad = parley::rules::DEFAULT_RULES.replace("domain:fraud", "domain:sales");
    let err = l
        .append(cmd(
            serde_json::json!({"producer":"ops","at_ms":T0,"kind":"rules_installed","text":bad}),
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("domain:sales") && err.to_string().contains("line"),
        "{err}"
    );
}

#[test]
fn clock_records_are_parleys_alone() {
    let l = ledger(2);
    // A clock command asks parley to record the timers due by its time; it
    // writes no record of its own.
    let head = l.head().unwrap().seq;
    let ack = l
        .append(cmd(
            serde_json::json!({"producer":"rogue","at_ms":T0 + 1_000,"kind":"clock"}),
        ))
        .unwrap();
    assert_eq!((ack.seq, l.head().unwrap().seq), (head, head));
    // A producer's clock record in a version 2 log is refused by replay.
    let mut replay = parley::replay::Replayer::default();
    let mut forged = None;
    l.scan(1, u64::MAX, &mut |r| {
        replay.feed(&r).unwrap();
        forged = Some(r);
        Ok(())
    })
    .unwrap();
    let mut r = forged.unwrap();
    r.record.envelope.seq += 1;
    r.record.envelope.producer = "rogue".into();
    r.record.body = Body::Clock;
    let d = replay.feed(&r).unwrap_err();
    assert!(d.to_string().contains("clock records are parley's"), "{d}");
}

#[test]
fn version_1_ledgers_keep_version_1s_rules() {
    let l = ledger(1);
    // As before: any agent could flag an order.
    l.append(flag("inventory")).unwrap();
    // A [writers] table means nothing to version 1: refused, naming the way.
    let err = l
        .append(cmd(serde_json::json!({"producer":"ops","at_ms":T0,"kind":"rules_installed","text":parley::rules::DEFAULT_RULES})))
        .unwrap_err();
    assert!(
        err.to_string().contains("needs resolver version 2"),
        "{err}"
    );
    l.append(cmd(
        serde_json::json!({"producer":"ops","at_ms":T0,"kind":"resolver_adopted","version":2}),
    ))
    .unwrap();
    assert_eq!(refusal(l.append(flag("inventory"))), "not-a-writer");
    // Replay checks each record under the version in force when it came.
    let mut replay = parley::replay::Replayer::default();
    l.scan(1, u64::MAX, &mut |r| {
        replay.feed(&r).unwrap();
        Ok(())
    })
    .unwrap();
    replay.finish().unwrap();
}
