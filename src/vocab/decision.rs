//! The resolver's answer to an intention, as structured data only: rule ids,
//! verdicts, findings and reads are enums and structs with explicit, stable
//! serialized names. No sentence is stored; `crate::render` writes one from
//! these values when a decision is shown, so wording can change without
//! touching a hashed byte.
//!
//! Provenance convention (every rule, every version): a [`Read`] names the
//! record that wrote the value it read: the fact record, the decision that
//! approved the action that set it, the rules record for a rule parameter, or
//! the intention itself for its own fields. [`Decision::cites`] names, by seq
//! and role, what caused the outcome: the rival intention that outranks it,
//! the promotion that blocks it, the flag, the earlier contact, the precedent,
//! the human resolution, the escalation that expired.

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{named_enum, Action, ActionKind, Impact, Lifecycle, Objective, StepRef};
use crate::digest::Digest;
use crate::entity::EntityRef;
use crate::value::Value;

named_enum!(
    /// A rule of the resolver. Appended only: the position is in the bytes.
    RuleId {
        Rules = "rules",
        Expiry = "expiry",
        Autonomy = "autonomy",
        WorkflowSequence = "workflow.sequence",
        DedupNotification = "dedup.notification",
        GuardKnown = "guard.known",
        GuardLifecycle = "guard.lifecycle",
        GuardFraudPerk = "guard.fraud_perk",
        TemporalPromotionWindow = "temporal.promotion_window",
        GuardMargin = "guard.margin",
        Priority = "priority",
        Threshold = "threshold",
        Precedent = "precedent",
        Approve = "approve",
        HumanResolution = "human_resolution",
        EscalationExpiry = "escalation.expiry",
        /// The rule set's own guards (`[[custom]]`, resolver version 3 on).
        Custom = "custom",
        /// Forecast calibration for the threshold rule (resolver version 4 on).
        Calibration = "calibration",
    }
);

named_enum!(
    /// What one rule concluded.
    Verdict {
        Pass = "pass",
        Defer = "defer",
        Reject = "reject",
        Escalate = "escalate",
        Approve = "approve",
        Expire = "expire",
    }
);

/// What was read: a field of an entity (or of the rule set, `entity: None`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    // Rule parameters (entity: none; seq: the rules record).
    MinMarginBp,
    PromotionLeadH,
    NotificationWindowH,
    EscalateAboveMinor,
    LiveWindowH,
    PrecedentWindowH,
    /// The longest an intention waits (`[pending] max_wait_h`).
    MaxWaitH,
    /// An objective's position in the rule set's order (0 first).
    ObjectiveRank,
    // The ledger.
    NowMs,
    // An intention's own fields (entity: the intention).
    ExpiresAtMs,
    Objective,
    RevenueImpactMinor,
    // An agent (entity: the agent).
    Autonomy(ActionKind),
    AgentPriority,
    // A sku.
    Category,
    Lifecycle,
    PriceMinor,
    CostMinor,
    /// The largest discount of the promotions on a sku (entity: the promotion's intention).
    DiscountBp,
    PromotionStartsAtMs,
    // A campaign.
    BudgetMinor,
    // Orders and customers.
    OrderCustomer,
    FraudFlag,
    LastContactMs,
    // Workflows (entity: the run).
    Workflow,
    StepStatus(String),
    // Escalations and precedents (entity: the intention escalated).
    EscalationExpiresAtMs,
    PrecedentImpactMinor,
    ChosenOption,
    /// A leaf of the view a custom guard read (entity: the leaf's entity;
    /// the intention for its action and intention fields; none for `now_ms`).
    View(super::guard::ViewPath),
    // Outcomes (resolver version 4 on).
    /// `[calibration] min_outcomes` (entity: none; seq: the rules record).
    CalibrationMinOutcomes,
    /// An agent's forecast bias, realized over projected revenue impact
    /// (entity: the agent; seq: the newest outcome record it used).
    ForecastBiasBp,
    /// `[precedent] retire_if_worse_bp` (entity: none; seq: the rules record).
    RetireIfWorseBp,
    /// A precedent's original case quality, and its settled cases' mean
    /// (entity: the escalated intention; seq: the newest outcome record used).
    PrecedentQualityBp,
    SettledQualityBp,
}

/// A value a rule read, and the record that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub field: Field,
    pub entity: Option<EntityRef>,
    pub value: Value,
    pub seq: u64,
}

/// One sku's margin after every discount that applies to it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkuMargin {
    pub sku: String,
    pub price_minor: i64,
    pub discount_bp: u32,
    pub effective_minor: i64,
    pub cost_minor: i64,
    /// `None` when the effective price is 0 (a 100 % discount): no margin at all.
    pub margin_bp: Option<i64>,
}

