//! Replay: re-derive, from the records before it, every record the resolver
//! wrote (with the resolver version in force at that point), check that every
//! record a producer wrote was admissible when it was written, and compare.
//! Pure: feed it the log in order.

use crate::command::SYSTEM_PRODUCER;
use crate::context::{Context, Inconsistent};
use crate::record::{Body, StoredRecord};
use crate::resolver::{Refusal, Resolvers};

/// What replay found wrong at a seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A derived record differs from what the resolver derives (`None`: the
    /// log holds nothing there, or nothing was owed).
    Derived {
        recorded: Option<Body>,
        expected: Option<Body>,
    },
    /// A producer's record that admission refuses: it had no right to write it.
    Refused(Refusal),
    /// A record written as parley that parley does not write there.
    NotParley(&'static str),
    /// A record the fold cannot take.
    Inconsistent(Inconsistent),
}

/// Where replay and the log part ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub seq: u64,
    pub problem: Problem,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            Problem::Derived { recorded, expected } => write!(
                f,
                "seq {}: the log holds {}, replay derives {}",
                self.seq,
                recorded.as_ref().map_or("nothing", Body::kind),
                expected.as_ref().map_or("nothing", Body::kind)
            ),
            Problem::Refused(r) => write!(
                f,
                "seq {}: its producer had no right to write it: {r}",
                self.seq
            ),
            Problem::NotParley(why) => write!(f, "seq {}: {why}", self.seq),
            Problem::Inconsistent(i) => write!(f, "{i}"),
        }
    }
}

/// Folds the log and checks every derived and produced record on the way.
pub struct Replayer {
    ctx: Context,
    resolvers: Resolvers,
    decisions: u64,
    workflow_records: u64,
    /// True while only the records of the ledger's creation have been seen.
    creating: bool,
}

impl Default for Replayer {
    fn default() -> Replayer {
        Replayer::new(Resolvers::released())
    }
}

impl Replayer {
    pub fn new(resolvers: Resolvers) -> Replayer {
        Replayer {
            ctx: Context::default(),
            resolvers,
            decisions: 0,
            workflow_records: 0,
            creating: true,
        }
    }

    /// Starts from a context folded up to some seq (a snapshot).
    pub fn from_context(ctx: Context, resolvers: Resolvers) -> Replayer {
        Replayer {
            creating: ctx.seq == 0,
            ctx,
            resolvers,
            decisions: 0,
            workflow_records: 0,
        }
    }

    /// Feeds the next record of the log.
    pub fn feed(&mut self, r: &StoredRecord) -> Result<(), Box<Divergence>> {
        let seq = r.record.envelope.seq;
        let fail = |problem| Err(Box::new(Divergence { seq, problem }));
        let body = &r.record.body;
        let owed = if self.ctx.seq == 0 {
            None
        } else {
            if let Err(e) = self.resolvers.check_known(&self.ctx) {
                return fail(Problem::Refused(e));
            }
            self.resolvers.next_follow_up(&self.ctx)
        };
        if owed.is_some() || body.is_follow_up() {
            if owed.as_ref() != Some(body) {
                return fail(Problem::Derived {
                    recorded: Some(body.clone()),
                    expected: owed,
                });
            }
            match body {
                Body::Decision { .. } => self.decisions += 1,
                _ => self.workflow_records += 1,
            }
        } else if r.record.envelope.producer == SYSTEM_PRODUCER {
            let allowed = match body {
                Body::Genesis { .. } => seq == 1,
                Body::Clock => true,
                // It signs the record just before it (the signature is
                // checked against a trusted key by `verify --key`).
                Body::Checkpoint { checkpoint } => {
                    checkpoint.seq + 1 == seq && checkpoint.head_hash.0 == r.prev_hash
                }
                Body::RulesInstalled { .. } | Body::WorkflowDefined { .. } => {
                    self.creating && seq > 1
                }
                _ => false,
            };
            if !allowed {
                return fail(Problem::NotParley(
                    "parley writes only genesis, the creation records, clocks, checkpoints of the record before them and follow-ups",
                ));
            }
        } else {
            self.creating = false;
            let author = crate::resolver::Author::of(&r.record.envelope);
            if let Err(refusal) = self.resolvers.admit(&self.ctx, author, body) {
                return fail(Problem::Refused(refusal));
            }
        }
        self.ctx
            .apply(r)
            .or_else(|e| fail(Problem::Inconsistent(e)))
    }

    /// At the end of the log: nothing may still be owed.
    pub fn finish(&self) -> Result<(), Box<Divergence>> {
        match self.resolvers.next_follow_up(&self.ctx) {
            None => Ok(()),
            expected => Err(Box::new(Divergence {
                seq: self.ctx.seq + 1,
                problem: Problem::Derived {
                    recorded: None,
                    expected,
                },
            })),
        }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Decisions re-derived and checked so far.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Workflow records (step ready, timed out, run finished) re-derived so far.
    pub fn workflow_records(&self) -> u64 {
        self.workflow_records
    }
}
