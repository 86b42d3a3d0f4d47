//! Data-driven scenario tests: `tests/scenarios/NAME.jsonl` holds commands (after
//! the shared store in `_store.jsonl`) with the decisions they must get.
//!
//! Per line, besides the command itself:
//! - `"id": "label"` names the record, so expectations can cite it (`"label+1"`
//!   is the record after it, e.g. its decision); `"intention": "label"` in a
//!   human resolution is replaced by that seq;
//! - `"expect": {"outcome", "rule", "cites"?, "reads"?, "until_ms"?, "involved"?, "options"?}`
//!   (`cites`: labels of records the decision cites; `reads`: `entity.field`
//!   of values the deciding rule read, `rules.field` for rule parameters)
//!   is the decision that must answer this intention;
//! - `"expect_follow_ups": [{"intention", "outcome", "rule"}]` are the decisions
//!   this record must cause, in order (an empty list: none);
//! - `"expect_records": [{"kind", …}]` are every record this one must cause,
//!   in order: a decision is checked like `expect` (plus `"intention"`), any
//!   other kind by its JSON body containing the given fields;
//! - `"expect_error": "text"` means the command must be refused with that text;
//! - `"expect_duplicate_of": "label"`: a retry, answered with the original's
//!   seq and decision;
//! - `"expect_caused": [{"intention", "outcome", "rule"}]`: the decisions on
//!   other intentions this command's own answer reports;
//! - in an expected decision, `"finding": {…}` is contained in the deciding
//!   step's finding, and `"read_from": {"field": "label"}` says which record
//!   a rule read that field from;
//! - `"note"` lines are prose; the first line may also say `"rules": "none"`
//!   for a ledger without a rule set.

mod corpus;

use std::collections::BTreeMap;
use std::path::Path;

use parley::command::Command;
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::{Body, Timeline};
use parley::vocab::{Decision, DeferUntil, Outcome, Read};
use serde_json::Value as Json;

/// An expected decision: every key is known (a misspelled one fails the
/// scenario instead of skipping its check) and typed.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    outcome: String,
    rule: String,
    /// In `expect_records`: the record's kind (`decision`).
    kind: Option<String>,
    /// The intention decided (in lists of decisions).
    intention: Option<String>,
    cites: Option<Vec<String>>,
    reads: Option<Vec<String>>,
    finding: Option<Json>,
    read_from: Option<BTreeMap<String, String>>,
    modified: Option<Json>,
    until_step: Option<String>,
    until_ms: Option<u64>,
    options: Option<u64>,
    involved: Option<Vec<String>>,
}

fn expected(ctx: &str, v: &Json) -> Expected {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{ctx}: expectation {v}: {e}"))
}

/// A list of expected decisions.
fn expected_list(ctx: &str, v: Json) -> Vec<Expected> {
    match v {
        Json::Array(items) => items.iter().map(|w| expected(ctx, w)).collect(),
        other => panic!("{ctx}: expected a list of decisions, got {other}"),
    }
}

/// The seq an expected decision's `intention` label names.
fn intention_of(ctx: &str, want: &Expected, labels: &BTreeMap<String, u64>) -> u64 {
    let label = want
        .intention
        .as_deref()
        .unwrap_or_else(|| panic!("{ctx}: an expected decision in a list names its `intention`"));
    seq_of(labels, label)
}

fn seq_of(labels: &BTreeMap<String, u64>, text: &str) -> u64 {
    let (label, offset) = match text.split_once('+') {
        Some((l, n)) => (l, n.parse::<u64>().unwrap()),
        None => (text, 0),
    };
    labels
        .get(label)
        .unwrap_or_else(|| panic!("unknown label {label}"))
        + offset
}

