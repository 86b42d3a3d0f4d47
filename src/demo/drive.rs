//! Running the scenarios: through parley (every agent announces, parley
//! decides, only approved actions are carried out; owners report their steps
//! once parley has settled their intentions; a scripted human settles
//! escalations), and without it (every agent acts at once on its own view).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use super::scenarios::{Beat, Scenario};
use super::store::{setup, ADMIN, HUMAN, MINUTE_MS, T0_MS};
use super::world::Event;
use crate::command::{Command, CommandEnvelope};
use crate::context::Context;
use crate::ledger::Ledger;
use crate::reader::LedgerRead;
use crate::record::{Body, StoredRecord};
use crate::vocab::{Escalation, Intention, Outcome, RuleId, StepRef};
use crate::workflow::run::StepStatus;

/// How long the scripted human takes to answer an escalation.
const HUMAN_DELAY_MS: u64 = 20 * MINUTE_MS;
/// Most beats one run may process (setup, scenarios and reactions).
const BEATS_MAX: usize = 100_000;

/// The scripted human's choice: approve what an agent's autonomy asks a
/// human to approve; for a threshold escalation, take the rule's modified
/// values when offered (a smaller move first), otherwise reject.
fn choose(rule: RuleId, e: &Escalation) -> (u32, String) {
    let index = |i: usize| u32::try_from(i).unwrap_or(0);
    if rule == RuleId::Autonomy {
        let why = e.involved.first().map_or("", |i| i.reasoning.as_str());
        return (0, format!("agreed: {why}"));
    }
    if let Some(i) = e.options.iter().position(|o| o.modified.is_some()) {
        return (
            index(i),
            "too big a move at once: take the change scaled to the auto-approve limit".into(),
        );
    }
    let i = e
        .options
        .iter()
        .position(|o| o.approve.is_empty())
        .unwrap_or(0);
    (index(i), "too large without a plan: not now".into())
}

/// The demo's agents and people: a queue of beats in scripted time, and the
/// reactions (a person settling an escalation, an owner completing a step)
/// that records through parley cause.
struct Driver {
    queue: BTreeMap<(u64, u64), Beat>,
    /// Insertion order among beats at the same time.
    order: u64,
    /// How many intentions each (run, step) plans, and how many were settled.
    planned: BTreeMap<(String, String), usize>,
    settled: BTreeMap<(String, String), usize>,
    /// Who announced which step's intention: the context lets settled ones go.
    steps: BTreeMap<u64, (String, StepRef)>,
    ctx: Context,
    records: Vec<StoredRecord>,
}

impl Driver {
    fn new(scenarios: &[Scenario]) -> Driver {
        let mut d = Driver {
            queue: BTreeMap::new(),
            order: 0,
            planned: BTreeMap::new(),
            settled: BTreeMap::new(),
            steps: BTreeMap::new(),
            ctx: Context::default(),
            records: Vec::new(),
        };
        for (producer, body) in setup() {
            d.push(T0_MS, producer, body);
        }
        for s in scenarios {
            for beat in &s.beats {
                if let Body::Intend { intention } = &beat.body {
                    if let Some(r) = &intention.workflow_step {
                        let key = (r.run.clone(), r.step.clone());
                        *d.planned.entry(key).or_default() += 1;
                    }
                }
                d.push(beat.at_ms, beat.producer.clone(), beat.body.clone());
            }
        }
        d
    }

    fn push(&mut self, at_ms: u64, producer: String, body: Body) {
        self.order += 1;
        let beat = Beat {
            at_ms,
            producer,
            body,
        };
        self.queue.insert((at_ms, self.order), beat);
    }

    /// The next beat; `None` when done. When a deadline (a deferral's end,
    /// an escalation's expiry, a step's deadline) comes first, the store's
    /// time reaching it: a `clock` command, for which parley records the
    /// timers due then, so the agents and the human see them when they fall.
    fn next_beat(&mut self) -> Option<Beat> {
        let (&key, _) = self.queue.first_key_value()?;
        match self.ctx.next_deadline_ms().filter(|d| *d <= key.0) {
            Some(d) => Some(Beat {
                at_ms: d.max(self.ctx.now_ms),
                producer: ADMIN.into(),
                body: Body::Clock,
            }),
            None => self.queue.remove(&key),
        }
    }

    /// A step completion is only reported while the step is ready.
    fn stale(&self, beat: &Beat) -> bool {
        let Body::StepCompleted { run, step, .. } = &beat.body else {
            return false;
        };
        !self.ctx.workflows.runs.get(run).is_some_and(|r| {
            r.steps
                .iter()
                .any(|s| &s.name == step && matches!(s.status, StepStatus::Ready { .. }))
        })
    }

    /// Reacts to one new record: a person settles an escalation; an owner
    /// completes a step once all its planned intentions are decided.
    fn react(&mut self, r: &StoredRecord) {
        let at = r.record.envelope.recorded_at_ms;
        if let Body::Intend { intention } = &r.record.body {
            if let Some(step) = &intention.workflow_step {
                let who = (r.record.envelope.producer.clone(), step.clone());
                self.steps.insert(r.record.envelope.seq, who);
            }
        }
        let Body::Decision { decision } = &r.record.body else {
            return;
        };
        match &decision.outcome {
            Outcome::Escalated { escalation } => {
                let (option, rationale) = choose(decision.rule, escalation);
                let body = Body::HumanResolution {
                    intention: decision.intention,
                    option,
                    rationale,
                };
                self.push(at + HUMAN_DELAY_MS, HUMAN.into(), body);
            }
            Outcome::Deferred { .. } => {}
            _ => {
                let Some((agent, step)) = self.steps.remove(&decision.intention) else {
                    return;
                };
                let key = (step.run.clone(), step.step.clone());
                let n = self.settled.entry(key.clone()).or_default();
                *n += 1;
                if Some(&*n) == self.planned.get(&key) {
                    let body = Body::StepCompleted {
                        run: step.run,
                        step: step.step,
                        note: String::new(),
                    };
                    self.push(at + MINUTE_MS, agent, body);
                }
            }
        }
    }
}

