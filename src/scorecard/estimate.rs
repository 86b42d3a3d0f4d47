//! Estimates for decisions another rule set would have made differently.
//! Where the recorded action ran, outcomes are realized; where it did not,
//! this module estimates, with one documented, simple model fitted on the
//! ledger's own outcome records, and says so with its input count.
//!
//! **The model: price elasticity per category.** For every measured
//! `set_price` decision (`measure`), the change in units sold per ms
//! covered against the change in price: `ε = (Δunits/units) / (Δprice/price)`
//! in basis points; a category's ε is the mean of its decisions' (all
//! categories pooled where a category has none). A differing price decision
//! is estimated over its window on the sku's realized sales (any terms):
//! units `U`, revenue `R`, margin `M`; realized unit price `p = R/U` and
//! unit cost `k = (R − M)/U`; at the alternative price `p'`,
//! `U' = U · (1 + ε · (p' − p) / p)` (at least 0), `R' = U' · p'`,
//! `M' = U' · (p' − k)`. Other kinds of decision are counted, not estimated.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::context::Context;
use crate::outcomes::measure::{measure, Realized};
use crate::outcomes::{Outcomes, PriceChange, DAY_MS};
use crate::vocab::ActionKind;

/// The model's name in reports.
pub const MODEL: &str =
    "category price elasticity from measured set_price decisions (ARCHITECTURE.md, Outcomes)";

/// A category's fitted elasticity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Elasticity {
    /// Mean of the inputs, in basis points (−10,000: 1 % dearer sells 1 % fewer).
    pub elasticity_bp: i64,
    /// Measured price decisions it is fitted on.
    pub inputs: u64,
}

/// Elasticities by category, and pooled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Fit {
    pub categories: BTreeMap<String, Elasticity>,
    pub pooled: Option<Elasticity>,
}

impl Fit {
    fn for_category(&self, category: &str) -> Option<&Elasticity> {
        self.categories.get(category).or(self.pooled.as_ref())
    }
}

fn mean(xs: &[i64]) -> Option<Elasticity> {
    let n = xs.len() as i128;
    (n > 0).then(|| Elasticity {
        elasticity_bp: i64::try_from(xs.iter().map(|x| i128::from(*x)).sum::<i128>() / n)
            .unwrap_or(0),
        inputs: xs.len() as u64,
    })
}

/// The price change `intention` made on `sku`: when, the price before it
/// and the price it set.
fn change_of(o: &Outcomes, sku: &str, intention: u64) -> Option<(u64, i64, i64)> {
    let changes = &o.skus.get(sku)?.prices;
    let at = changes
        .iter()
        .position(|c| c.intention == Some(intention))?;
    let before: &PriceChange = changes.get(at.checked_sub(1)?)?;
    Some((
        changes[at].at_ms,
        before.price_minor,
        changes[at].price_minor,
    ))
}

/// One measured price decision's elasticity, in basis points.
fn elasticity(p0: i64, p1: i64, before: &Realized, after: &Realized) -> Option<i64> {
    let (u0, c0) = (i128::from(before.units), i128::from(before.covered_ms));
    let (u1, c1) = (i128::from(after.units), i128::from(after.covered_ms));
    let dp = i128::from(p1) - i128::from(p0);
    if u0 <= 0 || c0 <= 0 || c1 <= 0 || dp == 0 || p0 <= 0 {
        return None;
    }
    let num = (u1 * c0 - u0 * c1) * i128::from(p0) * 10_000;
    let den = u0 * c1 * dp;
    i64::try_from(num / den).ok()
}

/// Fits the model on the measured price decisions of `ctx`.
pub fn fit(ctx: &Context) -> Fit {
    let o = &ctx.outcomes;
    let mut by_category: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut all = Vec::new();
    for a in o.acted.values().filter(|a| a.kind == ActionKind::SetPrice) {
        let Some(sku) = a.skus.first() else { continue };
        let m = measure(a, ctx.now_ms);
        let e = change_of(o, sku, a.intention)
            .filter(|_| m.delta.is_some())
            .and_then(|(_, p0, p1)| elasticity(p0, p1, &m.baseline, &m.realized));
        let (Some(e), Some(s)) = (e, ctx.store.sku(sku)) else {
            continue;
        };
        by_category
            .entry(s.category.value.clone())
            .or_default()
            .push(e);
        all.push(e);
    }
    Fit {
        categories: by_category
            .into_iter()
            .filter_map(|(c, xs)| mean(&xs).map(|e| (c, e)))
            .collect(),
        pooled: mean(&all),
    }
}

/// A price decision the alternative makes differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub intention: u64,
    pub sku: String,
    /// When the difference starts, and for how long it is estimated.
    pub from_ms: u64,
    pub window_ms: u64,
    /// The price the alternative would have charged.
    pub alternative_price_minor: i64,
}

/// One estimated decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Estimated {
    pub intention: u64,
    pub sku: String,
    pub realized_margin_minor: i64,
    pub estimated_margin_minor: i64,
    pub realized_revenue_minor: i64,
    pub estimated_revenue_minor: i64,
    pub elasticity_bp: i64,
    pub inputs: u64,
}

