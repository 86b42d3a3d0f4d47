//! The public picture of the shared context: what `parley state --json`
//! prints and the HTTP API serves (`schemas/state.schema.json`). A designed
//! view, not a dump of the fold's internal indexes: every value carries the
//! seq of the record that wrote it.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, IntentionState, Stamped, Status};
use crate::entity::EntityRef;
use crate::record::{Digest, Timeline};
use crate::time::format_rfc3339;
use crate::value::Value;
use crate::vocab::{named_enum, RunOutcome};
use crate::vocab::{
    Action, ActionKind, Autonomy, Domain, Lifecycle, Objective, Perk, PromotionTarget,
};
use crate::workflow::run::{RunState, StepStatus};

/// A value and the seq of the record that wrote it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct At<T> {
    pub value: T,
    pub seq: u64,
}

fn at<T: Clone>(s: &Stamped<T>) -> At<T> {
    At {
        value: s.value.clone(),
        seq: s.seq,
    }
}

/// The ledger itself.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct LedgerView {
    pub id: String,
    pub timeline: Option<Timeline>,
    /// The resolver version in force and the record that set it.
    pub resolver: At<u32>,
    /// The rule set in force: its hash and the record that installed it.
    pub rules: Option<At<Digest>>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AgentView {
    pub agent: String,
    pub domain: Domain,
    pub priority: u32,
    pub autonomy: BTreeMap<ActionKind, Autonomy>,
    pub seq: u64,
}

