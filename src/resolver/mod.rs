//! The resolver: the referee. A decision is a pure function of the context (the
//! fold of the log before it) and the rule set in force (itself a record).
//!
//! Architecture invariant: no I/O, no clock (the ledger's "now" is the last
//! record's `recorded_at_ms`), no floats, no hash-map iteration. The sequencer
//! calls [`next_follow_up`] after every record until it returns `None`; replay
//! does the same, so the same log yields the same decisions bit for bit.
//!
//! Evaluation order for one intention (the first rule that settles it decides):
//! 1. `rules`: no rule set installed → rejected.
//! 2. `expiry`: past its `expires_at_ms` → expired.
//! 3. `autonomy`: unregistered agent or manual kind → rejected; propose-and-approve → escalated.
//! 4. `workflow.sequence`: an intention for a workflow step → rejected if the run or step does not exist, the agent does not own the step, or the run has ended or turned to compensation; deferred until the missing step completes while the step's dependencies are incomplete.
//! 5. `dedup.notification`: a notification with the same (customer, order, topic) within the window → rejected.
//! 6. `guard.lifecycle`: a reorder of a sku in a `no_reorder` lifecycle → rejected.
//! 7. `guard.fraud_perk`: a perk on an order flagged for fraud → rejected.
//! 8. `temporal.promotion_window`: a price change while a promotion on the sku is active or starts within the lead → deferred until the last such promotion ends.
//! 9. `guard.margin`: a price or promotion that leaves any covered sku's margin after every active and planned discount below the minimum → rejected.
//! 10. `priority`: another agent's live intention with the same conflict key (one price, one promotion per target, one budget, one attribute value) that ranks higher (objective rank, then agent priority, then earlier seq) → rejected, citing it.
//! 11. `threshold`: |revenue impact| above the limit → a precedent of the same signature within its window decides (`precedent`); otherwise escalated.
//! 12. `approve`.
//!
//! Follow-ups, in this order: a new intention's decision; a human settlement's
//! decisions (lowest intention seq first); workflow announcements (`step_ready`,
//! by run then step) and run ends (`run_finished`); re-decisions of intentions
//! whose step wait is over; re-decisions of deferrals whose time has come;
//! step timeouts; escalation expiries (the safe default); expiries of pending
//! intentions. Time-ordered queues go earliest first, then lowest seq.

mod escalation;
mod sequence;
mod steps;

pub use escalation::describe;

use crate::context::{Context, IntentionState};
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{Decision, Outcome, Read, TraceStep};

/// The record that must follow the current context, if any.
pub fn next_follow_up(ctx: &Context) -> Option<Body> {
    let get = |seq: &u64| ctx.intentions.get(seq);
    if let Some(s) = ctx.fresh.first().and_then(get) {
        return Some(decision_body(decide(ctx, s)));
    }
    if let Some(s) = ctx.settling.first().and_then(get) {
        return Some(decision_body(settle(ctx, s)));
    }
    if let Some(body) = ctx.workflows.next_announcement() {
        return Some(body);
    }
    if let Some(s) = ctx.unblocked.first().and_then(get) {
        return Some(decision_body(decide(ctx, s)));
    }
    let due = |set: &std::collections::BTreeSet<(u64, u64)>| {
        set.first()
            .filter(|(t, _)| *t <= ctx.now_ms)
            .and_then(|(_, q)| get(q))
    };
    if let Some(s) = due(&ctx.due) {
        return Some(decision_body(decide(ctx, s)));
    }
    if let Some(body) = ctx.workflows.next_timeout(ctx.now_ms) {
        return Some(body);
    }
    if let Some((t, s)) = ctx
        .escalations_expiring
        .first()
        .filter(|(t, _)| *t <= ctx.now_ms)
        .and_then(|(t, q)| Some((*t, get(q)?)))
    {
        return Some(decision_body(escalation::expire_escalation(ctx, s, t)));
    }
    if let Some(s) = due(&ctx.expiring) {
        let mut d = base(ctx, s);
        d.rule = "expiry".into();
        d.outcome = Outcome::Expired;
        let expires = as_i64(s.intention.expires_at_ms.unwrap_or(0));
        d.trace.push(step(
            "expiry",
            "expire",
            "passed its expiry while pending",
            vec![
                read("expires_at_ms", Value::Int(expires), s.seq),
                read("now_ms", Value::Int(as_i64(ctx.now_ms)), ctx.seq),
            ],
        ));
        return Some(decision_body(d));
    }
    None
}

