//! Shopify's webhook topics (REST payloads), each mapped to one platform
//! object. The README's table says what each field becomes.

use serde::Deserialize;

use super::{category, checked, payload, time_ms, units, Currency, MapError, Mapped};
use crate::vocab::synced::{OrderStatus, RefundLine, Variant};
use crate::vocab::{Lifecycle, Platform, Synced, SyncedObject};

/// The topics parley maps.
pub const TOPICS: &[&str] = &[
    "products/create",
    "products/update",
    "inventory_levels/update",
    "inventory_items/create",
    "inventory_items/update",
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/paid",
    "refunds/create",
    "customers/create",
    "customers/update",
];

#[derive(Deserialize)]
struct Product {
    id: u64,
    #[serde(default)]
    product_type: Option<String>,
    #[serde(default)]
    status: Option<String>,
    updated_at: String,
    #[serde(default)]
    variants: Vec<ProductVariant>,
}

#[derive(Deserialize)]
struct ProductVariant {
    #[serde(default)]
    sku: Option<String>,
    price: String,
    #[serde(default)]
    inventory_item_id: Option<u64>,
    #[serde(default)]
    inventory_quantity: Option<i64>,
}

#[derive(Deserialize)]
struct Level {
    inventory_item_id: u64,
    location_id: u64,
    #[serde(default)]
    available: Option<i64>,
    updated_at: String,
}

#[derive(Deserialize)]
struct Item {
    id: u64,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    cost: Option<String>,
    updated_at: String,
}

#[derive(Deserialize)]
struct Order {
    id: u64,
    currency: String,
    total_price: String,
    updated_at: String,
    #[serde(default)]
    cancelled_at: Option<String>,
    #[serde(default)]
    financial_status: Option<String>,
    #[serde(default)]
    fulfillment_status: Option<String>,
    #[serde(default)]
    customer: Option<Id>,
}

#[derive(Deserialize)]
struct Id {
    id: u64,
}

#[derive(Deserialize)]
struct Refund {
    id: u64,
    order_id: u64,
    created_at: String,
    #[serde(default)]
    refund_line_items: Vec<RefundItem>,
}

#[derive(Deserialize)]
struct RefundItem {
    quantity: i64,
    line_item: LineItem,
    #[serde(default)]
    subtotal_set: Option<MoneySet>,
}

#[derive(Deserialize)]
struct LineItem {
    #[serde(default)]
    sku: Option<String>,
    price: String,
}

#[derive(Deserialize)]
struct MoneySet {
    shop_money: Amount,
}

#[derive(Deserialize)]
struct Amount {
    amount: String,
    currency_code: String,
}

#[derive(Deserialize)]
struct Customer {
    id: u64,
    updated_at: String,
    #[serde(default)]
    orders_count: Option<u32>,
    #[serde(default)]
    total_spent: Option<String>,
    #[serde(default)]
    currency: Option<String>,
}

/// Maps one delivery of `topic`.
pub fn map(topic: &str, body: &[u8], currency: Currency) -> Result<Mapped, MapError> {
    let synced = |at, object| Synced {
        platform: Platform::Shopify,
        updated_at_ms: at,
        object,
    };
    match topic {
        "products/create" | "products/update" => {
            let p: Product = payload(topic, body)?;
            let at = time_ms("updated_at", &p.updated_at)?;
            match product(p, currency)? {
                Some(object) => checked(synced(at, object)),
                None => Ok(Mapped::NotMapped(
                    "no variant of the product has a sku".into(),
                )),
            }
        }
        "inventory_levels/update" => {
            let l: Level = payload(topic, body)?;
            let at = time_ms("updated_at", &l.updated_at)?;
            checked(synced(
                at,
                SyncedObject::InventoryLevel {
                    item: l.inventory_item_id,
                    location: l.location_id,
                    available: units(l.available.unwrap_or(0)),
                    sku: None,
                },
            ))
        }
        "inventory_items/create" | "inventory_items/update" => {
            let i: Item = payload(topic, body)?;
            let at = time_ms("updated_at", &i.updated_at)?;
            let cost_minor = match i.cost.as_deref().filter(|c| !c.trim().is_empty()) {
                Some(c) => Some(currency.minor("cost", c)?),
                None => None,
            };
            checked(synced(
                at,
                SyncedObject::InventoryItem {
                    id: i.id,
                    sku: i.sku.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
                    cost_minor,
                },
            ))
        }
        "orders/create" | "orders/updated" | "orders/cancelled" | "orders/fulfilled"
        | "orders/paid" => {
            let o: Order = payload(topic, body)?;
            let at = time_ms("updated_at", &o.updated_at)?;
            checked(synced(at, order(o, currency)?))
        }
        "refunds/create" => {
            let r: Refund = payload(topic, body)?;
            let at = time_ms("created_at", &r.created_at)?;
            match refund(r, currency)? {
                Some(object) => checked(synced(at, object)),
                None => Ok(Mapped::NotMapped("no refunded line names a sku".into())),
            }
        }
        "customers/create" | "customers/update" => {
            let c: Customer = payload(topic, body)?;
            let at = time_ms("updated_at", &c.updated_at)?;
            checked(synced(at, customer(c, currency)?))
        }
        other => Ok(Mapped::NotMapped(format!(
            "Shopify topic `{other}` is not one parley maps ({})",
            TOPICS.join(", ")
        ))),
    }
}

