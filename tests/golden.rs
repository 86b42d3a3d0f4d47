//! The golden ledger of resolver version 1: commands, segment bytes, export,
//! head hash and replay output that every future build must read, verify,
//! write and re-derive identically. `tests/golden/commands.jsonl` is appended
//! into a fresh ledger with fixed options; the segment files must equal
//! `tests/golden/log/` byte for byte, the export `tests/golden/export.jsonl`,
//! and replay `tests/golden/replay.json`.
//!
//! Regenerate only for a deliberate change of the record format (a new
//! FORMAT_VERSION): `PARLEY_BLESS=1 cargo test --test golden`. A change that
//! alters a decision is a new resolver version instead: version 1 stays.
//!
//! The second test introduces a version 2 (test-only) that differs from 1 and
//! shows what versioning promises.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parley::command::Command;
use parley::context::Context;
use parley::ledger::{Ledger, Options};
use parley::log::scan::list_segments;
use parley::reader::LedgerRead;
use parley::reader::LogView;
use parley::record::{Body, StoredRecord, Timeline};
use parley::replay::Replayer;
use parley::resolver::{v1, Author, Refusal, Resolver, Resolvers};
use parley::verify::verify_dir;
use parley::vocab::{
    Escalation, EscalationOption, EscalationReason, Finding, Involved, OptionChoice, Outcome,
    RuleId, TraceStep, Verdict,
};
use parley::whatif::{Alternative, WhatIf};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn commands() -> Vec<Command> {
    std::fs::read_to_string(golden().join("commands.jsonl"))
        .unwrap()
        .lines()
        .map(|l| Command::parse(l).unwrap())
        .collect()
}

fn options() -> Options {
    let first = commands()[0].envelope.at_ms;
    Options {
        segment_bytes: 4096,
        ledger_id: Some("ldg-golden".into()),
        genesis_at_ms: first,
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        initial_rules: None,
        initial_workflows: Vec::new(),
        // The golden ledger is version 1's: it stays version 1.
        resolver_version: 1,
        ..Options::default()
    }
}

fn build(dir: &Path, opts: Options) -> Vec<u8> {
    let (ledger, _) = Ledger::open(dir, opts).unwrap();
    for c in commands() {
        ledger.append(c).unwrap();
    }
    let mut export = Vec::new();
    parley::export::export(&ledger, &mut export).unwrap();
    ledger.close().unwrap();
    export
}

fn replay_json(dir: &Path, resolvers: Resolvers) -> serde_json::Value {
    let (view, _) = LogView::open(dir).unwrap();
    let mut replay = Replayer::new(resolvers);
    view.scan(1, u64::MAX, &mut |r| {
        replay
            .feed(&r)
            .unwrap_or_else(|d| panic!("diverges: {d}: {:?}", d.problem));
        Ok(())
    })
    .unwrap();
    replay.finish().unwrap();
    serde_json::json!({
        "records": view.head_seq(),
        "decisions": replay.decisions(),
        "workflow_records": replay.workflow_records(),
        "divergent": 0,
        "state_hash": replay.context().state_hash(),
    })
}

fn bless(built: &[(u64, PathBuf)], export: &[u8], replay: &serde_json::Value) {
    let golden_log = golden().join("log");
    let _ = std::fs::remove_dir_all(&golden_log);
    std::fs::create_dir_all(&golden_log).unwrap();
    for (_, path) in built {
        std::fs::copy(path, golden_log.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(golden().join("export.jsonl"), export).unwrap();
    let text = serde_json::to_string_pretty(replay).unwrap() + "\n";
    std::fs::write(golden().join("replay.json"), text).unwrap();
    let report = verify_dir(&golden()).unwrap();
    std::fs::write(
        golden().join("head_hash.txt"),
        report.head_hash.unwrap() + "\n",
    )
    .unwrap();
}

#[test]
fn the_golden_ledger_is_written_read_verified_and_replayed_identically() {
    let dir = tempfile::tempdir().unwrap();
    let export = build(dir.path(), options());
    let built = list_segments(&dir.path().join("log")).unwrap();
    assert!(built.len() >= 2, "the golden log spans a segment rollover");
    let replay = replay_json(dir.path(), Resolvers::released());
    if std::env::var_os("PARLEY_BLESS").is_some() {
        bless(&built, &export, &replay);
        return;
    }
    let stored = list_segments(&golden().join("log")).unwrap();
    assert_eq!(stored.len(), built.len());
    for ((_, a), (_, b)) in built.iter().zip(&stored) {
        assert_eq!(a.file_name(), b.file_name());
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} differs from the golden bytes",
            a.display()
        );
    }
    let golden_export = std::fs::read(golden().join("export.jsonl")).unwrap();
    assert!(
        export == golden_export,
        "export differs from tests/golden/export.jsonl"
    );
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden().join("replay.json")).unwrap())
            .unwrap();
    assert_eq!(
        replay, want,
        "replay output differs from tests/golden/replay.json"
    );

    // The committed files themselves verify to the committed head hash and
    // replay with 0 divergent, and every decision says version 1.
    let report = verify_dir(&golden()).unwrap();
    let head = std::fs::read_to_string(golden().join("head_hash.txt")).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.head_hash.as_deref(), Some(head.trim()));
    assert_eq!(replay_json(&golden(), Resolvers::released()), want);
    let (view, _) = LogView::open(&golden()).unwrap();
    view.scan(1, u64::MAX, &mut |r| {
        if let Body::Decision { decision } = &r.record.body {
            assert_eq!(decision.resolver, 1);
        }
        Ok(())
    })
    .unwrap();
}

