//! The vocabulary of custom guards (`crate::guards`): what a guard does when
//! it fires, the leaves of the view its expression may read, and why a guard
//! could not be evaluated. Recorded in decisions (resolver version 3), so
//! appended only, like every enum here.

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::named_enum;
use crate::entity::EntityRef;

named_enum!(
    /// What a custom guard does when its `when` holds.
    Then {
        /// The intention is rejected, citing the guard.
        Refuse = "refuse",
        /// A human decides (options as for the threshold rule).
        Escalate = "escalate",
    }
);

named_enum!(
    /// The top-level names an expression sees.
    Root {
        /// The intention's action, as in the command JSON (flattened).
        Action = "action",
        /// The intention: impact, objective, agent, seq.
        Intention = "intention",
        /// The announcing agent's profile.
        Agent = "agent",
        Sku = "sku",
        Order = "order",
        Customer = "customer",
        Category = "category",
        Campaign = "campaign",
        /// The ledger's time: the last record's `recorded_at_ms`.
        NowMs = "now_ms",
    }
);

named_enum!(
    /// A named field of a root (which root has which: `crate::guards::view`).
    Name {
        Id = "id",
        Kind = "kind",
        Sku = "sku",
        PriceMinor = "price_minor",
        DiscountBp = "discount_bp",
        StartsAtMs = "starts_at_ms",
        EndsAtMs = "ends_at_ms",
        Quantity = "quantity",
        Customer = "customer",
        Order = "order",
        Topic = "topic",
        Perk = "perk",
        PerkDiscountBp = "perk_discount_bp",
        Campaign = "campaign",
        BudgetMinor = "budget_minor",
        Attribute = "attribute",
        Value = "value",
        Category = "category",
        RevenueMinor = "revenue_minor",
        MarginMinor = "margin_minor",
        Objective = "objective",
        Agent = "agent",
        Seq = "seq",
        Domain = "domain",
        Priority = "priority",
        CostMinor = "cost_minor",
        Stock = "stock",
        Reserved = "reserved",
        OnOrder = "on_order",
        Lifecycle = "lifecycle",
        TrafficIncreaseBp = "traffic_increase_bp",
        SupplierDelayDays = "supplier_delay_days",
        TotalMinor = "total_minor",
        Flagged = "flagged",
        DelayedDays = "delayed_days",
        SkuCount = "sku_count",
        /// The action's `type` as in the command JSON (`set_price`).
        Type = "type",
    }
);

/// Below a root: nothing (`now_ms`), a named field, or a generic fact
/// (`sku.facts.rating_x10`).
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
#[serde(rename_all = "snake_case")]
pub enum Leaf {
    Itself,
    Field(Name),
    Fact(String),
}

/// One leaf value of the view, as an expression names it.
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
#[serde(deny_unknown_fields)]
pub struct ViewPath {
    pub root: Root,
    pub leaf: Leaf,
}

impl std::fmt::Display for ViewPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.leaf {
            Leaf::Itself => write!(f, "{}", self.root),
            Leaf::Field(n) => write!(f, "{}.{n}", self.root),
            Leaf::Fact(a) => write!(f, "{}.facts.{a}", self.root),
        }
    }
}

/// Why a custom guard could not be evaluated for one subject.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub enum GuardFault {
    /// A value the expression reads is not in the context (a fact never
    /// written, a field this action does not have): a human decides.
    Missing { path: ViewPath },
    /// The entity the guard reads is not known to the store: refused, as
    /// the built-in guards refuse an unknown entity.
    UnknownEntity { entity: EntityRef },
    /// The expression gave something other than true or false.
    NotABoolean,
    /// Evaluation failed: an overflow, a division by zero, mismatched types.
    Failed,
}
