//! Replay: re-derive, from the records before it, every record the resolver
//! wrote, and compare. Pure: feed it the log in order.

use crate::context::Context;
use crate::record::{Body, StoredRecord};
use crate::resolver::next_follow_up;

/// Where replay and the log part ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub seq: u64,
    /// What the log holds at `seq` (`None`: the log ended).
    pub recorded: Option<Body>,
    /// What the resolver produces there (`None`: nothing was owed).
    pub expected: Option<Body>,
}

/// Folds the log and checks every decision on the way.
#[derive(Default)]
pub struct Replayer {
    ctx: Context,
    decisions: u64,
}

impl Replayer {
    pub fn new() -> Replayer {
        Replayer::default()
    }

    /// Feeds the next record of the log.
    pub fn feed(&mut self, r: &StoredRecord) -> Result<(), Box<Divergence>> {
        let owed = next_follow_up(&self.ctx);
        let is_decision = r.record.body.is_follow_up();
        if owed.is_some() || is_decision {
            if owed.as_ref() != Some(&r.record.body) {
                return Err(Box::new(Divergence {
                    seq: r.record.envelope.seq,
                    recorded: Some(r.record.body.clone()),
                    expected: owed,
                }));
            }
            self.decisions += 1;
        }
        self.ctx.apply(r);
        Ok(())
    }

    /// At the end of the log: nothing may still be owed.
    pub fn finish(&self) -> Result<(), Box<Divergence>> {
        match next_follow_up(&self.ctx) {
            None => Ok(()),
            expected => Err(Box::new(Divergence {
                seq: self.ctx.seq + 1,
                recorded: None,
                expected,
            })),
        }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Decisions checked so far.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }
}
