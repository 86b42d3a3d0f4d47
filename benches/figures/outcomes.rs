//! Figure 11: outcomes at scale. A ledger of `n` records: 1,000 skus, a
//! sales record per sku and day, and each day 50 price decisions (measured
//! the next day). `parley scorecard` (open, the context at the head,
//! compute) is timed against a fold of the same records from the first one,
//! and beside the context alone as the command gets it (the writer's
//! snapshot, checked records, the records after it folded); `parley suggest`
//! (open, the context, proposals and each one's what-if preview) against one
//! scored what-if of the same records (open and context included both ways).

use std::path::Path;
use std::time::Instant;

use parley::command::Command;
use parley::ledger::Ledger;
use parley::reader::{LedgerRead, LogView};

use crate::stats::Rounds;
use crate::store::{options, Pipeline, T0_MS};

const SKUS: u64 = 1_000;
const DAY_MS: u64 = 86_400_000;
const PRICES_PER_DAY: u64 = 50;

pub struct Outcomes {
    pub records: u64,
    /// Seconds of `parley scorecard`, of the context alone as it gets it,
    /// and of a fold from the first record.
    pub scorecard_s: Rounds,
    pub context_s: Rounds,
    pub fold_s: Rounds,
    /// Seconds of `parley suggest`, and of one what-if.
    pub suggest_s: Rounds,
    pub whatif_s: Rounds,
    pub proposals: usize,
    pub measured_decisions: u64,
}

fn cost(s: u64) -> i64 {
    2000 + (s % 500) as i64
}

fn price(s: u64, d: u64) -> i64 {
    4000 + (s % 500) as i64 + ((s * 31 + d * 17) % 400) as i64
}

/// The day's commands: 50 price intentions at noon, then every sku's sales.
fn day(d: u64, out: &mut Vec<String>) {
    let noon = T0_MS + d * DAY_MS + DAY_MS / 2;
    for k in 0..PRICES_PER_DAY {
        let s = (d * PRICES_PER_DAY + k) * 7919 % SKUS;
        out.push(format!(
            r#"{{"producer":"pricing","at_ms":{noon},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S{s}","price_minor":{}}},"reasoning":"follow demand","impact":{{"revenue_minor":20000,"margin_minor":4000}},"objective":"sales-growth"}}}}"#,
            price(s, d + 1)
        ));
    }
    let (from, to) = (T0_MS + d * DAY_MS, T0_MS + (d + 1) * DAY_MS);
    for s in 0..SKUS {
        let units = 10 + ((s * 13 + d * 7) % 11) as i64;
        let p = price(s, d);
        out.push(format!(
            r#"{{"producer":"orders","at_ms":{to},"kind":"outcome","outcome":{{"type":"sales","sku":"S{s}","from_ms":{from},"to_ms":{to},"units":{units},"revenue_minor":{},"margin_minor":{}}}}}"#,
            units * p,
            units * (p - cost(s))
        ));
    }
}