/// What a rule found, as data; `crate::render` turns it into a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "finding", rename_all = "snake_case", deny_unknown_fields)]
pub enum Finding {
    NoRuleSet,
    NotExpired,
    /// The intention's expiry passed before it was first decided.
    /// `max_wait_h` is set when the rule set's longest wait, not the
    /// intention's own `expires_at_ms`, set the expiry.
    Expired {
        expires_at_ms: u64,
        max_wait_h: Option<u64>,
    },
    AgentNotRegistered {
        agent: String,
    },
    Autonomous {
        kind: ActionKind,
    },
    ManualKind {
        kind: ActionKind,
    },
    ProposeAndApprove {
        kind: ActionKind,
    },
    NoSuchRun {
        run: String,
    },
    NoSuchStep {
        workflow: String,
        step: String,
    },
    NotStepOwner {
        step: String,
        owner: String,
    },
    RunEnded {
        run: String,
        outcome: String,
    },
    StepReady {
        step: StepRef,
    },
    RunCompensating {
        run: String,
        failed_step: String,
    },
    WaitsForStep {
        step: StepRef,
        missing: String,
    },
    CompensationOnly {
        step: String,
    },
    StepAlreadySettled {
        step: StepRef,
        status: String,
    },
    AlreadyNotified {
        customer: String,
        order: String,
        topic: String,
        at_ms: u64,
    },
    NotNotified,
    /// An entity the action needs is not known: the guard cannot read it.
    Unknown {
        entity: EntityRef,
    },
    /// The order belongs to another customer.
    OrderOfAnotherCustomer {
        order: String,
        customer: String,
    },
    Known,
    NoReorder {
        sku: String,
        lifecycle: Lifecycle,
    },
    LifecycleAllows,
    FraudFlagged {
        order: String,
    },
    NotFlagged,
    PromotionWindow {
        sku: String,
        promotions: u32,
        until_ms: u64,
    },
    NoPromotionWindow,
    MarginBelow {
        min_bp: i64,
        checked: u32,
        /// How many skus would sell below the margin; `failing` lists the
        /// first 20 of them.
        failing_count: u32,
        failing: Vec<SkuMargin>,
        /// For a promotion over several skus: the covered skus that would keep
        /// the margin (empty when none would, or more than 1,000 would).
        passing: Vec<String>,
    },
    MarginHolds {
        min_bp: i64,
        checked: u32,
        /// The sku with the lowest margin.
        lowest: Option<SkuMargin>,
    },
    Outranked {
        by: u64,
        agent: String,
        objective: Objective,
    },
    NoRival,
    OutranksRivals {
        rivals: u32,
    },
    WithinLimit,
    AboveLimit {
        revenue_minor: i64,
        limit_minor: i64,
    },
    PrecedentApplies {
        resolution: u64,
        signature: Signature,
        precedent_impact_minor: i64,
        impact_minor: i64,
        approved: bool,
        modified: bool,
    },
    AllPassed,
    SettledByHuman {
        resolution: u64,
        option: u32,
        chosen: bool,
    },
    EscalationExpired {
        escalation: u64,
        approve: bool,
    },
    /// The expiry passed while the intention waited (see `Expired`).
    PendingExpired {
        expires_at_ms: u64,
        max_wait_h: Option<u64>,
    },
    /// A custom guard did not fire for any of the `checked` subjects.
    CustomPassed {
        guard: String,
        checked: u32,
    },
    /// A custom guard fired for `count` of the `checked` subjects (the skus
    /// of a promotion, or the one entity of the action); `failing` lists the
    /// first of them by id.
    CustomFired {
        guard: String,
        then: super::guard::Then,
        failing: Vec<String>,
        count: u32,
        checked: u32,
    },
    /// A custom guard could not be evaluated for `subject` (by id).
    CustomFault {
        guard: String,
        subject: String,
        fault: super::guard::GuardFault,
    },
    /// The threshold rule compares `calibrated_minor`: the intention's
    /// `revenue_minor` scaled by its agent's forecast bias over `measured`
    /// decisions (clamped to `scale_bp`).
    Calibrated {
        revenue_minor: i64,
        calibrated_minor: i64,
        bias_bp: i64,
        scale_bp: i64,
        measured: u64,
    },
    /// Calibration was not applied: fewer than `min_outcomes` of the
    /// agent's decisions are measured, or it projected nothing in sum.
    NotCalibrated {
        measured: u64,
        min_outcomes: u32,
    },
    /// The precedent of `resolution` matched but is retired: the `measured`
    /// cases it settled did `settled_bp` against its original's
    /// `original_bp`, more than `worse_bp` worse.
    PrecedentRetired {
        resolution: u64,
        original_bp: i64,
        settled_bp: i64,
        measured: u64,
        worse_bp: i64,
    },
}

/// One rule evaluated, in order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceStep {
    pub rule: RuleId,
    pub verdict: Verdict,
    pub finding: Finding,
    pub reads: Vec<Read>,
}

named_enum!(
    /// Why a decision cites a record.
    CiteRole {
        /// An intention that outranks this one.
        Rival = "rival",
        /// A promotion (its intention) that blocks or discounts this change.
        Promotion = "promotion",
        /// The intention whose approval set the price read.
        PriceSetter = "price-setter",
        /// The earlier contact with the customer.
        Contact = "contact",
        /// The fraud flag on the order.
        FraudFlag = "fraud-flag",
        /// A human resolution reused as a precedent.
        Precedent = "precedent",
        /// The human resolution that settled this intention.
        Resolution = "resolution",
        /// The decision that escalated this intention.
        Escalation = "escalation",
        /// The record that ended the workflow run.
        RunEnd = "run-end",
    }
);

