//! The store model: skus, orders, customers' contacts, campaigns, generic
//! facts and the promotion plan, each value stamped with the record that wrote
//! it. Changes come only as [`Effect`]s (`crate::effect`): the same list the
//! audit and the demo read.
//!
//! Memory follows the live store: ended promotions leave the plan, and a
//! contact leaves once the notification window can no longer see it.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};
use serde::Serialize;

use super::{stamp, Stamped};
use crate::effect::{Change, Effect};
use crate::entity::EntityRef;
use crate::invariant::{ensure, Part, Violation};
use crate::value::Value;
use crate::vocab::{Lifecycle, Perk, PromotionTarget};

#[cfg(test)]
mod tests;

/// Per sku. A sku exists from its `catalog` record on.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct SkuState {
    pub category: Stamped<String>,
    pub cost_minor: Stamped<i64>,
    pub price_minor: Stamped<i64>,
    /// The intention whose approval set the current price (`None`: a catalog record did).
    pub price_by: Option<u64>,
    pub stock: Stamped<i64>,
    pub lifecycle: Stamped<Lifecycle>,
    pub reserved: Stamped<i64>,
    pub on_order: Stamped<i64>,
    pub competitor_prices: BTreeMap<String, Stamped<i64>>,
    pub traffic_increase_bp: Stamped<u32>,
    pub supplier_delay_days: Stamped<u32>,
}

impl SkuState {
    fn new(seq: u64) -> SkuState {
        SkuState {
            category: stamp(String::new(), seq),
            cost_minor: stamp(0, seq),
            price_minor: stamp(0, seq),
            price_by: None,
            stock: stamp(0, seq),
            lifecycle: stamp(Lifecycle::Active, seq),
            reserved: stamp(0, seq),
            on_order: stamp(0, seq),
            competitor_prices: BTreeMap::new(),
            traffic_increase_bp: stamp(0, seq),
            supplier_delay_days: stamp(0, seq),
        }
    }
}

/// Per order. An order exists from its `order_placed` record on.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct OrderState {
    pub customer: Stamped<String>,
    pub total_minor: Stamped<i64>,
    /// Fraud flag reason, if flagged.
    pub flagged: Option<Stamped<String>>,
    pub delayed_days: Option<Stamped<u32>>,
    pub perks: Vec<Stamped<Perk>>,
}

/// A promotion approved into the plan.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Promotion {
    pub intention: u64,
    /// The decision that approved it (the record that wrote it into the plan).
    pub decision: u64,
    pub target: PromotionTarget,
    pub discount_bp: u32,
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
}

/// A customer contact: who, about which order, on which topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize)]
pub struct ContactKey {
    pub customer: String,
    pub order: String,
    pub topic: String,
}

/// The store as the log has made it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Store {
    skus: BTreeMap<String, SkuState>,
    orders: BTreeMap<String, OrderState>,
    /// The last contact per (customer, order, topic): its time, stamped.
    contacts: BTreeMap<ContactKey, Stamped<u64>>,
    /// Contacts by time, so old ones leave.
    contacts_by_time: BTreeSet<(u64, ContactKey)>,
    budgets: BTreeMap<String, Stamped<i64>>,
    /// Generic facts: (entity, attribute) → value.
    facts: BTreeMap<(EntityRef, String), Stamped<Value>>,
    /// Index: category → its skus.
    categories: BTreeMap<String, BTreeSet<String>>,
    /// The plan: promotions that have not ended, by intention.
    promotions: BTreeMap<u64, Promotion>,
    /// Index: the sku or category a promotion names → its promotions.
    promotions_by_target: BTreeMap<EntityRef, BTreeSet<u64>>,
    /// Index: (end, intention) of every promotion in the plan.
    promotion_ends: BTreeSet<(u64, u64)>,
}

/// Who applies an effect: the record's seq and time, and for an approved
/// action the intention behind it.
#[derive(Clone, Copy, Debug)]
pub struct Writer {
    pub seq: u64,
    pub at_ms: u64,
    pub intention: Option<u64>,
}

fn target_keys(t: &PromotionTarget) -> Vec<EntityRef> {
    match t {
        PromotionTarget::Skus(s) => s.iter().cloned().map(EntityRef::Sku).collect(),
        PromotionTarget::Category(c) => vec![EntityRef::Category(c.clone())],
    }
}