/// A human or an admin, and the record that registered them.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Member {
    pub name: String,
    pub seq: u64,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SkuView {
    pub sku: String,
    pub category: At<String>,
    pub price_minor: At<i64>,
    /// The intention whose approval set the price (none: the catalog did).
    pub price_by: Option<u64>,
    pub cost_minor: At<i64>,
    pub stock: At<i64>,
    pub lifecycle: At<Lifecycle>,
    pub reserved: At<i64>,
    pub on_order: At<i64>,
    pub competitor_prices: BTreeMap<String, At<i64>>,
    pub traffic_increase_bp: At<u32>,
    pub supplier_delay_days: At<u32>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct OrderView {
    pub order: String,
    pub customer: At<String>,
    pub total_minor: At<i64>,
    pub flagged: Option<At<String>>,
    pub delayed_days: Option<At<u32>>,
    pub perks: Vec<At<Perk>>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ContactView {
    pub customer: String,
    pub order: String,
    pub topic: String,
    pub at: At<u64>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FactView {
    pub entity: EntityRef,
    pub attribute: String,
    pub value: At<Value>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PromotionView {
    pub intention: u64,
    /// The decision that approved it.
    pub decision: u64,
    pub target: PromotionTarget,
    pub discount_bp: u32,
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
}

named_enum!(
    /// Where an open intention stands, as views show it.
    IntentionStatus {
        New = "new",
        Deferred = "deferred",
        Waiting = "waiting",
        Escalated = "escalated",
        /// A human settled it; the decision that records it is next.
        Settling = "settling",
        /// Approved and still live for the priority rule.
        Approved = "approved",
    }
);
named_enum!(
    /// Where a workflow step stands.
    StepPhase {
        Waiting = "waiting",
        Ready = "ready",
        Completed = "completed",
        Failed = "failed",
        TimedOut = "timed_out",
        Skipped = "skipped",
    }
);
named_enum!(
    /// Where a workflow run stands (an ended run by its outcome).
    RunPhase {
        Running = "running",
        Compensating = "compensating",
        Completed = "completed",
        Aborted = "aborted",
        Compensated = "compensated",
    }
);

fn step_phase(s: &StepStatus) -> StepPhase {
    match s {
        StepStatus::Waiting => StepPhase::Waiting,
        StepStatus::Ready { .. } => StepPhase::Ready,
        StepStatus::Completed { .. } => StepPhase::Completed,
        StepStatus::Failed { .. } => StepPhase::Failed,
        StepStatus::TimedOut { .. } => StepPhase::TimedOut,
        StepStatus::Skipped => StepPhase::Skipped,
    }
}

/// An intention not yet settled.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct OpenIntentionView {
    pub seq: u64,
    pub agent: String,
    pub action: Action,
    pub objective: Objective,
    pub reasoning: String,
    pub status: IntentionStatus,
    /// For a deferral: until when; for an escalation: when it expires.
    pub until_ms: Option<u64>,
    /// When the intention itself expires if still open: its own
    /// `expires_at_ms` or the rule set's longest wait, whichever is earlier.
    pub expires_at_ms: Option<u64>,
    pub decisions: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct StepView {
    pub step: String,
    pub owner: String,
    pub status: StepPhase,
    pub seq: Option<u64>,
    pub deadline_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RunView {
    pub run: String,
    pub workflow: String,
    pub version: u32,
    pub started_seq: u64,
    pub started_at_ms: u64,
    pub started_by: String,
    pub status: RunPhase,
    pub finished_seq: Option<u64>,
    pub steps: Vec<StepView>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WorkflowView {
    pub name: String,
    pub version: u32,
    pub seq: u64,
    pub steps: Vec<String>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PrecedentView {
    pub resolution: u64,
    pub intention: u64,
    pub action: ActionKind,
    pub categories: Vec<String>,
    pub impact_minor: i64,
    pub approved: bool,
    pub modified: bool,
    pub at_ms: u64,
}

/// The whole shared context at one seq.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct StateView {
    /// The last record folded in.
    pub seq: u64,
    /// Its time (RFC 3339) and ms: the ledger's "now".
    pub at: String,
    pub at_ms: u64,
    pub ledger: LedgerView,
    pub agents: Vec<AgentView>,
    pub humans: Vec<Member>,
    pub admins: Vec<Member>,
    pub skus: Vec<SkuView>,
    pub orders: Vec<OrderView>,
    pub contacts: Vec<ContactView>,
    pub campaigns: BTreeMap<String, At<i64>>,
    pub facts: Vec<FactView>,
    /// The plan: promotions approved and not yet ended.
    pub promotions: Vec<PromotionView>,
    pub open_intentions: Vec<OpenIntentionView>,
    pub workflows: Vec<WorkflowView>,
    pub runs: Vec<RunView>,
    /// Human resolutions later conflicts may follow.
    pub precedents: Vec<PrecedentView>,
}

pub fn sku(id: &str, s: &super::SkuState) -> SkuView {
    SkuView {
        sku: id.to_owned(),
        category: at(&s.category),
        price_minor: at(&s.price_minor),
        price_by: s.price_by,
        cost_minor: at(&s.cost_minor),
        stock: at(&s.stock),
        lifecycle: at(&s.lifecycle),
        reserved: at(&s.reserved),
        on_order: at(&s.on_order),
        competitor_prices: s
            .competitor_prices
            .iter()
            .map(|(k, v)| (k.clone(), at(v)))
            .collect(),
        traffic_increase_bp: at(&s.traffic_increase_bp),
        supplier_delay_days: at(&s.supplier_delay_days),
    }
}

pub fn order(id: &str, o: &super::OrderState) -> OrderView {
    OrderView {
        order: id.to_owned(),
        customer: at(&o.customer),
        total_minor: at(&o.total_minor),
        flagged: o.flagged.as_ref().map(at),
        delayed_days: o.delayed_days.as_ref().map(at),
        perks: o.perks.iter().map(at).collect(),
    }
}

pub fn open_intention(s: &IntentionState) -> OpenIntentionView {
    use IntentionStatus as I;
    let (status, until_ms) = match (&s.status, &s.settlement) {
        (_, Some(_)) => (I::Settling, None),
        (Status::New, _) => (I::New, None),
        (Status::Deferred { until_ms }, _) => (I::Deferred, Some(*until_ms)),
        (Status::Waiting { .. }, _) => (I::Waiting, None),
        (Status::Escalated { expires_at_ms }, _) => (I::Escalated, *expires_at_ms),
        (Status::Approved, _) => (I::Approved, None),
    };
    OpenIntentionView {
        seq: s.seq,
        agent: s.agent.clone(),
        action: s.intention.action.clone(),
        objective: s.intention.objective,
        reasoning: s.intention.reasoning.clone(),
        status,
        until_ms,
        expires_at_ms: s.expires_at_ms,
        decisions: s.decisions.clone(),
    }
}

pub fn run(r: &RunState) -> RunView {
    use crate::workflow::run::RunStatus;
    let status = match &r.status {
        RunStatus::Running => RunPhase::Running,
        RunStatus::Compensating { .. } => RunPhase::Compensating,
        RunStatus::Ended {
            outcome: RunOutcome::Completed,
        } => RunPhase::Completed,
        RunStatus::Ended {
            outcome: RunOutcome::Aborted { .. },
        } => RunPhase::Aborted,
        RunStatus::Ended {
            outcome: RunOutcome::Compensated { .. },
        } => RunPhase::Compensated,
    };
    RunView {
        run: r.run.clone(),
        workflow: r.workflow.clone(),
        version: r.version,
        started_seq: r.started_seq,
        started_at_ms: r.started_at_ms,
        started_by: r.started_by.clone(),
        status,
        finished_seq: r.finished_seq,
        steps: r
            .steps
            .iter()
            .map(|s| StepView {
                step: s.name.clone(),
                owner: s.owner.clone(),
                status: step_phase(&s.status),
                seq: s.status.seq(),
                deadline_ms: s.deadline_ms,
            })
            .collect(),
    }
}

fn promotion(p: &super::Promotion) -> PromotionView {
    PromotionView {
        intention: p.intention,
        decision: p.decision,
        target: p.target.clone(),
        discount_bp: p.discount_bp,
        starts_at_ms: p.starts_at_ms,
        ends_at_ms: p.ends_at_ms,
    }
}

fn agent(p: &Stamped<crate::vocab::AgentProfile>) -> AgentView {
    AgentView {
        agent: p.value.agent.clone(),
        domain: p.value.domain,
        priority: p.value.priority,
        autonomy: p.value.autonomy.clone(),
        seq: p.seq,
    }
}

fn contact((k, v): (&super::store::ContactKey, &Stamped<u64>)) -> ContactView {
    ContactView {
        customer: k.customer.clone(),
        order: k.order.clone(),
        topic: k.topic.clone(),
        at: at(v),
    }
}

pub fn workflow(i: &crate::workflow::run::Installed) -> WorkflowView {
    WorkflowView {
        name: i.definition.name.clone(),
        version: i.definition.version,
        seq: i.seq,
        steps: i.definition.steps.iter().map(|s| s.name.clone()).collect(),
    }
}

fn precedent(p: &super::precedents::Precedent) -> PrecedentView {
    PrecedentView {
        resolution: p.resolution,
        intention: p.intention,
        action: p.action.kind(),
        categories: p.categories.clone(),
        impact_minor: p.impact_minor,
        approved: p.approved,
        modified: p.modified,
        at_ms: p.at_ms,
    }
}

/// The whole context as its public view.
pub fn state(ctx: &Context) -> StateView {
    let a = &ctx.authority;
    let st = &ctx.store;
    let member = |(name, seq): (&String, &u64)| Member {
        name: name.clone(),
        seq: *seq,
    };
    StateView {
        seq: ctx.seq,
        at: format_rfc3339(ctx.now_ms),
        at_ms: ctx.now_ms,
        ledger: LedgerView {
            id: a.ledger_id.clone(),
            timeline: a.timeline,
            resolver: at(&a.resolver),
            rules: a.rules.as_ref().map(|r| At {
                value: r.hash,
                seq: r.seq,
            }),
        },
        agents: a.agents.values().map(agent).collect(),
        humans: a.humans.iter().map(member).collect(),
        admins: a.admins.iter().map(member).collect(),
        skus: st.skus().map(|(id, s)| sku(id, s)).collect(),
        orders: st.orders().map(|(id, o)| order(id, o)).collect(),
        contacts: st.contacts().map(contact).collect(),
        campaigns: st.budgets().map(|(k, v)| (k.clone(), at(v))).collect(),
        facts: st
            .facts()
            .map(|((e, attr), v)| FactView {
                entity: e.clone(),
                attribute: attr.clone(),
                value: at(v),
            })
            .collect(),
        promotions: st.promotions().map(promotion).collect(),
        open_intentions: ctx.intentions.open().map(open_intention).collect(),
        workflows: ctx
            .workflows
            .definitions
            .values()
            .flat_map(|v| v.values())
            .map(workflow)
            .collect(),
        runs: ctx.workflows.runs.values().map(run).collect(),
        precedents: ctx.precedents.newest_first().map(precedent).collect(),
    }
}

/// One entity of the context.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntityView {
    Sku {
        sku: SkuView,
        /// Generic facts about it (attributes parley does not model).
        facts: Vec<FactView>,
        promotions: Vec<PromotionView>,
        open_intentions: Vec<OpenIntentionView>,
    },
    Category {
        category: String,
        skus: Vec<String>,
        promotions: Vec<PromotionView>,
        open_intentions: Vec<OpenIntentionView>,
    },
    Order {
        order: OrderView,
        facts: Vec<FactView>,
        open_intentions: Vec<OpenIntentionView>,
    },
    Customer {
        customer: String,
        orders: Vec<String>,
        contacts: Vec<ContactView>,
        open_intentions: Vec<OpenIntentionView>,
    },
    Campaign {
        campaign: String,
        budget_minor: Option<At<i64>>,
        open_intentions: Vec<OpenIntentionView>,
    },
    Agent {
        agent: AgentView,
    },
    Human {
        human: Member,
    },
    Run {
        run: RunView,
    },
    Intention {
        intention: OpenIntentionView,
    },
    Other {
        entity: EntityRef,
        facts: Vec<FactView>,
        open_intentions: Vec<OpenIntentionView>,
    },
}

/// The generic facts about one entity.
fn facts_of(ctx: &Context, e: &EntityRef) -> Vec<FactView> {
    ctx.store
        .facts_of(e)
        .map(|(attr, v)| FactView {
            entity: e.clone(),
            attribute: attr.clone(),
            value: at(v),
        })
        .collect()
}

/// One entity as the context holds it, or `None` when it holds nothing of it.
pub fn entity(ctx: &Context, e: &EntityRef) -> Option<EntityView> {
    let st = &ctx.store;
    let open: Vec<OpenIntentionView> = ctx
        .intentions
        .open()
        .filter(|s| s.intention.action.entities().contains(e))
        .map(open_intention)
        .collect();
    let view = match e {
        EntityRef::Sku(id) => EntityView::Sku {
            sku: sku(id, st.sku(id)?),
            facts: facts_of(ctx, e),
            promotions: ctx.promotions_on(id).into_iter().map(promotion).collect(),
            open_intentions: open,
        },
        EntityRef::Category(c) => EntityView::Category {
            category: c.clone(),
            skus: st.category(c)?.iter().cloned().collect(),
            promotions: st.promotions_naming(e).map(promotion).collect(),
            open_intentions: open,
        },
        EntityRef::Order(id) => EntityView::Order {
            order: order(id, st.order(id)?),
            facts: facts_of(ctx, e),
            open_intentions: open,
        },
        EntityRef::Customer(c) => return customer(ctx, c, open),
        EntityRef::Campaign(c) => {
            let budget = st.budget(c).map(at);
            if budget.is_none() && open.is_empty() {
                return None;
            }
            EntityView::Campaign {
                campaign: c.clone(),
                budget_minor: budget,
                open_intentions: open,
            }
        }
        EntityRef::Agent(a) => EntityView::Agent {
            agent: agent(ctx.authority.agents.get(a)?),
        },
        EntityRef::Human(h) => EntityView::Human {
            human: Member {
                name: h.clone(),
                seq: *ctx.authority.humans.get(h)?,
            },
        },
        EntityRef::Run(r) => EntityView::Run {
            run: run(ctx.workflows.runs.get(r)?),
        },
        EntityRef::Intention(seq) => EntityView::Intention {
            intention: open_intention(ctx.intentions.get(*seq)?),
        },
        EntityRef::Other(_) => {
            let facts = facts_of(ctx, e);
            if facts.is_empty() && open.is_empty() {
                return None;
            }
            EntityView::Other {
                entity: e.clone(),
                facts,
                open_intentions: open,
            }
        }
    };
    Some(view)
}

/// A customer: their orders, the messages they were sent, intentions on them.
fn customer(ctx: &Context, c: &str, open: Vec<OpenIntentionView>) -> Option<EntityView> {
    let st = &ctx.store;
    let orders: Vec<String> = st
        .orders()
        .filter(|(_, o)| o.customer.value == c)
        .map(|(id, _)| id.clone())
        .collect();
    let contacts: Vec<ContactView> = st
        .contacts()
        .filter(|(k, _)| k.customer == c)
        .map(contact)
        .collect();
    if orders.is_empty() && contacts.is_empty() && open.is_empty() {
        return None;
    }
    Some(EntityView::Customer {
        customer: c.to_owned(),
        orders,
        contacts,
        open_intentions: open,
    })
}
