//! The scorecard: what the outcomes part of a context says, as a report
//! (`parley scorecard`, `GET /v1/scorecard`). A pure function of the
//! context, so a live server's scorecard and one from a replay of the same
//! log are equal.

pub mod estimate;
pub mod suggest;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::context::Context;
use crate::outcomes::measure::{self, Forecast, PrecedentRecord, Realized};
use crate::outcomes::{Acted, Day, Outcomes, DAY_MS};
use crate::vocab::{ActionKind, Impact, OutcomeKind, RuleId};

/// Most decisions a scorecard lists (the newest); the counts cover all.
pub const DECISIONS_LISTED_MAX: usize = 1_000;

/// Sums over the outcomes in a range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Sums {
    pub units: i64,
    pub revenue_minor: i64,
    pub margin_minor: i64,
    pub refund_minor: i64,
    pub complaints: u64,
}

/// One UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DayScore {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub from_ms: u64,
    #[serde(flatten)]
    pub sums: Sums,
    /// Decisions made that day, by outcome.
    pub decisions: BTreeMap<OutcomeKind, u64>,
    pub escalations: u64,
    pub resolutions: u64,
    /// Minutes the escalations settled that day waited for a person.
    pub waited_minutes: u64,
}

/// An acted-on decision: what its agent projected and what followed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DecisionScore {
    pub intention: u64,
    pub decision: u64,
    pub agent: String,
    pub kind: ActionKind,
    pub skus: Vec<String>,
    pub rule: RuleId,
    pub from_ms: u64,
    pub window_ms: u64,
    pub projected: Impact,
    /// Under this decision, inside its window.
    pub realized: Realized,
    /// Under other terms, in the window before.
    pub baseline: Realized,
    /// Realized less baseline at the same coverage (`None`: not yet
    /// measurable: the window is open, or a stretch has no sales).
    pub delta: Option<Impact>,
    /// `delta − projected` revenue impact, once measured.
    pub forecast_error_minor: Option<i64>,
    /// The precedent (its resolution seq) that settled it, if one did.
    pub precedent: Option<u64>,
}

/// What a rule decided and what followed its approvals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RuleScore {
    pub rule: RuleId,
    pub decided: BTreeMap<OutcomeKind, u64>,
    /// Its approvals that changed selling terms (kept), and of them measured.
    pub acted: u64,
    pub measured: u64,
    /// Realized margin under those approvals, inside their windows.
    pub realized_margin_minor: i64,
    /// Their summed margin impact (realized less baseline), once measured.
    pub delta_margin_minor: i64,
}

/// A precedent's record and whether the rules in force retire it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PrecedentScore {
    #[serde(flatten)]
    pub record: PrecedentRecord,
    pub retired: bool,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Scorecard {
    /// The context's seq: the report is as of this record.
    pub ledger_seq: u64,
    pub now_ms: u64,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// Outcome records folded, by type (whole ledger).
    pub records: BTreeMap<String, u64>,
    /// Sums over the days in range (the whole ledger without a range).
    pub realized: Sums,
    pub days: Vec<DayScore>,
    /// Acted-on decisions in range, newest first (at most 1,000).
    pub decisions: Vec<DecisionScore>,
    pub decisions_total: u64,
    pub agents: Vec<Forecast>,
    pub rules: Vec<RuleScore>,
    pub precedents: Vec<PrecedentScore>,
    pub resolutions: u64,
    pub waited_minutes: u64,
    /// Stock-outs and campaigns (whole ledger).
    pub stock_out_ms: u64,
    pub campaign_spend_minor: i64,
    pub campaign_revenue_minor: i64,
}

/// `parley scorecard --json` and `GET /v1/scorecard`: the scorecard and
/// what other rule sets would have changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Report {
    #[serde(flatten)]
    pub scorecard: Scorecard,
    /// One per alternative rule set, in the order given: estimates,
    /// labelled so (`is_estimate`).
    pub alternatives: Vec<estimate::AlternativeScore>,
}

fn sums_of(d: &Day) -> Sums {
    Sums {
        units: d.units,
        revenue_minor: d.revenue_minor,
        margin_minor: d.margin_minor,
        refund_minor: d.refund_minor,
        complaints: d.complaints,
    }
}

fn add(a: &mut Sums, b: &Sums) {
    a.units = a.units.saturating_add(b.units);
    a.revenue_minor = a.revenue_minor.saturating_add(b.revenue_minor);
    a.margin_minor = a.margin_minor.saturating_add(b.margin_minor);
    a.refund_minor = a.refund_minor.saturating_add(b.refund_minor);
    a.complaints = a.complaints.saturating_add(b.complaints);
}

