//! The shared context: one picture of the store, a pure fold over the log. Every
//! value carries the seq that last wrote it, so a decision's trace can cite it.
//!
//! Architecture invariant: `Context::apply` is a pure function of the context and
//! the record (no I/O, no clock, no hash-map iteration). The same log gives the
//! same context, whether folded from zero or from a snapshot, and `state_hash`
//! (blake3 of the canonical encoding) lets two folds be compared.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};
use serde::Serialize;

mod intentions;

use crate::record::{to_hex, Body, StoredRecord};
use crate::rules::{rules_hash, RuleSet};
use crate::value::Value;
use crate::vocab::{
    Action, AgentProfile, EscalationOption, Intention, Lifecycle, Perk, PromotionTarget,
};
use crate::workflow::run::Workflows;

/// A value and the seq that last wrote it (0: never written).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Stamped<T> {
    pub value: T,
    pub seq: u64,
}

pub(crate) fn stamp<T>(value: T, seq: u64) -> Stamped<T> {
    Stamped { value, seq }
}

/// Per sku.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct SkuState {
    pub category: Stamped<String>,
    pub cost_minor: Stamped<i64>,
    pub price_minor: Stamped<i64>,
    pub stock: Stamped<i64>,
    pub lifecycle: Stamped<Lifecycle>,
    pub reserved: Stamped<i64>,
    pub on_order: Stamped<i64>,
    pub competitor_prices: BTreeMap<String, Stamped<i64>>,
    pub traffic_increase_bp: Stamped<u32>,
    pub supplier_delay_days: Stamped<u32>,
}

impl Default for SkuState {
    fn default() -> SkuState {
        SkuState {
            category: Stamped::default(),
            cost_minor: Stamped::default(),
            price_minor: Stamped::default(),
            stock: Stamped::default(),
            lifecycle: stamp(Lifecycle::Active, 0),
            reserved: Stamped::default(),
            on_order: Stamped::default(),
            competitor_prices: BTreeMap::new(),
            traffic_increase_bp: Stamped::default(),
            supplier_delay_days: Stamped::default(),
        }
    }
}

/// Per order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct OrderState {
    pub customer: Stamped<String>,
    pub total_minor: Stamped<i64>,
    /// Fraud flag reason, if flagged.
    pub flagged: Option<Stamped<String>>,
    pub delayed_days: Option<Stamped<u32>>,
    pub perks: Vec<Stamped<Perk>>,
}

/// A promotion approved into the plan.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Promotion {
    pub intention: u64,
    pub decision: u64,
    pub target: PromotionTarget,
    pub discount_bp: u32,
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
}

/// Where an intention stands.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Announced; its decision is the next record.
    New,
    Deferred {
        until_ms: u64,
    },
    /// Deferred until a step of a workflow run completes (rule
    /// `workflow.sequence`); `unblocked` once it has (or the run ended).
    Waiting {
        run: String,
        step: String,
        unblocked: bool,
    },
    /// Waiting for a human; resolves to the rule set's safe default at
    /// `expires_at_ms` if the rules in force when it escalated say so.
    Escalated {
        expires_at_ms: Option<u64>,
    },
    Approved,
    Rejected,
    Expired,
}

impl Status {
    /// Deferred, waiting or escalated: not settled, and a live rival.
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Status::Deferred { .. } | Status::Waiting { .. } | Status::Escalated { .. }
        )
    }
}

/// A human's settlement waiting to be written as a decision.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Settlement {
    pub resolution: u64,
    pub approve: bool,
    /// The chosen option's modified action, when it approves this intention.
    pub modified: Option<Action>,
}

/// An announced intention and its history.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct IntentionState {
    pub seq: u64,
    pub agent: String,
    pub at_ms: u64,
    pub intention: Intention,
    pub status: Status,
    /// Decision records about it, in order.
    pub decisions: Vec<u64>,
    /// The last decision's escalation, while escalated: (rule, options).
    pub escalation: Option<(String, Vec<EscalationOption>)>,
    pub settlement: Option<Settlement>,
}

/// A human resolution reusable for later conflicts of the same signature.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Precedent {
    pub resolution: u64,
    pub signature: String,
    pub at_ms: u64,
    pub approved: bool,
    /// The human chose the rule's modified values.
    pub modified: bool,
}

