//! Resolver version 4. FROZEN once released, like versions 1 to 3.
//!
//! What changes from version 3, and nothing else: the ledger learns from
//! its own `outcome` records (`crate::outcomes`), through rules the rule set
//! states, each traced with the outcome record it read.
//! - **Calibration** (`[calibration] min_outcomes = N`): before the
//!   threshold rule compares an intention's projected revenue impact with
//!   the limit, the impact is scaled by its agent's forecast bias (realized
//!   over projected revenue impact of its measured decisions, clamped to
//!   0..4×), once at least N of them are measured; trace rule `calibration`.
//!   The escalation then names the calibrated figure; precedents still
//!   match on the intention's own projection.
//! - **Precedent retirement** (`[precedent] retire_if_worse_bp = B`,
//!   `retire_after_cases = N`, default 3): a matching precedent whose N or
//!   more measured settled cases realized on average more than B basis
//!   points less (margin per unit of projected impact) than its original
//!   case settles nothing more; the next matching precedent may, else the
//!   intention escalates. Trace rule `precedent`, verdict `pass`, finding
//!   `precedent_retired`.
//! - Everything else is version 3's, each decision saying `resolver: 4`.
//!   Without those tables a version 4 decision differs from version 3's
//!   only in that number.

mod learn;

use super::{v1, v2, v3, Author, Refusal, Resolver};
use crate::context::Context;
use crate::record::Body;

/// This version's number.
pub const VERSION: u32 = 4;

/// Resolver version 4.
#[derive(Clone, Copy, Debug, Default)]
pub struct V4;

impl Resolver for V4 {
    fn version(&self) -> u32 {
        VERSION
    }

    fn next_follow_up(&self, ctx: &Context) -> Option<Body> {
        let later = v1::Later {
            calibrate: Some(learn::calibrate),
            retired: Some(learn::retired),
            ..v3::later()
        };
        Some(v1::stamped(v1::next_follow_up_with(ctx, later)?, VERSION))
    }

    fn admit(&self, ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal> {
        v2::V2.admit(ctx, author, body)
    }
}
