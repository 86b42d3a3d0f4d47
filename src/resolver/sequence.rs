//! The sequencing rule (`workflow.sequence`): an intention that belongs to a
//! workflow step is decided only once the step's dependencies are complete.

use super::read;
use super::steps::{Eval, Step};
use crate::context::Context;
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{DeferUntil, Outcome, StepRef};
use crate::workflow::run::{owns, RunStatus, StepStatus};
use crate::workflow::Definition;

const RULE: &str = "workflow.sequence";

impl Eval<'_> {
    pub(super) fn sequence(&mut self) -> Step {
        let r = self.s.intention.workflow_step.clone()?;
        let reject = |e: &mut Self, note: String, reads| {
            e.push(RULE, "reject", note, reads);
            Some(Outcome::Rejected)
        };
        let Some(run) = self.ctx.workflows.runs.get(&r.run) else {
            return reject(
                self,
                format!("there is no workflow run `{}`", r.run),
                vec![],
            );
        };
        let mut reads = vec![read(
            &format!("run[{}].workflow", r.run),
            Value::Text(format!("{} v{}", run.workflow, run.version)),
            run.started_seq,
        )];
        let Some((idx, def)) = run.definition.step(&r.step) else {
            let note = format!("workflow `{}` has no step `{}`", run.workflow, r.step);
            return reject(self, note, reads);
        };
        let domain = self
            .ctx
            .agents
            .get(&self.s.agent)
            .map(|a| a.value.domain.name());
        if !owns(&def.owner, &self.s.agent, domain) {
            let note = format!(
                "step `{}` belongs to `{}`, not to `{}`",
                r.step, def.owner, self.s.agent
            );
            return reject(self, note, reads);
        }
        let state = &run.steps[idx];
        let (status, status_seq) = match &state.status {
            StepStatus::Waiting | StepStatus::Skipped => ("waiting", run.started_seq),
            StepStatus::Ready { seq, .. } => ("ready", *seq),
            StepStatus::Completed { seq } => ("completed", *seq),
            StepStatus::Failed { seq, .. } => ("failed", *seq),
            StepStatus::TimedOut { seq } => ("timed_out", *seq),
        };
        let status = if state.status == StepStatus::Skipped {
            "skipped"
        } else {
            status
        };
        reads.push(read(
            &format!("step[{}].status", r.step),
            Value::Text(status.into()),
            status_seq,
        ));
        match (&run.status, &state.status) {
            (RunStatus::Ended { outcome }, _) => {
                let note = format!("run `{}` has ended ({})", r.run, outcome.name());
                reject(self, note, reads)
            }
            (_, StepStatus::Ready { .. }) => {
                let note = format!("step `{}` of run `{}` is ready", r.step, r.run);
                self.push(RULE, "pass", note, reads);
                None
            }
            (RunStatus::Compensating { step, .. }, _) => {
                let note = format!(
                    "run `{}` is compensating for the failure of `{step}`; step `{}` will not run",
                    r.run, r.step
                );
                reject(self, note, reads)
            }
            (RunStatus::Running, StepStatus::Waiting) if !def.compensation => {
                let missing = run.missing_dependency(idx).unwrap_or_default().to_owned();
                let note = format!(
                    "step `{}` waits for step `{missing}` of run `{}`",
                    r.step, r.run
                );
                self.push(RULE, "defer", note, reads);
                Some(Outcome::Deferred {
                    until: DeferUntil::Step(StepRef {
                        run: r.run,
                        step: missing,
                    }),
                })
            }
            (RunStatus::Running, StepStatus::Waiting) => {
                let note = format!(
                    "`{}` is a compensation step; it runs only after a failure",
                    r.step
                );
                reject(self, note, reads)
            }
            _ => {
                let note = format!("step `{}` of run `{}` is already {status}", r.step, r.run);
                reject(self, note, reads)
            }
        }
    }
}

/// Checks a workflow command against the context before it is appended.
pub(super) fn check(ctx: &Context, producer: &str, body: &Body) -> Result<(), String> {
    let wf = &ctx.workflows;
    match body {
        Body::WorkflowDefined { text } => {
            let def = Definition::parse(text).map_err(|e| e.to_string())?;
            if let Some(old) = wf
                .definitions
                .get(&def.name)
                .and_then(|v| v.get(&def.version))
            {
                let next = wf
                    .definitions
                    .get(&def.name)
                    .and_then(|v| v.keys().last())
                    .map_or(1, |v| v + 1);
                return Err(format!(
                    "workflow `{}` version {} is already defined (seq {}); define version {next}",
                    def.name, def.version, old.seq
                ));
            }
            Ok(())
        }
        Body::WorkflowStarted {
            run,
            workflow,
            version,
            params,
        } => {
            if let Some(r) = wf.runs.get(run) {
                return Err(format!(
                    "run `{run}` already exists (started at seq {})",
                    r.started_seq
                ));
            }
            let versions = wf.definitions.get(workflow).ok_or_else(|| {
                let known: Vec<&String> = wf.definitions.keys().collect();
                format!("no workflow `{workflow}` is defined; defined: {known:?}")
            })?;
            let def = &versions
                .get(version)
                .ok_or_else(|| {
                    let known: Vec<&u32> = versions.keys().collect();
                    format!("workflow `{workflow}` has no version {version}; defined: {known:?}")
                })?
                .definition;
            if let Some(missing) = def.params.iter().find(|p| !params.contains_key(*p)) {
                return Err(format!("workflow `{workflow}` needs parameter `{missing}`"));
            }
            if let Some(unknown) = params.keys().find(|k| !def.params.contains(k)) {
                return Err(format!(
                    "workflow `{workflow}` has no parameter `{unknown}`; it takes {:?}",
                    def.params
                ));
            }
            Ok(())
        }
        Body::StepCompleted { run, step, .. } | Body::StepFailed { run, step, .. } => {
            let r = wf
                .runs
                .get(run)
                .ok_or_else(|| format!("there is no workflow run `{run}`"))?;
            let (idx, def) = r
                .definition
                .step(step)
                .ok_or_else(|| format!("workflow `{}` has no step `{step}`", r.workflow))?;
            let domain = ctx.agents.get(producer).map(|a| a.value.domain.name());
            if !owns(&def.owner, producer, domain) && !ctx.humans.contains_key(producer) {
                return Err(format!(
                    "step `{step}` belongs to `{}`; `{producer}` may not report it",
                    def.owner
                ));
            }
            if let RunStatus::Ended { outcome } = &r.status {
                return Err(format!("run `{run}` has ended ({})", outcome.name()));
            }
            match &r.steps[idx].status {
                StepStatus::Ready { .. } => Ok(()),
                StepStatus::Waiting if !def.compensation => Err(format!(
                    "step `{step}` is not ready: it waits for step `{}`",
                    r.missing_dependency(idx).unwrap_or_default()
                )),
                StepStatus::Waiting => Err(format!(
                    "`{step}` is a compensation step; no failure has triggered it"
                )),
                StepStatus::Completed { seq } => {
                    Err(format!("step `{step}` already completed at seq {seq}"))
                }
                StepStatus::Failed { seq, .. } => {
                    Err(format!("step `{step}` already failed at seq {seq}"))
                }
                StepStatus::TimedOut { seq } => {
                    Err(format!("step `{step}` timed out at seq {seq}"))
                }
                StepStatus::Skipped => Err(format!(
                    "step `{step}` was skipped: run `{run}` turned to compensation"
                )),
            }
        }
        _ => Ok(()),
    }
}
