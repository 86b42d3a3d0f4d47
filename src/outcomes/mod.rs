//! Outcomes: what happened after each decision. A part of the shared
//! context, folded from the log like every other: `outcome` records are
//! attributed to the decision whose action was in force for their sku and
//! period ([`attribute`]); [`measure`] turns the attributed pieces into
//! realized impacts, forecast errors and precedent quality; `crate::scorecard`
//! reports them (above the context, which holds this part).
//!
//! **The terms in force.** A sku's selling terms change when a decision
//! approves a price (`set_price`, at the decision's time), when a catalog
//! record changes its price (no decision: the store's own baseline), and
//! when an approved promotion covering it starts or ends. At any instant the
//! decision in force is the one that changed the terms last; a sales period
//! that spans changes (or midnight, UTC) is split in proportion to time, in
//! integer minor units whose parts add up to the whole exactly. So every
//! sales record's every piece is attributed to at most one decision.
//!
//! Architecture invariant: pure, like the rest of the context. Bounded:
//! [`CHANGES_PER_SKU_MAX`] term changes and [`PIECES_PER_SKU_MAX`] pieces per
//! sku, [`ACTED_MAX`] decisions, [`DAYS_MAX`] days of daily totals; the
//! oldest leave first, and only totals remember them.

pub mod attribute;
pub mod measure;

use std::collections::{BTreeMap, VecDeque};

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::invariant::{Part, Violation};
use crate::vocab::{Action, ActionKind, Decision, Impact, Observed, OutcomeKind, RuleId};

/// Most changes of terms (prices, promotions) kept per sku.
pub const CHANGES_PER_SKU_MAX: usize = 256;
/// Most attributed sales pieces kept per sku.
pub const PIECES_PER_SKU_MAX: usize = 2_048;
/// Most acted-on decisions kept (their projections and provenance).
pub const ACTED_MAX: usize = 65_536;
/// Most acted-on decisions per sku that new pieces are added to (a window
/// holds far fewer).
pub const ACTED_PER_SKU_MAX: usize = 64;
/// Most decisions kept per agent and per precedent, newest first.
pub const PER_KEY_MAX: usize = 256;
/// Most days of daily totals kept.
pub const DAYS_MAX: usize = 3_660;
/// One UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// When a sku's terms changed, and which decision changed them (`None`:
/// the store's own catalog).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct PriceChange {
    pub at_ms: u64,
    pub price_minor: i64,
    pub intention: Option<u64>,
}

/// An approved promotion's span on one sku.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct PromotionSpan {
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
    pub intention: u64,
}

/// A part of a sales record, inside one regime of terms and one day.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Piece {
    /// The `outcome` record it came from.
    pub seq: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    /// The intention whose decision was in force (`None`: no decision).
    pub intention: Option<u64>,
    pub units: i64,
    pub revenue_minor: i64,
    pub margin_minor: i64,
}

/// One sku's terms and the sales attributed under them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct SkuTerms {
    /// In time order.
    pub prices: VecDeque<PriceChange>,
    /// In decision order.
    pub promotions: VecDeque<PromotionSpan>,
    /// In the order they were attributed.
    pub pieces: VecDeque<Piece>,
    /// The newest acted-on decisions on this sku (at most
    /// [`ACTED_PER_SKU_MAX`]): each new piece that meets one's windows is
    /// added to its sums.
    pub acted: VecDeque<Windows>,
}

/// An acted-on decision's windows on a sku: its own `[from, from + w)` and
/// its baseline's `[from − w, from)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Windows {
    pub intention: u64,
    pub from_ms: u64,
    pub window_ms: u64,
}

impl Windows {
    /// Does `[a, b)` meet either window?
    fn meets(&self, a: u64, b: u64) -> bool {
        let lo = self.from_ms.saturating_sub(self.window_ms);
        let hi = self.from_ms.saturating_add(self.window_ms);
        a < hi && lo < b
    }
}

/// An intention a decision approved, with what its agent projected.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Acted {
    pub intention: u64,
    /// The decision record that approved it.
    pub decision: u64,
    pub agent: String,
    pub kind: ActionKind,
    /// The skus whose terms it changed (sorted).
    pub skus: Vec<String>,
    pub projected: Impact,
    /// When its terms took effect.
    pub from_ms: u64,
    /// The rule that decided.
    pub rule: RuleId,
    /// The human resolution whose precedent settled it, if one did.
    pub precedent: Option<u64>,
    /// The live window of the rules in force when it was decided: the span
    /// over which its realized impact is measured.
    pub window_ms: u64,
    /// Sales under it inside `[from_ms, from_ms + window_ms)`, and on its
    /// skus under other terms in the window before: kept as pieces are
    /// attributed, so measuring it reads two sums.
    pub realized: measure::Realized,
    pub baseline: measure::Realized,
}

