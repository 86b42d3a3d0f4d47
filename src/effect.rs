//! What a record does to the store: the one definition of the changes a fact
//! record or an approved action makes, used by the shared context (which
//! applies them), audit (which lists them), what-if and the demo's world. And
//! the one formula for a price after a discount.
//!
//! Architecture invariant: pure. Amounts are inside `crate::bounds`, so the
//! arithmetic here is exact (i128 where a product is formed).

use serde::Serialize;

use crate::bounds::BP_PER_UNIT;
use crate::entity::EntityRef;
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{Action, Lifecycle, Perk, PromotionTarget};

/// A change to one field of one entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Category(String),
    CostMinor(i64),
    PriceMinor(i64),
    Stock(i64),
    Lifecycle(Lifecycle),
    /// A reorder adds its quantity to the stock on order.
    AddOnOrder(u32),
    /// A reservation adds its quantity to the stock held.
    AddReserved(u32),
    CompetitorPrice {
        competitor: String,
        price_minor: i64,
    },
    SupplierDelayDays(u32),
    TrafficIncreaseBp(u32),
    /// A promotion joins the plan.
    Promotion {
        target: PromotionTarget,
        discount_bp: u32,
        starts_at_ms: u64,
        ends_at_ms: u64,
    },
    OrderPlaced {
        customer: String,
        total_minor: i64,
    },
    OrderDelayedDays(u32),
    OrderFlagged(String),
    Perk(Perk),
    /// The customer is contacted about an order and topic.
    Contact {
        order: String,
        topic: String,
    },
    BudgetMinor(i64),
    Attribute {
        attribute: String,
        value: Value,
    },
}

/// One change to one entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Effect {
    pub entity: EntityRef,
    #[serde(flatten)]
    pub change: Change,
}

impl Change {
    /// The field's name, as `parley audit ENTITY FIELD` and `state` call it.
    pub fn field(&self) -> String {
        match self {
            Change::Category(_) => "category".into(),
            Change::CostMinor(_) => "cost_minor".into(),
            Change::PriceMinor(_) => "price_minor".into(),
            Change::Stock(_) => "stock".into(),
            Change::Lifecycle(_) => "lifecycle".into(),
            Change::AddOnOrder(_) => "on_order".into(),
            Change::AddReserved(_) => "reserved".into(),
            Change::CompetitorPrice { competitor, .. } => format!("competitor_price.{competitor}"),
            Change::SupplierDelayDays(_) => "supplier_delay_days".into(),
            Change::TrafficIncreaseBp(_) => "traffic_increase_bp".into(),
            Change::Promotion { .. } => "promotion".into(),
            Change::OrderPlaced { .. } => "total_minor".into(),
            Change::OrderDelayedDays(_) => "delayed_days".into(),
            Change::OrderFlagged(_) => "flagged".into(),
            Change::Perk(_) => "perk".into(),
            Change::Contact { .. } => "contact".into(),
            Change::BudgetMinor(_) => "budget_minor".into(),
            Change::Attribute { attribute, .. } => attribute.clone(),
        }
    }

    /// The value written (for an addition: the amount added).
    pub fn value(&self) -> Value {
        let int = |v: i64| Value::Int(v);
        match self {
            Change::Category(c) => Value::Text(c.clone()),
            Change::CostMinor(v)
            | Change::PriceMinor(v)
            | Change::Stock(v)
            | Change::BudgetMinor(v)
            | Change::CompetitorPrice { price_minor: v, .. }
            | Change::OrderPlaced { total_minor: v, .. } => int(*v),
            Change::Lifecycle(l) => Value::Text(l.name().into()),
            Change::AddOnOrder(q) | Change::AddReserved(q) => int(i64::from(*q)),
            Change::SupplierDelayDays(d) | Change::OrderDelayedDays(d) => int(i64::from(*d)),
            Change::TrafficIncreaseBp(b) => int(i64::from(*b)),
            Change::Promotion { discount_bp, .. } => int(i64::from(*discount_bp)),
            Change::OrderFlagged(reason) => Value::Text(reason.clone()),
            Change::Perk(p) => Value::Text(p.name().into()),
            Change::Contact { order, topic } => Value::Text(format!("{order} {topic}")),
            Change::Attribute { value, .. } => value.clone(),
        }
    }

    /// True when the value is added to the field rather than replacing it.
    pub fn is_addition(&self) -> bool {
        matches!(self, Change::AddOnOrder(_) | Change::AddReserved(_))
    }
}

fn one(entity: EntityRef, change: Change) -> Vec<Effect> {
    vec![Effect { entity, change }]
}

/// What an approved action does to the store.
pub(crate) fn of_action(action: &Action) -> Vec<Effect> {
    let sku = |s: &String| EntityRef::Sku(s.clone());
    match action {
        Action::SetPrice {
            sku: s,
            price_minor,
        } => one(sku(s), Change::PriceMinor(*price_minor)),
        Action::LaunchPromotion {
            target,
            discount_bp,
            starts_at_ms,
            ends_at_ms,
        } => one(
            action.entity(),
            Change::Promotion {
                target: target.clone(),
                discount_bp: *discount_bp,
                starts_at_ms: *starts_at_ms,
                ends_at_ms: *ends_at_ms,
            },
        ),
        Action::Reorder { sku: s, quantity } => one(sku(s), Change::AddOnOrder(*quantity)),
        Action::ReserveStock { sku: s, quantity } => one(sku(s), Change::AddReserved(*quantity)),
        Action::Discontinue { sku: s } => one(sku(s), Change::Lifecycle(Lifecycle::Discontinuing)),
        Action::NotifyCustomer {
            customer,
            order,
            topic,
        } => one(
            EntityRef::Customer(customer.clone()),
            Change::Contact {
                order: order.clone(),
                topic: topic.clone(),
            },
        ),
        Action::OfferPerk { order, perk } => {
            one(EntityRef::Order(order.clone()), Change::Perk(perk.clone()))
        }
        Action::ChangeAdBudget {
            campaign,
            budget_minor,
        } => one(
            EntityRef::Campaign(campaign.clone()),
            Change::BudgetMinor(*budget_minor),
        ),
        Action::Generic {
            entity,
            attribute,
            value,
        } => attribute_effect(entity, attribute, value),
    }
}

