//! A ledger workload written through a recording disk
//! (`parley::log::trace`), and the checks every state a crash leaves must
//! pass: every acknowledged record present and identical, nothing but the
//! writer's own records, the chain verifies, replay is 0 divergent, and the
//! ledger opens for writing and appends.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parley::ledger::{Ledger, Options};
use parley::log::trace::TraceDisk;
use parley::record::Timeline;
use parley::replay::Replayer;
use parley::Command;

/// The first time of the workload's ledger.
pub const T0_MS: u64 = 1_764_147_600_000;

/// A small-segment scripted ledger written through `disk`.
pub fn opts(disk: Option<&TraceDisk>) -> Options {
    let mut o = Options {
        segment_bytes: 4096,
        ledger_id: Some("ldg-crash-states".into()),
        genesis_at_ms: Some(T0_MS),
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        ..Options::default()
    };
    if let Some(d) = disk {
        o.disk = Arc::new(d.clone());
    }
    o
}

/// The demo store's setup commands.
pub fn store() -> Vec<Command> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/_store.jsonl"
    ))
    .unwrap();
    text.lines().map(|l| Command::parse(l).unwrap()).collect()
}

/// Command `i` of the workload at `at_ms`: stock facts (some with a payload
/// spanning sectors), and price intentions that the resolver decides.
pub fn command(i: u64, at_ms: u64) -> Command {
    let text = match i % 5 {
        0 => format!(
            r#"{{"producer":"pricing","at_ms":{at_ms},"idempotency_key":"w{i}","kind":"intend","intention":{{"action":{{"type":"set_price","sku":"SKU-2","price_minor":{}}},"reasoning":"round {i}","impact":{{"revenue_minor":100,"margin_minor":100}},"objective":"sales-growth"}}}}"#,
            4_000 + i % 1_500
        ),
        1 => format!(
            r#"{{"producer":"inventory","at_ms":{at_ms},"idempotency_key":"w{i}","kind":"fact","entity":"shelf:S{}","attribute":"note","value":"{}"}}"#,
            i % 7,
            "n".repeat(700)
        ),
        _ => format!(
            r#"{{"producer":"inventory","at_ms":{at_ms},"idempotency_key":"w{i}","kind":"stock_changed","sku":"SKU-{}","stock":{}}}"#,
            1 + i % 3,
            i % 90
        ),
    };
    Command::parse(&text).unwrap()
}

/// Appends commands `from..to` in pipelined groups of `group` (so batches
/// hold several records), marking each acknowledgement in `disk`'s trace.
pub fn append_range(ledger: &Ledger, disk: &TraceDisk, from: u64, to: u64, group: u64) {
    let mut i = from;
    while i < to {
        let end = (i + group).min(to);
        let tickets: Vec<_> = (i..end)
            .map(|j| ledger.submit(command(j, T0_MS + 1_000 * (j + 1))).unwrap())
            .collect();
        for t in tickets {
            let ack = t.wait().unwrap();
            let last = ack.follow_ups.iter().map(|f| f.0).max().unwrap_or(0);
            disk.ack(ack.seq.max(last));
        }
        i = end;
    }
}

/// The workload: create, set up the store, append across segment rolls,
/// close cleanly, reopen, append more, close. Returns every record's hash.
pub fn run(dir: &Path, disk: &TraceDisk, commands: u64) -> BTreeMap<u64, [u8; 32]> {
    let (ledger, _) = Ledger::open(dir, opts(Some(disk))).unwrap();
    for c in store() {
        let ack = ledger.append(c).unwrap();
        disk.ack(ack.seq);
    }
    append_range(&ledger, disk, 0, commands / 2, 4);
    ledger.close().unwrap();
    let (ledger, _) = Ledger::open(dir, opts(Some(disk))).unwrap();
    append_range(&ledger, disk, commands / 2, commands, 3);
    ledger.close().unwrap();
    hashes(dir)
}

/// Every record's hash, read through the ledger's own reader.
pub fn hashes(dir: &Path) -> BTreeMap<u64, [u8; 32]> {
    use parley::reader::LedgerRead;
    let (view, _) = parley::reader::LogView::open(dir).unwrap();
    let mut out = BTreeMap::new();
    view.scan(1, u64::MAX, &mut |r| {
        out.insert(r.record.envelope.seq, r.hash);
        Ok(())
    })
    .unwrap();
    out
}

/// What a crash state recovered to.
pub struct Recovered {
    pub head: u64,
    pub torn_cut: bool,
}

/// The checks a crash state must pass. `acked`: every seq up to it was
/// acknowledged before the crash; `written`: the hash of every record the
/// writer wrote.
pub fn check(
    dir: &Path,
    acked: u64,
    written: &BTreeMap<u64, [u8; 32]>,
) -> Result<Recovered, String> {
    if !dir.join("log").is_dir() {
        return if acked == 0 {
            Ok(Recovered {
                head: 0,
                torn_cut: false,
            })
        } else {
            Err(format!(
                "the log directory is gone; seq {acked} was acknowledged"
            ))
        };
    }
    let report = parley::verify::verify_dir(dir).map_err(|e| format!("verify: {e}"))?;
    // A ledger whose creation was cut off before it acknowledged anything
    // may hold no records at all ("corrupt" to verify); it opens anew.
    if report.damage == Some("corrupt") && acked > 0 {
        return Err(format!("verify calls it corrupt: {:?}", report.reason));
    }
    let (ledger, open) = Ledger::open(dir, opts(None)).map_err(|e| format!("open: {e}"))?;
    let head = ledger.head().map_or(0, |h| h.seq);
    if head < acked {
        return Err(format!(
            "the log ends at seq {head}; seq {acked} was acknowledged"
        ));
    }
    ledger.close().map_err(|e| format!("close: {e}"))?;
    let got = hashes(dir);
    for (seq, hash) in &got {
        if written.get(seq) != Some(hash) && !(open.created && acked == 0) {
            return Err(format!("seq {seq} is not the record the writer wrote"));
        }
    }
    let after = parley::verify::verify_dir(dir).map_err(|e| format!("verify: {e}"))?;
    if !after.ok {
        return Err(format!("after recovery verify fails: {:?}", after.reason));
    }
    replay(dir)?;
    Ok(Recovered {
        head,
        torn_cut: open.recovery.torn_tail.is_some(),
    })
}

/// Replays the whole log: every decision and derived record reproduced.
pub fn replay(dir: &Path) -> Result<u64, String> {
    use parley::reader::LedgerRead;
    let (view, _) = parley::reader::LogView::open(dir).map_err(|e| format!("read: {e}"))?;
    let mut records = Vec::new();
    view.scan(1, u64::MAX, &mut |r| {
        records.push(r);
        Ok(())
    })
    .map_err(|e| format!("scan: {e}"))?;
    let mut replayer = Replayer::default();
    for r in &records {
        replayer
            .feed(r)
            .map_err(|d| format!("replay diverges: {d}"))?;
    }
    replayer
        .finish()
        .map_err(|d| format!("replay diverges: {d}"))?;
    Ok(replayer.decisions())
}
