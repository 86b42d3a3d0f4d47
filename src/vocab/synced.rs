//! What a store platform said about one of its objects: the body of
//! `synced` records, written by an integration (the webhook receiver, a
//! catalog import). Each names the platform, the object and the time the
//! platform last changed it (`updated_at_ms`, the platform's clock, not
//! parley's): the fold (`crate::context::synced`) keeps the newest version of
//! every object and ignores an older one that arrives late, so deliveries
//! that come out of order or twice leave the state of the ordered stream.
//!
//! Ids are the platform's own numbers; money is in minor units of the
//! ledger's currency (the shell converted the platform's decimal strings
//! exactly and refused any other currency).

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::action::Invalid;
use super::{named_enum, Lifecycle};
use crate::bounds::{self, check_id};
use crate::entity::EntityRef;

/// The most variants one product record carries.
pub const VARIANTS_MAX: usize = 256;
/// The most lines one refund record carries.
pub const REFUND_LINES_MAX: usize = 256;
/// The customer id an order without a customer (a guest checkout) names.
pub const GUEST: &str = "guest";

named_enum!(
    /// The store platform a record came from.
    Platform {
        Shopify = "shopify",
        Woocommerce = "woocommerce",
    }
);

named_enum!(
    /// Where an order stands on its platform.
    OrderStatus {
        /// Placed, not yet fulfilled (paid or not).
        Open = "open",
        Fulfilled = "fulfilled",
        Cancelled = "cancelled",
        Refunded = "refunded",
    }
);

/// One platform object's state (or, for a refund, the event) as delivered.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Synced {
    pub platform: Platform,
    /// When the platform last changed the object (its `updated_at` /
    /// `date_modified_gmt`), ms since the Unix epoch.
    #[schemars(with = "crate::bounds::schema::TimeMs")]
    pub updated_at_ms: u64,
    pub object: SyncedObject,
}

/// The objects parley maps, each with the fields it keeps.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncedObject {
    /// A product: its category, lifecycle and variants (one sku each).
    Product {
        id: u64,
        #[schemars(with = "crate::bounds::schema::Id")]
        category: String,
        lifecycle: Lifecycle,
        #[schemars(length(min = 1, max = 256))]
        variants: Vec<Variant>,
    },
    /// The units of an inventory item available at one location. `sku` is
    /// the item's sku when the receiver knew it; else the fold learns it
    /// from a product naming the item.
    InventoryLevel {
        item: u64,
        location: u64,
        #[schemars(with = "crate::bounds::schema::Stock")]
        available: i64,
        #[serde(default)]
        #[schemars(with = "crate::bounds::schema::OptionalId")]
        sku: Option<String>,
    },
    /// An order: its customer (`None`: a guest), total and status.
    Order {
        id: u64,
        #[serde(default)]
        customer: Option<u64>,
        #[schemars(with = "crate::bounds::schema::Money")]
        total_minor: i64,
        status: OrderStatus,
    },
    /// A customer: the platform's count of their orders and total spent.
    Customer {
        id: u64,
        #[schemars(range(max = 1_000_000_000))]
        orders: u32,
        #[schemars(with = "crate::bounds::schema::Money")]
        spent_minor: i64,
    },
    /// A refund of an order: each line becomes a `refund` outcome, once.
    Refund {
        id: u64,
        order: u64,
        #[schemars(length(min = 1, max = 256))]
        lines: Vec<RefundLine>,
    },
    /// An inventory item (Shopify): the sku it stocks and its unit cost.
    InventoryItem {
        id: u64,
        #[serde(default)]
        #[schemars(with = "crate::bounds::schema::OptionalId")]
        sku: Option<String>,
        #[serde(default)]
        #[schemars(with = "Option<crate::bounds::schema::Money>")]
        cost_minor: Option<i64>,
    },
}

/// One sku of a product.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    #[schemars(with = "crate::bounds::schema::Id")]
    pub sku: String,
    #[schemars(with = "crate::bounds::schema::Price")]
    pub price_minor: i64,
    /// The unit cost, where the platform gives it.
    #[serde(default)]
    #[schemars(with = "Option<crate::bounds::schema::Money>")]
    pub cost_minor: Option<i64>,
    /// Units in stock, where the payload carries them.
    #[serde(default)]
    #[schemars(with = "Option<crate::bounds::schema::Stock>")]
    pub stock: Option<i64>,
    /// The platform's inventory item behind the variant (Shopify).
    #[serde(default)]
    pub item: Option<u64>,
}

/// Units of a sku refunded, and the money.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLine {
    #[schemars(with = "crate::bounds::schema::Id")]
    pub sku: String,
    #[schemars(with = "crate::bounds::schema::Stock")]
    pub units: i64,
    #[schemars(with = "crate::bounds::schema::Money")]
    pub refund_minor: i64,
}

named_enum!(
    /// The kinds of platform object, as register keys name them.
    ObjectKind {
        Product = "product",
        InventoryLevel = "inventory_level",
        Order = "order",
        Customer = "customer",
        Refund = "refund",
        InventoryItem = "inventory_item",
    }
);

impl SyncedObject {
    pub fn kind(&self) -> ObjectKind {
        match self {
            SyncedObject::Product { .. } => ObjectKind::Product,
            SyncedObject::InventoryLevel { .. } => ObjectKind::InventoryLevel,
            SyncedObject::Order { .. } => ObjectKind::Order,
            SyncedObject::Customer { .. } => ObjectKind::Customer,
            SyncedObject::Refund { .. } => ObjectKind::Refund,
            SyncedObject::InventoryItem { .. } => ObjectKind::InventoryItem,
        }
    }

