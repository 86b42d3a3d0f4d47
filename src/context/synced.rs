//! The fold of `synced` records: the newest version of every platform
//! object, and what each newer version writes into the store.
//!
//! A platform sends an object's whole state each time it changes, stamped
//! with its own `updated_at`; deliveries retry, and arrive late and out of
//! order. Each object is a last-writer-wins register keyed by (platform,
//! kind, id): a version is newer when its `updated_at_ms` is later, or equal
//! with a greater blake3 digest of its encoding (so equal times still give
//! one answer in any order). A newer version replaces the register and
//! writes its fields into the store, stamped with its record's seq; an older
//! or identical one writes nothing and is counted as superseded. The store's
//! fields that come from several objects (a sku's stock, from its product's
//! variant and from its inventory item's levels at each location) are
//! recomputed from the registers, so they too end the same whatever the
//! order: the newest of the variant's count and the levels' sum.
//!
//! What the order of deliveries can still change: the seqs that stamp the
//! values (a later record writes them), and a variant removed from a product
//! keeps its sku in the catalog when the older version was folded first
//! (parley never deletes a sku).
//!
//! Architecture invariant: pure, like every part of the context.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::effect::{Change, Effect};
use crate::entity::EntityRef;
use crate::invariant::{ensure, Part, Violation};
use crate::value::Value;
use crate::vocab::synced::{entity_id, ObjectKind, RefundLine, Variant, GUEST};
use crate::vocab::{Observed, Platform, Synced, SyncedObject};

/// A version of a platform object: the platform's time, then the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize)]
pub struct Version {
    pub updated_at_ms: u64,
    #[serde(skip)]
    pub digest: [u8; 32],
}

/// The version of an object the context holds, and the record it came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Held {
    pub version: Version,
    pub seq: u64,
}

/// A register's key: platform, kind, id and (for a level) location.
pub type Key = (Platform, ObjectKind, u64, u64);

/// A sku as its product's newest version lists it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct SkuLink {
    pub platform: Platform,
    pub product: u64,
    pub updated_at_ms: u64,
    pub stock: Option<i64>,
}

/// Every platform object's newest version, and the links between them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Registers {
    objects: BTreeMap<Key, Held>,
    /// Each product's skus, as its held version lists them.
    products: BTreeMap<(Platform, u64), Vec<String>>,
    /// Each sku's product (the last one folded that lists it).
    skus: BTreeMap<String, SkuLink>,
    /// Inventory item → its sku, and back.
    items: BTreeMap<(Platform, u64), String>,
    sku_items: BTreeMap<String, (Platform, u64)>,
    /// Each inventory item's unit cost, as its held version gives it.
    costs: BTreeMap<(Platform, u64), i64>,
    /// Units available per (platform, item, location): (updated_at, units).
    levels: BTreeMap<(Platform, u64, u64), (u64, i64)>,
    /// How many records were older than (or the same as) what was held.
    superseded: u64,
}

/// What a newer version does: the store's changes, the refunds it reports
/// and the sku prices it sets (for attribution).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub effects: Vec<Effect>,
    pub refunds: Vec<Observed>,
    pub prices: Vec<(String, i64)>,
}

/// The version a record carries.
pub fn version_of(synced: &Synced) -> Version {
    let bytes =
        bincode::encode_to_vec(&synced.object, crate::record::codec_config()).unwrap_or_default();
    Version {
        updated_at_ms: synced.updated_at_ms,
        digest: *blake3::hash(&bytes).as_bytes(),
    }
}

/// The register a record writes.
pub fn key_of(synced: &Synced) -> Key {
    let (id, at) = synced.object.ids();
    (synced.platform, synced.object.kind(), id, at)
}

impl Registers {
    /// The version held for `key`, if any.
    pub fn held(&self, key: &Key) -> Option<&Held> {
        self.objects.get(key)
    }

    /// Every object's held version, in key order.
    pub fn objects(&self) -> impl Iterator<Item = (&Key, &Held)> {
        self.objects.iter()
    }

    /// How many platform objects are held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// How many records were superseded (older than, or the same as, what
    /// was held when they were folded).
    pub fn superseded(&self) -> u64 {
        self.superseded
    }

