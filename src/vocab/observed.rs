//! What a store observed after acting: the body of `outcome` records.
//! Sales, refunds, complaints, stock-outs and campaign results, each with
//! the bounds every record kind has. A period is `[from_ms, to_ms)`, at
//! most [`PERIOD_MS_MAX`] long.

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::action::Invalid;
use crate::bounds::{self, check_id};
use crate::entity::EntityRef;

/// The longest period one outcome record may cover: 366 days.
pub const PERIOD_MS_MAX: u64 = 366 * 24 * 3_600_000;

/// What happened, as reported by an agent, an integration or a script.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Observed {
    /// A sku's sales over a period: units sold, revenue and margin (revenue
    /// less cost of goods; negative when sold below cost).
    Sales {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        from_ms: u64,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        to_ms: u64,
        #[schemars(with = "crate::bounds::schema::Stock")]
        units: i64,
        #[schemars(with = "crate::bounds::schema::Money")]
        revenue_minor: i64,
        #[schemars(with = "crate::bounds::schema::SignedMoney")]
        margin_minor: i64,
    },
    /// Units of a sku returned, and the money refunded.
    Refund {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[serde(default)]
        #[schemars(with = "crate::bounds::schema::OptionalId")]
        order: Option<String>,
        #[schemars(with = "crate::bounds::schema::Stock")]
        units: i64,
        #[schemars(with = "crate::bounds::schema::Money")]
        refund_minor: i64,
    },
    /// A customer complained or contacted the store about `topic`.
    Complaint {
        #[schemars(with = "crate::bounds::schema::Id")]
        customer: String,
        #[serde(default)]
        #[schemars(with = "crate::bounds::schema::OptionalId")]
        order: Option<String>,
        #[schemars(with = "crate::bounds::schema::Id")]
        topic: String,
    },
    /// A sku could not be bought over a period.
    StockOut {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        from_ms: u64,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        to_ms: u64,
    },
    /// A campaign's spend and the revenue attributed to it over a period.
    Campaign {
        #[schemars(with = "crate::bounds::schema::Id")]
        campaign: String,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        from_ms: u64,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        to_ms: u64,
        #[schemars(with = "crate::bounds::schema::Money")]
        spend_minor: i64,
        #[schemars(with = "crate::bounds::schema::Money")]
        attributed_revenue_minor: i64,
    },
}

impl Observed {
    /// The type's name, as in JSON (`type`).
    pub fn name(&self) -> &'static str {
        match self {
            Observed::Sales { .. } => "sales",
            Observed::Refund { .. } => "refund",
            Observed::Complaint { .. } => "complaint",
            Observed::StockOut { .. } => "stock_out",
            Observed::Campaign { .. } => "campaign",
        }
    }

    /// The period an outcome covers, if it covers one.
    pub fn period_ms(&self) -> Option<(u64, u64)> {
        match self {
            Observed::Sales { from_ms, to_ms, .. }
            | Observed::StockOut { from_ms, to_ms, .. }
            | Observed::Campaign { from_ms, to_ms, .. } => Some((*from_ms, *to_ms)),
            Observed::Refund { .. } | Observed::Complaint { .. } => None,
        }
    }

    /// The entities the outcome is about, in a fixed order.
    pub fn entities(&self) -> Vec<EntityRef> {
        let order = |o: &Option<String>| o.clone().map(EntityRef::Order);
        match self {
            Observed::Sales { sku, .. } | Observed::StockOut { sku, .. } => {
                vec![EntityRef::Sku(sku.clone())]
            }
            Observed::Refund { sku, order: o, .. } => std::iter::once(EntityRef::Sku(sku.clone()))
                .chain(order(o))
                .collect(),
            Observed::Complaint {
                customer, order: o, ..
            } => std::iter::once(EntityRef::Customer(customer.clone()))
                .chain(order(o))
                .collect(),
            Observed::Campaign { campaign, .. } => vec![EntityRef::Campaign(campaign.clone())],
        }
    }

    /// The identifiers it names, for command validation.
    pub fn ids(&self) -> Vec<(&'static str, &str)> {
        let mut v: Vec<(&'static str, &str)> = match self {
            Observed::Sales { sku, .. } | Observed::StockOut { sku, .. } => {
                vec![("outcome.sku", sku)]
            }
            Observed::Refund { sku, .. } => vec![("outcome.sku", sku)],
            Observed::Complaint {
                customer, topic, ..
            } => vec![("outcome.customer", customer), ("outcome.topic", topic)],
            Observed::Campaign { campaign, .. } => vec![("outcome.campaign", campaign)],
        };
        if let Observed::Refund { order: Some(o), .. }
        | Observed::Complaint { order: Some(o), .. } = self
        {
            v.push(("outcome.order", o));
        }
        v
    }

    /// Checks every amount and period against its documented range, naming
    /// the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let e = |r: bounds::OutOfRange| Invalid::Field(r.to_string());
        for (field, id) in self.ids() {
            check_id(field, id)?;
        }
        if let Some((from, to)) = self.period_ms() {
            bounds::time_ms("outcome.from_ms", from).map_err(e)?;
            bounds::time_ms("outcome.to_ms", to).map_err(e)?;
            if to <= from {
                return Err(Invalid::Inconsistent(format!(
                    "`outcome.to_ms` ({to}) must be after `outcome.from_ms` ({from})"
                )));
            }
            if to - from > PERIOD_MS_MAX {
                return Err(Invalid::Inconsistent(format!(
                    "`outcome` covers {} ms; one record covers at most 366 days ({PERIOD_MS_MAX} ms)",
                    to - from
                )));
            }
        }
        match self {
            Observed::Sales {
                units,
                revenue_minor,
                margin_minor,
                ..
            } => {
                bounds::stock("outcome.units", *units).map_err(e)?;
                bounds::money("outcome.revenue_minor", *revenue_minor).map_err(e)?;
                bounds::signed_money("outcome.margin_minor", *margin_minor).map_err(e)?;
                if *margin_minor > *revenue_minor {
                    return Err(Invalid::Inconsistent(format!(
                        "`outcome.margin_minor` ({margin_minor}) cannot exceed `outcome.revenue_minor` ({revenue_minor})"
                    )));
                }
            }
            Observed::Refund {
                units,
                refund_minor,
                ..
            } => {
                bounds::stock("outcome.units", *units).map_err(e)?;
                bounds::money("outcome.refund_minor", *refund_minor).map_err(e)?;
            }
            Observed::Campaign {
                spend_minor,
                attributed_revenue_minor,
                ..
            } => {
                bounds::money("outcome.spend_minor", *spend_minor).map_err(e)?;
                bounds::money(
                    "outcome.attributed_revenue_minor",
                    *attributed_revenue_minor,
                )
                .map_err(e)?;
            }
            Observed::Complaint { .. } | Observed::StockOut { .. } => {}
        }
        Ok(())
    }
}
