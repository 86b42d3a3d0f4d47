//! Workflow runs: a pure fold of the workflow records, and the records that must
//! follow (a step became ready, a deadline passed, a run ended).
//!
//! Architecture invariant: no clock. A deadline passes when a record's
//! `recorded_at_ms` reaches it; the sequencer writes a clock record when nothing
//! else arrives, so live and replay see the same timeouts.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};
use serde::Serialize;

use super::{DeadlineFrom, Definition, OnFailure};
use crate::invariant::{ensure, Part, Violation};
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{RunOutcome, StepFailure};

/// Where a step stands.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepStatus {
    /// Its dependencies are not complete (or, for a compensation step, no
    /// failure has triggered it).
    Waiting,
    /// Its owner may act; `announced` once the `step_ready` record is written.
    Ready {
        seq: u64,
        at_ms: u64,
        announced: bool,
    },
    Completed {
        seq: u64,
    },
    Failed {
        seq: u64,
        reason: String,
    },
    TimedOut {
        seq: u64,
    },
    /// The run ended or turned to compensation before this step ran.
    Skipped,
}

impl StepStatus {
    /// The status's stable name.
    pub fn name(&self) -> &'static str {
        match self {
            StepStatus::Waiting => "waiting",
            StepStatus::Ready { .. } => "ready",
            StepStatus::Completed { .. } => "completed",
            StepStatus::Failed { .. } => "failed",
            StepStatus::TimedOut { .. } => "timed_out",
            StepStatus::Skipped => "skipped",
        }
    }

    /// The record that gave the step this status, if one did.
    pub fn seq(&self) -> Option<u64> {
        match self {
            StepStatus::Ready { seq, .. }
            | StepStatus::Completed { seq }
            | StepStatus::Failed { seq, .. }
            | StepStatus::TimedOut { seq } => Some(*seq),
            StepStatus::Waiting | StepStatus::Skipped => None,
        }
    }
}

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// A step failed; its compensation steps are running.
    Compensating {
        step: String,
        cause: StepFailure,
    },
    /// Ended; `run_finished` records it (see `RunState::finished_seq`).
    Ended {
        outcome: RunOutcome,
    },
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct StepState {
    pub name: String,
    pub owner: String,
    pub status: StepStatus,
    pub deadline_ms: Option<u64>,
}

/// One run of a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct RunState {
    pub run: String,
    pub workflow: String,
    pub version: u32,
    /// The `workflow_defined` record of the definition in force.
    pub definition_seq: u64,
    pub started_seq: u64,
    pub started_at_ms: u64,
    pub started_by: String,
    pub params: BTreeMap<String, Value>,
    #[serde(skip)]
    pub definition: Definition,
    pub steps: Vec<StepState>,
    pub status: RunStatus,
    /// The `run_finished` record.
    pub finished_seq: Option<u64>,
}

impl RunState {
    pub fn is_ended(&self) -> bool {
        matches!(self.status, RunStatus::Ended { .. })
    }

    /// The first dependency of step `idx` that has not completed.
    pub fn missing_dependency(&self, idx: usize) -> Option<&str> {
        let def = self.definition.steps.get(idx)?;
        def.depends_on
            .iter()
            .find(|d| {
                !self
                    .steps
                    .iter()
                    .any(|s| &s.name == *d && matches!(s.status, StepStatus::Completed { .. }))
            })
            .map(String::as_str)
    }
}

/// A definition as installed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Installed {
    pub seq: u64,
    pub definition: Definition,
}

/// Every definition and run, with the work queues of their follow-ups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Workflows {
    /// name → version → definition.
    pub definitions: BTreeMap<String, BTreeMap<u32, Installed>>,
    pub runs: BTreeMap<String, RunState>,
    /// Steps ready but not yet announced: (run, step index).
    pub announce: BTreeSet<(String, usize)>,
    /// Runs ended but not yet recorded as finished.
    pub finishing: BTreeSet<String>,
    /// Step deadlines: (ms, run, step index).
    pub deadlines: BTreeSet<(u64, String, usize)>,
}

