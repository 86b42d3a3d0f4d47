//! Resolver version 2. FROZEN once released, like version 1.
//!
//! What changes from version 1, and nothing else:
//! - **Admission** checks who may write which kind of store record against
//!   the rule set's `[writers]` table (`crate::writers`; kinds it does not
//!   list keep this version's defaults, `crate::writers::default_writers`):
//!   fraud flags from the fraud domain, the catalog from merchandising or an
//!   integration, clock records from parley only, and so on. An
//!   unregistered producer writes nothing on a ledger that has credentials.
//!   Clock records are parley's alone: a producer's is refused (a `clock`
//!   command only asks the sequencer to record due timers). Every other
//!   admission rule is version 1's.
//! - **Decisions** are version 1's, each saying `resolver: 2`.
//!
//! A ledger moves from version 1 to 2 by an admin's `resolver_adopted`
//! record; replay checks every record under the version in force when it
//! was written, so version 1 ledgers replay as they always did.

use super::v1;
use super::{Author, Refusal, Resolver};
use crate::context::Context;
use crate::record::Body;
mod writers;

use writers::{check, Denied};

/// This version's number.
pub const VERSION: u32 = 2;

/// Resolver version 2.
#[derive(Clone, Copy, Debug, Default)]
pub struct V2;

impl Resolver for V2 {
    fn version(&self) -> u32 {
        VERSION
    }

    fn next_follow_up(&self, ctx: &Context) -> Option<Body> {
        Some(v1::stamped(v1::next_follow_up(ctx)?, VERSION))
    }

    fn admit(&self, ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal> {
        if matches!(body, Body::Clock) {
            return Err(Refusal::ClockIsParleys {
                producer: author.producer.to_owned(),
            });
        }
        v1::admit_credential(ctx, author, body)?;
        writers(ctx, author.producer, body)?;
        v1::admit_record(ctx, author.producer, body)
    }
}

/// The rule set's `[writers]` table (or this version's defaults) admits
/// `producer` for `body`.
fn writers(ctx: &Context, producer: &str, body: &Body) -> Result<(), Refusal> {
    let table = ctx
        .authority
        .rules
        .as_ref()
        .and_then(|r| r.rules.writers.as_ref());
    check(&ctx.authority, table, producer, body).map_err(|d| match d {
        Denied::Unregistered => Refusal::Unregistered {
            producer: producer.to_owned(),
        },
        Denied::NotListed {
            kind,
            standing,
            writers,
        } => Refusal::NotAWriter {
            producer: producer.to_owned(),
            kind: kind.name(),
            standing,
            writers: writers.iter().map(|w| w.name()).collect(),
        },
    })
}