/// Estimates `case` under `fit`; `None` when the model has no input for it
/// or the sku sold nothing in the window.
pub fn estimate(ctx: &Context, fit: &Fit, case: &Case) -> Option<Estimated> {
    let o = &ctx.outcomes;
    let category = &ctx.store.sku(&case.sku)?.category.value;
    let e = fit.for_category(category)?;
    let mut r = Realized::default();
    let to = case.from_ms.saturating_add(case.window_ms);
    for p in &o.skus.get(&case.sku)?.pieces {
        r.add(p, case.from_ms, to);
    }
    let (u, rev, m) = (
        i128::from(r.units),
        i128::from(r.revenue_minor),
        i128::from(r.margin_minor),
    );
    if u <= 0 || rev <= 0 {
        return None;
    }
    let alt = i128::from(case.alternative_price_minor);
    // U' = U + U·ε·(p' − p)/(p·10⁴) with p = R/U: U·(p' − p)/p = (U·p' − R)·U/R.
    let du = (u * alt - rev) * u * i128::from(e.elasticity_bp) / (rev * 10_000);
    let units = (u + du).max(0);
    let cost_per_unit_x_u = rev - m; // k·U
    let margin = units * alt - units * cost_per_unit_x_u / u;
    let revenue = units * alt;
    Some(Estimated {
        intention: case.intention,
        sku: case.sku.clone(),
        realized_margin_minor: r.margin_minor,
        estimated_margin_minor: i64::try_from(margin).ok()?,
        realized_revenue_minor: r.revenue_minor,
        estimated_revenue_minor: i64::try_from(revenue).ok()?,
        elasticity_bp: e.elasticity_bp,
        inputs: e.inputs,
    })
}

/// A price an intention asked for (what an alternative that approves it
/// would have charged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intended {
    pub sku: String,
    pub price_minor: i64,
    pub at_ms: u64,
}

/// What another rule set would have changed, realized where the recorded
/// actions ran and estimated where they would have differed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AlternativeScore {
    /// Where the rule set came from (a file name), and its blake3.
    pub rules: String,
    pub rules_hash: Option<crate::record::Digest>,
    /// Intentions whose final decision differs.
    pub changed: u64,
    /// Of them, price decisions approved by one side only.
    pub price_differences: u64,
    pub estimated: u64,
    /// Differences the model cannot estimate (other kinds of action, no
    /// sales in the window, no fitted elasticity).
    pub not_estimated: u64,
    /// Always `true`: these figures come from the model, not from outcomes.
    pub is_estimate: bool,
    pub model: String,
    pub fit: Fit,
    /// Estimated margin and revenue under the alternative, less realized.
    pub margin_delta_minor: i64,
    pub revenue_delta_minor: i64,
    pub decisions: Vec<Estimated>,
    /// The what-if's tallies: escalations recorded and under the alternative.
    pub escalations_recorded: u64,
    pub escalations_alternative: u64,
}

/// Scores an alternative from its what-if `report`; `intended` holds the
/// asked-for prices of the changed `set_price` intentions.
pub fn alternative(
    ctx: &Context,
    (rules, report): (&str, &crate::whatif::WhatIfReport),
    intended: &BTreeMap<u64, Intended>,
) -> AlternativeScore {
    let fit = fit(ctx);
    let window_ms = ctx
        .authority
        .rules
        .as_ref()
        .map_or(DAY_MS, |r| r.rules.live_window_ms().max(1));
    let mut s = AlternativeScore {
        rules: rules.to_owned(),
        rules_hash: report.rules_hash,
        changed: report.changed.len() as u64,
        price_differences: 0,
        estimated: 0,
        not_estimated: 0,
        is_estimate: true,
        model: MODEL.to_owned(),
        fit: fit.clone(),
        margin_delta_minor: 0,
        revenue_delta_minor: 0,
        decisions: Vec::new(),
        escalations_recorded: report.summary.recorded.escalations,
        escalations_alternative: report.summary.whatif.escalations,
    };
    for c in &report.changed {
        let approved = |v: &Option<crate::whatif::Verdict>| {
            v.as_ref().is_some_and(|v| v.outcome.is_approval())
        };
        let (was, would) = (approved(&c.recorded), approved(&c.whatif));
        if was == would {
            continue;
        }
        if c.action != ActionKind::SetPrice {
            s.not_estimated += 1;
            continue;
        }
        s.price_differences += 1;
        let case = case_of(ctx, c.seq, was, intended, window_ms);
        match case.and_then(|case| estimate(ctx, &fit, &case)) {
            Some(e) => {
                s.estimated += 1;
                s.margin_delta_minor = s
                    .margin_delta_minor
                    .saturating_add(e.estimated_margin_minor - e.realized_margin_minor);
                s.revenue_delta_minor = s
                    .revenue_delta_minor
                    .saturating_add(e.estimated_revenue_minor - e.realized_revenue_minor);
                s.decisions.push(e);
            }
            None => s.not_estimated += 1,
        }
    }
    s
}

/// The case of intention `seq`: the recorded approval undone (`was`), or
/// the intended price charged instead of the recorded terms.
fn case_of(
    ctx: &Context,
    seq: u64,
    was: bool,
    intended: &BTreeMap<u64, Intended>,
    window_ms: u64,
) -> Option<Case> {
    let i = intended.get(&seq)?;
    let (from_ms, price) = if was {
        // Undone: the price before it, from when it took effect.
        let (at, before, _) = change_of(&ctx.outcomes, &i.sku, seq)?;
        (at, before)
    } else {
        (i.at_ms, i.price_minor)
    };
    Some(Case {
        intention: seq,
        sku: i.sku.clone(),
        from_ms,
        window_ms,
        alternative_price_minor: price,
    })
}