    /// Folds one record: `None` when it is superseded (nothing changes but
    /// the count).
    pub fn apply(&mut self, seq: u64, synced: &Synced) -> Option<Applied> {
        let key = key_of(synced);
        let version = version_of(synced);
        if self.objects.get(&key).is_some_and(|h| h.version >= version) {
            self.superseded += 1;
            return None;
        }
        self.objects.insert(key, Held { version, seq });
        let p = synced.platform;
        let at = synced.updated_at_ms;
        let applied = match &synced.object {
            SyncedObject::Product {
                id,
                category,
                lifecycle,
                variants,
            } => self.product((p, *id, at), category, *lifecycle, variants),
            SyncedObject::InventoryLevel {
                item,
                location,
                available,
                sku,
            } => self.level((p, *item, *location), (at, *available), sku.as_deref()),
            SyncedObject::Order {
                id,
                customer,
                total_minor,
                status,
            } => Applied {
                effects: order_effects(*id, *customer, *total_minor, status.name()),
                ..Applied::default()
            },
            SyncedObject::Customer {
                id,
                orders,
                spent_minor,
            } => Applied {
                effects: customer_effects(*id, *orders, *spent_minor),
                ..Applied::default()
            },
            SyncedObject::Refund { order, lines, .. } => Applied {
                refunds: refunds(*order, lines),
                ..Applied::default()
            },
            SyncedObject::InventoryItem {
                id,
                sku,
                cost_minor,
            } => self.item((p, *id), sku.as_deref(), *cost_minor),
        };
        debug_assert_eq!(self.objects.get(&key).map(|h| h.seq), Some(seq));
        Some(applied)
    }

    fn product(
        &mut self,
        (p, id, at): (Platform, u64, u64),
        category: &str,
        lifecycle: crate::vocab::Lifecycle,
        variants: &[Variant],
    ) -> Applied {
        // The skus the previous version listed leave this product's links.
        for sku in self.products.remove(&(p, id)).unwrap_or_default() {
            if self
                .skus
                .get(&sku)
                .is_some_and(|l| (l.platform, l.product) == (p, id))
            {
                self.skus.remove(&sku);
            }
        }
        let mut out = Applied::default();
        for v in variants {
            let link = SkuLink {
                platform: p,
                product: id,
                updated_at_ms: at,
                stock: v.stock,
            };
            self.skus.insert(v.sku.clone(), link);
            if let Some(item) = v.item {
                self.link(p, item, &v.sku);
            }
            let sku = EntityRef::Sku(v.sku.clone());
            let mut changes = vec![
                Change::Category(category.to_owned()),
                Change::PriceMinor(v.price_minor),
                Change::Lifecycle(lifecycle),
            ];
            let item_cost = v.item.and_then(|i| self.costs.get(&(p, i)).copied());
            changes.extend(v.cost_minor.or(item_cost).map(Change::CostMinor));
            changes.extend(self.stock_of(&v.sku).map(Change::Stock));
            out.effects.extend(changes.into_iter().map(|change| Effect {
                entity: sku.clone(),
                change,
            }));
            out.prices.push((v.sku.clone(), v.price_minor));
        }
        self.products
            .insert((p, id), variants.iter().map(|v| v.sku.clone()).collect());
        out
    }

    fn level(
        &mut self,
        (p, item, location): (Platform, u64, u64),
        units: (u64, i64),
        sku: Option<&str>,
    ) -> Applied {
        self.levels.insert((p, item, location), units);
        if let Some(s) = sku {
            if !self.items.contains_key(&(p, item)) {
                self.link(p, item, s);
            }
        }
        let mut out = Applied::default();
        if let Some(sku) = self.items.get(&(p, item)).cloned() {
            if let Some(stock) = self.stock_of(&sku) {
                out.effects.push(Effect {
                    entity: EntityRef::Sku(sku),
                    change: Change::Stock(stock),
                });
            }
        }
        out
    }