/// The scorecard of `ctx`, for days and decisions in `[from_ms, to_ms)`.
pub fn scorecard(ctx: &Context, from_ms: Option<u64>, to_ms: Option<u64>) -> Scorecard {
    let o = &ctx.outcomes;
    let now = ctx.now_ms;
    let in_range = |t: u64| from_ms.is_none_or(|f| t >= f) && to_ms.is_none_or(|e| t < e);
    let days = days(o, &in_range);
    let realized = match (from_ms, to_ms) {
        (None, None) => totals(o),
        _ => days.iter().fold(Sums::default(), |mut s, d| {
            add(&mut s, &d.sums);
            s
        }),
    };
    let all: Vec<DecisionScore> = o
        .acted
        .values()
        .rev()
        .filter(|a| in_range(a.from_ms))
        .map(|a| decision_score(a, now))
        .collect();
    let decisions_total = all.len() as u64;
    let rules = rule_scores(o, &all);
    let mut decisions = all;
    decisions.truncate(DECISIONS_LISTED_MAX);
    let agents = o
        .by_agent
        .keys()
        .map(|a| measure::forecast(o, a, now))
        .collect();
    Scorecard {
        ledger_seq: ctx.seq,
        now_ms: now,
        from_ms,
        to_ms,
        records: records(o),
        realized,
        resolutions: days.iter().map(|d| d.resolutions).sum(),
        waited_minutes: days.iter().map(|d| d.waited_minutes).sum(),
        days,
        decisions,
        decisions_total,
        agents,
        rules,
        precedents: precedents(ctx),
        stock_out_ms: o.totals.stock_out_ms,
        campaign_spend_minor: o.totals.campaign_spend_minor,
        campaign_revenue_minor: o.totals.campaign_revenue_minor,
    }
}

fn totals(o: &Outcomes) -> Sums {
    let t = &o.totals;
    Sums {
        units: t.units,
        revenue_minor: t.revenue_minor,
        margin_minor: t.margin_minor,
        refund_minor: t.refund_minor,
        complaints: t.complaints,
    }
}

fn records(o: &Outcomes) -> BTreeMap<String, u64> {
    let t = &o.totals;
    [
        ("sales", t.sales_records),
        ("refund", t.refunds),
        ("complaint", t.complaints),
        ("stock_out", t.stock_outs),
        ("campaign", t.campaigns),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn days(o: &Outcomes, in_range: &dyn Fn(u64) -> bool) -> Vec<DayScore> {
    o.days
        .iter()
        .filter(|(n, _)| in_range(**n * DAY_MS))
        .map(|(n, d)| DayScore {
            day: crate::time::day_text(*n * DAY_MS),
            from_ms: *n * DAY_MS,
            sums: sums_of(d),
            decisions: d.decisions.clone(),
            escalations: d
                .decisions
                .get(&OutcomeKind::Escalated)
                .copied()
                .unwrap_or(0),
            resolutions: d.resolutions,
            waited_minutes: d.waited_minutes,
        })
        .collect()
}

fn decision_score(a: &Acted, now_ms: u64) -> DecisionScore {
    let m = measure::measure(a, now_ms);
    DecisionScore {
        intention: a.intention,
        decision: a.decision,
        agent: a.agent.clone(),
        kind: a.kind,
        skus: a.skus.clone(),
        rule: a.rule,
        from_ms: a.from_ms,
        window_ms: a.window_ms,
        projected: a.projected,
        realized: m.realized,
        baseline: m.baseline,
        forecast_error_minor: m
            .delta
            .map(|d| d.revenue_minor.saturating_sub(a.projected.revenue_minor)),
        delta: m.delta,
        precedent: a.precedent,
    }
}

fn rule_scores(o: &Outcomes, decisions: &[DecisionScore]) -> Vec<RuleScore> {
    o.by_rule
        .iter()
        .map(|(rule, decided)| {
            let mine = decisions.iter().filter(|d| d.rule == *rule);
            let mut r = RuleScore {
                rule: *rule,
                decided: decided.clone(),
                acted: 0,
                measured: 0,
                realized_margin_minor: 0,
                delta_margin_minor: 0,
            };
            for d in mine {
                r.acted += 1;
                r.realized_margin_minor = r
                    .realized_margin_minor
                    .saturating_add(d.realized.margin_minor);
                if let Some(delta) = d.delta {
                    r.measured += 1;
                    r.delta_margin_minor = r.delta_margin_minor.saturating_add(delta.margin_minor);
                }
            }
            r
        })
        .collect()
}

fn precedents(ctx: &Context) -> Vec<PrecedentScore> {
    let o = &ctx.outcomes;
    let rule = ctx.authority.rules.as_ref().map(|r| &r.rules.precedent);
    let worse = rule.and_then(|r| r.retire_if_worse_bp);
    let min = rule
        .and_then(|r| r.retire_after_cases)
        .unwrap_or(crate::rules::RETIRE_AFTER_CASES_DEFAULT);
    o.resolutions
        .iter()
        .filter(|(r, _)| {
            o.by_precedent.contains_key(r) || ctx.precedents.by_resolution.contains_key(r)
        })
        .map(|(resolution, intention)| {
            let record = measure::precedent(o, *resolution, *intention, ctx.now_ms);
            let retired = worse.is_some_and(|w| record.worse_by(w, u64::from(min)));
            PrecedentScore { record, retired }
        })
        .collect()
}