/// The rule set in force.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct InstalledRules {
    pub seq: u64,
    pub hash: String,
    pub rules: RuleSet,
}

/// The shared context at one seq.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Context {
    /// The last record folded in.
    pub seq: u64,
    /// Its `recorded_at_ms`: the ledger's "now".
    pub now_ms: u64,
    pub skus: BTreeMap<String, SkuState>,
    pub orders: BTreeMap<String, OrderState>,
    /// "customer|order|topic" → the last contact.
    pub contacts: BTreeMap<String, Stamped<u64>>,
    pub agents: BTreeMap<String, Stamped<AgentProfile>>,
    pub humans: BTreeMap<String, u64>,
    pub rules: Option<InstalledRules>,
    pub intentions: BTreeMap<u64, IntentionState>,
    /// Intentions not yet settled (new, deferred, escalated, or awaiting a
    /// human's settlement): the resolver's work list.
    pub open: BTreeSet<u64>,
    /// By intention seq.
    pub promotions: BTreeMap<u64, Promotion>,
    /// Index: promotion target (`sku:…`, `category:…`) → promotions on it.
    pub promotions_by_target: BTreeMap<String, BTreeSet<u64>>,
    /// Index: (end, intention) of every promotion in `promotions`.
    pub promotion_ends: BTreeSet<(u64, u64)>,
    pub precedents: Vec<Precedent>,
    /// Generic facts: "entity|attribute" → value.
    pub facts: BTreeMap<String, Stamped<Value>>,
    /// Index: category → its skus.
    pub categories: BTreeMap<String, BTreeSet<String>>,
    /// Index: conflict key → approved intentions with that key, by (the
    /// intention's time, seq): the priority rule's window is a range of it.
    pub approved_by_conflict: BTreeMap<String, BTreeSet<(u64, u64)>>,
    /// Index: approving decision seq → the intention it approved.
    pub approved_by: BTreeMap<u64, u64>,
    /// Work queues of the resolver, kept by `index`/`unindex`: new intentions,
    /// intentions awaiting a human's settlement, deferrals by (until, seq),
    /// pending intentions with an expiry by (expires, seq), and pending
    /// (deferred or escalated) intentions by conflict key.
    pub fresh: BTreeSet<u64>,
    pub settling: BTreeSet<u64>,
    pub due: BTreeSet<(u64, u64)>,
    pub expiring: BTreeSet<(u64, u64)>,
    pub pending_by_conflict: BTreeMap<String, BTreeSet<u64>>,
    /// Workflow definitions and runs.
    pub workflows: Workflows,
    /// Intentions waiting on a step: run → step → intentions.
    pub waiting: BTreeMap<String, BTreeMap<String, BTreeSet<u64>>>,
    /// Intentions whose step wait is over: to be decided again.
    pub unblocked: BTreeSet<u64>,
    /// Escalations that resolve to the safe default, by (expires, intention).
    pub escalations_expiring: BTreeSet<(u64, u64)>,
}

/// Contexts are not records: no 1 MiB limit applies to their encoding.
fn snapshot_config(
) -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Fixint> {
    bincode::config::standard().with_fixed_int_encoding()
}

/// The index keys of a promotion target.
fn target_keys(t: &PromotionTarget) -> Vec<String> {
    match t {
        PromotionTarget::Skus(s) => s.iter().map(|x| format!("sku:{x}")).collect(),
        PromotionTarget::Category(c) => vec![format!("category:{c}")],
    }
}

/// The key of a (customer, order, topic) contact.
pub fn contact_key(customer: &str, order: &str, topic: &str) -> String {
    format!("{customer}|{order}|{topic}")
}

