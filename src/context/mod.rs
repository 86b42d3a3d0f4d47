//! The shared context: one picture of the store, a pure fold over the log.
//! Every value carries the seq that last wrote it, so a decision's trace can
//! cite it. Six parts, each with one job:
//! - [`authority`]: who may act (agents, humans, admins, credentials) and the
//!   rule set and resolver version in force;
//! - [`store`]: the store model (skus, orders, contacts, campaigns, facts,
//!   the promotion plan);
//! - [`intentions`]: each open intention's life and the resolver's work queues;
//! - [`precedents`]: human resolutions later conflicts may follow;
//! - `outcomes` (`crate::outcomes`): what happened after the decisions,
//!   attributed to them;
//! - [`synced`]: the newest version of each store platform object, which
//!   decides whether a late delivery still writes into the store;
//!
//! plus the workflow runs (`crate::workflow::run`). [`view`] is the public,
//! documented picture `parley state --json` prints.
//!
//! Architecture invariant: `Context::apply` is a pure function of the context
//! and the record (no I/O, no clock, no hash-map iteration). The same log gives
//! the same context, whether folded from zero or from a snapshot, and
//! `state_hash` (blake3 of the canonical encoding) lets two folds be compared.

pub mod authority;
pub mod intentions;
pub mod precedents;
pub mod store;
pub mod synced;
pub mod view;

use bincode::{Decode, Encode};
use serde::Serialize;

pub use crate::invariant::{Part, Violation};
pub use authority::{Authority, Credential, Holder, InstalledRules};
pub use intentions::{IntentionState, Intentions, OpenEscalation, Settlement, Status};
pub use precedents::{Precedent, Precedents};
pub use store::{ContactKey, OrderState, Promotion, SkuState, Store};

use crate::effect;
use crate::record::{to_hex, Body, StoredRecord};
use crate::workflow::run::Workflows;

/// Below this many indexed entries, a debug build checks every invariant
/// after every record (see `Context::check_due`).
pub const CHECK_EVERY_RECORD_SIZE_MAX: usize = 512;

/// A value and the seq of the record that last wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Stamped<T> {
    pub value: T,
    pub seq: u64,
}

pub(crate) fn stamp<T>(value: T, seq: u64) -> Stamped<T> {
    Stamped { value, seq }
}

/// A record the fold cannot take: the log holds something the sequencer
/// would never have written (a forged but chain-valid log, or a bug).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistent {
    #[error("record seq {seq} comes after seq {last}: records fold in order")]
    OutOfOrder { seq: u64, last: u64 },
    #[error("record seq {seq} decides intention {intention}, which is not open")]
    NotOpen { seq: u64, intention: u64 },
    #[error("record seq {seq} resolves intention {intention}, which has no open escalation with that option")]
    NoEscalation { seq: u64, intention: u64 },
}

/// A snapshot the context cannot be loaded from.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot does not decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("the snapshot decodes from {used} of its {len} bytes")]
    Trailing { used: usize, len: usize },
    #[error(transparent)]
    Broken(#[from] Violation),
}

impl Inconsistent {
    pub fn seq(&self) -> u64 {
        match self {
            Inconsistent::OutOfOrder { seq, .. }
            | Inconsistent::NotOpen { seq, .. }
            | Inconsistent::NoEscalation { seq, .. } => *seq,
        }
    }
}

/// The shared context at one seq.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Context {
    /// The last record folded in.
    pub seq: u64,
    /// Its `recorded_at_ms`: the ledger's "now".
    pub now_ms: u64,
    pub authority: Authority,
    pub store: Store,
    pub intentions: Intentions,
    pub precedents: Precedents,
    pub workflows: Workflows,
    /// What happened after the decisions (`crate::outcomes`).
    pub outcomes: crate::outcomes::Outcomes,
    /// The store platforms' objects, newest version each ([`synced`]).
    pub synced: synced::Registers,
}

