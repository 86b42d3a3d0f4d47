//! A2A tasks read from the ledger: an intention and its decisions (or any
//! other record a message appended) as the protocol's `Task` JSON (its
//! ProtoJSON form: camelCase fields, `TASK_STATE_*` and `ROLE_*` enums).
//! Nothing is stored besides the log: the task id names the seq, the
//! context id is the command's `correlation`.

use serde_json::{json, Value};

use crate::record::{Body, StoredRecord};
use crate::vocab::{Decision, Outcome};

/// The most history messages one task carries (its decisions are bounded by
/// the resolver's re-decisions of one intention).
pub(super) const HISTORY_MAX: usize = 64;

/// What a task id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TaskId {
    /// An intention and its decisions.
    Intention(u64),
    /// Any other record a message appended (a fact, a broadcast).
    Record(u64),
}

impl TaskId {
    pub(super) fn parse(id: &str) -> Option<TaskId> {
        let num = |s: &str| s.parse::<u64>().ok().filter(|n| *n > 0);
        if let Some(n) = id.strip_prefix("intention-") {
            return num(n).map(TaskId::Intention);
        }
        id.strip_prefix("record-").and_then(num).map(TaskId::Record)
    }

    pub(super) fn seq(self) -> u64 {
        match self {
            TaskId::Intention(s) | TaskId::Record(s) => s,
        }
    }

    pub(super) fn text(self) -> String {
        match self {
            TaskId::Intention(s) => format!("intention-{s}"),
            TaskId::Record(s) => format!("record-{s}"),
        }
    }
}

/// A task's records: the one a message appended, and for an intention its
/// decisions, oldest first.
pub(super) struct TaskRecords {
    pub(super) first: StoredRecord,
    pub(super) decisions: Vec<StoredRecord>,
    /// The `intention_withdrawn` record, when its agent withdrew it.
    pub(super) withdrawn: Option<StoredRecord>,
}

/// The protocol's states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Submitted,
    Working,
    InputRequired,
    Completed,
    Rejected,
    Failed,
    Canceled,
}

impl State {
    pub(super) fn name(self) -> &'static str {
        match self {
            State::Submitted => "TASK_STATE_SUBMITTED",
            State::Working => "TASK_STATE_WORKING",
            State::InputRequired => "TASK_STATE_INPUT_REQUIRED",
            State::Completed => "TASK_STATE_COMPLETED",
            State::Rejected => "TASK_STATE_REJECTED",
            State::Failed => "TASK_STATE_FAILED",
            State::Canceled => "TASK_STATE_CANCELED",
        }
    }

    /// No later transition follows.
    pub(super) fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Completed | State::Rejected | State::Failed | State::Canceled
        )
    }

    /// A decision's outcome as a state: approved or modified complete the
    /// task; rejected rejects it; deferred keeps it working; escalated waits
    /// for input (a person's); expired (nobody settled it in time) fails it.
    fn of(o: &Outcome) -> State {
        match o {
            Outcome::Approved | Outcome::Modified { .. } => State::Completed,
            Outcome::Rejected => State::Rejected,
            Outcome::Deferred { .. } => State::Working,
            Outcome::Escalated { .. } => State::InputRequired,
            Outcome::Expired => State::Failed,
        }
    }
}

fn decision_of(r: &StoredRecord) -> Option<&Decision> {
    match &r.record.body {
        Body::Decision { decision } => Some(decision),
        _ => None,
    }
}

impl TaskRecords {
    pub(super) fn id(&self) -> TaskId {
        let seq = self.first.record.envelope.seq;
        match self.first.record.body {
            Body::Intend { .. } => TaskId::Intention(seq),
            _ => TaskId::Record(seq),
        }
    }

    /// The command's correlation, else the task's own id.
    pub(super) fn context_id(&self) -> String {
        self.first
            .record
            .envelope
            .correlation
            .clone()
            .unwrap_or_else(|| self.id().text())
    }

    pub(super) fn producer(&self) -> &str {
        &self.first.record.envelope.producer
    }

    /// The state its last decision gives; an intention its agent withdrew
    /// is canceled once parley closed it (the `expired` decision).
    pub(super) fn state(&self) -> State {
        match self.id() {
            TaskId::Record(_) => State::Completed,
            TaskId::Intention(_) => {
                let state = self
                    .decisions
                    .last()
                    .and_then(decision_of)
                    .map_or(State::Submitted, |d| State::of(&d.outcome));
                match (state, &self.withdrawn) {
                    (State::Failed, Some(_)) => State::Canceled,
                    _ => state,
                }
            }
        }
    }