impl Workflows {
    /// Folds one workflow record in; other records are ignored. Commands were
    /// checked before they were appended, so lookups that miss mean a record
    /// the sequencer would have refused: they change nothing.
    pub fn apply(&mut self, seq: u64, at_ms: u64, producer: &str, body: &Body) {
        match body {
            Body::WorkflowDefined { text } => {
                if let Ok(definition) = Definition::parse(text) {
                    self.definitions
                        .entry(definition.name.clone())
                        .or_default()
                        .insert(definition.version, Installed { seq, definition });
                }
            }
            Body::WorkflowStarted {
                run,
                workflow,
                version,
                params,
            } => self.start(seq, at_ms, producer, (run, workflow, *version, params)),
            Body::StepReady { run, step, .. } => {
                if let Some(i) = self.index_of(run, step) {
                    self.announce.remove(&(run.clone(), i));
                    if let Some(StepStatus::Ready { announced, .. }) = self.status_mut(run, i) {
                        *announced = true;
                    }
                }
            }
            Body::StepCompleted { run, step, .. } => {
                if let Some(i) = self.index_of(run, step) {
                    self.complete(run, i, seq, at_ms);
                }
            }
            Body::StepFailed { run, step, reason } => {
                if let Some(i) = self.index_of(run, step) {
                    self.settle_step(
                        run,
                        i,
                        StepStatus::Failed {
                            seq,
                            reason: reason.clone(),
                        },
                    );
                    let cause = StepFailure::Reported {
                        report: seq,
                        reason: reason.clone(),
                    };
                    self.fail(run, i, seq, at_ms, cause);
                }
            }
            Body::StepTimedOut {
                run,
                step,
                deadline_ms,
            } => {
                if let Some(i) = self.index_of(run, step) {
                    self.settle_step(run, i, StepStatus::TimedOut { seq });
                    let cause = StepFailure::TimedOut {
                        deadline_ms: *deadline_ms,
                    };
                    self.fail(run, i, seq, at_ms, cause);
                }
            }
            Body::RunFinished { run, .. } => {
                self.finishing.remove(run);
                if let Some(r) = self.runs.get_mut(run) {
                    r.finished_seq = Some(seq);
                }
            }
            _ => {}
        }
    }

    /// Starts a run of an installed definition: its first steps become ready
    /// and deadlines counted from the start are set.
    fn start(
        &mut self,
        seq: u64,
        at_ms: u64,
        producer: &str,
        (run, workflow, version, params): (
            &String,
            &String,
            u32,
            &BTreeMap<String, crate::value::Value>,
        ),
    ) {
        let Some(installed) = self.definitions.get(workflow).and_then(|v| v.get(&version)) else {
            return;
        };
        if self.runs.contains_key(run) {
            return;
        }
        let def = installed.definition.clone();
        let steps = def
            .steps
            .iter()
            .map(|s| StepState {
                name: s.name.clone(),
                owner: s.owner.clone(),
                status: StepStatus::Waiting,
                deadline_ms: None,
            })
            .collect();
        self.runs.insert(
            run.clone(),
            RunState {
                run: run.clone(),
                workflow: workflow.clone(),
                version,
                definition_seq: installed.seq,
                started_seq: seq,
                started_at_ms: at_ms,
                started_by: producer.to_owned(),
                params: params.clone(),
                definition: def.clone(),
                steps,
                status: RunStatus::Running,
                finished_seq: None,
            },
        );
        for (i, s) in def.steps.iter().enumerate() {
            if s.compensation {
                continue;
            }
            if let (DeadlineFrom::Start, Some(d)) = (s.deadline_from, s.deadline_ms()) {
                self.set_deadline(run, i, at_ms.saturating_add(d));
            }
            if s.depends_on.is_empty() {
                self.make_ready(run, i, seq, at_ms);
            }
        }
    }