/// Writes the ledger (about `n` records) into `dir`.
fn generate(dir: &Path, n: u64) {
    let _ = std::fs::remove_dir_all(dir);
    let (ledger, _) = Ledger::open(dir, options()).expect("open");
    let mut pipe = Pipeline::new(&ledger, 1024);
    let mut lines = Vec::new();
    for (agent, domain) in [
        ("pricing", "pricing"),
        ("merchandising", "merchandising"),
        ("orders", "orders"),
    ] {
        lines.push(format!(r#"{{"producer":"ops","at_ms":{T0_MS},"kind":"agent_registered","profile":{{"agent":"{agent}","domain":"{domain}","priority":50}}}}"#));
    }
    for s in 0..SKUS {
        lines.push(format!(
            r#"{{"producer":"merchandising","at_ms":{T0_MS},"kind":"catalog","sku":"S{s}","category":"c{}","cost_minor":{},"price_minor":{},"stock":100,"lifecycle":"active"}}"#,
            s % 20,
            cost(s),
            price(s, 0)
        ));
    }
    let per_day = SKUS + 2 * PRICES_PER_DAY;
    for d in 0..n.div_ceil(per_day) {
        day(d, &mut lines);
        for l in lines.drain(..) {
            pipe.submit(Command::parse(&l).expect("command"));
        }
    }
    pipe.drain();
    ledger.close().expect("close");
}

fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let start = Instant::now();
    let v = f();
    (start.elapsed().as_secs_f64(), v)
}

pub fn figure(root: &Path, n: u64, rounds: usize) -> Outcomes {
    let dir = root.join("outcomes");
    generate(&dir, n);
    let (mut card, mut fold, mut sugg, mut what) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut context = Vec::new();
    let (mut proposals, mut measured, mut records) = (0, 0, 0);
    for _ in 0..rounds {
        let (s, _) = timed(|| {
            let (view, _) = LogView::open(&dir).expect("view");
            let files = view.files().expect("a directory's view");
            parley::reader::fold(files, view.head_seq()).expect("fold")
        });
        fold.push(s);
        let (s, from) = timed(|| {
            let (view, _) = LogView::open(&dir).expect("view");
            view.context_from_snapshot(view.head_seq())
                .expect("context")
        });
        assert!(from.1.is_some(), "the closed ledger's snapshot was used");
        context.push(s);
        let (s, c) = timed(|| {
            let (view, _) = LogView::open(&dir).expect("view");
            let ctx = view.context_at(view.head_seq()).expect("fold");
            parley::scorecard::scorecard(&ctx, None, None)
        });
        card.push(s);
        records = c.ledger_seq;
        measured = c.agents.iter().map(|a| a.measured).sum();
        let (s, r) = timed(|| {
            let (view, _) = LogView::open(&dir).expect("view");
            let ctx = view.context_at(view.head_seq()).expect("fold");
            parley::alternatives::suggestions(&view, &ctx).expect("suggest")
        });
        sugg.push(s);
        proposals = r.suggestions.len();
        let text = crate::replay::alternative_rules();
        let (s, _) = timed(|| {
            let (view, _) = LogView::open(&dir).expect("view");
            let ctx = view.context_at(view.head_seq()).expect("fold");
            let rules = parley::rules::RuleSet::parse(&text).expect("rules");
            parley::alternatives::score(&view, &ctx, "alt", (text.clone(), rules)).expect("what-if")
        });
        what.push(s);
    }
    if std::env::var_os("PARLEY_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Outcomes {
        records,
        scorecard_s: Rounds::new(card),
        context_s: Rounds::new(context),
        fold_s: Rounds::new(fold),
        suggest_s: Rounds::new(sugg),
        whatif_s: Rounds::new(what),
        proposals,
        measured_decisions: measured,
    }
}

impl crate::report::Report {
    /// Figure 11: the scorecard and suggestions over a ledger with outcomes.
    pub fn outcomes(&mut self, o: &Outcomes) {
        use crate::stats::ratios;
        let card = o.scorecard_s.median();
        self.row(
            11,
            "scorecard_1m_s",
            format!(
                "parley scorecard over {} records ({} measured decisions), open and context included",
                o.records, o.measured_decisions
            ),
            &o.scorecard_s,
            format!(
                "a fold from the first record: {:.2} s; the context as the command gets it (snapshot, checked log, records after it): {:.2} s",
                o.fold_s.median(),
                o.context_s.median()
            ),
            "< 2 s",
            Some(card < 2.0),
        );
        self.row(
            11,
            "scorecard_ratio_vs_fold",
            "scorecard time over a fold's from the first record".into(),
            &ratios(&o.scorecard_s, &o.fold_s),
            String::new(),
            "",
            None,
        );
        let sugg = o.suggest_s.median();
        self.row(
            11,
            "suggest_1m_s",
            format!(
                "parley suggest over the same records ({} proposals, each previewed)",
                o.proposals
            ),
            &o.suggest_s,
            format!("one scored what-if: {:.2} s", o.whatif_s.median()),
            "< 5 s",
            Some(sugg < 5.0),
        );
        self.row(
            11,
            "suggest_ratio_vs_whatif",
            "suggest time over one what-if's".into(),
            &ratios(&o.suggest_s, &o.whatif_s),
            String::new(),
            "",
            None,
        );
    }
}