fn check_decision(ctx: &str, d: &Decision, want: &Expected, labels: &BTreeMap<String, u64>) {
    assert_eq!(
        d.outcome.name(),
        want.outcome,
        "{ctx}: outcome; trace {:#?}",
        d.trace
    );
    assert_eq!(
        d.rule.name(),
        want.rule,
        "{ctx}: deciding rule; trace {:#?}",
        d.trace
    );
    for c in want.cites.iter().flatten() {
        let seq = seq_of(labels, c);
        assert!(
            d.cites.iter().any(|x| x.seq == seq),
            "{ctx}: cites {:?} lack {c} (seq {seq})",
            d.cites
        );
    }
    if let Some(list) = &want.reads {
        let last = d.trace.last().unwrap();
        let names: Vec<String> = last.reads.iter().map(read_name).collect();
        for name in list {
            assert!(
                names.iter().any(|x| x == name),
                "{ctx}: the deciding rule did not read {name}: {names:?}"
            );
        }
    }
    if let Some(f) = &want.finding {
        let got = serde_json::to_value(&d.trace.last().unwrap().finding).unwrap();
        assert!(contains(&got, f), "{ctx}: finding {got} lacks {f}");
    }
    if let Some(from) = &want.read_from {
        let reads: Vec<&Read> = d.trace.iter().flat_map(|t| &t.reads).collect();
        for (field, label) in from {
            let seq = seq_of(labels, label);
            assert!(
                reads
                    .iter()
                    .any(|r| read_name(r).ends_with(&format!(".{field}")) && r.seq == seq),
                "{ctx}: no read of {field} from seq {seq}: {reads:?}"
            );
        }
    }
    if let Some(m) = &want.modified {
        let Outcome::Modified { action } = &d.outcome else {
            panic!("{ctx}: not modified: {:?}", d.outcome);
        };
        let got = serde_json::to_value(action).unwrap();
        assert!(contains(&got, m), "{ctx}: modified {got} lacks {m}");
    }
    if let Some(step) = &want.until_step {
        match &d.outcome {
            Outcome::Deferred {
                until: DeferUntil::Step(r),
            } => assert_eq!(&r.step, step, "{ctx}: deferred until the missing step"),
            other => panic!("{ctx}: not deferred until a step: {other:?}"),
        }
    }
    if let Some(until) = want.until_ms {
        assert_eq!(
            d.outcome,
            Outcome::Deferred {
                until: DeferUntil::Time(until)
            },
            "{ctx}"
        );
    }
    let escalated = matches!(d.outcome, Outcome::Escalated { .. });
    assert!(
        escalated || (want.options.is_none() && want.involved.is_none()),
        "{ctx}: `options`/`involved` expected of a decision that did not escalate"
    );
    if let Outcome::Escalated { escalation } = &d.outcome {
        if let Some(n) = want.options {
            assert_eq!(escalation.options.len() as u64, n, "{ctx}: options");
        }
        if let Some(list) = &want.involved {
            let got: Vec<u64> = escalation.involved.iter().map(|i| i.intention).collect();
            let want: Vec<u64> = list.iter().map(|l| seq_of(labels, l)).collect();
            assert_eq!(got, want, "{ctx}: involved");
            assert!(
                escalation.involved.iter().all(|i| !i.reasoning.is_empty()),
                "{ctx}: every agent's reasoning"
            );
        }
        let summary = parley::render::escalation_summary(escalation, &d.entity);
        assert!(!summary.is_empty());
    }
    // The trace names each value it read and the seq that wrote it.
    for step in &d.trace {
        for r in &step.reads {
            assert!(
                r.seq <= d.context_seq,
                "{ctx}: read {} from seq {} after the context",
                read_name(r),
                r.seq
            );
        }
    }
}

/// `entity.field` of a read (`rules.field` for a rule parameter; a custom
/// guard's read names its view path: `sku:SKU-1.sku.facts.rating_x10`).
/// An outcome record's attribution: its pieces, each under the decision
/// (label of the intention, or null) the scenario names, with its figures.
fn check_pieces(
    ctx: &str,
    ledger: &Ledger,
    seq: u64,
    wants: &Json,
    labels: &BTreeMap<String, u64>,
) {
    let state = ledger.context_at(seq).unwrap();
    let got: Vec<Json> = state
        .outcomes
        .skus
        .values()
        .flat_map(|t| &t.pieces)
        .filter(|p| p.seq == seq)
        .map(|p| {
            serde_json::json!({
                "intention": p.intention,
                "units": p.units,
                "revenue_minor": p.revenue_minor,
                "margin_minor": p.margin_minor,
            })
        })
        .collect();
    let Json::Array(wants) = wants else {
        panic!("{ctx}: `expect_pieces` is a list: {wants}");
    };
    let wants: Vec<Json> = wants
        .iter()
        .map(|w| {
            let mut w = w.clone();
            if let Some(Json::String(label)) = w.get("intention").cloned() {
                w["intention"] = seq_of(labels, &label).into();
            }
            w
        })
        .collect();
    assert_eq!(got, wants, "{ctx}: the outcome's pieces");
}