impl Acted {
    /// Adds the part of piece `p` (of one of its skus) that falls in its
    /// window, or in its baseline's.
    fn take(&mut self, p: &Piece) {
        let (from, w) = (self.from_ms, self.window_ms);
        if p.intention == Some(self.intention) {
            self.realized.add(p, from, from.saturating_add(w));
        } else {
            self.baseline.add(p, from.saturating_sub(w), from);
        }
    }
}

/// Sums over every outcome ever folded (never retired).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Totals {
    pub sales_records: u64,
    pub units: i64,
    pub revenue_minor: i64,
    pub margin_minor: i64,
    pub refunds: u64,
    pub refunded_units: i64,
    pub refund_minor: i64,
    pub complaints: u64,
    pub stock_outs: u64,
    pub stock_out_ms: u64,
    pub campaigns: u64,
    pub campaign_spend_minor: i64,
    pub campaign_revenue_minor: i64,
}

/// One UTC day's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Day {
    pub units: i64,
    pub revenue_minor: i64,
    pub margin_minor: i64,
    pub refund_minor: i64,
    pub complaints: u64,
    /// Decisions made that day, by outcome (approved, deferred, …).
    pub decisions: BTreeMap<OutcomeKind, u64>,
    /// Human resolutions that day, and the minutes their intentions had
    /// waited since they were announced.
    pub resolutions: u64,
    pub waited_minutes: u64,
}

/// What each rule decided, by outcome.
pub type RuleTally = BTreeMap<RuleId, BTreeMap<OutcomeKind, u64>>;

/// The outcomes part of the context.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Outcomes {
    pub skus: BTreeMap<String, SkuTerms>,
    /// By intention seq.
    pub acted: BTreeMap<u64, Acted>,
    /// Acted-on intentions per agent, oldest first.
    pub by_agent: BTreeMap<String, VecDeque<u64>>,
    /// Intentions each precedent (its resolution seq) settled, oldest first.
    pub by_precedent: BTreeMap<u64, VecDeque<u64>>,
    pub totals: Totals,
    /// By day number (ms / [`DAY_MS`]).
    pub days: BTreeMap<u64, Day>,
    pub by_rule: RuleTally,
    /// Human resolutions (by seq) and the intention each settled.
    pub resolutions: BTreeMap<u64, u64>,
    /// The last `outcome` record folded.
    pub last_outcome: u64,
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, max: usize) {
    q.push_back(item);
    while q.len() > max {
        q.pop_front();
    }
}

impl Outcomes {
    fn day(&mut self, at_ms: u64) -> &mut Day {
        let n = at_ms / DAY_MS;
        // The bound first: a full map is rare, and the look-up costs more.
        if self.days.len() >= DAYS_MAX && !self.days.contains_key(&n) {
            self.days.pop_first();
        }
        self.days.entry(n).or_default()
    }

    /// A catalog record set `sku`'s price: a change of terms by no
    /// decision, when the price is new.
    pub fn on_catalog_price(&mut self, sku: &str, at_ms: u64, price_minor: i64) {
        let terms = self.skus.entry(sku.to_owned()).or_default();
        if terms
            .prices
            .back()
            .is_some_and(|p| p.price_minor == price_minor)
        {
            return;
        }
        let change = PriceChange {
            at_ms,
            price_minor,
            intention: None,
        };
        push_bounded(&mut terms.prices, change, CHANGES_PER_SKU_MAX);
    }

