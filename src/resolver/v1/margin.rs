//! `guard.margin`: a price change or promotion must leave every covered sku's
//! margin, after the largest discount that applies to it (active or planned),
//! at or above `min_margin_bp`. A rejection says how many skus fail and lists
//! the first [`LISTED_MAX`] with their numbers; for a promotion over several
//! skus it names the ones that would pass, so the agent can announce a
//! narrower promotion.

use super::steps::{Eval, Step};
use super::{read, LISTED_MAX};
use crate::bounds::SKUS_MAX;
use crate::effect::{effective_price, margin_bp};
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::{Action, CiteRole, Field, Finding, Outcome, Read, RuleId, SkuMargin, Verdict};

/// One sku to check, with the provenance of each number.
struct Check {
    sku: String,
    price: i64,
    /// Who wrote the price: a record seq, and the intention behind it if an
    /// approved action set it.
    price_read: Read,
    price_setter: Option<u64>,
    /// The discount and the promotion (intention, approving decision) it
    /// comes from; `None` for no discount.
    discount_bp: u32,
    discount_from: Option<(u64, u64)>,
}

impl Eval<'_> {
    /// The largest discount on `sku` among the plan's promotions (not this
    /// intention): (bp, intention, decision).
    fn largest_discount(&self, sku: &str) -> Option<(u32, u64, u64)> {
        self.ctx
            .promotions_on(sku)
            .into_iter()
            .filter(|p| p.intention != self.s.seq)
            .map(|p| (p.discount_bp, p.intention, p.decision))
            .max_by_key(|(bp, i, _)| (*bp, std::cmp::Reverse(*i)))
    }

    fn checks(&self) -> Option<Vec<Check>> {
        let store = &self.ctx.store;
        match &self.s.intention.action {
            Action::SetPrice { sku, price_minor } => {
                let planned = self.largest_discount(sku);
                Some(vec![Check {
                    sku: sku.clone(),
                    price: *price_minor,
                    price_read: self.own_read(Field::PriceMinor, Value::Int(*price_minor)),
                    price_setter: None,
                    discount_bp: planned.map_or(0, |p| p.0),
                    discount_from: planned.map(|p| (p.1, p.2)),
                }])
            }
            Action::LaunchPromotion {
                target,
                discount_bp,
                ..
            } => Some(
                store
                    .skus_of(target)
                    .into_iter()
                    .filter_map(|sku| {
                        let st = store.sku(&sku)?;
                        let other = self.largest_discount(&sku).filter(|o| o.0 > *discount_bp);
                        let price_read = read(
                            Field::PriceMinor,
                            Some(EntityRef::Sku(sku.clone())),
                            Value::Int(st.price_minor.value),
                            st.price_minor.seq,
                        );
                        Some(Check {
                            price: st.price_minor.value,
                            price_read,
                            price_setter: st.price_by,
                            discount_bp: other.map_or(*discount_bp, |o| o.0),
                            discount_from: Some(
                                other.map_or((self.s.seq, self.s.seq), |o| (o.1, o.2)),
                            ),
                            sku,
                        })
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The margin of one check, with the reads that back it.
    fn margin_of(&self, c: &Check) -> (SkuMargin, Vec<Read>) {
        let cost = self
            .ctx
            .store
            .sku(&c.sku)
            .map(|s| s.cost_minor.clone())
            .unwrap_or_default();
        let effective = effective_price(c.price, c.discount_bp);
        let mut reads = vec![c.price_read.clone()];
        reads.push(read(
            Field::CostMinor,
            Some(EntityRef::Sku(c.sku.clone())),
            Value::Int(cost.value),
            cost.seq,
        ));
        if let Some((intention, decision)) = c.discount_from {
            // This intention's own discount is read from the intention itself;
            // another promotion's from the decision that planned it.
            let seq = if intention == self.s.seq {
                intention
            } else {
                decision
            };
            reads.push(read(
                Field::DiscountBp,
                Some(EntityRef::Intention(intention)),
                Value::Int(i64::from(c.discount_bp)),
                seq,
            ));
        }
        let m = SkuMargin {
            sku: c.sku.clone(),
            price_minor: c.price,
            discount_bp: c.discount_bp,
            effective_minor: effective,
            cost_minor: cost.value,
            margin_bp: margin_bp(effective, cost.value),
        };
        (m, reads)
    }

    pub(super) fn margin(&mut self) -> Step {
        let checks = self.checks()?;
        let min_bp = self.rules.rules.guard.min_margin_bp;
        let mut reads = vec![self.rule_read(Field::MinMarginBp, min_bp)];
        let below = |m: &SkuMargin| m.margin_bp.is_none_or(|bp| bp < min_bp);
        let mut failing: Vec<(SkuMargin, Vec<Read>, &Check)> = Vec::new();
        let mut failing_count = 0u32;
        let mut passing = Vec::new();
        let mut lowest: Option<(SkuMargin, Vec<Read>)> = None;
        for c in &checks {
            let (m, r) = self.margin_of(c);
            if below(&m) {
                failing_count += 1;
                if failing.len() < LISTED_MAX {
                    failing.push((m, r, c));
                }
                continue;
            }
            passing.push(m.sku.clone());
            let lower = lowest.as_ref().is_none_or(|(l, _)| {
                m.margin_bp.unwrap_or(i64::MIN) < l.margin_bp.unwrap_or(i64::MIN)
            });
            if lower {
                lowest = Some((m, r));
            }
        }
        let checked = u32::try_from(checks.len()).unwrap_or(u32::MAX);
        if failing.is_empty() {
            let (lowest, r) = lowest.map_or((None, Vec::new()), |(m, r)| (Some(m), r));
            reads.extend(r);
            let f = Finding::MarginHolds {
                min_bp,
                checked,
                lowest,
            };
            self.push(RuleId::GuardMargin, Verdict::Pass, f, reads);
            return None;
        }
        let mut listed = Vec::new();
        for (m, r, c) in failing {
            reads.extend(r);
            if let Some((intention, _)) = c.discount_from.filter(|(i, _)| *i != self.s.seq) {
                self.cite(CiteRole::Promotion, intention);
            }
            if let Some(setter) = c.price_setter {
                self.cite(CiteRole::PriceSetter, setter);
            }
            listed.push(m);
        }
        let multi = checks.len() > 1;
        if !multi || passing.len() > SKUS_MAX {
            passing.clear();
        }
        let f = Finding::MarginBelow {
            min_bp,
            checked,
            failing_count,
            failing: listed,
            passing,
        };
        self.push(RuleId::GuardMargin, Verdict::Reject, f, reads);
        Some(Outcome::Rejected)
    }
}