fn read_name(r: &Read) -> String {
    let field = match (&r.field, serde_json::to_value(&r.field).unwrap()) {
        (parley::vocab::Field::View(p), _) => p.to_string(),
        (_, f) => match f {
            Json::String(s) => s,
            Json::Object(m) => m.keys().next().unwrap().clone(),
            other => other.to_string(),
        },
    };
    match &r.entity {
        Some(e) => format!("{e}.{field}"),
        None => format!("rules.{field}"),
    }
}

/// Does `got` hold every field of `want` (recursively for objects)?
fn contains(got: &Json, want: &Json) -> bool {
    match (got, want) {
        (Json::Object(g), Json::Object(w)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| contains(gv, v))),
        _ => got == want,
    }
}

fn check_records(ctx: &str, got: &[Body], wants: &[Json], labels: &BTreeMap<String, u64>) {
    let kinds: Vec<&str> = got.iter().map(Body::kind).collect();
    assert_eq!(
        got.len(),
        wants.len(),
        "{ctx}: caused records {kinds:?}: {got:#?}"
    );
    for (body, want) in got.iter().zip(wants) {
        let kind = want["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: an expected record names its `kind`: {want}"));
        assert_eq!(body.kind(), kind, "{ctx}: {kinds:?}");
        if let Body::Decision { decision } = body {
            let want = expected(ctx, want);
            assert_eq!(want.kind.as_deref(), Some("decision"), "{ctx}");
            let seq = intention_of(ctx, &want, labels);
            assert_eq!(
                decision.intention, seq,
                "{ctx}: decision for {:?}",
                want.intention
            );
            check_decision(ctx, decision, &want, labels);
        } else {
            let json = serde_json::to_value(body).unwrap();
            assert!(contains(&json, want), "{ctx}: {json} lacks {want}");
        }
    }
}

/// Runs one scenario, checking every expectation; returns its ledger.
fn run_scenario(path: &Path) -> Ledger {
    run_scenario_at(path, parley::resolver::CURRENT)
}

