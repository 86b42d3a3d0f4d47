//! The seed's scenarios as timed beats: world events, and what each simulated
//! agent announces, when, and why. The agents decide from the facts they see
//! (competitor prices, traffic, delays, stock), each in its own domain and at
//! its own pace (seeded jitter); none of them looks at another's plans. The
//! same beats run through parley and, for the comparison, without it.

use std::collections::BTreeMap;

use super::store::{Sku, HOUR_MS, MINUTE_MS};
use crate::entity::EntityRef;
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{Action, Impact, Intention, Objective, StepRef};

/// Each scenario has this much ledger time to itself.
pub const WINDOW_MS: u64 = 4 * 24 * HOUR_MS;

/// One moment of a scenario: who says what.
#[derive(Clone, Debug)]
pub struct Beat {
    pub at_ms: u64,
    pub producer: String,
    pub body: Body,
}

/// A scenario: its beats, and the window its sales are counted over.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    pub start_ms: u64,
    pub end_ms: u64,
    pub beats: Vec<Beat>,
}

/// A small deterministic generator (splitmix64) for jitter and demand.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A scenario being written: its start, the seed's jitter, its beats.
pub(super) struct B<'a> {
    pub(super) start: u64,
    pub(super) rng: &'a mut Rng,
    beats: Vec<Beat>,
    pub(super) skus: BTreeMap<String, Sku>,
}

pub(super) fn intention(
    action: Action,
    why: &str,
    revenue: i64,
    margin: i64,
    objective: Objective,
) -> Intention {
    Intention {
        action,
        reasoning: why.into(),
        impact: Impact {
            revenue_minor: revenue,
            margin_minor: margin,
        },
        objective,
        expires_at_ms: None,
        workflow_step: None,
    }
}

pub(super) fn generic(entity: EntityRef, attribute: &str, value: Value) -> Action {
    Action::Generic {
        entity,
        attribute: attribute.into(),
        value,
    }
}

impl<'a> B<'a> {
    /// A script starting at `start` over the store's `catalog`.
    pub(super) fn new(start: u64, rng: &'a mut Rng, catalog: Vec<Sku>) -> B<'a> {
        B {
            start,
            rng,
            beats: Vec::new(),
            skus: catalog.into_iter().map(|s| (s.id.clone(), s)).collect(),
        }
    }

    /// The beats written so far.
    pub(super) fn into_beats(self) -> Vec<Beat> {
        self.beats
    }

    /// `minutes` after the start, plus up to `jitter` more minutes.
    pub(super) fn at(&mut self, minutes: u64, jitter: u64) -> u64 {
        self.start + (minutes + self.rng.below(jitter + 1)) * MINUTE_MS
    }
    pub(super) fn say(&mut self, at_ms: u64, producer: &str, body: Body) {
        self.beats.push(Beat {
            at_ms,
            producer: producer.into(),
            body,
        });
    }
    pub(super) fn intend(&mut self, at_ms: u64, agent: &str, i: Intention) {
        self.say(
            at_ms,
            agent,
            Body::Intend {
                intention: Box::new(i),
            },
        );
    }
    pub(super) fn step_intend(
        &mut self,
        at_ms: u64,
        agent: &str,
        mut i: Intention,
        run: &str,
        step: &str,
    ) {
        i.workflow_step = Some(StepRef {
            run: run.into(),
            step: step.into(),
        });
        self.intend(at_ms, agent, i);
    }
    pub(super) fn price(&self, sku: &str) -> i64 {
        self.skus.get(sku).map_or(0, |s| s.price_minor)
    }
    pub(super) fn start_run(&mut self, at_ms: u64, run: &str, workflow: &str, param: (&str, &str)) {
        let mut params = BTreeMap::new();
        params.insert(param.0.to_owned(), Value::Text(param.1.into()));
        self.say(
            at_ms,
            "marketing",
            Body::WorkflowStarted {
                run: run.into(),
                workflow: workflow.into(),
                version: 1,
                params,
            },
        );
    }
}