    /// The object's platform ids: (id, location) for a level, (id, 0) else.
    pub fn ids(&self) -> (u64, u64) {
        match self {
            SyncedObject::InventoryLevel { item, location, .. } => (*item, *location),
            SyncedObject::Product { id, .. }
            | SyncedObject::Order { id, .. }
            | SyncedObject::Customer { id, .. }
            | SyncedObject::Refund { id, .. }
            | SyncedObject::InventoryItem { id, .. } => (*id, 0),
        }
    }
}

/// The entity id parley gives a platform's order or customer number.
pub fn entity_id(id: u64) -> String {
    id.to_string()
}

impl Synced {
    /// The entities the record is about, in a fixed order.
    pub fn entities(&self) -> Vec<EntityRef> {
        match &self.object {
            SyncedObject::Product {
                category, variants, ..
            } => variants
                .iter()
                .map(|v| EntityRef::Sku(v.sku.clone()))
                .chain(std::iter::once(EntityRef::Category(category.clone())))
                .collect(),
            SyncedObject::InventoryLevel { sku, .. } | SyncedObject::InventoryItem { sku, .. } => {
                sku.iter().cloned().map(EntityRef::Sku).collect()
            }
            SyncedObject::Order { id, customer, .. } => vec![
                EntityRef::Order(entity_id(*id)),
                EntityRef::Customer(customer.map_or_else(|| GUEST.to_owned(), entity_id)),
            ],
            SyncedObject::Customer { id, .. } => vec![EntityRef::Customer(entity_id(*id))],
            SyncedObject::Refund { order, lines, .. } => {
                std::iter::once(EntityRef::Order(entity_id(*order)))
                    .chain(lines.iter().map(|l| EntityRef::Sku(l.sku.clone())))
                    .collect()
            }
        }
    }

    /// The identifiers it names, for command validation.
    pub fn ids(&self) -> Vec<(&'static str, &str)> {
        match &self.object {
            SyncedObject::Product {
                category, variants, ..
            } => std::iter::once(("synced.object.category", category.as_str()))
                .chain(
                    variants
                        .iter()
                        .map(|v| ("synced.object.variants.sku", v.sku.as_str())),
                )
                .collect(),
            SyncedObject::InventoryLevel { sku, .. } | SyncedObject::InventoryItem { sku, .. } => {
                sku.iter()
                    .map(|s| ("synced.object.sku", s.as_str()))
                    .collect()
            }
            SyncedObject::Refund { lines, .. } => lines
                .iter()
                .map(|l| ("synced.object.lines.sku", l.sku.as_str()))
                .collect(),
            SyncedObject::Order { .. } | SyncedObject::Customer { .. } => Vec::new(),
        }
    }

    /// Checks every id, amount, count and time against its documented
    /// range, naming the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let e = |r: bounds::OutOfRange| Invalid::Field(r.to_string());
        bounds::time_ms("synced.updated_at_ms", self.updated_at_ms).map_err(e)?;
        for (field, id) in self.ids() {
            check_id(field, id)?;
        }
        match &self.object {
            SyncedObject::Product { variants, .. } => validate_variants(variants),
            SyncedObject::InventoryLevel { available, .. } => {
                bounds::stock("synced.object.available", *available).map_err(e)
            }
            SyncedObject::Order { total_minor, .. } => {
                bounds::money("synced.object.total_minor", *total_minor).map_err(e)
            }
            SyncedObject::Customer {
                orders,
                spent_minor,
                ..
            } => {
                bounds::stock("synced.object.orders", i64::from(*orders)).map_err(e)?;
                bounds::money("synced.object.spent_minor", *spent_minor).map_err(e)
            }
            SyncedObject::InventoryItem { cost_minor, .. } => match cost_minor {
                Some(c) => bounds::money("synced.object.cost_minor", *c).map_err(e),
                None => Ok(()),
            },
            SyncedObject::Refund { lines, .. } => {
                bounds::count("synced.object.lines", lines.len(), REFUND_LINES_MAX).map_err(e)?;
                for l in lines {
                    bounds::stock("synced.object.lines.units", l.units).map_err(e)?;
                    bounds::money("synced.object.lines.refund_minor", l.refund_minor).map_err(e)?;
                }
                Ok(())
            }
        }
    }
}

fn validate_variants(variants: &[Variant]) -> Result<(), Invalid> {
    let e = |r: bounds::OutOfRange| Invalid::Field(r.to_string());
    if variants.is_empty() {
        return Err(Invalid::Inconsistent(
            "`synced.object.variants` is empty: a product names at least one sku".into(),
        ));
    }
    bounds::count("synced.object.variants", variants.len(), VARIANTS_MAX).map_err(e)?;
    let mut seen = std::collections::BTreeSet::new();
    for v in variants {
        if !seen.insert(v.sku.as_str()) {
            return Err(Invalid::Inconsistent(format!(
                "`synced.object.variants` names sku `{}` twice",
                v.sku
            )));
        }
        bounds::check(
            "synced.object.variants.price_minor",
            v.price_minor,
            1,
            bounds::MONEY_MAX_MINOR,
            " minor units",
        )
        .map_err(e)?;
        if let Some(c) = v.cost_minor {
            bounds::money("synced.object.variants.cost_minor", c).map_err(e)?;
        }
        if let Some(s) = v.stock {
            bounds::stock("synced.object.variants.stock", s).map_err(e)?;
        }
    }
    Ok(())
}