/// Runs the set-up and the scenarios through parley. Returns every record.
pub fn with_parley(ledger: &Ledger, scenarios: &[Scenario]) -> Result<Vec<StoredRecord>> {
    let mut d = Driver::new(scenarios);
    let (ctx, records) = (&mut d.ctx, &mut d.records);
    ledger.scan(1, u64::MAX, &mut |r| {
        let seq = r.record.envelope.seq;
        ctx.apply(&r).map_err(|e| crate::log::LogError::Corrupt {
            seq,
            reason: e.to_string(),
        })?;
        records.push(r);
        Ok(())
    })?;
    for _ in 0..BEATS_MAX {
        let Some(beat) = d.next_beat() else {
            break;
        };
        if d.stale(&beat) {
            continue;
        }
        let what = format!("{} {} at {}", beat.producer, beat.body.kind(), beat.at_ms);
        let cmd = Command {
            envelope: CommandEnvelope {
                producer: beat.producer,
                at_ms: Some(beat.at_ms.max(d.ctx.now_ms)),
                ..CommandEnvelope::default()
            },
            body: beat.body,
        };
        ledger.append(cmd).with_context(|| what.clone())?;
        let from = d.records.last().map_or(1, |r| r.record.envelope.seq + 1);
        let mut fresh = Vec::new();
        ledger.scan(from, u64::MAX, &mut |r| {
            fresh.push(r);
            Ok(())
        })?;
        for r in fresh {
            d.ctx.apply(&r).with_context(|| what.clone())?;
            d.react(&r);
            d.records.push(r);
        }
    }
    Ok(d.records)
}

/// The shoppers' sales under the approved actions, appended as outcome
/// records by the orders agent once the scenarios are over (each at the
/// later of its period's end and the ledger's last record); returns them.
pub fn record_sales(
    ledger: &Ledger,
    world: &super::world::World,
    after: &[StoredRecord],
) -> Result<Vec<StoredRecord>> {
    let last = after.last().map(|r| &r.record.envelope);
    let (from, last_ms) = last.map_or((1, 0), |e| (e.seq + 1, e.recorded_at_ms));
    for (end_ms, outcome) in world.sales_records() {
        let cmd = Command {
            envelope: CommandEnvelope {
                producer: "orders".into(),
                at_ms: Some(end_ms.max(last_ms)),
                ..CommandEnvelope::default()
            },
            body: Body::Outcome {
                outcome: Box::new(outcome),
            },
        };
        ledger.append(cmd).context("record the shoppers' sales")?;
    }
    let mut out = Vec::new();
    ledger.scan(from, u64::MAX, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// What was carried out through parley, in log order, as world events.
pub fn events_with(records: &[StoredRecord]) -> Vec<(u64, Event)> {
    let mut intentions: BTreeMap<u64, &Intention> = BTreeMap::new();
    let mut out = Vec::new();
    for r in records {
        let at = r.record.envelope.recorded_at_ms;
        match &r.record.body {
            Body::Intend { intention } => {
                intentions.insert(r.record.envelope.seq, intention);
            }
            Body::Decision { decision } => {
                let Some(i) = intentions.get(&decision.intention) else {
                    continue;
                };
                if let Some(action) = decision.outcome.approved_action(&i.action) {
                    out.push((
                        at,
                        Event::Act {
                            action: action.clone(),
                            step: i.workflow_step.clone(),
                        },
                    ));
                } else if matches!(decision.outcome, Outcome::Escalated { .. }) {
                    out.push((at, Event::Escalated));
                }
            }
            Body::StepCompleted { run, step, .. } => {
                out.push((
                    at,
                    Event::StepDone(crate::vocab::StepRef {
                        run: run.clone(),
                        step: step.clone(),
                    }),
                ));
            }
            b if !b.is_follow_up() => out.push((at, Event::Fact(b.clone()))),
            _ => {}
        }
    }
    out
}

/// The same beats without parley: every agent carries out its intention at
/// once, and counts its own step done when it has acted.
pub fn events_without(scenarios: &[Scenario]) -> Vec<(u64, Event)> {
    let mut out: Vec<(u64, Event)> = setup()
        .into_iter()
        .map(|(_, b)| (T0_MS, Event::Fact(b)))
        .collect();
    let mut beats: Vec<&Beat> = scenarios.iter().flat_map(|s| &s.beats).collect();
    beats.sort_by_key(|b| b.at_ms);
    for b in beats {
        match &b.body {
            Body::Intend { intention } => {
                let step = intention.workflow_step.clone();
                out.push((
                    b.at_ms,
                    Event::Act {
                        action: intention.action.clone(),
                        step: step.clone(),
                    },
                ));
                if let Some(r) = step {
                    out.push((b.at_ms, Event::StepDone(r)));
                }
            }
            body => out.push((b.at_ms, Event::Fact(body.clone()))),
        }
    }
    out
}