impl Store {
    /// How many entries the store's indexes cover (skus, contacts,
    /// promotions): what its `check` walks.
    pub fn indexed_len(&self) -> usize {
        self.skus.len() + self.contacts.len() + self.promotions.len()
    }

    pub fn sku(&self, id: &str) -> Option<&SkuState> {
        self.skus.get(id)
    }

    /// Every sku, in id order.
    pub fn skus(&self) -> impl Iterator<Item = (&String, &SkuState)> {
        self.skus.iter()
    }

    pub fn order(&self, id: &str) -> Option<&OrderState> {
        self.orders.get(id)
    }

    /// Every order, in id order.
    pub fn orders(&self) -> impl Iterator<Item = (&String, &OrderState)> {
        self.orders.iter()
    }

    /// The last contact on (customer, order, topic) still in memory.
    pub fn contact(&self, key: &ContactKey) -> Option<&Stamped<u64>> {
        self.contacts.get(key)
    }

    /// Every contact still in memory, in key order.
    pub fn contacts(&self) -> impl Iterator<Item = (&ContactKey, &Stamped<u64>)> {
        self.contacts.iter()
    }

    pub fn budget(&self, campaign: &str) -> Option<&Stamped<i64>> {
        self.budgets.get(campaign)
    }

    /// Every campaign's budget, in campaign order.
    pub fn budgets(&self) -> impl Iterator<Item = (&String, &Stamped<i64>)> {
        self.budgets.iter()
    }

    /// Every generic fact, by (entity, attribute).
    pub fn facts(&self) -> impl Iterator<Item = (&(EntityRef, String), &Stamped<Value>)> {
        self.facts.iter()
    }