/// Contexts are not records: no 1 MiB limit applies to their encoding.
fn snapshot_config(
) -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Fixint> {
    bincode::config::standard().with_fixed_int_encoding()
}

impl Context {
    /// Folds one record in. Records must come in log order (a what-if run
    /// folds its own follow-ups at their cause's seq).
    pub fn apply(&mut self, stored: &StoredRecord) -> Result<(), Inconsistent> {
        let env = &stored.record.envelope;
        if env.seq < self.seq {
            return Err(Inconsistent::OutOfOrder {
                seq: env.seq,
                last: self.seq,
            });
        }
        let (seq, at_ms) = (env.seq, env.recorded_at_ms);
        self.seq = seq;
        self.now_ms = self.now_ms.max(at_ms);
        self.retire();
        let body = &stored.record.body;
        let writer = |intention| store::Writer {
            seq,
            at_ms,
            intention,
        };
        match body {
            Body::Broadcast { .. } | Body::Clock | Body::Checkpoint { .. } => {}
            Body::Intend { intention } => {
                let limit = self
                    .authority
                    .rules
                    .as_ref()
                    .map(|r| (r.seq, r.rules.pending.max_wait_h));
                self.intentions
                    .announce(seq, (&env.producer, at_ms), intention, limit)
            }
            Body::Decision { decision } => {
                let expiry = self
                    .authority
                    .rules
                    .as_ref()
                    .and_then(|r| r.rules.escalation_expiry_ms());
                let approved = self.intentions.decide(seq, at_ms, decision, expiry)?;
                self.note_decision((seq, at_ms), decision, approved.as_ref());
                for e in approved.iter().flat_map(effect::of_action) {
                    self.store.apply(&e, writer(Some(decision.intention)));
                }
            }
            Body::HumanResolution {
                intention, option, ..
            } => self.resolve(seq, *intention, *option)?,
            Body::Outcome { outcome } => self.outcomes.observe(seq, at_ms, outcome),
            Body::Synced { synced } => self.apply_synced((seq, at_ms), synced),
            Body::IntentionWithdrawn { intention } => {
                self.intentions.withdraw(seq, *intention, at_ms);
            }
            Body::Catalog {
                sku, price_minor, ..
            } => {
                self.outcomes.on_catalog_price(sku, at_ms, *price_minor);
                for e in effect::of_fact(body) {
                    self.store.apply(&e, writer(None));
                }
            }
            b if b.is_admin() || matches!(b, Body::Genesis { .. }) => {
                self.authority.apply(seq, b);
                if let Body::WorkflowDefined { .. } = b {
                    self.workflows.apply(seq, self.now_ms, &env.producer, b);
                }
            }
            b @ (Body::WorkflowStarted { .. }
            | Body::StepReady { .. }
            | Body::StepCompleted { .. }
            | Body::StepFailed { .. }
            | Body::StepTimedOut { .. }
            | Body::RunFinished { .. }) => self.apply_workflow(seq, &env.producer, b),
            fact => {
                for e in effect::of_fact(fact) {
                    self.store.apply(&e, writer(None));
                }
            }
        }
        self.checked(seq);
        Ok(())
    }

    /// A platform object's delivery: when it is newer than the version
    /// held, its changes to the store, its prices to attribution and its
    /// refunds to the outcomes.
    fn apply_synced(&mut self, (seq, at_ms): (u64, u64), synced: &crate::vocab::Synced) {
        let Some(applied) = self.synced.apply(seq, synced) else {
            return;
        };
        for (sku, price) in &applied.prices {
            self.outcomes.on_catalog_price(sku, at_ms, *price);
        }
        let writer = store::Writer {
            seq,
            at_ms,
            intention: None,
        };
        for e in &applied.effects {
            self.store.apply(e, writer);
        }
        for refund in &applied.refunds {
            self.outcomes.observe(seq, at_ms, refund);
        }
    }

    /// In a debug build, checks every invariant when one is due.
    fn checked(&self, seq: u64) {
        if cfg!(debug_assertions) && self.check_due() {
            debug_assert_eq!(self.check(), Ok(()), "after folding seq {seq}");
        }
    }