    /// The user's message: the command as it was recorded.
    fn request(&self) -> Value {
        let env = &self.first.record.envelope;
        let mut command = serde_json::to_value(&self.first.record.body).unwrap_or(Value::Null);
        if let Some(o) = command.as_object_mut() {
            o.insert("producer".into(), json!(env.producer));
        }
        json!({
            "messageId": format!("{}-request", self.id().text()),
            "contextId": self.context_id(),
            "taskId": self.id().text(),
            "role": "ROLE_USER",
            "parts": [{"data": command, "mediaType": "application/json"}],
        })
    }

    /// parley's answer to one decision: the sentence and the decision.
    fn answer(&self, r: &StoredRecord, d: &Decision) -> Value {
        let seq = r.record.envelope.seq;
        let mut parts = vec![json!({"text": crate::render::decision_line(d)})];
        if let Outcome::Escalated { escalation } = &d.outcome {
            parts.push(json!({"text": crate::render::escalation_summary(escalation, &d.entity)}));
        }
        parts.push(json!({"data": {"seq": seq, "decision": d}, "mediaType": "application/json"}));
        json!({
            "messageId": format!("decision-{seq}"),
            "contextId": self.context_id(),
            "taskId": self.id().text(),
            "role": "ROLE_AGENT",
            "parts": parts,
        })
    }

    /// The task's status: its state, parley's last message, when.
    pub(super) fn status(&self) -> Value {
        let last = self
            .decisions
            .last()
            .and_then(|r| decision_of(r).map(|d| (r, d)));
        let (message, at_ms) = match (self.id(), last) {
            (TaskId::Intention(_), Some((r, d))) => {
                (self.answer(r, d), r.record.envelope.recorded_at_ms)
            }
            _ => {
                let seq = self.first.record.envelope.seq;
                let text = format!("recorded at seq {seq} ({})", self.first.record.body.kind());
                let message = json!({
                    "messageId": format!("{}-recorded", self.id().text()),
                    "contextId": self.context_id(),
                    "taskId": self.id().text(),
                    "role": "ROLE_AGENT",
                    "parts": [{"text": text}],
                });
                (message, self.first.record.envelope.recorded_at_ms)
            }
        };
        json!({
            "state": self.state().name(),
            "message": message,
            "timestamp": crate::time::format_rfc3339(at_ms),
        })
    }

    /// The outcome as an artifact, once the task completed.
    pub(super) fn artifacts(&self) -> Vec<Value> {
        let seq = self.first.record.envelope.seq;
        match self.id() {
            TaskId::Record(_) => vec![json!({
                "artifactId": format!("record-{seq}"),
                "name": "record",
                "parts": [{"data": {"seq": seq, "kind": self.first.record.body.kind()}}],
            })],
            TaskId::Intention(_) => {
                let Some((r, d)) = self
                    .decisions
                    .last()
                    .and_then(|r| decision_of(r).map(|d| (r, d)))
                else {
                    return Vec::new();
                };
                let action = match (&d.outcome, &self.first.record.body) {
                    (Outcome::Modified { action }, _) => json!(action),
                    (Outcome::Approved, Body::Intend { intention }) => json!(intention.action),
                    _ => return Vec::new(),
                };
                let dseq = r.record.envelope.seq;
                vec![json!({
                    "artifactId": format!("decision-{dseq}"),
                    "name": "decision",
                    "description": "What parley approved: the action to carry out (modified values where a person or a precedent chose them)",
                    "parts": [{"data": {"seq": dseq, "outcome": d.outcome.kind().name(), "action": action, "decision": d}, "mediaType": "application/json"}],
                })]
            }
        }
    }

    /// The `Task` JSON, with at most `history` history messages (the
    /// newest; `None`: all).
    pub(super) fn task(&self, history: Option<usize>) -> Value {
        let mut messages = vec![self.request()];
        messages.extend(
            self.decisions
                .iter()
                .filter_map(|r| decision_of(r).map(|d| self.answer(r, d))),
        );
        let keep = history.unwrap_or(HISTORY_MAX).min(HISTORY_MAX);
        let skip = messages.len().saturating_sub(keep);
        json!({
            "id": self.id().text(),
            "contextId": self.context_id(),
            "status": self.status(),
            "artifacts": self.artifacts(),
            "history": messages.split_off(skip),
        })
    }
}