fn product(p: Product, currency: Currency) -> Result<Option<SyncedObject>, MapError> {
    let lifecycle = match p.status.as_deref() {
        // Drafts are not for sale yet; archived products no longer.
        Some("archived" | "draft") => Lifecycle::Discontinued,
        _ => Lifecycle::Active,
    };
    let mut variants = Vec::new();
    for (n, v) in p.variants.into_iter().enumerate() {
        let Some(sku) = v.sku.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
            continue;
        };
        variants.push(Variant {
            sku,
            price_minor: currency.minor(&format!("variants[{n}].price"), &v.price)?,
            cost_minor: None,
            stock: v.inventory_quantity.map(units),
            item: v.inventory_item_id,
        });
    }
    if variants.is_empty() {
        return Ok(None);
    }
    Ok(Some(SyncedObject::Product {
        id: p.id,
        category: category(p.product_type.as_deref().unwrap_or("")),
        lifecycle,
        variants,
    }))
}

fn order(o: Order, currency: Currency) -> Result<SyncedObject, MapError> {
    same_currency(&o.currency, currency)?;
    let status = if o.cancelled_at.is_some() {
        OrderStatus::Cancelled
    } else if matches!(o.financial_status.as_deref(), Some("refunded")) {
        OrderStatus::Refunded
    } else if matches!(o.fulfillment_status.as_deref(), Some("fulfilled")) {
        OrderStatus::Fulfilled
    } else {
        OrderStatus::Open
    };
    Ok(SyncedObject::Order {
        id: o.id,
        customer: o.customer.map(|c| c.id),
        total_minor: currency.minor("total_price", &o.total_price)?,
        status,
    })
}

fn refund(r: Refund, currency: Currency) -> Result<Option<SyncedObject>, MapError> {
    let mut lines = Vec::new();
    for (n, item) in r.refund_line_items.into_iter().enumerate() {
        let Some(sku) = item
            .line_item
            .sku
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let field = format!("refund_line_items[{n}].subtotal_set.shop_money.amount");
        let refund_minor = match item.subtotal_set {
            Some(set) => {
                same_currency(&set.shop_money.currency_code, currency)?;
                currency.minor_abs(&field, &set.shop_money.amount)?
            }
            // Older payloads: the line's unit price times the units.
            None => {
                let price = currency.minor(
                    &format!("refund_line_items[{n}].line_item.price"),
                    &item.line_item.price,
                )?;
                price.saturating_mul(item.quantity.max(0))
            }
        };
        lines.push(RefundLine {
            sku,
            units: units(item.quantity),
            refund_minor,
        });
    }
    if lines.is_empty() {
        return Ok(None);
    }
    Ok(Some(SyncedObject::Refund {
        id: r.id,
        order: r.order_id,
        lines,
    }))
}

fn customer(c: Customer, currency: Currency) -> Result<SyncedObject, MapError> {
    if let Some(code) = &c.currency {
        same_currency(code, currency)?;
    }
    Ok(SyncedObject::Customer {
        id: c.id,
        orders: c.orders_count.unwrap_or(0),
        spent_minor: match &c.total_spent {
            Some(t) => currency.minor("total_spent", t)?,
            None => 0,
        },
    })
}

/// The platform's currency must be the ledger's.
pub(crate) fn same_currency(got: &str, ledger: Currency) -> Result<(), MapError> {
    if ledger.is(got) {
        return Ok(());
    }
    Err(MapError::Currency {
        got: got.to_owned(),
        ledger: ledger.code().to_owned(),
    })
}
