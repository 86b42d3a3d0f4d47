//! The sequencing rule (`workflow.sequence`): an intention that belongs to a
//! workflow step is decided only once the step's dependencies are complete.

use super::read;
use super::steps::{Eval, Step};
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::{CiteRole, DeferUntil, Field, Finding, Outcome, Read, RuleId, StepRef, Verdict};
use crate::workflow::run::{owns, RunState, RunStatus, StepStatus};

const RULE: RuleId = RuleId::WorkflowSequence;

impl<'a> Eval<'a> {
    fn sequence_reject(&mut self, f: Finding, reads: Vec<Read>) -> Step {
        self.push(RULE, Verdict::Reject, f, reads);
        Some(Outcome::Rejected)
    }

    pub(super) fn sequence(&mut self) -> Step {
        let r = self.s.intention.workflow_step.clone()?;
        let Some(run) = self.ctx.workflows.runs.get(&r.run) else {
            let f = Finding::NoSuchRun { run: r.run.clone() };
            return self.sequence_reject(f, vec![]);
        };
        let entity = Some(EntityRef::Run(r.run.clone()));
        let mut reads = vec![read(
            Field::Workflow,
            entity.clone(),
            Value::Text(format!("{} v{}", run.workflow, run.version)),
            run.started_seq,
        )];
        let Some((idx, def)) = run.definition.step(&r.step) else {
            let f = Finding::NoSuchStep {
                workflow: run.workflow.clone(),
                step: r.step.clone(),
            };
            return self.sequence_reject(f, reads);
        };
        let domain = self
            .ctx
            .authority
            .agents
            .get(&self.s.agent)
            .map(|a| a.value.domain.name());
        if !owns(&def.owner, &self.s.agent, domain) {
            let f = Finding::NotStepOwner {
                step: r.step.clone(),
                owner: def.owner.clone(),
            };
            return self.sequence_reject(f, reads);
        }
        let state = &run.steps[idx];
        let status_seq = state.status.seq().unwrap_or(run.started_seq);
        reads.push(read(
            Field::StepStatus(r.step.clone()),
            entity,
            Value::Text(state.status.name().into()),
            status_seq,
        ));
        self.step_status(r, run, idx, def.compensation, reads)
    }

    /// Decides by the run's and the step's status, once the step is known
    /// and the agent owns it.
    fn step_status(
        &mut self,
        r: StepRef,
        run: &'a RunState,
        idx: usize,
        compensation: bool,
        reads: Vec<Read>,
    ) -> Step {
        debug_assert!(
            idx < run.steps.len(),
            "the step index comes from the run's definition"
        );
        let state = &run.steps[idx];
        match (&run.status, &state.status) {
            (RunStatus::Ended { outcome }, _) => {
                if let Some(end) = run.finished_seq {
                    self.cite(CiteRole::RunEnd, end);
                }
                let f = Finding::RunEnded {
                    run: r.run.clone(),
                    outcome: outcome.name().into(),
                };
                self.sequence_reject(f, reads)
            }
            (_, StepStatus::Ready { .. }) => {
                let f = Finding::StepReady { step: r.clone() };
                self.push(RULE, Verdict::Pass, f, reads);
                None
            }
            (RunStatus::Compensating { step, .. }, _) => {
                let f = Finding::RunCompensating {
                    run: r.run.clone(),
                    failed_step: step.clone(),
                };
                self.sequence_reject(f, reads)
            }
            (RunStatus::Running, StepStatus::Waiting) if !compensation => {
                let missing = run.missing_dependency(idx).unwrap_or_default().to_owned();
                let f = Finding::WaitsForStep {
                    step: r.clone(),
                    missing: missing.clone(),
                };
                self.push(RULE, Verdict::Defer, f, reads);
                Some(Outcome::Deferred {
                    until: DeferUntil::Step(StepRef {
                        run: r.run,
                        step: missing,
                    }),
                })
            }
            (RunStatus::Running, StepStatus::Waiting) => {
                let f = Finding::CompensationOnly {
                    step: r.step.clone(),
                };
                self.sequence_reject(f, reads)
            }
            (_, settled) => {
                let f = Finding::StepAlreadySettled {
                    step: r.clone(),
                    status: settled.name().into(),
                };
                self.sequence_reject(f, reads)
            }
        }
    }
}
