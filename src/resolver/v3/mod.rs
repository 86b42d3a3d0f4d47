//! Resolver version 3. FROZEN once released, like versions 1 and 2.
//!
//! What changes from version 2, and nothing else:
//! - **Custom guards**: the rule set's `[[custom]]` tables (`crate::guards`)
//!   are a rule of their own, `custom`, for every intention whose action
//!   kind a guard applies to. Refusing guards run after the built-in guards
//!   (after `guard.fraud_perk`, before `temporal`: a refusal that holds now
//!   is not deferred first); escalating guards run after `priority`, before
//!   `threshold` (a person is not asked about what a rival outranks). Each
//!   in the order written; the first that fires decides. A guard that cannot
//!   be evaluated escalates (a missing value) or refuses (an unknown
//!   entity). An action on several skus is checked once per sku, and the
//!   finding names the skus that fail.
//! - **Decisions** otherwise are version 2's (version 1's rules), each
//!   saying `resolver: 3`. Admission is version 2's; a rule set with
//!   `[[custom]]` tables is refused while an older version is in force.
//!
//! A ledger moves to version 3 by an admin's `resolver_adopted` record;
//! replay checks every record under the version in force when it was
//! written, so older ledgers replay as they always did.

mod custom;

/// Version 3's additions to version 1's evaluation (version 4 builds on them).
pub(crate) fn later() -> v1::Later {
    v1::Later {
        rules: Some(custom::step),
        ..v1::Later::default()
    }
}

use super::{v1, v2, Author, Refusal, Resolver};
use crate::context::Context;
use crate::record::Body;

/// This version's number.
pub const VERSION: u32 = 3;

/// Resolver version 3.
#[derive(Clone, Copy, Debug, Default)]
pub struct V3;

impl Resolver for V3 {
    fn version(&self) -> u32 {
        VERSION
    }

    fn next_follow_up(&self, ctx: &Context) -> Option<Body> {
        Some(v1::stamped(v1::next_follow_up_with(ctx, later())?, VERSION))
    }

    fn admit(&self, ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal> {
        v2::V2.admit(ctx, author, body)
    }
}