/// A ledger written by earlier builds (segment format 1, frames without
/// write units, and `clock` commands recorded as the producer's clock
/// records: `tests/golden/log-v1/`, with the export, replay and head hash
/// those builds gave) is read, verified, exported and replayed exactly as
/// before (the same decisions; `state_hash` there is of this build's context
/// encoding, `SNAPSHOT_FORMAT` 3, which added the rule set's `[[custom]]`
/// guards),
/// and a writer of this build continues it in a new version-2 segment
/// without touching the old ones.
#[test]
fn a_version_1_ledger_is_read_as_before_and_continued_in_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    std::fs::create_dir_all(&log).unwrap();
    let old = list_segments(&golden().join("log-v1")).unwrap();
    for (_, path) in &old {
        std::fs::copy(path, log.join(path.file_name().unwrap())).unwrap();
    }
    let report = verify_dir(dir.path()).unwrap();
    let fixture = golden().join("log-v1");
    let head = std::fs::read_to_string(fixture.join("head_hash.txt")).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.head_hash.as_deref(), Some(head.trim()));
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("replay.json")).unwrap())
            .unwrap();
    assert_eq!(replay_json(dir.path(), Resolvers::released()), want);
    let (view, _) = LogView::open(dir.path()).unwrap();
    let mut export = Vec::new();
    parley::export::export(&view, &mut export).unwrap();
    assert!(export == std::fs::read(fixture.join("export.jsonl")).unwrap());

    let before: Vec<Vec<u8>> = old.iter().map(|(_, p)| std::fs::read(p).unwrap()).collect();
    let (ledger, _) = Ledger::open(dir.path(), options()).unwrap();
    let last = commands().last().unwrap().envelope.at_ms.unwrap();
    let next = Command::parse(&format!(
        r#"{{"producer":"ops","at_ms":{last},"kind":"human_registered","human":"late"}}"#
    ))
    .unwrap();
    let ack = ledger.append(next).unwrap();
    ledger.close().unwrap();
    let now = list_segments(&log).unwrap();
    assert_eq!(now.len(), old.len() + 1, "a new segment for the new unit");
    assert_eq!(now.last().unwrap().0, ack.seq);
    for ((_, p), bytes) in now.iter().zip(&before) {
        assert!(
            &std::fs::read(p).unwrap() == bytes,
            "{} changed",
            p.display()
        );
    }
    let report = verify_dir(dir.path()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.head_seq, Some(ack.seq));
}

/// A version for the test only, one past the newest released
/// ([`NEXT`]): version 1, except that the threshold also looks at the
/// projected margin impact (a change of decision content, so a new version).
struct Next;

/// The test-only version's number.
const NEXT: u32 = parley::resolver::CURRENT + 1;

impl Next {
    /// Version 1's approval of an intention whose |margin impact| is beyond
    /// the limit becomes an escalation; every decision says version [`NEXT`].
    fn amend(ctx: &Context, body: Body) -> Body {
        let Body::Decision { mut decision } = body else {
            return body;
        };
        decision.resolver = NEXT;
        let limit = ctx
            .authority
            .rules
            .as_ref()
            .map_or(i64::MAX, |r| r.rules.threshold.escalate_above_minor);
        let Some(s) = ctx.intentions.get(decision.intention) else {
            return Body::Decision { decision };
        };
        let impact = s.intention.impact;
        if decision.rule == RuleId::Approve && impact.margin_minor.abs() > limit {
            decision.rule = RuleId::Threshold;
            decision.trace.pop();
            decision.trace.push(TraceStep {
                rule: RuleId::Threshold,
                verdict: Verdict::Escalate,
                finding: Finding::AboveLimit {
                    revenue_minor: impact.margin_minor,
                    limit_minor: limit,
                },
                reads: vec![],
            });
            let option = |choice, approve| EscalationOption {
                choice,
                approve,
                modified: None,
            };
            decision.outcome = Outcome::Escalated {
                escalation: Escalation {
                    reason: EscalationReason::Threshold {
                        agent: s.agent.clone(),
                        kind: s.intention.action.kind(),
                        revenue_minor: impact.margin_minor,
                        limit_minor: limit,
                    },
                    options: vec![
                        option(OptionChoice::ApproveThis, vec![s.seq]),
                        option(OptionChoice::RejectAll, vec![]),
                    ],
                    involved: vec![Involved {
                        intention: s.seq,
                        agent: s.agent.clone(),
                        action: s.intention.action.clone(),
                        reasoning: s.intention.reasoning.clone(),
                        impact,
                        objective: s.intention.objective,
                    }],
                },
            };
        }
        Body::Decision { decision }
    }
}

