//! The golden corpus of decisions: every decision of the demo ledger, of each
//! `tests/scenarios/*.jsonl` ledger and of a seeded `parley simulate` ledger
//! of at least 100,000 records, kept as one blake3 per ledger over the
//! concatenated canonical bytes of its decision records
//! (`tests/corpus/decisions.txt`, one line per ledger:
//! `NAME RESOLVER DECISIONS BLAKE3`). The ledgers themselves are rebuilt by
//! the test; only their digests are stored.
//!
//! Regenerate only for a deliberate change of the record format:
//! `PARLEY_BLESS=1 cargo test --test scenarios corpus`. A change that alters
//! a decision of a released resolver is a new resolver version instead.
//!
//! The coverage check fails when some finding type, rule or outcome of the
//! decision vocabulary occurs nowhere in the corpus: a path of the frozen
//! resolver no ledger takes is a path a change could alter unseen.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use parley::record::{Body, StoredRecord};
use parley::vocab::{OutcomeKind, RuleId};

/// One ledger of the corpus, summarised.
pub struct Entry {
    pub name: String,
    pub resolver: u32,
    pub decisions: u64,
    pub digest: String,
}

/// What the corpus's decisions used: finding types, rules and outcomes.
#[derive(Default)]
pub struct Seen {
    pub findings: BTreeSet<String>,
    pub rules: BTreeSet<RuleId>,
    pub outcomes: BTreeSet<OutcomeKind>,
}

fn file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/decisions.txt")
}

/// Digests the decisions among `records` (in seq order) and notes what they used.
pub fn entry(name: &str, records: &[StoredRecord], seen: &mut Seen) -> Entry {
    let mut hasher = blake3::Hasher::new();
    let mut decisions = 0u64;
    let mut resolvers = BTreeSet::new();
    for r in records {
        let Body::Decision { decision } = &r.record.body else {
            continue;
        };
        hasher.update(&r.record.canonical_bytes().expect("a stored record encodes"));
        decisions += 1;
        resolvers.insert(decision.resolver);
        seen.outcomes.insert(decision.outcome.kind());
        for step in &decision.trace {
            seen.rules.insert(step.rule);
            seen.findings.insert(finding_type(&step.finding));
        }
    }
    assert!(decisions > 0, "{name}: a corpus ledger without decisions");
    assert_eq!(
        resolvers.len(),
        1,
        "{name}: one resolver version per corpus ledger, got {resolvers:?}"
    );
    Entry {
        name: name.to_owned(),
        resolver: resolvers.into_iter().next().unwrap_or_default(),
        decisions,
        digest: hasher.finalize().to_hex().to_string(),
    }
}

fn finding_type(f: &parley::vocab::Finding) -> String {
    let json = serde_json::to_value(f).expect("a finding serialises");
    json["finding"]
        .as_str()
        .expect("a finding names its type")
        .to_owned()
}

/// Every finding type the vocabulary has, from its JSON schema (so a new
/// variant joins the coverage check without anyone listing it).
pub fn every_finding_type() -> BTreeSet<String> {
    let schema = serde_json::to_value(schemars::schema_for!(parley::vocab::Finding)).unwrap();
    let mut out = BTreeSet::new();
    collect_tags(&schema, &mut out);
    assert!(
        out.len() >= 30,
        "the schema lists the finding types: {out:?}"
    );
    out
}

fn collect_tags(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(tag) = map
                .get("properties")
                .and_then(|p| p.get("finding"))
                .and_then(|f| {
                    f.get("const")
                        .or_else(|| f.get("enum").and_then(|e| e.get(0)))
                })
                .and_then(|c| c.as_str())
            {
                out.insert(tag.to_owned());
            }
            map.values().for_each(|x| collect_tags(x, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|x| collect_tags(x, out)),
        _ => {}
    }
}

fn render(entries: &[Entry]) -> String {
    let mut text = String::new();
    for e in entries {
        writeln!(
            text,
            "{} {} {} {}",
            e.name, e.resolver, e.decisions, e.digest
        )
        .unwrap();
    }
    text
}

/// The decisions of `b` are those of `a` but for their resolver version,
/// which is `version` in `b`.
pub fn same_but_version(name: &str, a: &[StoredRecord], b: &[StoredRecord], version: u32) {
    let decisions = |rs: &[StoredRecord]| -> Vec<parley::vocab::Decision> {
        rs.iter()
            .filter_map(|r| match &r.record.body {
                Body::Decision { decision } => Some((**decision).clone()),
                _ => None,
            })
            .collect()
    };
    let (a, b) = (decisions(a), decisions(b));
    assert_eq!(
        a.len(),
        b.len(),
        "{name}: as many decisions under version {version}"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(y.resolver, version, "{name}");
        let y = parley::vocab::Decision {
            resolver: x.resolver,
            ..y.clone()
        };
        assert_eq!(x, &y, "{name}: version {version} decides otherwise");
    }
}

/// Compares the entries with the stored corpus (or writes it under PARLEY_BLESS).
pub fn compare(entries: &[Entry]) {
    let text = render(entries);
    if std::env::var_os("PARLEY_BLESS").is_some() {
        std::fs::write(file(), &text).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(file()).expect("tests/corpus/decisions.txt");
    let by_name = |t: &str| -> BTreeMap<String, String> {
        t.lines()
            .map(|l| (l.split(' ').next().unwrap_or("").to_owned(), l.to_owned()))
            .collect()
    };
    let (stored, now) = (by_name(&stored), by_name(&text));
    for (name, want) in &stored {
        let got = now.get(name).map_or("(no such ledger now)", String::as_str);
        assert_eq!(
            got, want,
            "{name}: a decision of the corpus changed: a released resolver decides differently"
        );
    }
    let unrecorded: Vec<&String> = now.keys().filter(|n| !stored.contains_key(*n)).collect();
    assert!(
        unrecorded.is_empty(),
        "ledgers not in the corpus yet (bless them): {unrecorded:?}"
    );
}

/// Fails naming every finding type, rule or outcome no corpus decision used.
pub fn check_coverage(seen: &Seen) {
    let findings: Vec<String> = every_finding_type()
        .difference(&seen.findings)
        .cloned()
        .collect();
    let rules: Vec<RuleId> = RuleId::ALL
        .iter()
        .copied()
        .filter(|r| !seen.rules.contains(r))
        .collect();
    let outcomes: Vec<OutcomeKind> = OutcomeKind::ALL
        .iter()
        .copied()
        .filter(|o| !seen.outcomes.contains(o))
        .collect();
    assert!(
        findings.is_empty() && rules.is_empty() && outcomes.is_empty(),
        "the corpus never exercises: findings {findings:?}, rules {rules:?}, outcomes {outcomes:?}"
    );
}
