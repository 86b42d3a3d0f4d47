//! The store's vocabulary: domains, lifecycles, objectives, autonomy levels, the
//! actions an agent may intend, and the decision the resolver gives back.
//!
//! Architecture invariant: pure data. Money is in integer minor units of one
//! currency, rates in basis points, times in ms from record envelopes.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::value::Value;

/// Basis points in 100 %.
pub const BP_PER_UNIT: i64 = 10_000;

macro_rules! simple_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vm])* $v),+ }
    };
}

simple_enum!(
    /// An agent's domain.
    Domain { Pricing, Marketing, Inventory, CustomerService, Orders, Fraud, Merchandising, CompetitorTracking, Supply }
);
impl Domain {
    /// The domain's name as written in JSON and TOML (`customer-service`).
    pub fn name(self) -> &'static str {
        match self {
            Domain::Pricing => "pricing",
            Domain::Marketing => "marketing",
            Domain::Inventory => "inventory",
            Domain::CustomerService => "customer-service",
            Domain::Orders => "orders",
            Domain::Fraud => "fraud",
            Domain::Merchandising => "merchandising",
            Domain::CompetitorTracking => "competitor-tracking",
            Domain::Supply => "supply",
        }
    }
}

simple_enum!(
    /// Where a sku is in its life.
    Lifecycle { Active, Discontinuing, Discontinued }
);
simple_enum!(
    /// What an intention is for; the rule set orders them.
    Objective { MarginProtection, SalesGrowth, CustomerExperience, CostOptimisation, Risk }
);
simple_enum!(
    /// How far an agent may act alone on a kind of action.
    Autonomy {
        /// Decided by the rules.
        Autonomous,
        /// Always goes to a human.
        ProposeAndApprove,
        /// Not for agents at all.
        Manual
    }
);
simple_enum!(
    /// The kinds of action, for autonomy tables and precedent signatures.
    ActionKind { SetPrice, LaunchPromotion, Reorder, Discontinue, NotifyCustomer, OfferPerk, ChangeAdBudget, ReserveStock, Generic }
);

/// Which skus a promotion covers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PromotionTarget {
    Skus(Vec<String>),
    Category(String),
}

/// A perk offered on an order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Perk {
    FreeShipping,
    DiscountBp(u32),
}

/// What an agent intends to do.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    SetPrice {
        sku: String,
        price_minor: i64,
    },
    LaunchPromotion {
        target: PromotionTarget,
        discount_bp: u32,
        starts_at_ms: u64,
        ends_at_ms: u64,
    },
    Reorder {
        sku: String,
        quantity: u32,
    },
    Discontinue {
        sku: String,
    },
    NotifyCustomer {
        customer: String,
        order: String,
        topic: String,
    },
    OfferPerk {
        order: String,
        perk: Perk,
    },
    ChangeAdBudget {
        campaign: String,
        budget_minor: i64,
    },
    ReserveStock {
        sku: String,
        quantity: u32,
    },
    Generic {
        entity: String,
        attribute: String,
        value: Value,
    },
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

    /// The entity the action is about (`sku:…`, `category:…`, `order:…`, …).
    pub fn entity(&self) -> String {
        match self {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::Discontinue { sku }
            | Action::ReserveStock { sku, .. } => format!("sku:{sku}"),
            Action::LaunchPromotion {
                target: PromotionTarget::Category(c),
                ..
            } => format!("category:{c}"),
            Action::LaunchPromotion {
                target: PromotionTarget::Skus(s),
                ..
            } => {
                format!("sku:{}", s.first().map_or("", String::as_str))
            }
            Action::NotifyCustomer { customer, .. } => format!("customer:{customer}"),
            Action::OfferPerk { order, .. } => format!("order:{order}"),
            Action::ChangeAdBudget { campaign, .. } => format!("campaign:{campaign}"),
            Action::Generic { entity, .. } => entity.clone(),
        }
    }

    /// What two intentions must share to conflict under the priority rule: only
    /// exclusive actions (one price, one promotion per target, one budget, one
    /// value of an attribute) conflict; notifications, perks, reorders and
    /// reservations add up instead.
    pub fn conflict_key(&self) -> Option<String> {
        match self {
            Action::SetPrice { sku, .. } => Some(format!("price|{sku}")),
            Action::LaunchPromotion { .. } => Some(format!("promotion|{}", self.entity())),
            Action::Discontinue { sku } => Some(format!("lifecycle|{sku}")),
            Action::ChangeAdBudget { campaign, .. } => Some(format!("budget|{campaign}")),
            Action::Generic {
                entity, attribute, ..
            } => Some(format!("{entity}|{attribute}")),
            Action::Reorder { .. }
            | Action::NotifyCustomer { .. }
            | Action::OfferPerk { .. }
            | Action::ReserveStock { .. } => None,
        }
    }

    /// Identifiers inside the action, for validation.
    pub fn ids(&self) -> Vec<(&'static str, &str)> {
        match self {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::Discontinue { sku }
            | Action::ReserveStock { sku, .. } => vec![("sku", sku)],
            Action::LaunchPromotion {
                target: PromotionTarget::Category(c),
                ..
            } => vec![("category", c)],
            Action::LaunchPromotion {
                target: PromotionTarget::Skus(s),
                ..
            } => s.iter().map(|s| ("sku", s.as_str())).collect(),
            Action::NotifyCustomer {
                customer,
                order,
                topic,
            } => vec![("customer", customer), ("order", order), ("topic", topic)],
            Action::OfferPerk { order, .. } => vec![("order", order)],
            Action::ChangeAdBudget { campaign, .. } => vec![("campaign", campaign)],
            Action::Generic {
                entity, attribute, ..
            } => vec![("entity", entity), ("attribute", attribute)],
        }
    }
}