impl Resolver for Next {
    fn version(&self) -> u32 {
        NEXT
    }
    fn next_follow_up(&self, ctx: &Context) -> Option<Body> {
        v1::V1.next_follow_up(ctx).map(|b| Next::amend(ctx, b))
    }
    fn admit(&self, ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal> {
        v1::V1.admit(ctx, author, body)
    }
}

fn with_next() -> Resolvers {
    Resolvers::released().with(Arc::new(Next))
}

#[test]
fn a_new_version_leaves_version_1_ledgers_alone_and_shows_what_it_would_change() {
    // The v1 ledger still replays 0 divergent with a build that knows NEXT.
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden().join("replay.json")).unwrap())
            .unwrap();
    assert_eq!(replay_json(&golden(), with_next()), want);

    // What-if with NEXT over the v1 ledger lists exactly the decisions the
    // change affects: the one approval whose margin impact is beyond the limit.
    let (view, _) = LogView::open(&golden()).unwrap();
    let mut run = WhatIf::new(
        Alternative {
            rules: None,
            resolver: Some(NEXT),
        },
        1,
        view.head_seq(),
        with_next(),
    );
    let mut big_margin = Vec::new();
    view.scan(1, u64::MAX, &mut |r: StoredRecord| {
        if let Body::Intend { intention } = &r.record.body {
            if intention.impact.margin_minor.abs() > 600_000
                && intention.impact.revenue_minor.abs() <= 600_000
            {
                big_margin.push(r.record.envelope.seq);
            }
        }
        run.feed(&r);
        Ok(())
    })
    .unwrap();
    let report = run.finish();
    let changed: Vec<u64> = report.changed.iter().map(|c| c.seq).collect();
    assert_eq!(changed, big_margin, "{:#?}", report.changed);
    // Approved as recorded; under NEXT it escalates, and as nobody settles it
    // within the rules' 48 h (the log's last clock is 73 h later) it ends in
    // the safe default.
    let recorded = report.changed[0].recorded.as_ref().unwrap();
    assert_eq!(
        (recorded.outcome.name(), recorded.rule.name()),
        ("approved", "approve")
    );
    let whatif = report.changed[0].whatif.as_ref().unwrap();
    assert_eq!(
        (whatif.outcome.name(), whatif.rule.name()),
        ("rejected", "escalation.expiry")
    );

    // A ledger that adopts NEXT keeps its v1 decisions and makes new ones as NEXT.
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        resolvers: with_next(),
        ..options()
    };
    build(dir.path(), opts.clone());
    let (ledger, _) = Ledger::open(dir.path(), opts).unwrap();
    let at = ledger.head().unwrap().recorded_at_ms + 1_000;
    let adopt =
        format!(r#"{{"producer":"ops","at_ms":{at},"kind":"resolver_adopted","version":{NEXT}}}"#);
    ledger.append(Command::parse(&adopt).unwrap()).unwrap();
    let again = format!(
        r#"{{"producer":"pricing","at_ms":{},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"SKU-3","price_minor":4399}},"reasoning":"again","impact":{{"revenue_minor":10000,"margin_minor":700000}},"objective":"margin-protection"}}}}"#,
        at + 1_000
    );
    let ack = ledger.append(Command::parse(&again).unwrap()).unwrap();
    let (_, d) = ack.decision().unwrap();
    assert_eq!((d.resolver, d.outcome.name()), (NEXT, "escalated"));
    ledger.close().unwrap();
    // Replay re-derives the v1 part with v1 and the rest with NEXT.
    replay_json(dir.path(), with_next());
    // A build that knows only the released versions refuses to continue the
    // ledger, and replay says why instead of guessing.
    let err = Ledger::open(dir.path(), options())
        .err()
        .expect("unknown version");
    assert!(
        err.to_string()
            .contains(&format!("resolver version {NEXT}")),
        "{err}"
    );
}