/// Runs one scenario on a ledger that starts with resolver `version`.
fn run_scenario_at(path: &Path, version: u32) -> Ledger {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/_store.jsonl");
    let store = std::fs::read_to_string(shared).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    // A scenario's first line may say `"rules": "none"`: a ledger without a
    // rule set; or `"custom": "FILE.toml"`: the default rules plus that file's
    // `[[custom]]` guards (the examples in rules/examples/).
    let header: Json = serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap();
    let mut initial_rules = match header.get("rules") {
        None => Options::default().initial_rules,
        Some(Json::String(none)) if none == "none" => None,
        Some(other) => panic!("{name}: `rules` in the header is \"none\", got {other}"),
    };
    if let Some(file) = header.get("rules_file").and_then(Json::as_str) {
        let text = std::fs::read_to_string(path.with_file_name(file))
            .unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
        initial_rules = Some(text);
    }
    if let Some(file) = header.get("custom").and_then(Json::as_str) {
        let guards = std::fs::read_to_string(path.with_file_name(file))
            .unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
        initial_rules = Some(format!("{}\n{guards}", parley::rules::DEFAULT_RULES));
    }
    let opts = Options {
        initial_rules,
        genesis_at_ms: Some(1_764_147_000_000),
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        auto_clock: false,
        resolver_version: version,
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    let mut labels = BTreeMap::new();
    let mut decisions: BTreeMap<u64, Decision> = BTreeMap::new();
    let mut checked = 0;
    for (i, line) in store.lines().chain(text.lines()).enumerate() {
        let ctx = format!("{name} line {}", i + 1);
        let mut v: Json = serde_json::from_str(line).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let obj = v.as_object_mut().unwrap();
        // A prose line holds only a note; a command may carry a `note` field.
        if obj.keys().all(|k| {
            k == "note"
                || (matches!(k.as_str(), "rules" | "custom" | "rules_file")
                    && !obj.contains_key("kind"))
        }) {
            continue;
        }
        let id = obj.remove("id");
        if let Some(bad) = id.as_ref().filter(|i| !i.is_string()) {
            panic!("{ctx}: `id` is a string label, got {bad}");
        }
        let expect = obj.remove("expect");
        let follow = obj.remove("expect_follow_ups");
        let caused = obj.remove("expect_records");
        let text_of = |key: &str, v: Option<Json>| match v {
            None => None,
            Some(Json::String(t)) => Some(t),
            Some(other) => panic!("{ctx}: `{key}` is a string, got {other}"),
        };
        let error = text_of("expect_error", obj.remove("expect_error")).map(Json::String);
        let duplicate_of =
            text_of("expect_duplicate_of", obj.remove("expect_duplicate_of")).map(Json::String);
        let answer_caused = obj.remove("expect_caused");
        let pieces = obj.remove("expect_pieces");
        if let Some(Json::String(label)) = obj.get("intention").cloned() {
            obj.insert("intention".into(), seq_of(&labels, &label).into());
        }
        let cmd = match (Command::parse(&v.to_string()), &error) {
            (Ok(c), _) => c,
            (Err(e), Some(Json::String(text))) => {
                let e = e.to_string();
                assert!(
                    e.contains(text.as_str()),
                    "{ctx}: error `{e}` lacks `{text}`"
                );
                checked += 1;
                continue;
            }
            (Err(e), _) => panic!("{ctx}: {e}"),
        };
        let result = ledger.append(cmd);
        if let Some(Json::String(text)) = error {
            let e = result.expect_err(&ctx).to_string();
            assert!(e.contains(&text), "{ctx}: error `{e}` lacks `{text}`");
            checked += 1;
            continue;
        }
        let ack = result.unwrap_or_else(|e| panic!("{ctx}: {e}"));
        if i == 0 {
            labels.insert("_store".into(), ack.seq);
        }
        if let Some(Json::String(label)) = duplicate_of {
            assert!(ack.duplicate, "{ctx}: not answered as a retry");
            assert_eq!(
                ack.seq,
                seq_of(&labels, &label),
                "{ctx}: the original's seq"
            );
            let original = decisions.get(&ack.seq).cloned();
            assert_eq!(
                ack.decision().map(|(_, d)| d.clone()),
                original,
                "{ctx}: the original's decision"
            );
            checked += 1;
        }
        if let Some((_, d)) = ack.decision() {
            decisions.insert(ack.seq, d.clone());
        }
        if let Some(wants) = answer_caused.map(|w| expected_list(&ctx, w)) {
            // The answer reports the timers recorded for its time, then
            // what the command caused.
            let got: Vec<Decision> = ack
                .timers
                .iter()
                .chain(&ack.follow_ups)
                .filter_map(|(_, b)| match b {
                    Body::Decision { decision } if decision.intention != ack.seq => {
                        Some((**decision).clone())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(got.len(), wants.len(), "{ctx}: caused decisions {got:#?}");
            for (d, want) in got.iter().zip(&wants) {
                assert_eq!(d.intention, intention_of(&ctx, want, &labels), "{ctx}");
                check_decision(&ctx, d, want, &labels);
            }
            checked += 1;
        }
        if let Some(Json::String(label)) = id {
            labels.insert(label, ack.seq);
        }
        if let Some(wants) = pieces {
            check_pieces(&ctx, &ledger, ack.seq, &wants, &labels);
            checked += 1;
        }
        if let Some(want) = expect.map(|w| expected(&ctx, &w)) {
            let (_, d) = ack
                .decision()
                .unwrap_or_else(|| panic!("{ctx}: no decision"));
            check_decision(&ctx, d, &want, &labels);
            checked += 1;
        }
        // What the line brought about: the timers parley recorded for its
        // time (without their clock records), then what follows it.
        let timers: Vec<Body> = ack
            .timers
            .iter()
            .map(|(_, b)| b.clone())
            .filter(|b| !matches!(b, Body::Clock))
            .collect();
        if let Some(wants) = caused {
            let Json::Array(wants) = wants else {
                panic!("{ctx}: `expect_records` is a list: {wants}");
            };
            let mut got = timers.clone();
            ledger
                .scan(ack.seq + 1, u64::MAX, &mut |r| {
                    got.push(r.record.body);
                    Ok(())
                })
                .unwrap();
            check_records(&ctx, &got, &wants, &labels);
            checked += 1;
        }
        if let Some(wants) = follow.map(|w| expected_list(&ctx, w)) {
            let mut got: Vec<Box<Decision>> = timers
                .iter()
                .filter_map(|b| match b {
                    Body::Decision { decision } => Some(decision.clone()),
                    _ => None,
                })
                .collect();
            ledger
                .scan(ack.seq + 1, u64::MAX, &mut |r| {
                    if let Body::Decision { decision } = r.record.body {
                        got.push(decision);
                    }
                    Ok(())
                })
                .unwrap();
            assert_eq!(
                got.len(),
                wants.len(),
                "{ctx}: follow-up decisions {got:#?}"
            );
            for (d, want) in got.iter().zip(&wants) {
                assert_eq!(d.intention, intention_of(&ctx, want, &labels), "{ctx}");
                check_decision(&ctx, d, want, &labels);
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "{name}: no expectation was checked");
    // Every record parley wrote is re-derived exactly by replay.
    let mut replay = parley::replay::Replayer::default();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            replay
                .feed(&r)
                .unwrap_or_else(|d| panic!("{name}: replay diverges: {d:#?}"));
            Ok(())
        })
        .unwrap();
    replay.finish().unwrap();
    ledger
}

/// Every scenario file (not the shared `_store.jsonl`), in name order.
fn scenario_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jsonl")
                && !p.file_name().unwrap().to_string_lossy().starts_with('_')
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the seed's scenarios are all here");
    files
}

#[test]
fn every_scenario_gets_its_expected_decisions() {
    for f in scenario_files() {
        run_scenario(&f);
    }
}

/// The `.jsonl` scenarios of a directory, in name order.
fn jsonl_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// The scenarios of custom guards: rules/examples/ (one per example guard)
/// and tests/guards/ (faults and edges), each beside its `.toml`.
fn guard_scenario_files() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = jsonl_in(&root.join("rules/examples"));
    assert!(examples.len() >= 6, "rules/examples/ has its scenarios");
    let mut files = examples;
    files.extend(jsonl_in(&root.join("tests/guards")));
    files
}

/// tests/outcomes/: attribution, calibration and precedent retirement
/// (resolver version 4) decide and attribute as each scenario says.
#[test]
fn every_outcome_scenario_gets_its_expected_decisions() {
    let files = jsonl_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outcomes"));
    assert!(files.len() >= 3, "tests/outcomes/ has its scenarios");
    for f in files {
        run_scenario(&f);
    }
}

/// rules/examples/ and tests/guards/: each guard refuses or escalates what
/// its scenario says, and nothing else there.
#[test]
fn every_custom_guard_gets_its_expected_decisions() {
    for f in guard_scenario_files() {
        let toml = f.with_extension("toml");
        assert!(toml.exists(), "{} has its guard", f.display());
        run_scenario(&f);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/examples");
    let guards = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(
        guards,
        jsonl_in(&dir).len(),
        "every example guard has a scenario"
    );
}

fn records_of(ledger: &dyn LedgerRead) -> Vec<parley::StoredRecord> {
    let mut out = Vec::new();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

/// The golden corpus (see `tests/corpus/mod.rs`): the demo, every scenario
/// and a seeded simulation of 100,000 records decide exactly as recorded,
/// and together they use every finding type, rule and outcome.
#[test]
fn the_golden_corpus_decides_as_recorded_and_covers_the_vocabulary() {
    let mut seen = corpus::Seen::default();
    let mut entries = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let (_, records, _) =
        parley::demo::run(&dir.path().join("demo"), "all", parley::demo::DEFAULT_SEED).unwrap();
    entries.push(corpus::entry("demo", &records, &mut seen));
    for f in scenario_files() {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        // Pinned to version 2, released and frozen: its digests never move.
        let v2 = records_of(&run_scenario_at(&f, 2));
        entries.push(corpus::entry(&format!("scenario/{name}"), &v2, &mut seen));
        // Version 3 without custom guards decides exactly as version 2, and
        // version 4 without learning tables as well.
        let v3 = records_of(&run_scenario_at(&f, 3));
        corpus::same_but_version(&name, &v2, &v3, 3);
        let v4 = records_of(&run_scenario_at(&f, 4));
        corpus::same_but_version(&name, &v2, &v4, 4);
    }
    for f in jsonl_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outcomes")) {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let ledger = run_scenario_at(&f, 4);
        entries.push(corpus::entry(
            &format!("outcomes/{name}"),
            &records_of(&ledger),
            &mut seen,
        ));
    }
    for f in guard_scenario_files() {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let ledger = run_scenario_at(&f, 3);
        entries.push(corpus::entry(
            &format!("guards/{name}"),
            &records_of(&ledger),
            &mut seen,
        ));
    }
    let sim = dir.path().join("simulate");
    parley::demo::simulate::simulate_at(&sim, 1, 100_000, 1000, 2, &mut |_| {}).unwrap();
    let (view, _) = parley::LogView::open(&sim).unwrap();
    let records = records_of(&view);
    assert!(records.len() >= 100_000, "{} records", records.len());
    entries.push(corpus::entry("simulate/seed-1", &records, &mut seen));
    corpus::compare(&entries);
    corpus::check_coverage(&seen);
}
