//! Resolver version 1. FROZEN once released: a change that alters any byte
//! of any record this version derives (or what it admits) for the same log is
//! version 2, in a new module beside this one. `tests/golden/` replays a
//! ledger written by this version and fails on any divergence.
//!
//! Evaluation order for one intention (the first rule that settles it decides;
//! every rule evaluated is in the trace):
//! 1. `rules`: no rule set installed → rejected.
//! 2. `expiry`: past its `expires_at_ms` → expired.
//! 3. `autonomy`: unregistered agent or manual kind → rejected; propose-and-approve → escalated.
//! 4. `workflow.sequence`: for an intention naming a step → rejected if the run or step does not exist, the agent does not own the step, or the run has ended or turned to compensation; deferred until the missing step completes.
//! 5. `guard.known`: a sku, category or order the action needs is not known (or the order is another customer's) → rejected, naming it.
//! 6. `dedup.notification`: the same (customer, order, topic) notified within the window → rejected.
//! 7. `guard.lifecycle`: a reorder of a sku in a `no_reorder` lifecycle → rejected.
//! 8. `guard.fraud_perk`: a perk on an order flagged for fraud → rejected.
//! 9. `temporal.promotion_window`: a price change while a promotion on the sku is active or starts within the lead → deferred until the last such promotion ends.
//! 10. `guard.margin`: any covered sku's margin after every active and planned discount below the minimum → rejected, listing how many and which.
//! 11. `priority`: the best-ranked live rival (same conflict key, another agent) ranks higher (objective, then agent priority, then earlier seq) → rejected, citing it.
//! 12. `threshold`: |revenue impact| above the limit → a matching precedent decides (`precedent`); otherwise escalated.
//! 13. `approve`.
//!
//! Follow-ups, in this order: a new intention's decision; a human
//! settlement's decisions (lowest seq first); workflow announcements
//! (`step_ready`, by run then step) and run ends (`run_finished`);
//! re-decisions of intentions whose step wait is over; re-decisions of
//! deferrals whose time has come; step timeouts; escalation expiries (the
//! safe default); expiries of pending intentions. Time-ordered queues go
//! earliest first, then lowest seq.

mod admission;
mod escalation;
mod margin;
mod priority;
mod sequence;
mod steps;

pub(crate) use steps::{Eval, Later, Point, Step};

use super::{Author, Refusal, Resolver};
use crate::context::{Context, IntentionState};
use crate::entity::EntityRef;
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{
    Cite, CiteRole, Decision, Field, Finding, Outcome, Read, RuleId, TraceStep, Verdict,
};

/// This version's number.
pub const VERSION: u32 = 1;
/// Most entries of one kind a trace lists (rivals, promotions, skus): the
/// counts say how many there were.
pub const LISTED_MAX: usize = 20;

/// Resolver version 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct V1;

impl Resolver for V1 {
    fn version(&self) -> u32 {
        VERSION
    }

    fn next_follow_up(&self, ctx: &Context) -> Option<Body> {
        next_follow_up(ctx)
    }