    /// What the rules in force let go: ended promotions, contacts past the
    /// notification window, approved intentions past the live window,
    /// precedents past their window.
    fn retire(&mut self) {
        let rules = self.authority.rules.as_ref().map(|r| &r.rules);
        let now = self.now_ms;
        self.store
            .retire(now, rules.map(|r| r.notification_window_ms()));
        self.intentions
            .retire(now, rules.map(|r| r.live_window_ms()));
        self.precedents
            .retire(now, rules.map(|r| r.precedent_window_ms()));
    }

    fn resolve(&mut self, seq: u64, intention: u64, option: u32) -> Result<(), Inconsistent> {
        let escalated = self
            .intentions
            .get(intention)
            .map(|s| (s.intention.clone(), s.at_ms));
        let (rule, chosen) = self.intentions.resolve(seq, intention, option)?;
        let Some((escalated, escalated_at_ms)) = escalated else {
            return Err(Inconsistent::NoEscalation { seq, intention });
        };
        let waited_ms = self.now_ms.saturating_sub(escalated_at_ms);
        self.outcomes
            .on_resolution((seq, self.now_ms), intention, waited_ms);
        let categories = self.categories_of(&escalated.action);
        let direction = self.direction_of(&escalated.action);
        self.precedents.add(Precedent {
            direction,
            resolution: seq,
            intention,
            rule,
            action: escalated.action,
            categories,
            impact_minor: escalated.impact.revenue_minor,
            at_ms: self.now_ms,
            approved: chosen.approve.contains(&intention),
            modified: chosen.modified.is_some(),
        });
        Ok(())
    }

    /// Tells the outcomes part about a decision (before its effects apply,
    /// so a promotion's category still names the skus it covers now).
    fn note_decision(
        &mut self,
        at: (u64, u64),
        d: &crate::vocab::Decision,
        approved: Option<&crate::vocab::Action>,
    ) {
        let window_ms = self
            .authority
            .rules
            .as_ref()
            .map_or(0, |r| r.rules.live_window_ms());
        let state = self.intentions.get(d.intention);
        let acting = match (approved, state) {
            (Some(action), Some(s)) => Some((action, s.agent.as_str(), s.intention.impact)),
            _ => None,
        };
        let skus = match acting.map(|a| a.0) {
            Some(crate::vocab::Action::LaunchPromotion { target, .. }) => {
                self.store.skus_of(target)
            }
            _ => Vec::new(),
        };
        let acting = acting.map(|(action, agent, projected)| crate::outcomes::Acting {
            agent,
            action,
            skus: &skus,
            projected,
            window_ms,
        });
        self.outcomes.on_decision(at, d, acting);
    }

