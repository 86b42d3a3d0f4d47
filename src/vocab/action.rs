//! What an agent may intend to do, which entity it is about, and which other
//! intentions it can conflict with.

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ActionKind;
use crate::bounds;
use crate::bounds::{check_id, IdError};
use crate::entity::{typed_field, EntityRef};
use crate::value::Value;

/// Which skus a promotion covers.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PromotionTarget {
    /// 1 to 1,000 distinct skus.
    Skus(#[schemars(with = "crate::bounds::schema::Skus")] Vec<String>),
    Category(#[schemars(with = "crate::bounds::schema::Id")] String),
}

/// A perk offered on an order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Perk {
    FreeShipping,
    /// 1 to 10,000 basis points off the order.
    DiscountBp(#[schemars(with = "crate::bounds::schema::DiscountBp")] u32),
}

impl Perk {
    pub fn name(&self) -> &'static str {
        match self {
            Perk::FreeShipping => "free_shipping",
            Perk::DiscountBp(_) => "discount_bp",
        }
    }
}

/// What an agent intends to do.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    SetPrice {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::Price")]
        price_minor: i64,
    },
    LaunchPromotion {
        target: PromotionTarget,
        #[schemars(with = "crate::bounds::schema::DiscountBp")]
        discount_bp: u32,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        starts_at_ms: u64,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        ends_at_ms: u64,
    },
    Reorder {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::Quantity")]
        quantity: u32,
    },
    Discontinue {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
    },
    NotifyCustomer {
        #[schemars(with = "crate::bounds::schema::Id")]
        customer: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        order: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        topic: String,
    },
    OfferPerk {
        #[schemars(with = "crate::bounds::schema::Id")]
        order: String,
        perk: Perk,
    },
    ChangeAdBudget {
        #[schemars(with = "crate::bounds::schema::Id")]
        campaign: String,
        #[schemars(with = "crate::bounds::schema::Money")]
        budget_minor: i64,
    },
    ReserveStock {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::Quantity")]
        quantity: u32,
    },
    Generic {
        entity: EntityRef,
        #[schemars(with = "crate::bounds::schema::Id")]
        attribute: String,
        value: Value,
    },
}

