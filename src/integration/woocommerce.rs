//! WooCommerce's webhook topics (REST API v3 payloads), each mapped to one
//! platform object. The README's table says what each field becomes.

use serde::Deserialize;

use super::shopify::same_currency;
use super::{category, checked, payload, time_ms, units, Currency, MapError, Mapped};
use crate::vocab::synced::{OrderStatus, Variant};
use crate::vocab::{Lifecycle, Platform, Synced, SyncedObject};

/// The topics parley maps.
pub const TOPICS: &[&str] = &[
    "product.created",
    "product.updated",
    "order.created",
    "order.updated",
    "customer.created",
    "customer.updated",
];

#[derive(Deserialize)]
struct Product {
    id: u64,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    regular_price: Option<String>,
    date_modified_gmt: String,
    #[serde(default)]
    manage_stock: Option<bool>,
    #[serde(default)]
    stock_quantity: Option<i64>,
    #[serde(default)]
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct Category {
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Order {
    id: u64,
    status: String,
    currency: String,
    total: String,
    date_modified_gmt: String,
    #[serde(default)]
    customer_id: u64,
}

#[derive(Deserialize)]
struct Customer {
    id: u64,
    date_modified_gmt: String,
    #[serde(default)]
    orders_count: Option<u32>,
    #[serde(default)]
    total_spent: Option<String>,
}

/// Maps one delivery of `topic`.
pub fn map(topic: &str, body: &[u8], currency: Currency) -> Result<Mapped, MapError> {
    let synced = |at, object| Synced {
        platform: Platform::Woocommerce,
        updated_at_ms: at,
        object,
    };
    match topic {
        "product.created" | "product.updated" => {
            let p: Product = payload(topic, body)?;
            let at = time_ms("date_modified_gmt", &p.date_modified_gmt)?;
            match product(p, currency)? {
                Some(object) => checked(synced(at, object)),
                None => Ok(Mapped::NotMapped(
                    "the product has no sku or no price (a variable product's variations carry them)"
                        .into(),
                )),
            }
        }
        "order.created" | "order.updated" => {
            let o: Order = payload(topic, body)?;
            let at = time_ms("date_modified_gmt", &o.date_modified_gmt)?;
            checked(synced(at, order(o, currency)?))
        }
        "customer.created" | "customer.updated" => {
            let c: Customer = payload(topic, body)?;
            let at = time_ms("date_modified_gmt", &c.date_modified_gmt)?;
            let spent_minor = match &c.total_spent {
                Some(t) => currency.minor("total_spent", t)?,
                None => 0,
            };
            checked(synced(
                at,
                SyncedObject::Customer {
                    id: c.id,
                    orders: c.orders_count.unwrap_or(0),
                    spent_minor,
                },
            ))
        }
        other => Ok(Mapped::NotMapped(format!(
            "WooCommerce topic `{other}` is not one parley maps ({})",
            TOPICS.join(", ")
        ))),
    }
}

fn product(p: Product, currency: Currency) -> Result<Option<SyncedObject>, MapError> {
    let Some(sku) = p.sku.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    // `price` is the price a shopper pays now (the sale price while one runs).
    let (field, text) = match (p.price.as_deref(), p.regular_price.as_deref()) {
        (Some(t), _) if !t.trim().is_empty() => ("price", t),
        (_, Some(t)) if !t.trim().is_empty() => ("regular_price", t),
        _ => return Ok(None),
    };
    let lifecycle = match p.status.as_deref() {
        Some("publish") | None => Lifecycle::Active,
        // draft, pending, private, trash: not for sale.
        Some(_) => Lifecycle::Discontinued,
    };
    let label = p
        .categories
        .first()
        .and_then(|c| c.slug.clone().or_else(|| c.name.clone()))
        .unwrap_or_default();
    let stock = match p.manage_stock {
        Some(true) => p.stock_quantity.map(units),
        _ => None,
    };
    Ok(Some(SyncedObject::Product {
        id: p.id,
        category: category(&label),
        lifecycle,
        variants: vec![Variant {
            sku,
            price_minor: currency.minor(field, text)?,
            cost_minor: None,
            stock,
            item: None,
        }],
    }))
}

fn order(o: Order, currency: Currency) -> Result<SyncedObject, MapError> {
    same_currency(&o.currency, currency)?;
    let status = match o.status.as_str() {
        "completed" => OrderStatus::Fulfilled,
        "cancelled" | "failed" => OrderStatus::Cancelled,
        "refunded" => OrderStatus::Refunded,
        // pending, processing, on-hold, and statuses plugins add.
        _ => OrderStatus::Open,
    };
    Ok(SyncedObject::Order {
        id: o.id,
        customer: (o.customer_id != 0).then_some(o.customer_id),
        total_minor: currency.minor("total", &o.total)?,
        status,
    })
}