    /// The categories of the skus an action touches, sorted (empty for
    /// actions on other entities).
    pub fn categories_of(&self, action: &crate::vocab::Action) -> Vec<String> {
        use crate::vocab::{Action, PromotionTarget};
        let skus: Vec<&String> = match action {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::ReserveStock { sku, .. }
            | Action::Discontinue { sku } => vec![sku],
            Action::LaunchPromotion {
                target: PromotionTarget::Category(c),
                ..
            } => return vec![c.clone()],
            Action::LaunchPromotion {
                target: PromotionTarget::Skus(s),
                ..
            } => s.iter().collect(),
            _ => Vec::new(),
        };
        let mut out: Vec<String> = skus
            .into_iter()
            .filter_map(|s| self.store.sku(s))
            .map(|s| s.category.value.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Which way an action moves the value it sets, against the store now
    /// (for precedent signatures).
    pub fn direction_of(&self, action: &crate::vocab::Action) -> crate::vocab::Direction {
        use crate::vocab::{Action, Direction};
        let way = |from: i64, to: i64| match to.cmp(&from) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Neither,
        };
        match action {
            Action::SetPrice { sku, price_minor } => {
                self.store.sku(sku).map_or(Direction::Neither, |s| {
                    way(s.price_minor.value, *price_minor)
                })
            }
            Action::ChangeAdBudget {
                campaign,
                budget_minor,
            } => way(
                self.store.budget(campaign).map_or(0, |b| b.value),
                *budget_minor,
            ),
            _ => Direction::Neither,
        }
    }

    fn apply_workflow(&mut self, seq: u64, producer: &str, body: &Body) {
        self.workflows.apply(seq, self.now_ms, producer, body);
        let run = match body {
            Body::StepCompleted { run, step, .. } => {
                self.intentions.unblock(run, Some(step));
                run
            }
            Body::StepFailed { run, .. }
            | Body::StepTimedOut { run, .. }
            | Body::RunFinished { run, .. } => run,
            _ => return,
        };
        let running = self
            .workflows
            .runs
            .get(run)
            .is_some_and(|r| r.status == crate::workflow::run::RunStatus::Running);
        if !running {
            self.intentions.unblock(run, None);
        }
    }

    /// Promotions covering `sku` that have not ended, in intention order.
    pub fn promotions_on(&self, sku: &str) -> Vec<&Promotion> {
        self.store.promotions_on(sku, self.now_ms)
    }

    /// The earliest time at which something pending becomes decidable (a
    /// deferral ends, an expiry passes, a step's deadline), for the
    /// sequencer's clock records.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        [
            self.intentions.next_deadline_ms(),
            self.workflows.next_deadline_ms(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A snapshot: the canonical encoding of the whole context.
    pub fn to_snapshot(&self) -> Vec<u8> {
        // Proven invariant: bincode fails to encode only on a full writer, a
        // borrowed RefCell, a lock or I/O; a context is owned maps, strings
        // and integers written into a growing Vec.
        #[allow(clippy::expect_used)]
        bincode::encode_to_vec(self, snapshot_config()).expect("a context always encodes")
    }

    /// The same bytes as [`Context::to_snapshot`], written into a buffer of
    /// `capacity` bytes (it grows if they do not fit): one pass over the
    /// context, where `to_snapshot` makes two (it sizes the bytes first).
    /// A writer passes a little more than its last snapshot's length.
    pub fn to_snapshot_within(&self, capacity: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(capacity);
        // Proven invariant: as `to_snapshot`; writing into a Vec never fails.
        #[allow(clippy::expect_used)]
        bincode::encode_into_std_write(self, &mut out, snapshot_config())
            .expect("a context always encodes");
        out
    }

    /// The context a snapshot holds; every byte must be used and every
    /// invariant hold (a snapshot that breaks one is refused, not repaired:
    /// the log folds again).
    pub fn from_snapshot(bytes: &[u8]) -> Result<Context, SnapshotError> {
        let (ctx, used): (Context, usize) = bincode::decode_from_slice(bytes, snapshot_config())?;
        if used != bytes.len() {
            return Err(SnapshotError::Trailing {
                used,
                len: bytes.len(),
            });
        }
        ctx.check()?;
        Ok(ctx)
    }

    /// Whether a debug build checks every invariant after this record: always
    /// while the context is small (every test's), and at every power-of-two
    /// seq once it is not, so a long fold costs O(n log n) checks, not O(n²).
    fn check_due(&self) -> bool {
        let size = self.intentions.len() + self.store.indexed_len() + self.workflows.runs.len();
        size <= CHECK_EVERY_RECORD_SIZE_MAX || self.seq.is_power_of_two()
    }

    /// Checks the invariants of every part with derived indexes.
    pub fn check(&self) -> Result<(), Violation> {
        self.intentions.check()?;
        self.store.check()?;
        self.workflows.check()?;
        self.synced.check()?;
        self.outcomes.check()
    }

    /// blake3 of the canonical encoding: equal contexts, equal hashes.
    pub fn state_hash(&self) -> String {
        let bytes = self.to_snapshot();
        to_hex(blake3::hash(&bytes).as_bytes())
    }
}
