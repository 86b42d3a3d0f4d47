//! The answer to one command, defined once: `parley run` prints it (one line
//! per command), the HTTP API returns it, MCP tools carry it. A refused
//! command's answer is an [`ErrorAnswer`] with a stable `code`.

use crate::vocab::ProblemCode;
use schemars::JsonSchema;
use serde::Serialize;

use crate::record::{Body, Digest};
use crate::render;
use crate::sequencer::{Ack, AppendError};
use crate::vocab::{Decision, DeferUntil, Outcome};

/// A decision as answered: the structured decision, its seq, and a sentence.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DecisionAnswer {
    pub seq: u64,
    #[serde(flatten)]
    pub decision: Decision,
    /// The decision in words (rendered now; not part of the record).
    pub summary: String,
    /// What happens next, for an intention still pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl DecisionAnswer {
    pub fn new(seq: u64, decision: Decision) -> DecisionAnswer {
        let next = match &decision.outcome {
            Outcome::Deferred {
                until: DeferUntil::Time(t),
            } => Some(format!(
                "decided again at {} (or when the ledger's time passes it); follow the stream or poll the intention",
                crate::time::format_rfc3339(*t)
            )),
            Outcome::Deferred {
                until: DeferUntil::Step(r),
            } => Some(format!(
                "decided again when step `{}` of run `{}` completes",
                r.step, r.run
            )),
            Outcome::Escalated { .. } => Some(
                "a person settles it (or the rule set's safe default does when it expires); follow the stream or poll the intention".into(),
            ),
            _ => None,
        };
        DecisionAnswer {
            seq,
            summary: render::decision_line(&decision),
            next,
            decision,
        }
    }
}

/// Another record a command caused.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Caused {
    pub seq: u64,
    #[serde(flatten)]
    pub body: Body,
    /// For a decision: the decision in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// A command's answer once it is durable.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CommandAnswer {
    pub seq: u64,
    pub hash: Digest,
    pub recorded_at_ms: u64,
    /// The idempotency key had been seen: nothing was appended, and this is
    /// the original command's answer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// For an intention: the decision that answered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionAnswer>,
    /// Every other record the command caused, in log order: decisions of
    /// other intentions (a clock re-deciding a deferral, a human resolution
    /// settling several, a step completion unblocking intentions) and
    /// workflow progress.
    pub caused: Vec<Caused>,
    /// What parley recorded just before the command because its time had
    /// passed due timers: a clock record at each due time and the decisions
    /// it brought, in log order (empty when none were due).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timers: Vec<Caused>,
}

impl Caused {
    fn of(seq: u64, body: Body) -> Caused {
        let summary = match &body {
            Body::Decision { decision } => Some(render::decision_line(decision)),
            _ => None,
        };
        Caused { seq, body, summary }
    }
}

impl From<Ack> for CommandAnswer {
    fn from(ack: Ack) -> CommandAnswer {
        let own = ack.decision().map(|(s, _)| s);
        let mut decision = None;
        let mut caused = Vec::new();
        for (seq, body) in ack.follow_ups {
            match body {
                Body::Decision { decision: d } if Some(seq) == own => {
                    decision = Some(DecisionAnswer::new(seq, *d));
                }
                body => caused.push(Caused::of(seq, body)),
            }
        }
        CommandAnswer {
            seq: ack.seq,
            hash: Digest(ack.hash),
            recorded_at_ms: ack.recorded_at_ms,
            duplicate: ack.duplicate,
            decision,
            caused,
            timers: ack
                .timers
                .into_iter()
                .map(|(s, b)| Caused::of(s, b))
                .collect(),
        }
    }
}

/// A refused command's answer.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ErrorAnswer {
    /// A stable name for the kind of refusal.
    pub code: ProblemCode,
    pub error: String,
}

impl From<&AppendError> for ErrorAnswer {
    fn from(e: &AppendError) -> ErrorAnswer {
        ErrorAnswer {
            code: code(e),
            error: e.to_string(),
        }
    }
}

/// A stable name for each kind of append error.
pub fn code(e: &AppendError) -> ProblemCode {
    match e {
        AppendError::Invalid(_) => ProblemCode::InvalidCommand,
        AppendError::Refused(r) => r.code(),
        AppendError::TimeBackwards { .. }
        | AppendError::TimeAhead { .. }
        | AppendError::TimeMissing
        | AppendError::TimeJump { .. } => ProblemCode::Time,
        AppendError::KeyConflict { .. } => ProblemCode::IdempotencyConflict,
        AppendError::Record(_) => ProblemCode::RecordTooLarge,
        AppendError::Failed(_) => ProblemCode::LedgerFailed,
        AppendError::OutcomeUnknown(_) => ProblemCode::OutcomeUnknown,
        AppendError::Closed => ProblemCode::LedgerClosed,
        AppendError::Busy => ProblemCode::Busy,
        AppendError::NotTheWriter(_) => ProblemCode::NotTheWriter,
    }
}