    /// A workflow record owed now regardless of time: an announcement, then a
    /// run's end.
    pub fn next_announcement(&self) -> Option<Body> {
        let ready = self.announce.iter().find_map(|(run, i)| {
            let s = self.runs.get(run)?.steps.get(*i)?;
            Some(Body::StepReady {
                run: run.clone(),
                step: s.name.clone(),
                owner: s.owner.clone(),
            })
        });
        ready.or_else(|| {
            self.finishing
                .iter()
                .find_map(|run| match &self.runs.get(run)?.status {
                    RunStatus::Ended { outcome } => Some(Body::RunFinished {
                        run: run.clone(),
                        outcome: outcome.clone(),
                    }),
                    _ => None,
                })
        })
    }

    /// A timeout owed once `now_ms` has reached the earliest step deadline.
    pub fn next_timeout(&self, now_ms: u64) -> Option<Body> {
        let (t, run, i) = self.deadlines.first()?;
        if *t > now_ms {
            return None;
        }
        Some(Body::StepTimedOut {
            run: run.clone(),
            step: self.runs.get(run)?.steps.get(*i)?.name.clone(),
            deadline_ms: *t,
        })
    }

    /// The earliest step deadline still running.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.deadlines.first().map(|d| d.0)
    }

    fn index_of(&self, run: &str, step: &str) -> Option<usize> {
        self.runs
            .get(run)?
            .steps
            .iter()
            .position(|s| s.name == step)
    }

    fn status_mut(&mut self, run: &str, i: usize) -> Option<&mut StepStatus> {
        Some(&mut self.runs.get_mut(run)?.steps.get_mut(i)?.status)
    }

    fn set_deadline(&mut self, run: &str, i: usize, at: u64) {
        if let Some(s) = self.runs.get_mut(run).and_then(|r| r.steps.get_mut(i)) {
            if let Some(old) = s.deadline_ms.replace(at) {
                self.deadlines.remove(&(old, run.to_owned(), i));
            }
            self.deadlines.insert((at, run.to_owned(), i));
        }
    }

    /// A step reached a final status: it no longer waits, times out or is announced.
    fn settle_step(&mut self, run: &str, i: usize, status: StepStatus) {
        let Some(s) = self.runs.get_mut(run).and_then(|r| r.steps.get_mut(i)) else {
            return;
        };
        s.status = status;
        if let Some(d) = s.deadline_ms {
            self.deadlines.remove(&(d, run.to_owned(), i));
        }
        self.announce.remove(&(run.to_owned(), i));
    }

    fn make_ready(&mut self, run: &str, i: usize, seq: u64, at_ms: u64) {
        let Some(r) = self.runs.get_mut(run) else {
            return;
        };
        let Some(def) = r.definition.steps.get(i).cloned() else {
            return;
        };
        if let Some(s) = r.steps.get_mut(i) {
            s.status = StepStatus::Ready {
                seq,
                at_ms,
                announced: false,
            };
        }
        self.announce.insert((run.to_owned(), i));
        let from_ready = def.compensation || def.deadline_from == DeadlineFrom::Dependencies;
        if let (true, Some(d)) = (from_ready, def.deadline_ms()) {
            self.set_deadline(run, i, at_ms.saturating_add(d));
        }
    }

    fn complete(&mut self, run: &str, i: usize, seq: u64, at_ms: u64) {
        self.settle_step(run, i, StepStatus::Completed { seq });
        let Some(r) = self.runs.get(run) else {
            return;
        };
        let done = |r: &RunState, j: usize| {
            matches!(
                r.steps.get(j).map(|s| &s.status),
                Some(StepStatus::Completed { .. })
            )
        };
        match r.status.clone() {
            RunStatus::Running => {
                let newly: Vec<usize> = (0..r.steps.len())
                    .filter(|&j| {
                        !r.definition.steps[j].compensation
                            && r.steps[j].status == StepStatus::Waiting
                            && r.missing_dependency(j).is_none()
                    })
                    .collect();
                let all =
                    (0..r.steps.len()).all(|j| r.definition.steps[j].compensation || done(r, j));
                for j in newly {
                    self.make_ready(run, j, seq, at_ms);
                }
                if all {
                    self.end(run, RunOutcome::Completed);
                }
            }
            RunStatus::Compensating { step, cause } => {
                let failed = r.definition.step(&step).map(|(_, d)| d.compensate.clone());
                let all = failed
                    .unwrap_or_default()
                    .iter()
                    .all(|c| r.definition.step(c).is_some_and(|(j, _)| done(r, j)));
                if all {
                    self.end(run, RunOutcome::Compensated { step, cause });
                }
            }
            RunStatus::Ended { .. } => {}
        }
    }

    fn fail(&mut self, run: &str, i: usize, seq: u64, at_ms: u64, cause: StepFailure) {
        let Some(r) = self.runs.get(run) else {
            return;
        };
        let def = r.definition.steps[i].clone();
        match (&r.status, def.on_failure) {
            (RunStatus::Ended { .. }, _) => {}
            (RunStatus::Compensating { step, .. }, _) => {
                let cause = StepFailure::CompensationFailed {
                    compensating: step.clone(),
                    failure: Box::new(cause),
                };
                self.end(
                    run,
                    RunOutcome::Aborted {
                        step: def.name,
                        cause,
                    },
                );
            }
            (RunStatus::Running, OnFailure::Abort) => {
                self.end(
                    run,
                    RunOutcome::Aborted {
                        step: def.name,
                        cause,
                    },
                );
            }
            (RunStatus::Running, OnFailure::Compensate) => {
                self.skip_rest(run);
                if let Some(r) = self.runs.get_mut(run) {
                    r.status = RunStatus::Compensating {
                        step: def.name.clone(),
                        cause,
                    };
                }
                for c in &def.compensate {
                    if let Some(j) = self.index_of(run, c) {
                        self.make_ready(run, j, seq, at_ms);
                    }
                }
            }
        }
    }

    /// Steps that have not reached a final status are skipped.
    fn skip_rest(&mut self, run: &str) {
        let n = self.runs.get(run).map_or(0, |r| r.steps.len());
        for j in 0..n {
            let open = self.runs.get(run).is_some_and(|r| {
                matches!(
                    r.steps[j].status,
                    StepStatus::Waiting | StepStatus::Ready { .. }
                )
            });
            if open {
                self.settle_step(run, j, StepStatus::Skipped);
            }
        }
    }

    fn end(&mut self, run: &str, outcome: RunOutcome) {
        self.skip_rest(run);
        if let Some(r) = self.runs.get_mut(run) {
            r.status = RunStatus::Ended { outcome };
        }
        self.finishing.insert(run.to_owned());
    }
}