/// What two intentions must share to conflict under the priority rule: only
/// exclusive actions conflict (one price per sku, one promotion per target, one
/// lifecycle per sku, one budget per campaign, one value per generic
/// attribute). Structured, so no two different keys can look alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKey {
    Price(String),
    /// The target with its skus sorted.
    Promotion(PromotionTarget),
    Lifecycle(String),
    Budget(String),
    Attribute(EntityRef, String),
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::SetPrice { .. } => ActionKind::SetPrice,
            Action::LaunchPromotion { .. } => ActionKind::LaunchPromotion,
            Action::Reorder { .. } => ActionKind::Reorder,
            Action::Discontinue { .. } => ActionKind::Discontinue,
            Action::NotifyCustomer { .. } => ActionKind::NotifyCustomer,
            Action::OfferPerk { .. } => ActionKind::OfferPerk,
            Action::ChangeAdBudget { .. } => ActionKind::ChangeAdBudget,
            Action::ReserveStock { .. } => ActionKind::ReserveStock,
            Action::Generic { .. } => ActionKind::Generic,
        }
    }

    /// The entity the action is about (a multi-sku promotion: its first sku;
    /// [`Action::entities`] names them all).
    pub fn entity(&self) -> EntityRef {
        match self {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::Discontinue { sku }
            | Action::ReserveStock { sku, .. } => EntityRef::Sku(sku.clone()),
            Action::LaunchPromotion {
                target: PromotionTarget::Category(c),
                ..
            } => EntityRef::Category(c.clone()),
            Action::LaunchPromotion {
                target: PromotionTarget::Skus(s),
                ..
            } => EntityRef::Sku(s.first().cloned().unwrap_or_default()),
            Action::NotifyCustomer { customer, .. } => EntityRef::Customer(customer.clone()),
            Action::OfferPerk { order, .. } => EntityRef::Order(order.clone()),
            Action::ChangeAdBudget { campaign, .. } => EntityRef::Campaign(campaign.clone()),
            Action::Generic { entity, .. } => entity.clone(),
        }
    }

    /// Every entity the action names, in a fixed order.
    pub fn entities(&self) -> Vec<EntityRef> {
        match self {
            Action::LaunchPromotion {
                target: PromotionTarget::Skus(s),
                ..
            } => s.iter().cloned().map(EntityRef::Sku).collect(),
            Action::NotifyCustomer {
                customer, order, ..
            } => vec![
                EntityRef::Customer(customer.clone()),
                EntityRef::Order(order.clone()),
            ],
            other => vec![other.entity()],
        }
    }

    /// The key shared by the intentions this one can conflict with.
    pub fn conflict_key(&self) -> Option<ConflictKey> {
        match self {
            Action::SetPrice { sku, .. } => Some(ConflictKey::Price(sku.clone())),
            Action::LaunchPromotion { target, .. } => {
                let target = match target {
                    PromotionTarget::Skus(s) => {
                        let mut s = s.clone();
                        s.sort();
                        s.dedup();
                        PromotionTarget::Skus(s)
                    }
                    c => c.clone(),
                };
                Some(ConflictKey::Promotion(target))
            }
            Action::Discontinue { sku } => Some(ConflictKey::Lifecycle(sku.clone())),
            Action::ChangeAdBudget { campaign, .. } => Some(ConflictKey::Budget(campaign.clone())),
            Action::Generic {
                entity, attribute, ..
            } => Some(ConflictKey::Attribute(entity.clone(), attribute.clone())),
            Action::Reorder { .. }
            | Action::NotifyCustomer { .. }
            | Action::OfferPerk { .. }
            | Action::ReserveStock { .. } => None,
        }
    }

    /// Checks identifiers and every amount against its documented range;
    /// errors name the field under `prefix` (e.g. `intention.action`).
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        let f = |name: &str| format!("{prefix}.{name}");
        let e = |r: bounds::OutOfRange| Invalid::Field(r.to_string());
        match self {
            Action::SetPrice { sku, price_minor } => {
                check_id(&f("sku"), sku)?;
                bounds::money(&f("price_minor"), *price_minor).map_err(e)?;
                if *price_minor == 0 {
                    return Err(Invalid::Field(format!(
                        "`{}` must be above 0",
                        f("price_minor")
                    )));
                }
            }
            Action::LaunchPromotion {
                target,
                discount_bp,
                starts_at_ms,
                ends_at_ms,
            } => {
                validate_target(target, &f("target"))?;
                bounds::discount_bp(&f("discount_bp"), *discount_bp).map_err(e)?;
                bounds::time_ms(&f("starts_at_ms"), *starts_at_ms).map_err(e)?;
                bounds::time_ms(&f("ends_at_ms"), *ends_at_ms).map_err(e)?;
                if ends_at_ms <= starts_at_ms {
                    return Err(Invalid::Inconsistent(format!(
                        "`{}` ({ends_at_ms}) must be after `{}` ({starts_at_ms})",
                        f("ends_at_ms"),
                        f("starts_at_ms")
                    )));
                }
            }
            Action::Reorder { sku, quantity } | Action::ReserveStock { sku, quantity } => {
                check_id(&f("sku"), sku)?;
                bounds::quantity(&f("quantity"), *quantity).map_err(e)?;
            }
            Action::Discontinue { sku } => check_id(&f("sku"), sku)?,
            Action::NotifyCustomer {
                customer,
                order,
                topic,
            } => {
                check_id(&f("customer"), customer)?;
                check_id(&f("order"), order)?;
                check_id(&f("topic"), topic)?;
            }
            Action::OfferPerk { order, perk } => {
                check_id(&f("order"), order)?;
                if let Perk::DiscountBp(bp) = perk {
                    bounds::discount_bp(&f("perk.discount_bp"), *bp).map_err(e)?;
                }
            }
            Action::ChangeAdBudget {
                campaign,
                budget_minor,
            } => {
                check_id(&f("campaign"), campaign)?;
                bounds::money(&f("budget_minor"), *budget_minor).map_err(e)?;
            }
            Action::Generic {
                entity, attribute, ..
            } => {
                check_id(&f("attribute"), attribute)?;
                if let Some(kind) = typed_field(entity, attribute) {
                    return Err(Invalid::Inconsistent(format!(
                        "`{}`: `{attribute}` of {entity} is written by `{kind}`, not by a generic action",
                        f("attribute")
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Why an action (or an intention) is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A field is malformed or out of its range (what the schema states).
    #[error("{0}")]
    Field(String),
    /// Fields that are each valid do not agree with each other.
    #[error("{0}")]
    Inconsistent(String),
    /// An identifier is not one.
    #[error(transparent)]
    Id(#[from] IdError),
}

fn validate_target(target: &PromotionTarget, field: &str) -> Result<(), Invalid> {
    match target {
        PromotionTarget::Category(c) => Ok(check_id(&format!("{field}.category"), c)?),
        PromotionTarget::Skus(skus) => {
            bounds::count(&format!("{field}.skus"), skus.len(), bounds::SKUS_MAX)
                .map_err(|e| Invalid::Field(e.to_string()))?;
            let mut seen = std::collections::BTreeSet::new();
            for s in skus {
                check_id(&format!("{field}.skus"), s)?;
                if !seen.insert(s) {
                    return Err(Invalid::Field(format!(
                        "`{field}.skus` names sku `{s}` twice"
                    )));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_keys_do_not_collide_across_separators() {
        let g = |e: &str, a: &str| Action::Generic {
            entity: EntityRef::parse(e).unwrap(),
            attribute: a.into(),
            value: Value::Int(1),
        };
        assert_ne!(g("a|b", "c").conflict_key(), g("a", "b|c").conflict_key());
        let p = |s: &[&str]| Action::LaunchPromotion {
            target: PromotionTarget::Skus(s.iter().map(|x| (*x).to_owned()).collect()),
            discount_bp: 100,
            starts_at_ms: 1,
            ends_at_ms: 2,
        };
        assert_eq!(p(&["b", "a"]).conflict_key(), p(&["a", "b"]).conflict_key());
    }

    #[test]
    fn bounds_are_checked_with_the_field_named() {
        let a = Action::LaunchPromotion {
            target: PromotionTarget::Category("c".into()),
            discount_bp: 12_000,
            starts_at_ms: 5,
            ends_at_ms: 6,
        };
        let e = a.validate("intention.action").unwrap_err().to_string();
        assert!(e.contains("intention.action.discount_bp"), "{e}");
        let a = Action::LaunchPromotion {
            target: PromotionTarget::Category("c".into()),
            discount_bp: 1_000,
            starts_at_ms: 6,
            ends_at_ms: 5,
        };
        assert!(
            matches!(a.validate("x"), Err(Invalid::Inconsistent(m)) if m.contains("must be after"))
        );
        let a = Action::Generic {
            entity: EntityRef::Sku("S".into()),
            attribute: "stock".into(),
            value: Value::Int(1),
        };
        assert!(a
            .validate("x")
            .unwrap_err()
            .to_string()
            .contains("stock_changed"));
    }
}