/// Projected effect of an intention, in minor units.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Impact {
    pub revenue_minor: i64,
    pub margin_minor: i64,
}

/// An intention announced before acting.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Intention {
    pub action: Action,
    pub reasoning: String,
    pub impact: Impact,
    pub objective: Objective,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// The workflow step this intention belongs to: decided only once the
    /// step's dependencies are complete (rule `workflow.sequence`).
    #[serde(default)]
    pub workflow_step: Option<StepRef>,
}

/// A step of a workflow run.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct StepRef {
    pub run: String,
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
    Aborted { step: String, reason: String },
    /// A step failed or timed out and its compensation steps completed.
    Compensated { step: String, reason: String },
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

/// Why an intention waits.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DeferUntil {
    /// Re-decided when the ledger's time reaches this ms.
    Time(u64),
    /// Re-decided when this step of a workflow run completes (or the run ends).
    Step(StepRef),
}

/// The outcome of a decision.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    Approved,
    Deferred {
        until: DeferUntil,
    },
    Rejected,
    Escalated {
        escalation: Escalation,
    },
    /// Closed without acting: the intention passed its expiry while pending.
    Expired,
    /// Approved with modified values (a human chose a modified option, or a
    /// precedent did): this action takes effect instead of the intention's.
    Modified {
        action: Action,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Rejected => "rejected",
            Outcome::Escalated { .. } => "escalated",
            Outcome::Expired => "expired",
            Outcome::Modified { .. } => "modified",
        }
    }

    /// Approved, as intended or with modified values.
    pub fn is_approval(&self) -> bool {
        matches!(self, Outcome::Approved | Outcome::Modified { .. })
    }

    /// The action that takes effect, if the outcome lets one: the intention's
    /// own (`intended`) or a modified one.
    pub fn approved_action<'a>(&'a self, intended: &'a Action) -> Option<&'a Action> {
        match self {
            Outcome::Approved => Some(intended),
            Outcome::Modified { action } => Some(action),
            _ => None,
        }
    }
}

/// What a human is asked to settle.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub summary: String,
    /// Numbered from 0: each names what would be approved.
    pub options: Vec<EscalationOption>,
    /// Each involved intention's agent, reasoning and impact.
    pub involved: Vec<Involved>,
}

/// One option of an escalation.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationOption {
    pub label: String,
    /// Intentions (by seq) this option approves; all others involved are rejected.
    pub approve: Vec<u64>,
    /// For an option with modified values: the action that takes effect instead
    /// of the (single) approved intention's.
    #[serde(default)]
    pub modified: Option<Action>,
}

/// An intention involved in a conflict.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Involved {
    pub intention: u64,
    pub agent: String,
    pub reasoning: String,
    pub impact: Impact,
}

/// A value a rule read, and the seq that last wrote it (0: the rule set itself).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub name: String,
    pub value: Value,
    pub seq: u64,
}

/// One rule evaluated, in order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceStep {
    pub rule: String,
    /// pass | defer | reject | escalate | approve | skip
    pub verdict: String,
    pub note: String,
    pub reads: Vec<Read>,
}

/// The resolver's answer to one intention.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Seq of the intention decided.
    pub intention: u64,
    /// The entity the intention is about.
    pub entity: String,
    pub outcome: Outcome,
    /// The rule that decided (the last in the trace).
    pub rule: String,
    /// blake3 of the rule text in force (hex).
    pub rules_hash: String,
    /// The context this decision read: the seq just before it.
    pub context_seq: u64,
    pub trace: Vec<TraceStep>,
    /// Other intentions (by seq) involved: winners, losers, precedents, resolutions.
    pub competing: Vec<u64>,
    /// The earlier decision on the same intention this one follows (re-decisions).
    pub follows: Option<u64>,
}

/// Agent registration: its domain, priority (higher wins ties) and autonomy.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    pub agent: String,
    pub domain: Domain,
    pub priority: u32,
    /// Per action kind; kinds not listed are autonomous.
    #[serde(default)]
    pub autonomy: BTreeMap<ActionKind, Autonomy>,
}