impl Workflows {
    /// Checks that the work queues are exactly what the runs call for (see
    /// `crate::context::Violation`).
    pub fn check(&self) -> Result<(), Violation> {
        let part = Part::Workflows;
        let (mut announce, mut finishing, mut deadlines) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (name, r) in &self.runs {
            ensure(&r.run == name, part, "a run is filed under its name")?;
            ensure(
                r.steps.len() == r.definition.steps.len(),
                part,
                "a run has one state per step of its definition",
            )?;
            ensure(
                r.finished_seq.is_none() || r.is_ended(),
                part,
                "only an ended run is recorded as finished",
            )?;
            if r.is_ended() && r.finished_seq.is_none() {
                finishing.insert(name.clone());
            }
            for (i, step) in r.steps.iter().enumerate() {
                let open = matches!(step.status, StepStatus::Waiting | StepStatus::Ready { .. });
                ensure(
                    !(open && r.is_ended()),
                    part,
                    "an ended run has no open step",
                )?;
                if let StepStatus::Ready {
                    announced: false, ..
                } = step.status
                {
                    announce.insert((name.clone(), i));
                }
                if let (true, Some(at)) = (open, step.deadline_ms) {
                    deadlines.insert((at, name.clone(), i));
                }
            }
        }
        ensure(
            announce == self.announce,
            part,
            "announce = the ready steps not announced",
        )?;
        ensure(
            finishing == self.finishing,
            part,
            "finishing = the ended runs not recorded",
        )?;
        ensure(
            deadlines == self.deadlines,
            part,
            "deadlines = the open steps' deadlines",
        )
    }
}

/// Does `owner` (an agent id or a domain name) name this agent?
pub fn owns(owner: &str, agent: &str, domain: Option<&str>) -> bool {
    owner == agent || domain == Some(owner)
}