    /// The generic facts about one entity, by attribute.
    pub fn facts_of<'a>(
        &'a self,
        entity: &'a EntityRef,
    ) -> impl Iterator<Item = (&'a String, &'a Stamped<Value>)> {
        self.facts
            .range((entity.clone(), String::new())..)
            .take_while(move |((e, _), _)| e == entity)
            .map(|((_, attribute), v)| (attribute, v))
    }

    /// The skus of a category, in id order (`None`: no sku has it).
    pub fn category(&self, category: &str) -> Option<&BTreeSet<String>> {
        self.categories.get(category)
    }

    /// The plan: promotions that have not ended, in intention order.
    pub fn promotions(&self) -> impl Iterator<Item = &Promotion> {
        self.promotions.values()
    }

    /// The promotions in the plan that name `target` (a sku or category), in
    /// intention order.
    pub fn promotions_naming<'a>(
        &'a self,
        target: &EntityRef,
    ) -> impl Iterator<Item = &'a Promotion> {
        self.promotions_by_target
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|i| self.promotions.get(i))
    }

    /// Applies one effect. Effects on an entity that does not exist yet (a sku
    /// before its catalog record, an order before it was placed) are refused
    /// before they reach the log, so here they are a no-op only for sku and
    /// order fields of unknown entities that a tampered log might hold.
    pub fn apply(&mut self, effect: &Effect, w: Writer) {
        let s = w.seq;
        match (&effect.entity, &effect.change) {
            (
                entity,
                Change::Promotion {
                    target,
                    discount_bp,
                    starts_at_ms,
                    ends_at_ms,
                },
            ) => {
                debug_assert!(matches!(entity, EntityRef::Sku(_) | EntityRef::Category(_)));
                self.add_promotion(Promotion {
                    intention: w.intention.unwrap_or(s),
                    decision: s,
                    target: target.clone(),
                    discount_bp: *discount_bp,
                    starts_at_ms: *starts_at_ms,
                    ends_at_ms: *ends_at_ms,
                });
            }
            (entity, Change::Attribute { attribute, value }) => {
                self.facts
                    .insert((entity.clone(), attribute.clone()), stamp(value.clone(), s));
            }
            (EntityRef::Sku(id), Change::Category(c)) => self.set_category(id, c, s),
            (EntityRef::Sku(id), change) => {
                if let Some(sku) = self.skus.get_mut(id) {
                    apply_sku(sku, change, w);
                }
            }
            (
                EntityRef::Order(id),
                Change::OrderPlaced {
                    customer,
                    total_minor,
                },
            ) => {
                let o = self.orders.entry(id.clone()).or_insert_with(|| OrderState {
                    customer: stamp(customer.clone(), s),
                    total_minor: stamp(*total_minor, s),
                    flagged: None,
                    delayed_days: None,
                    perks: Vec::new(),
                });
                o.customer = stamp(customer.clone(), s);
                o.total_minor = stamp(*total_minor, s);
            }
            (EntityRef::Order(id), change) => {
                if let Some(o) = self.orders.get_mut(id) {
                    apply_order(o, change, s);
                }
            }
            (EntityRef::Customer(c), Change::Contact { order, topic }) => {
                let key = ContactKey {
                    customer: c.clone(),
                    order: order.clone(),
                    topic: topic.clone(),
                };
                if let Some(old) = self.contacts.insert(key.clone(), stamp(w.at_ms, s)) {
                    self.contacts_by_time.remove(&(old.value, key.clone()));
                }
                self.contacts_by_time.insert((w.at_ms, key));
            }
            (EntityRef::Campaign(c), Change::BudgetMinor(b)) => {
                self.budgets.insert(c.clone(), stamp(*b, s));
            }
            // Other pairs are not produced by `crate::effect`.
            _ => debug_assert!(false, "no such effect: {effect:?}"),
        }
    }

    fn set_category(&mut self, sku: &str, category: &str, seq: u64) {
        let old = self.skus.get(sku).map(|s| s.category.value.clone());
        if let Some(old) = old.filter(|o| o != category) {
            if let Some(set) = self.categories.get_mut(&old) {
                set.remove(sku);
                if set.is_empty() {
                    self.categories.remove(&old);
                }
            }
        }
        self.categories
            .entry(category.to_owned())
            .or_default()
            .insert(sku.to_owned());
        let s = self
            .skus
            .entry(sku.to_owned())
            .or_insert_with(|| SkuState::new(seq));
        s.category = stamp(category.to_owned(), seq);
    }

    fn add_promotion(&mut self, p: Promotion) {
        // An intention is approved at most once; a repeat replaces its entry.
        if let Some(old) = self.promotions.remove(&p.intention) {
            self.promotion_ends.remove(&(old.ends_at_ms, old.intention));
            self.unname(&old);
        }
        for key in target_keys(&p.target) {
            self.promotions_by_target
                .entry(key)
                .or_default()
                .insert(p.intention);
        }
        self.promotion_ends.insert((p.ends_at_ms, p.intention));
        self.promotions.insert(p.intention, p);
    }

    /// Removes a promotion from the index of what it names.
    fn unname(&mut self, p: &Promotion) {
        for key in target_keys(&p.target) {
            if let Some(set) = self.promotions_by_target.get_mut(&key) {
                set.remove(&p.intention);
                if set.is_empty() {
                    self.promotions_by_target.remove(&key);
                }
            }
        }
    }

    /// Ended promotions leave the plan (the log keeps them); contacts older
    /// than `contact_window_ms` (when a rule set gives one) leave too.
    pub fn retire(&mut self, now_ms: u64, contact_window_ms: Option<u64>) {
        while let Some(&(end, id)) = self.promotion_ends.first() {
            if end > now_ms {
                break;
            }
            self.promotion_ends.remove(&(end, id));
            if let Some(p) = self.promotions.remove(&id) {
                self.unname(&p);
            }
        }
        let Some(window) = contact_window_ms else {
            return;
        };
        while let Some((at, key)) = self.contacts_by_time.first().cloned() {
            if at.saturating_add(window) > now_ms {
                break;
            }
            self.contacts_by_time.remove(&(at, key.clone()));
            self.contacts.remove(&key);
        }
    }

    /// Promotions covering `sku` that have not ended, in intention order.
    pub fn promotions_on(&self, sku: &str, now_ms: u64) -> Vec<&Promotion> {
        let mut ids: BTreeSet<u64> = BTreeSet::new();
        let mut add =
            |key: EntityRef| ids.extend(self.promotions_by_target.get(&key).into_iter().flatten());
        add(EntityRef::Sku(sku.to_owned()));
        if let Some(s) = self.skus.get(sku) {
            add(EntityRef::Category(s.category.value.clone()));
        }
        ids.iter()
            .filter_map(|i| self.promotions.get(i))
            .filter(|p| p.ends_at_ms > now_ms)
            .collect()
    }

    /// The skus a promotion target covers, in order.
    pub fn skus_of(&self, target: &PromotionTarget) -> Vec<String> {
        match target {
            PromotionTarget::Skus(s) => s.clone(),
            PromotionTarget::Category(c) => self
                .categories
                .get(c)
                .map_or_else(Vec::new, |set| set.iter().cloned().collect()),
        }
    }

    /// Does the store know this entity (for typed kinds: was it catalogued,
    /// placed, …)? Untyped entities are always "known".
    pub fn knows(&self, entity: &EntityRef) -> bool {
        match entity {
            EntityRef::Sku(s) => self.skus.contains_key(s),
            EntityRef::Order(o) => self.orders.contains_key(o),
            EntityRef::Category(c) => self.categories.contains_key(c),
            _ => true,
        }
    }
}

