//! The store's vocabulary: domains, lifecycles, objectives, autonomy levels, the
//! actions an agent may intend ([`action`]), and the decision the resolver
//! gives back ([`decision`]).
//!
//! Architecture invariant: pure data. Money is in integer minor units of one
//! currency, rates in basis points, times in ms from record envelopes. Every
//! name that reaches JSON or a record is spelled out here (never `Debug`), and
//! enum variants are only ever appended: bincode stores their position.

pub mod action;
pub mod decision;
pub mod guard;
pub mod observed;
pub mod synced;

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod problem;

pub use action::{Action, ConflictKey, Invalid, Perk, PromotionTarget};
pub use decision::{
    Cite, CiteRole, Decision, DeferUntil, Direction, EntityClass, Escalation, EscalationOption,
    EscalationReason, Field, Finding, Involved, OptionChoice, Outcome, OutcomeKind, Read, RuleId,
    Signature, SkuMargin, TraceStep, Verdict,
};
pub use observed::Observed;
pub use problem::ProblemCode;
pub use synced::{Platform, Synced, SyncedObject};

/// A fieldless enum with explicit, stable names: `name()` and serde agree.
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize, JsonSchema)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $text)] $v),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The stable name used in JSON, TOML and traces.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $text),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use named_enum;

named_enum!(
    /// An agent's domain.
    Domain {
        Pricing = "pricing",
        Marketing = "marketing",
        Inventory = "inventory",
        CustomerService = "customer-service",
        Orders = "orders",
        Fraud = "fraud",
        Merchandising = "merchandising",
        CompetitorTracking = "competitor-tracking",
        Supply = "supply",
        /// A store platform's connector (webhooks, catalog imports): it
        /// writes the store's facts, not intentions.
        Integration = "integration",
    }
);
named_enum!(
    /// Where a sku is in its life.
    Lifecycle {
        Active = "active",
        Discontinuing = "discontinuing",
        Discontinued = "discontinued",
    }
);
named_enum!(
    /// What an intention is for; the rule set orders them.
    Objective {
        MarginProtection = "margin-protection",
        SalesGrowth = "sales-growth",
        CustomerExperience = "customer-experience",
        CostOptimisation = "cost-optimisation",
        Risk = "risk",
    }
);
named_enum!(
    /// How far an agent may act alone on a kind of action.
    Autonomy {
        /// Decided by the rules.
        Autonomous = "autonomous",
        /// Always goes to a human.
        ProposeAndApprove = "propose-and-approve",
        /// Not for agents at all.
        Manual = "manual",
    }
);
named_enum!(
    /// The kinds of action, for autonomy tables and precedent signatures.
    ActionKind {
        SetPrice = "set-price",
        LaunchPromotion = "launch-promotion",
        Reorder = "reorder",
        Discontinue = "discontinue",
        NotifyCustomer = "notify-customer",
        OfferPerk = "offer-perk",
        ChangeAdBudget = "change-ad-budget",
        ReserveStock = "reserve-stock",
        Generic = "generic",
    }
);

/// Projected effect of an intention, in minor units (each within
/// ±[`crate::bounds::IMPACT_MAX_MINOR`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Impact {
    #[schemars(with = "crate::bounds::schema::Impact")]
    pub revenue_minor: i64,
    #[schemars(with = "crate::bounds::schema::Impact")]
    pub margin_minor: i64,
}

/// An intention announced before acting.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Intention {
    pub action: Action,
    /// Why the agent wants it (at most 4,096 characters).
    #[schemars(with = "crate::bounds::schema::Text")]
    pub reasoning: String,
    pub impact: Impact,
    pub objective: Objective,
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalTimeMs")]
    pub expires_at_ms: Option<u64>,
    /// The workflow step this intention belongs to: decided only once the
    /// step's dependencies are complete (rule `workflow.sequence`).
    #[serde(default)]
    pub workflow_step: Option<StepRef>,
}

impl Intention {
    /// Checks every amount against its documented range, naming the field.
    pub fn validate(&self) -> Result<(), action::Invalid> {
        use crate::bounds;
        let e = |r: bounds::OutOfRange| action::Invalid::Field(r.to_string());
        bounds::text("intention.reasoning", &self.reasoning).map_err(e)?;
        bounds::impact("intention.impact.revenue_minor", self.impact.revenue_minor).map_err(e)?;
        bounds::impact("intention.impact.margin_minor", self.impact.margin_minor).map_err(e)?;
        if let Some(t) = self.expires_at_ms {
            bounds::time_ms("intention.expires_at_ms", t).map_err(e)?;
        }
        self.action.validate("intention.action")
    }
}

/// A step of a workflow run.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct StepRef {
    #[schemars(with = "crate::bounds::schema::Id")]
    pub run: String,
    #[schemars(with = "crate::bounds::schema::Id")]
    pub step: String,
}

/// How a workflow run ended.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RunOutcome {
    /// Every step completed.
    Completed,
    /// A step failed or timed out and its failure policy (or a failing
    /// compensation) ended the run.
    Aborted { step: String, cause: StepFailure },
    /// A step failed or timed out and its compensation steps completed.
    Compensated { step: String, cause: StepFailure },
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepFailure {
    /// Its owner reported it failed (`step_failed`, seq `report`).
    Reported { report: u64, reason: String },
    /// It passed its deadline.
    TimedOut { deadline_ms: u64 },
    /// A compensation step failed while compensating for `compensating`.
    CompensationFailed {
        compensating: String,
        failure: Box<StepFailure>,
    },
}

impl RunOutcome {
    pub fn name(&self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Aborted { .. } => "aborted",
            RunOutcome::Compensated { .. } => "compensated",
        }
    }
}

/// Agent registration: its domain, priority (higher wins ties) and autonomy.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    #[schemars(with = "crate::bounds::schema::Id")]
    pub agent: String,
    pub domain: Domain,
    pub priority: u32,
    /// Per action kind; kinds not listed are autonomous.
    #[serde(default)]
    pub autonomy: BTreeMap<ActionKind, Autonomy>,
}