impl Context {
    /// Folds one record in. Records must come in log order.
    pub fn apply(&mut self, stored: &StoredRecord) {
        let env = &stored.record.envelope;
        // In log order; a what-if run folds its own decisions at their cause's seq.
        debug_assert!(env.seq >= self.seq, "records fold in order");
        let seq = env.seq;
        self.seq = seq;
        self.now_ms = self.now_ms.max(env.recorded_at_ms);
        // Ended promotions no longer constrain anything; the log keeps them.
        let now = self.now_ms;
        while let Some(&(end, id)) = self.promotion_ends.first() {
            if end > now {
                break;
            }
            self.promotion_ends.remove(&(end, id));
            if let Some(p) = self.promotions.remove(&id) {
                for key in target_keys(&p.target) {
                    if let Some(set) = self.promotions_by_target.get_mut(&key) {
                        set.remove(&id);
                        if set.is_empty() {
                            self.promotions_by_target.remove(&key);
                        }
                    }
                }
            }
        }
        match &stored.record.body {
            Body::Genesis { .. } | Body::Broadcast { .. } | Body::Clock => {}
            Body::WorkflowDefined { .. }
            | Body::WorkflowStarted { .. }
            | Body::StepReady { .. } => {
                self.workflows
                    .apply(seq, now, &env.producer, &stored.record.body);
            }
            Body::StepCompleted { run, step, .. } => {
                self.workflows
                    .apply(seq, now, &env.producer, &stored.record.body);
                self.unblock(run, Some(step));
                self.unblock_if_not_running(run);
            }
            Body::StepFailed { run, .. }
            | Body::StepTimedOut { run, .. }
            | Body::RunFinished { run, .. } => {
                self.workflows
                    .apply(seq, now, &env.producer, &stored.record.body);
                self.unblock_if_not_running(run);
            }
            Body::Fact {
                entity,
                attribute,
                value,
            } => {
                self.facts
                    .insert(format!("{entity}|{attribute}"), stamp(value.clone(), seq));
            }
            Body::Catalog {
                sku,
                category,
                cost_minor,
                price_minor,
                stock,
                lifecycle,
            } => {
                let old = self.skus.get(sku).map(|s| s.category.value.clone());
                if let Some(old) = old.filter(|o| o != category) {
                    if let Some(set) = self.categories.get_mut(&old) {
                        set.remove(sku);
                    }
                }
                self.categories
                    .entry(category.clone())
                    .or_default()
                    .insert(sku.clone());
                let s = self.skus.entry(sku.clone()).or_default();
                s.category = stamp(category.clone(), seq);
                s.cost_minor = stamp(*cost_minor, seq);
                s.price_minor = stamp(*price_minor, seq);
                s.stock = stamp(*stock, seq);
                s.lifecycle = stamp(*lifecycle, seq);
            }
            Body::StockChanged { sku, stock } => {
                self.skus.entry(sku.clone()).or_default().stock = stamp(*stock, seq);
            }
            Body::CompetitorPrice {
                sku,
                competitor,
                price_minor,
            } => {
                let s = self.skus.entry(sku.clone()).or_default();
                s.competitor_prices
                    .insert(competitor.clone(), stamp(*price_minor, seq));
            }
            Body::SupplierDelay { skus, days, .. } => {
                for sku in skus {
                    self.skus
                        .entry(sku.clone())
                        .or_default()
                        .supplier_delay_days = stamp(*days, seq);
                }
            }
            Body::TrafficSpike { sku, increase_bp } => {
                self.skus
                    .entry(sku.clone())
                    .or_default()
                    .traffic_increase_bp = stamp(*increase_bp, seq);
            }
            Body::OrderPlaced {
                order,
                customer,
                total_minor,
            } => {
                let o = self.orders.entry(order.clone()).or_default();
                o.customer = stamp(customer.clone(), seq);
                o.total_minor = stamp(*total_minor, seq);
            }
            Body::OrderDelayed { order, days } => {
                self.orders.entry(order.clone()).or_default().delayed_days =
                    Some(stamp(*days, seq));
            }
            Body::OrderFlagged { order, reason } => {
                self.orders.entry(order.clone()).or_default().flagged =
                    Some(stamp(reason.clone(), seq));
            }
            Body::CustomerContacted {
                customer,
                order,
                topic,
            } => {
                self.contacts.insert(
                    contact_key(customer, order, topic),
                    stamp(env.recorded_at_ms, seq),
                );
            }
            Body::AgentRegistered { profile } => {
                self.agents
                    .insert(profile.agent.clone(), stamp((**profile).clone(), seq));
            }
            Body::HumanRegistered { human } => {
                self.humans.insert(human.clone(), seq);
            }
            Body::RulesInstalled { text } => {
                // The sequencer refuses rule text that does not parse, so a log
                // only holds valid rule sets; a bad one would leave the old in force.
                if let Ok(rules) = RuleSet::parse(text) {
                    self.rules = Some(InstalledRules {
                        seq,
                        hash: rules_hash(text),
                        rules,
                    });
                }
            }
            Body::Intend { intention } => {
                self.intentions.insert(
                    seq,
                    IntentionState {
                        seq,
                        agent: env.producer.clone(),
                        at_ms: env.recorded_at_ms,
                        intention: (**intention).clone(),
                        status: Status::New,
                        decisions: Vec::new(),
                        escalation: None,
                        settlement: None,
                    },
                );
                self.index(seq);
            }
            Body::Decision { decision } => self.apply_decision(seq, env.recorded_at_ms, decision),
            Body::HumanResolution {
                intention, option, ..
            } => self.apply_resolution(seq, *intention, *option),
        }
    }