    /// A decision was recorded: tallied by rule and day; when it approved
    /// an action that changes selling terms, the change and what its agent
    /// projected are kept. `skus` are the skus the action covers now.
    pub fn on_decision(&mut self, at: (u64, u64), d: &Decision, acted: Option<Acting<'_>>) {
        let (seq, at_ms) = at;
        let kind = d.outcome.kind();
        *self
            .by_rule
            .entry(d.rule)
            .or_default()
            .entry(kind)
            .or_default() += 1;
        *self.day(at_ms).decisions.entry(kind).or_default() += 1;
        let Some(a) = acted else { return };
        let from_ms = match a.action {
            Action::SetPrice { sku, price_minor } => {
                let terms = self.skus.entry(sku.clone()).or_default();
                let change = PriceChange {
                    at_ms,
                    price_minor: *price_minor,
                    intention: Some(d.intention),
                };
                push_bounded(&mut terms.prices, change, CHANGES_PER_SKU_MAX);
                at_ms
            }
            Action::LaunchPromotion {
                starts_at_ms,
                ends_at_ms,
                ..
            } => {
                for sku in a.skus {
                    let terms = self.skus.entry(sku.clone()).or_default();
                    let span = PromotionSpan {
                        starts_at_ms: (*starts_at_ms).max(at_ms),
                        ends_at_ms: *ends_at_ms,
                        intention: d.intention,
                    };
                    push_bounded(&mut terms.promotions, span, CHANGES_PER_SKU_MAX);
                }
                (*starts_at_ms).max(at_ms)
            }
            _ => return,
        };
        let precedent = d.cited(crate::vocab::CiteRole::Precedent).next();
        let mut skus = match a.action {
            Action::SetPrice { sku, .. } => vec![sku.clone()],
            _ => a.skus.to_vec(),
        };
        skus.sort();
        skus.dedup();
        self.keep(Acted {
            intention: d.intention,
            decision: seq,
            agent: a.agent.to_owned(),
            kind: a.action.kind(),
            skus,
            projected: a.projected,
            from_ms,
            rule: d.rule,
            precedent,
            window_ms: a.window_ms,
            realized: measure::Realized::default(),
            baseline: measure::Realized::default(),
        });
    }

    fn keep(&mut self, mut acted: Acted) {
        let i = acted.intention;
        // Sales already attributed may fall in its baseline window.
        for sku in acted.skus.clone() {
            let terms = self.skus.entry(sku).or_default();
            for p in &terms.pieces {
                acted.take(p);
            }
            let w = Windows {
                intention: i,
                from_ms: acted.from_ms,
                window_ms: acted.window_ms,
            };
            push_bounded(&mut terms.acted, w, ACTED_PER_SKU_MAX);
        }
        push_bounded(
            self.by_agent.entry(acted.agent.clone()).or_default(),
            i,
            PER_KEY_MAX,
        );
        if let Some(p) = acted.precedent {
            push_bounded(self.by_precedent.entry(p).or_default(), i, PER_KEY_MAX);
        }
        self.acted.insert(i, acted);
        while self.acted.len() > ACTED_MAX {
            self.acted.pop_first();
        }
    }

    /// A human's resolution (seq `resolution`) settled the escalation of
    /// `intention`, which waited `waited_ms`; it may become a precedent.
    pub fn on_resolution(
        &mut self,
        (resolution, at_ms): (u64, u64),
        intention: u64,
        waited_ms: u64,
    ) {
        self.resolutions.insert(resolution, intention);
        while self.resolutions.len() > ACTED_MAX {
            self.resolutions.pop_first();
        }
        let day = self.day(at_ms);
        day.resolutions += 1;
        day.waited_minutes += waited_ms / 60_000;
    }

    /// Folds one `outcome` record in.
    pub fn observe(&mut self, seq: u64, at_ms: u64, o: &Observed) {
        // A refund record reports each of its lines at its own seq.
        debug_assert!(seq >= self.last_outcome, "outcomes fold in log order");
        self.last_outcome = seq;
        let t = &mut self.totals;
        match o {
            Observed::Sales { .. } => self.observe_sales(seq, o),
            Observed::Refund {
                units,
                refund_minor,
                ..
            } => {
                t.refunds += 1;
                t.refunded_units = t.refunded_units.saturating_add(*units);
                t.refund_minor = t.refund_minor.saturating_add(*refund_minor);
                let day = self.day(at_ms);
                day.refund_minor = day.refund_minor.saturating_add(*refund_minor);
            }
            Observed::Complaint { .. } => {
                t.complaints += 1;
                self.day(at_ms).complaints += 1;
            }
            Observed::StockOut { from_ms, to_ms, .. } => {
                t.stock_outs += 1;
                t.stock_out_ms = t
                    .stock_out_ms
                    .saturating_add(to_ms.saturating_sub(*from_ms));
            }
            Observed::Campaign {
                spend_minor,
                attributed_revenue_minor,
                ..
            } => {
                t.campaigns += 1;
                t.campaign_spend_minor = t.campaign_spend_minor.saturating_add(*spend_minor);
                t.campaign_revenue_minor = t
                    .campaign_revenue_minor
                    .saturating_add(*attributed_revenue_minor);
            }
        }
    }