/// A generic value, written by a fact or an approved generic action.
fn attribute_effect(entity: &EntityRef, attribute: &str, value: &Value) -> Vec<Effect> {
    one(
        entity.clone(),
        Change::Attribute {
            attribute: attribute.to_owned(),
            value: value.clone(),
        },
    )
}

/// What a fact record writes into the store (nothing for other kinds).
pub(crate) fn of_fact(body: &Body) -> Vec<Effect> {
    if let Some(e) = of_order_fact(body) {
        return vec![e];
    }
    let sku = |s: &String| EntityRef::Sku(s.clone());
    match body {
        Body::Catalog {
            sku: s,
            category,
            cost_minor,
            price_minor,
            stock,
            lifecycle,
        } => [
            Change::Category(category.clone()),
            Change::CostMinor(*cost_minor),
            Change::PriceMinor(*price_minor),
            Change::Stock(*stock),
            Change::Lifecycle(*lifecycle),
        ]
        .into_iter()
        .map(|change| Effect {
            entity: sku(s),
            change,
        })
        .collect(),
        Body::StockChanged { sku: s, stock } => one(sku(s), Change::Stock(*stock)),
        Body::CompetitorPrice {
            sku: s,
            competitor,
            price_minor,
        } => one(
            sku(s),
            Change::CompetitorPrice {
                competitor: competitor.clone(),
                price_minor: *price_minor,
            },
        ),
        Body::SupplierDelay { skus, days, .. } => skus
            .iter()
            .map(|s| Effect {
                entity: sku(s),
                change: Change::SupplierDelayDays(*days),
            })
            .collect(),
        Body::TrafficSpike {
            sku: s,
            increase_bp,
        } => one(sku(s), Change::TrafficIncreaseBp(*increase_bp)),
        Body::Fact {
            entity,
            attribute,
            value,
        } => attribute_effect(entity, attribute, value),
        _ => Vec::new(),
    }
}

/// What an order or customer fact writes (`None` for other records).
fn of_order_fact(body: &Body) -> Option<Effect> {
    let (entity, change) = match body {
        Body::OrderPlaced {
            order,
            customer,
            total_minor,
        } => (
            EntityRef::Order(order.clone()),
            Change::OrderPlaced {
                customer: customer.clone(),
                total_minor: *total_minor,
            },
        ),
        Body::OrderDelayed { order, days } => (
            EntityRef::Order(order.clone()),
            Change::OrderDelayedDays(*days),
        ),
        Body::OrderFlagged { order, reason } => (
            EntityRef::Order(order.clone()),
            Change::OrderFlagged(reason.clone()),
        ),
        Body::CustomerContacted {
            customer,
            order,
            topic,
        } => (
            EntityRef::Customer(customer.clone()),
            Change::Contact {
                order: order.clone(),
                topic: topic.clone(),
            },
        ),
        _ => return None,
    };
    Some(Effect { entity, change })
}

/// The price after a discount, truncated toward zero: `price · (1 − bp/10⁴)`.
pub(crate) fn effective_price(price_minor: i64, discount_bp: u32) -> i64 {
    debug_assert!((0..=crate::bounds::MONEY_MAX_MINOR).contains(&price_minor));
    debug_assert!(i64::from(discount_bp) <= BP_PER_UNIT);
    let keep = BP_PER_UNIT - i64::from(discount_bp).min(BP_PER_UNIT);
    let v = i128::from(price_minor) * i128::from(keep) / i128::from(BP_PER_UNIT);
    // 0 <= v <= price_minor, so it fits.
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The margin of an effective price over cost in basis points, truncated
/// toward zero; `None` when the effective price is 0 (no margin exists).
pub(crate) fn margin_bp(effective_minor: i64, cost_minor: i64) -> Option<i64> {
    if effective_minor <= 0 {
        return None;
    }
    let v = (i128::from(effective_minor) - i128::from(cost_minor)) * i128::from(BP_PER_UNIT)
        / i128::from(effective_minor);
    // |v| <= (MONEY_MAX · 10⁴) / 1 fits in i64 for amounts inside the bounds.
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_price_and_margin() {
        assert_eq!(effective_price(7199, 1500), 6119);
        assert_eq!(effective_price(100, 10_000), 0);
        assert_eq!(margin_bp(6119, 6200), Some(-132));
        assert_eq!(margin_bp(0, 1), None);
        let max = crate::bounds::MONEY_MAX_MINOR;
        assert_eq!(effective_price(max, 1), max - max / 10_000);
        assert!(margin_bp(1, max).is_some());
    }

    #[test]
    fn a_reorder_adds_to_the_stock_on_order() {
        let e = of_action(&Action::Reorder {
            sku: "S".into(),
            quantity: 5,
        });
        assert_eq!(e[0].change, Change::AddOnOrder(5));
        assert!(e[0].change.is_addition());
        assert_eq!(e[0].change.field(), "on_order");
    }
}