/// A record a decision cites, and why.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cite {
    pub role: CiteRole,
    pub seq: u64,
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

named_enum!(
    /// Which outcome a decision had, without its data: what reports, counts
    /// and filters carry.
    OutcomeKind {
        Approved = "approved",
        Deferred = "deferred",
        Rejected = "rejected",
        Escalated = "escalated",
        Expired = "expired",
        Modified = "modified",
    }
);

impl OutcomeKind {
    /// Approved, as intended or with modified values.
    pub fn is_approval(self) -> bool {
        matches!(self, OutcomeKind::Approved | OutcomeKind::Modified)
    }
}

impl Outcome {
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Approved => OutcomeKind::Approved,
            Outcome::Deferred { .. } => OutcomeKind::Deferred,
            Outcome::Rejected => OutcomeKind::Rejected,
            Outcome::Escalated { .. } => OutcomeKind::Escalated,
            Outcome::Expired => OutcomeKind::Expired,
            Outcome::Modified { .. } => OutcomeKind::Modified,
        }
    }

    /// The outcome's stable name (its kind's).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Approved, as intended or with modified values.
    pub fn is_approval(&self) -> bool {
        matches!(self, Outcome::Approved | Outcome::Modified { .. })
    }

    /// Settled for good: nothing will decide this intention again.
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Deferred { .. } | Outcome::Escalated { .. })
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

/// Why a human is asked.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum EscalationReason {
    /// The agent's autonomy for this kind is propose-and-approve.
    Autonomy { agent: String, kind: ActionKind },
    /// The projected revenue impact is above the rule set's limit.
    Threshold {
        agent: String,
        kind: ActionKind,
        revenue_minor: i64,
        limit_minor: i64,
    },
    /// A custom guard of the rule set said so (it fired, or could not be
    /// evaluated).
    Custom {
        guard: String,
        agent: String,
        kind: ActionKind,
    },
}

named_enum!(
    /// What an escalation option does.
    OptionChoice {
        /// Approve the escalated intention.
        ApproveThis = "approve-this",
        /// Approve a pending rival instead (the rest are rejected).
        ApproveRival = "approve-rival",
        /// Reject every intention involved.
        RejectAll = "reject-all",
        /// Approve the escalated intention with modified values.
        ApproveModified = "approve-modified",
    }
);

/// What a human is asked to settle.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub reason: EscalationReason,
    /// Numbered from 0.
    pub options: Vec<EscalationOption>,
    /// Each involved intention's agent, reasoning and impact.
    pub involved: Vec<Involved>,
}

/// One option of an escalation.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationOption {
    pub choice: OptionChoice,
    /// Intentions (by seq) this option approves; all others involved are rejected.
    pub approve: Vec<u64>,
    /// For [`OptionChoice::ApproveModified`]: the action that takes effect
    /// instead of the (single) approved intention's.
    #[serde(default)]
    pub modified: Option<Action>,
}

/// An intention involved in a conflict.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Involved {
    pub intention: u64,
    pub agent: String,
    pub action: Action,
    pub reasoning: String,
    pub impact: Impact,
    pub objective: Objective,
}

/// The class of entity a precedent speaks for.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntityClass {
    /// Skus of one category (or a category promotion).
    Category(String),
    /// Skus of several categories, sorted.
    Categories(Vec<String>),
    Campaign(String),
    Orders,
    Customers,
    /// A generic attribute of an entity kind (`None`: untyped entities).
    Attribute {
        kind: Option<String>,
        attribute: String,
    },
}

named_enum!(
    /// Which way an action moves its value.
    Direction {
        Up = "up",
        Down = "down",
        Neither = "neither",
    }
);

/// What two conflicts must share for a human's resolution of one to settle
/// the other (with a comparable impact; see ARCHITECTURE.md, "Precedents").
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub rule: RuleId,
    pub kind: ActionKind,
    pub class: EntityClass,
    pub direction: Direction,
}

/// The resolver's answer to one intention.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The resolver version that made this decision.
    pub resolver: u32,
    /// Seq of the intention decided.
    pub intention: u64,
    /// The entity the intention is about.
    pub entity: EntityRef,
    pub outcome: Outcome,
    /// The rule that decided (the last in the trace).
    pub rule: RuleId,
    /// blake3 of the rule text in force (`None`: no rule set installed).
    pub rules_hash: Option<Digest>,
    /// The context this decision read: the seq just before it.
    pub context_seq: u64,
    pub trace: Vec<TraceStep>,
    /// What caused the outcome (see the module docs for the convention).
    pub cites: Vec<Cite>,
    /// The earlier decision on the same intention this one follows (re-decisions).
    pub follows: Option<u64>,
}

impl Decision {
    /// The seqs cited in `role`.
    pub fn cited(&self, role: CiteRole) -> impl Iterator<Item = u64> + '_ {
        self.cites
            .iter()
            .filter(move |c| c.role == role)
            .map(|c| c.seq)
    }
}
