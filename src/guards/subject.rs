//! The entities one evaluation of a guard sees: the sku (each of a
//! promotion's, in turn), its category, the order, the customer, the
//! campaign the intention's action names.

use crate::context::{Context, IntentionState};
use crate::entity::EntityRef;
use crate::vocab::guard::Root;
use crate::vocab::{Action, PromotionTarget};

/// The entities one evaluation sees: for a promotion over several skus,
/// one subject per sku.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub sku: Option<String>,
    pub category: Option<String>,
    pub order: Option<String>,
    pub customer: Option<String>,
    pub campaign: Option<String>,
    /// The intention's seq: what an entity's `id` was read from.
    pub seq: u64,
}

impl Subject {
    /// The entity of `root` in view, if any.
    pub fn entity(&self, root: Root) -> Option<EntityRef> {
        let e = match root {
            Root::Sku => EntityRef::Sku(self.sku.clone()?),
            Root::Category => EntityRef::Category(self.category.clone()?),
            Root::Order => EntityRef::Order(self.order.clone()?),
            Root::Customer => EntityRef::Customer(self.customer.clone()?),
            Root::Campaign => EntityRef::Campaign(self.campaign.clone()?),
            _ => return None,
        };
        Some(e)
    }

    /// The id a finding names this subject by: its sku, else its order,
    /// campaign, customer or category.
    pub fn name(&self) -> String {
        [
            &self.sku,
            &self.order,
            &self.campaign,
            &self.customer,
            &self.category,
        ]
        .into_iter()
        .find_map(|x| x.clone())
        .unwrap_or_default()
    }

    /// The subjects of an intention's action, in a deterministic order.
    pub fn of(ctx: &Context, s: &IntentionState) -> Vec<Subject> {
        let base = Subject {
            seq: s.seq,
            ..Subject::default()
        };
        let category_of = |sku: &str| ctx.store.sku(sku).map(|st| st.category.value.clone());
        let for_sku = |sku: &str| Subject {
            sku: Some(sku.to_owned()),
            category: category_of(sku),
            ..base.clone()
        };
        match &s.intention.action {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::ReserveStock { sku, .. }
            | Action::Discontinue { sku } => vec![for_sku(sku)],
            Action::LaunchPromotion { target, .. } => {
                let named = match target {
                    PromotionTarget::Category(c) => Some(c.clone()),
                    PromotionTarget::Skus(_) => None,
                };
                let skus = ctx.store.skus_of(target);
                if skus.is_empty() {
                    return vec![Subject {
                        category: named,
                        ..base
                    }];
                }
                skus.iter()
                    .map(|k| Subject {
                        category: named.clone().or_else(|| category_of(k)),
                        ..for_sku(k)
                    })
                    .collect()
            }
            Action::NotifyCustomer {
                customer, order, ..
            } => vec![Subject {
                order: Some(order.clone()),
                customer: Some(customer.clone()),
                ..base
            }],
            Action::OfferPerk { order, .. } => vec![Subject {
                order: Some(order.clone()),
                customer: ctx.store.order(order).map(|o| o.customer.value.clone()),
                ..base
            }],
            Action::ChangeAdBudget { campaign, .. } => vec![Subject {
                campaign: Some(campaign.clone()),
                ..base
            }],
            Action::Generic { entity, .. } => vec![generic(entity, base, &category_of)],
        }
    }
}

fn generic(
    entity: &EntityRef,
    base: Subject,
    category_of: &dyn Fn(&str) -> Option<String>,
) -> Subject {
    match entity {
        EntityRef::Sku(s) => Subject {
            sku: Some(s.clone()),
            category: category_of(s),
            ..base
        },
        EntityRef::Category(c) => Subject {
            category: Some(c.clone()),
            ..base
        },
        EntityRef::Order(o) => Subject {
            order: Some(o.clone()),
            ..base
        },
        EntityRef::Customer(c) => Subject {
            customer: Some(c.clone()),
            ..base
        },
        EntityRef::Campaign(c) => Subject {
            campaign: Some(c.clone()),
            ..base
        },
        _ => base,
    }
}