    fn observe_sales(&mut self, seq: u64, o: &Observed) {
        let Observed::Sales { sku, .. } = o else {
            return;
        };
        let terms = self.skus.entry(sku.clone()).or_default();
        let pieces = attribute::split(seq, o, terms);
        debug_assert!(
            pieces.is_empty() || attribute::adds_up(o, &pieces),
            "pieces add up to the record"
        );
        // The sku's terms are looked up once for all its pieces: each piece
        // goes to the acted-on decisions whose windows it meets, then joins
        // the sku's pieces. The sums below touch other parts only, so doing
        // them after changes nothing.
        for p in &pieces {
            for w in terms.acted.iter().filter(|w| w.meets(p.from_ms, p.to_ms)) {
                if let Some(a) = self.acted.get_mut(&w.intention) {
                    a.take(p);
                }
            }
            push_bounded(&mut terms.pieces, p.clone(), PIECES_PER_SKU_MAX);
        }
        self.totals.sales_records += 1;
        for p in &pieces {
            let t = &mut self.totals;
            t.units = t.units.saturating_add(p.units);
            t.revenue_minor = t.revenue_minor.saturating_add(p.revenue_minor);
            t.margin_minor = t.margin_minor.saturating_add(p.margin_minor);
            let day = self.day(p.from_ms);
            day.units = day.units.saturating_add(p.units);
            day.revenue_minor = day.revenue_minor.saturating_add(p.revenue_minor);
            day.margin_minor = day.margin_minor.saturating_add(p.margin_minor);
        }
    }

    /// The bounds hold, price changes are in time order and every decision
    /// is kept under its own intention.
    pub fn check(&self) -> Result<(), Violation> {
        let fail = |broken: &'static str| {
            Err(Violation {
                part: Part::Outcomes,
                broken,
            })
        };
        for t in self.skus.values() {
            if t.prices.len() > CHANGES_PER_SKU_MAX
                || t.promotions.len() > CHANGES_PER_SKU_MAX
                || t.pieces.len() > PIECES_PER_SKU_MAX
            {
                return fail("a sku keeps more changes or pieces than its bound");
            }
            if t.prices
                .iter()
                .zip(t.prices.iter().skip(1))
                .any(|(a, b)| a.at_ms > b.at_ms)
            {
                return fail("a sku's price changes are out of time order");
            }
        }
        if self.acted.len() > ACTED_MAX || self.days.len() > DAYS_MAX {
            return fail("more decisions or days than the bound");
        }
        if self
            .skus
            .values()
            .any(|t| t.acted.len() > ACTED_PER_SKU_MAX)
        {
            return fail("a sku lists more acted-on decisions than its bound");
        }
        if self.acted.iter().any(|(i, a)| *i != a.intention) {
            return fail("an acted-on decision is kept under another intention");
        }
        Ok(())
    }
}

/// What `on_decision` needs of an approved intention.
#[derive(Clone, Copy, Debug)]
pub struct Acting<'a> {
    pub agent: &'a str,
    /// The action that took effect (the modified one, if modified).
    pub action: &'a Action,
    pub skus: &'a [String],
    pub projected: Impact,
    pub window_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_outcome_is_counted_and_summed() {
        let mut o = Outcomes::default();
        let day = 20_000 * DAY_MS;
        let kinds = [
            Observed::Refund {
                sku: "S1".into(),
                order: Some("O1".into()),
                units: 2,
                refund_minor: 1_998,
            },
            Observed::Complaint {
                customer: "C1".into(),
                order: None,
                topic: "late".into(),
            },
            Observed::StockOut {
                sku: "S1".into(),
                from_ms: day,
                to_ms: day + 7_200_000,
            },
            Observed::Campaign {
                campaign: "spring".into(),
                from_ms: day,
                to_ms: day + DAY_MS,
                spend_minor: 5_000,
                attributed_revenue_minor: 18_000,
            },
        ];
        for (seq, k) in (1u64..).zip(&kinds) {
            o.observe(seq, day + DAY_MS, k);
        }
        let t = &o.totals;
        assert_eq!((t.refunds, t.refunded_units, t.refund_minor), (1, 2, 1_998));
        assert_eq!(
            (t.complaints, t.stock_outs, t.stock_out_ms),
            (1, 1, 7_200_000)
        );
        assert_eq!(
            (
                t.campaigns,
                t.campaign_spend_minor,
                t.campaign_revenue_minor
            ),
            (1, 5_000, 18_000)
        );
        let d = &o.days[&(day / DAY_MS + 1)];
        assert_eq!((d.refund_minor, d.complaints), (1_998, 1));
        assert_eq!(o.last_outcome, 4);
        assert_eq!(o.check(), Ok(()));
    }
}
