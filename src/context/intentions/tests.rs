//! The checker catches each index that disagrees with the states.

use super::*;
use crate::context::Part;
use crate::entity::EntityRef;
use crate::vocab::{Impact, Objective};

fn price(sku: &str) -> Intention {
    Intention {
        action: Action::SetPrice {
            sku: sku.into(),
            price_minor: 1_000,
        },
        reasoning: String::new(),
        impact: Impact::default(),
        objective: Objective::MarginProtection,
        expires_at_ms: None,
        workflow_step: None,
    }
}

fn decision(intention: u64, outcome: Outcome) -> Decision {
    Decision {
        resolver: 1,
        intention,
        entity: EntityRef::Sku("E2".into()),
        outcome,
        rule: RuleId::Approve,
        rules_hash: None,
        context_seq: intention,
        trace: Vec::new(),
        cites: Vec::new(),
        follows: None,
    }
}

/// Three intentions: one new, one deferred, one approved (with a key).
fn sample() -> Intentions {
    let mut q = Intentions::default();
    for seq in [1, 2, 3] {
        q.announce(seq, ("pricing", seq * 10), &price("E2"), Some((0, 24)));
        assert_eq!(q.check(), Ok(()), "after announcing {seq}");
    }
    let deferred = Outcome::Deferred {
        until: DeferUntil::Time(500),
    };
    q.decide(4, 40, &decision(2, deferred), None).unwrap();
    q.decide(5, 50, &decision(3, Outcome::Approved), None)
        .unwrap();
    assert_eq!(q.check(), Ok(()));
    q
}

#[test]
fn a_consistent_fold_passes() {
    let mut q = sample();
    q.retire(10 * 3_600_000, Some(3_600_000));
    assert_eq!(q.check(), Ok(()));
    assert!(q.get(3).is_none(), "the approval left with its window");
}

#[test]
fn each_index_out_of_step_is_named() {
    let broken = |f: &dyn Fn(&mut Intentions), what: &str| {
        let mut q = sample();
        f(&mut q);
        let v = q.check().expect_err(what);
        assert_eq!(v.part, Part::Intentions);
        assert!(v.broken.starts_with(what), "{what}: {v}");
    };
    broken(
        &|q| {
            q.fresh.clear();
        },
        "fresh",
    );
    broken(
        &|q| {
            q.open.insert(99);
        },
        "open",
    );
    broken(
        &|q| {
            q.due.clear();
        },
        "due",
    );
    broken(
        &|q| {
            q.expiring.insert((1, 2));
        },
        "expiring",
    );
    broken(
        &|q| {
            q.retiring.clear();
        },
        "retiring",
    );
    broken(
        &|q| {
            q.approved_by_conflict.clear();
        },
        "approved_by_conflict",
    );
    broken(
        &|q| {
            q.pending_by_conflict.clear();
        },
        "pending_by_conflict",
    );
    broken(
        &|q| {
            if let Some(s) = q.states.get_mut(&2) {
                s.decisions.clear();
            }
        },
        "decided at least once",
    );
}