impl Store {
    /// Checks that every index is exactly what the primary maps call for
    /// (see `super::invariant`).
    pub fn check(&self) -> Result<(), Violation> {
        let part = Part::Store;
        let mut categories: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (id, sku) in &self.skus {
            let c = sku.category.value.clone();
            categories.entry(c).or_default().insert(id.clone());
        }
        ensure(
            categories == self.categories,
            part,
            "categories = the skus by category",
        )?;
        let by_time: BTreeSet<(u64, ContactKey)> = self
            .contacts
            .iter()
            .map(|(k, at)| (at.value, k.clone()))
            .collect();
        ensure(
            by_time == self.contacts_by_time,
            part,
            "contacts_by_time = the contacts by time",
        )?;
        let mut by_target: BTreeMap<EntityRef, BTreeSet<u64>> = BTreeMap::new();
        let mut ends = BTreeSet::new();
        for (&id, p) in &self.promotions {
            ensure(
                p.intention == id,
                part,
                "a promotion is filed under its intention",
            )?;
            ensure(
                p.decision >= p.intention,
                part,
                "a promotion's decision follows its intention",
            )?;
            ends.insert((p.ends_at_ms, id));
            for key in target_keys(&p.target) {
                by_target.entry(key).or_default().insert(id);
            }
        }
        ensure(
            ends == self.promotion_ends,
            part,
            "promotion_ends = the plan by end",
        )?;
        ensure(
            by_target == self.promotions_by_target,
            part,
            "promotions_by_target = the plan by what it names",
        )
    }
}

fn apply_sku(sku: &mut SkuState, change: &Change, w: Writer) {
    let s = w.seq;
    match change {
        Change::CostMinor(v) => sku.cost_minor = stamp(*v, s),
        Change::PriceMinor(v) => {
            sku.price_minor = stamp(*v, s);
            sku.price_by = w.intention;
        }
        Change::Stock(v) => sku.stock = stamp(*v, s),
        Change::Lifecycle(l) => sku.lifecycle = stamp(*l, s),
        Change::AddOnOrder(q) => {
            sku.on_order = stamp(sku.on_order.value.saturating_add(i64::from(*q)), s);
        }
        Change::AddReserved(q) => {
            sku.reserved = stamp(sku.reserved.value.saturating_add(i64::from(*q)), s);
        }
        Change::CompetitorPrice {
            competitor,
            price_minor,
        } => {
            sku.competitor_prices
                .insert(competitor.clone(), stamp(*price_minor, s));
        }
        Change::SupplierDelayDays(d) => sku.supplier_delay_days = stamp(*d, s),
        Change::TrafficIncreaseBp(b) => sku.traffic_increase_bp = stamp(*b, s),
        _ => debug_assert!(false, "not a sku change: {change:?}"),
    }
}

fn apply_order(o: &mut OrderState, change: &Change, seq: u64) {
    match change {
        Change::OrderDelayedDays(d) => o.delayed_days = Some(stamp(*d, seq)),
        Change::OrderFlagged(r) => o.flagged = Some(stamp(r.clone(), seq)),
        Change::Perk(p) => o.perks.push(stamp(p.clone(), seq)),
        _ => debug_assert!(false, "not an order change: {change:?}"),
    }
}
