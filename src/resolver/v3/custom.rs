//! Rule `custom`: the rule set's own guards (`crate::guards`), evaluated for
//! each subject of the intention (each sku a promotion covers).

use crate::guards::{evaluate, Guard, Subject, Verdict as GuardVerdict};
use crate::resolver::v1::{Eval, Point, Step, LISTED_MAX};
use crate::vocab::guard::{GuardFault, Then};
use crate::vocab::{EscalationReason, Finding, Outcome, Read, RuleId, Verdict};

/// Most subjects whose reads one trace step lists (the counts say how many
/// were checked).
const SUBJECTS_LISTED_MAX: usize = LISTED_MAX;

/// The `custom` rule: refusing guards after the built-in guards, escalating
/// ones after `priority`; the first that fires (or cannot be evaluated)
/// decides.
pub(super) fn step(e: &mut Eval<'_>, point: Point) -> Step {
    let then = match point {
        Point::AfterGuards => Then::Refuse,
        Point::AfterPriority => Then::Escalate,
    };
    let kind = e.s.intention.action.kind();
    // The rules outlive this step's borrow of `e`: no guard is copied.
    let rules = e.rules;
    let guards: Vec<&Guard> = rules
        .guards
        .iter()
        .filter(|g| g.text.then == then && g.text.applies_to.contains(&kind))
        .collect();
    if guards.is_empty() {
        return None;
    }
    let subjects = Subject::of(e.ctx, e.s);
    debug_assert!(!subjects.is_empty(), "every action has a subject");
    for g in guards {
        if let Some(outcome) = check(e, g, &subjects) {
            return Some(outcome);
        }
    }
    None
}

/// What one guard found over every subject.
struct Tally {
    failing: Vec<String>,
    count: u32,
    fault: Option<(String, GuardFault)>,
    reads: Vec<Read>,
    passing_reads: Vec<Read>,
    listed_passing: usize,
}

fn check(e: &mut Eval<'_>, g: &Guard, subjects: &[Subject]) -> Step {
    let mut t = Tally {
        failing: Vec::new(),
        count: 0,
        fault: None,
        reads: Vec::new(),
        passing_reads: Vec::new(),
        listed_passing: 0,
    };
    for sub in subjects {
        let (verdict, reads) = evaluate(g, e.ctx, e.s, sub);
        match verdict {
            GuardVerdict::Fires => {
                t.count = t.count.saturating_add(1);
                if t.failing.len() < SUBJECTS_LISTED_MAX {
                    t.failing.push(sub.name());
                    t.reads.extend(reads);
                }
            }
            GuardVerdict::Passes => {
                if t.listed_passing < SUBJECTS_LISTED_MAX {
                    t.listed_passing += 1;
                    t.passing_reads.extend(reads);
                }
            }
            GuardVerdict::Fault(f) => {
                if t.fault.is_none() {
                    t.reads.extend(reads);
                    t.fault = Some((sub.name(), f));
                }
            }
        }
    }
    let checked = u32::try_from(subjects.len()).unwrap_or(u32::MAX);
    conclude(e, g, t, checked)
}

fn conclude(e: &mut Eval<'_>, g: &Guard, t: Tally, checked: u32) -> Step {
    let guard = g.text.id.clone();
    let reason = || EscalationReason::Custom {
        guard: guard.clone(),
        agent: e.s.agent.clone(),
        kind: e.s.intention.action.kind(),
    };
    if t.count > 0 {
        let then = g.text.then;
        let f = Finding::CustomFired {
            guard: guard.clone(),
            then,
            failing: t.failing,
            count: t.count,
            checked,
        };
        return Some(match then {
            Then::Refuse => {
                e.push(RuleId::Custom, Verdict::Reject, f, t.reads);
                Outcome::Rejected
            }
            Then::Escalate => {
                let reason = reason();
                e.push(RuleId::Custom, Verdict::Escalate, f, t.reads);
                e.escalate(reason, None)
            }
        });
    }
    if let Some((subject, fault)) = t.fault {
        let refuse = matches!(fault, GuardFault::UnknownEntity { .. });
        let f = Finding::CustomFault {
            guard: guard.clone(),
            subject,
            fault,
        };
        if refuse {
            e.push(RuleId::Custom, Verdict::Reject, f, t.reads);
            return Some(Outcome::Rejected);
        }
        let reason = reason();
        e.push(RuleId::Custom, Verdict::Escalate, f, t.reads);
        return Some(e.escalate(reason, None));
    }
    let f = Finding::CustomPassed { guard, checked };
    e.push(RuleId::Custom, Verdict::Pass, f, t.passing_reads);
    None
}