fn decision_body(decision: Decision) -> Body {
    Body::Decision {
        decision: Box::new(decision),
    }
}

pub(crate) fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn read(name: &str, value: Value, seq: u64) -> Read {
    Read {
        name: name.into(),
        value,
        seq,
    }
}

pub(crate) fn step(rule: &str, verdict: &str, note: &str, reads: Vec<Read>) -> TraceStep {
    TraceStep {
        rule: rule.into(),
        verdict: verdict.into(),
        note: note.into(),
        reads,
    }
}

pub(crate) fn base(ctx: &Context, s: &IntentionState) -> Decision {
    Decision {
        intention: s.seq,
        entity: s.intention.action.entity(),
        outcome: Outcome::Rejected,
        rule: String::new(),
        rules_hash: ctx
            .rules
            .as_ref()
            .map_or_else(String::new, |r| r.hash.clone()),
        context_seq: ctx.seq,
        trace: Vec::new(),
        competing: Vec::new(),
        follows: s.decisions.last().copied(),
    }
}

fn settle(ctx: &Context, s: &IntentionState) -> Decision {
    let mut d = base(ctx, s);
    let Some(settlement) = &s.settlement else {
        return d;
    };
    d.rule = "human_resolution".into();
    d.outcome = match (settlement.approve, &settlement.modified) {
        (true, Some(action)) => Outcome::Modified {
            action: action.clone(),
        },
        (true, None) => Outcome::Approved,
        (false, _) => Outcome::Rejected,
    };
    d.competing = vec![settlement.resolution];
    let verdict = if settlement.approve {
        "approve"
    } else {
        "reject"
    };
    d.trace.push(step(
        "human_resolution",
        verdict,
        "settled by a human resolution",
        vec![read(
            "resolution",
            Value::Int(as_i64(settlement.resolution)),
            settlement.resolution,
        )],
    ));
    d
}

/// Decides one intention against the context.
pub fn decide(ctx: &Context, s: &IntentionState) -> Decision {
    let mut d = base(ctx, s);
    let Some(rules) = &ctx.rules else {
        d.rule = "rules".into();
        d.trace
            .push(step("rules", "reject", "no rule set is installed", vec![]));
        return d;
    };
    let mut eval = steps::Eval { ctx, rules, s, d };
    let outcome = eval.run();
    let mut d = eval.d;
    d.outcome = outcome;
    d.rule = d.trace.last().map_or_else(String::new, |t| t.rule.clone());
    d
}

/// Checks a command against the context before it is appended: rule text must
/// parse; a resolution must come from a registered human, for an open
/// escalation, naming one of its options.
pub fn check_command(ctx: &Context, producer: &str, body: &Body) -> Result<(), String> {
    match body {
        Body::RulesInstalled { text } => crate::rules::RuleSet::parse(text)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Body::HumanResolution {
            intention, option, ..
        } => {
            if !ctx.humans.contains_key(producer) {
                return Err(format!(
                    "`{producer}` is not a registered human; only humans resolve escalations"
                ));
            }
            let state = ctx
                .intentions
                .get(intention)
                .ok_or_else(|| format!("no intention at seq {intention}"))?;
            let Some((_, options)) = &state.escalation else {
                if let Some(d) = state.decisions.last() {
                    return Err(format!(
                        "intention {intention} has no open escalation (its last decision is seq {d})"
                    ));
                }
                return Err(format!("intention {intention} has no open escalation"));
            };
            if *option as usize >= options.len() {
                return Err(format!(
                    "option {option} does not exist; the escalation has options 0..{}",
                    options.len()
                ));
            }
            Ok(())
        }
        other => sequence::check(ctx, producer, other),
    }
}