    /// Once a run stops running (compensating or ended), nothing waits on its steps.
    fn unblock_if_not_running(&mut self, run: &str) {
        let running = self
            .workflows
            .runs
            .get(run)
            .is_some_and(|r| r.status == crate::workflow::run::RunStatus::Running);
        if !running {
            self.unblock(run, None);
        }
    }

    /// Promotions covering `sku` that have not ended, in intention order.
    pub fn promotions_on(&self, sku: &str) -> Vec<&Promotion> {
        let mut ids: BTreeSet<u64> = BTreeSet::new();
        let mut add =
            |key: String| ids.extend(self.promotions_by_target.get(&key).into_iter().flatten());
        add(format!("sku:{sku}"));
        if let Some(s) = self.skus.get(sku) {
            add(format!("category:{}", s.category.value));
        }
        ids.iter()
            .filter_map(|i| self.promotions.get(i))
            // The index keys by the sku and its current category: every entry covers it.
            .filter(|p| p.ends_at_ms > self.now_ms)
            .collect()
    }

    pub(super) fn add_promotion(&mut self, p: Promotion) {
        // An intention is approved at most once; a repeat replaces its entry.
        if let Some(old) = self.promotions.remove(&p.intention) {
            self.promotion_ends.remove(&(old.ends_at_ms, old.intention));
        }
        for key in target_keys(&p.target) {
            self.promotions_by_target
                .entry(key)
                .or_default()
                .insert(p.intention);
        }
        self.promotion_ends.insert((p.ends_at_ms, p.intention));
        self.promotions.insert(p.intention, p);
    }

    /// The skus a promotion target covers, in order.
    pub fn skus_of(&self, target: &PromotionTarget) -> Vec<String> {
        match target {
            PromotionTarget::Skus(s) => s.clone(),
            PromotionTarget::Category(c) => self
                .categories
                .get(c)
                .map_or_else(Vec::new, |set| set.iter().cloned().collect()),
        }
    }

    /// The earliest time at which something pending becomes decidable (a
    /// deferral ends or an expiry passes), for the sequencer's clock records.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let due = self.due.first().map(|d| d.0);
        let expiry = self.expiring.first().map(|e| e.0);
        let escalation = self.escalations_expiring.first().map(|e| e.0);
        let step = self.workflows.next_deadline_ms();
        [due, expiry, escalation, step].into_iter().flatten().min()
    }

    /// A snapshot: the canonical encoding of the whole context.
    pub fn to_snapshot(&self) -> Vec<u8> {
        // Encoding owned maps, strings and integers into a Vec cannot fail.
        bincode::encode_to_vec(self, snapshot_config()).unwrap_or_default()
    }

    /// The context a snapshot holds; every byte must be used.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Context, String> {
        let (ctx, used): (Context, usize) =
            bincode::decode_from_slice(bytes, snapshot_config()).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err(format!(
                "snapshot decodes from {used} of its {} bytes",
                bytes.len()
            ));
        }
        Ok(ctx)
    }

    /// blake3 of the canonical encoding: equal contexts, equal hashes.
    pub fn state_hash(&self) -> String {
        let bytes = self.to_snapshot();
        to_hex(blake3::hash(&bytes).as_bytes())
    }
}