    fn admit(&self, ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal> {
        admission::credential(ctx, author, body)?;
        admission::admit(ctx, author.producer, body)
    }
}

/// Version 1's credential check (version 2 builds on it).
pub(crate) fn admit_credential(
    ctx: &Context,
    author: Author<'_>,
    body: &Body,
) -> Result<(), Refusal> {
    admission::credential(ctx, author, body)
}

/// Version 1's per-kind admission (version 2 builds on it).
pub(crate) fn admit_record(ctx: &Context, producer: &str, body: &Body) -> Result<(), Refusal> {
    admission::admit(ctx, producer, body)
}

/// A follow-up of version 1's logic as a later `version` records it: a
/// decision says which version made it; other follow-ups are unchanged.
pub(crate) fn stamped(body: Body, version: u32) -> Body {
    match body {
        Body::Decision { mut decision } => {
            debug_assert_eq!(decision.resolver, VERSION);
            decision.resolver = version;
            Body::Decision { decision }
        }
        other => other,
    }
}

/// The record owed next under version 1 (version 2 builds on it).
pub(crate) fn next_follow_up(ctx: &Context) -> Option<Body> {
    next_follow_up_with(ctx, Later::default())
}

/// The record owed next under version 1's rules plus `extra` (version 3's
/// custom guards), run after `priority`.
pub(crate) fn next_follow_up_with(ctx: &Context, later: Later) -> Option<Body> {
    let q = &ctx.intentions;
    let decide = |s| decide_with(ctx, s, later);
    if let Some(s) = q.first_fresh() {
        return Some(decision_body(decide(s)));
    }
    if let Some(s) = q.first_settling() {
        return Some(decision_body(settle(ctx, s)));
    }
    if let Some(body) = ctx.workflows.next_announcement() {
        return Some(body);
    }
    if let Some(s) = q.first_unblocked() {
        return Some(decision_body(decide(s)));
    }
    if let Some(s) = q.first_due(ctx.now_ms) {
        return Some(decision_body(decide(s)));
    }
    if let Some(body) = ctx.workflows.next_timeout(ctx.now_ms) {
        return Some(body);
    }
    if let Some((t, s)) = q.first_escalation_expired(ctx.now_ms) {
        return Some(decision_body(escalation::expire(ctx, s, t)));
    }
    if let Some(s) = q.first_expired(ctx.now_ms) {
        return Some(decision_body(expire_pending(ctx, s)));
    }
    None
}

fn decision_body(decision: Decision) -> Body {
    debug_assert_eq!(decision.resolver, VERSION);
    debug_assert_eq!(
        Some(decision.rule),
        decision.trace.last().map(|t| t.rule),
        "the deciding rule is the last in the trace"
    );
    Body::Decision {
        decision: Box::new(decision),
    }
}

/// A u64 (a time, a seq or a rule parameter inside its bounds) as an i64.
pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A u64 as a value.
pub(crate) fn int(v: u64) -> Value {
    Value::Int(i64_of(v))
}

pub(crate) fn read(field: Field, entity: Option<EntityRef>, value: Value, seq: u64) -> Read {
    Read {
        field,
        entity,
        value,
        seq,
    }
}

fn step(rule: RuleId, verdict: Verdict, finding: Finding, reads: Vec<Read>) -> TraceStep {
    TraceStep {
        rule,
        verdict,
        finding,
        reads,
    }
}

/// A decision about `s` with nothing decided yet.
fn base(ctx: &Context, s: &IntentionState) -> Decision {
    Decision {
        resolver: VERSION,
        intention: s.seq,
        entity: s.intention.action.entity(),
        outcome: Outcome::Rejected,
        rule: RuleId::Rules,
        rules_hash: ctx.authority.rules.as_ref().map(|r| r.hash),
        context_seq: ctx.seq,
        trace: Vec::new(),
        cites: Vec::new(),
        follows: s.decisions.last().copied(),
    }
}

/// Closes a decision: its outcome, and its rule is the last rule traced.
fn finish(mut d: Decision, outcome: Outcome) -> Decision {
    d.outcome = outcome;
    d.rule = d.trace.last().map_or(RuleId::Rules, |t| t.rule);
    d
}

/// Decides one intention against the context.
pub fn decide(ctx: &Context, s: &IntentionState) -> Decision {
    decide_with(ctx, s, Later::default())
}

/// Decides one intention with version 1's rules plus what `later` adds.
fn decide_with(ctx: &Context, s: &IntentionState, later: Later) -> Decision {
    let mut d = base(ctx, s);
    let Some(rules) = &ctx.authority.rules else {
        d.trace.push(step(
            RuleId::Rules,
            Verdict::Reject,
            Finding::NoRuleSet,
            vec![],
        ));
        return finish(d, Outcome::Rejected);
    };
    let mut eval = steps::Eval {
        ctx,
        rules,
        s,
        d,
        later,
    };
    let outcome = eval.run();
    finish(eval.d, outcome)
}

/// The decision that records a human's settlement.
fn settle(ctx: &Context, s: &IntentionState) -> Decision {
    let mut d = base(ctx, s);
    let Some(st) = &s.settlement else {
        debug_assert!(false, "settle is called for settling intentions only");
        return d;
    };
    let outcome = match (st.approve, &st.modified) {
        (true, Some(action)) => Outcome::Modified {
            action: action.clone(),
        },
        (true, None) => Outcome::Approved,
        (false, _) => Outcome::Rejected,
    };
    d.cites.push(Cite {
        role: CiteRole::Resolution,
        seq: st.resolution,
    });
    let verdict = if st.approve {
        Verdict::Approve
    } else {
        Verdict::Reject
    };
    d.trace.push(step(
        RuleId::HumanResolution,
        verdict,
        Finding::SettledByHuman {
            resolution: st.resolution,
            option: st.option,
            chosen: st.approve,
        },
        vec![read(
            Field::ChosenOption,
            Some(EntityRef::Intention(st.escalated)),
            Value::Int(i64::from(st.option)),
            st.resolution,
        )],
    ));
    finish(d, outcome)
}

/// What an expiry check reads: the intention's expiry (from the intention
/// record, or from the withdrawal that set it), the rule set's longest wait
/// when that set it, and the time now.
pub(super) fn expiry_reads(ctx: &Context, s: &IntentionState, expires_at_ms: u64) -> Vec<Read> {
    // A withdrawal set the expiry: its record is what the value came from.
    let mut reads = vec![read(
        Field::ExpiresAtMs,
        Some(EntityRef::Intention(s.seq)),
        int(expires_at_ms),
        s.withdrawn.unwrap_or(s.seq),
    )];
    if let Some((rules_seq, h)) = s.wait_limit {
        reads.push(read(Field::MaxWaitH, None, int(h), rules_seq));
    }
    reads.push(read(Field::NowMs, None, int(ctx.now_ms), ctx.seq));
    reads
}

/// A pending intention that passed its expiry.
fn expire_pending(ctx: &Context, s: &IntentionState) -> Decision {
    let mut d = base(ctx, s);
    // Only intentions with an expiry are in the `expiring` queue.
    let expires = s.expires_at_ms.unwrap_or(0);
    debug_assert!(s.expires_at_ms.is_some_and(|e| e <= ctx.now_ms));
    d.trace.push(step(
        RuleId::Expiry,
        Verdict::Expire,
        Finding::PendingExpired {
            expires_at_ms: expires,
            max_wait_h: s.wait_limit.map(|(_, h)| h),
        },
        expiry_reads(ctx, s, expires),
    ));
    finish(d, Outcome::Expired)
}