    /// An inventory item: its sku (linked) and unit cost. The cost is
    /// written when the sku is known, now or once a product names the item
    /// (kept in `costs` until then).
    fn item(&mut self, (p, id): (Platform, u64), sku: Option<&str>, cost: Option<i64>) -> Applied {
        if let Some(s) = sku {
            self.link(p, id, s);
        }
        match cost {
            Some(c) => drop(self.costs.insert((p, id), c)),
            None => drop(self.costs.remove(&(p, id))),
        }
        let mut out = Applied::default();
        if let Some(sku) = self.items.get(&(p, id)) {
            let entity = EntityRef::Sku(sku.clone());
            let changes = cost
                .map(Change::CostMinor)
                .into_iter()
                .chain(self.stock_of(sku).map(Change::Stock));
            out.effects.extend(changes.map(|change| Effect {
                entity: entity.clone(),
                change,
            }));
        }
        out
    }

    /// Records that `item` is `sku`'s inventory item (one item per sku).
    fn link(&mut self, p: Platform, item: u64, sku: &str) {
        if let Some(old) = self.sku_items.insert(sku.to_owned(), (p, item)) {
            if old != (p, item) {
                self.items.remove(&old);
            }
        }
        if let Some(old_sku) = self.items.insert((p, item), sku.to_owned()) {
            if old_sku != sku {
                self.sku_items.remove(&old_sku);
            }
        }
    }

    /// A sku's stock from the registers: the newer of its variant's count
    /// and the sum of its item's levels (levels win a tie).
    pub fn stock_of(&self, sku: &str) -> Option<i64> {
        let variant = self
            .skus
            .get(sku)
            .and_then(|l| l.stock.map(|s| (l.updated_at_ms, s)));
        let levels = self.sku_items.get(sku).and_then(|&(p, item)| {
            let mut found: Option<(u64, i64)> = None;
            for (_, &(at, units)) in self.levels.range((p, item, 0)..=(p, item, u64::MAX)) {
                let (t, sum) = found.unwrap_or((0, 0));
                let total = sum.saturating_add(units).min(crate::bounds::COUNT_MAX);
                found = Some((t.max(at), total));
            }
            found
        });
        match (variant, levels) {
            (Some(v), Some(l)) => Some(if l.0 >= v.0 { l.1 } else { v.1 }),
            (v, l) => v.or(l).map(|x| x.1),
        }
    }

    /// The links agree both ways, and every sku's product is held.
    pub fn check(&self) -> Result<(), Violation> {
        let both_ways = self.items.len() == self.sku_items.len()
            && self
                .items
                .iter()
                .all(|(k, sku)| self.sku_items.get(sku) == Some(k));
        ensure(both_ways, Part::Store, "synced: item links agree both ways")?;
        let held = self.skus.values().all(|l| {
            self.objects
                .contains_key(&(l.platform, ObjectKind::Product, l.product, 0))
        });
        ensure(held, Part::Store, "synced: every linked product is held")
    }
}

fn order_effects(id: u64, customer: Option<u64>, total_minor: i64, status: &str) -> Vec<Effect> {
    let order = EntityRef::Order(entity_id(id));
    let customer = customer.map_or_else(|| GUEST.to_owned(), entity_id);
    vec![
        Effect {
            entity: order.clone(),
            change: Change::OrderPlaced {
                customer,
                total_minor,
            },
        },
        Effect {
            entity: order,
            change: Change::Attribute {
                attribute: "status".into(),
                value: Value::Text(status.to_owned()),
            },
        },
    ]
}

fn customer_effects(id: u64, orders: u32, spent_minor: i64) -> Vec<Effect> {
    let customer = EntityRef::Customer(entity_id(id));
    [("orders", i64::from(orders)), ("spent_minor", spent_minor)]
        .into_iter()
        .map(|(attribute, v)| Effect {
            entity: customer.clone(),
            change: Change::Attribute {
                attribute: attribute.into(),
                value: Value::Int(v),
            },
        })
        .collect()
}

fn refunds(order: u64, lines: &[RefundLine]) -> Vec<Observed> {
    lines
        .iter()
        .map(|l| Observed::Refund {
            sku: l.sku.clone(),
            order: Some(entity_id(order)),
            units: l.units,
            refund_minor: l.refund_minor,
        })
        .collect()
}
