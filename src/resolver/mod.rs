//! The resolver: the referee. A decision is a pure function of the context
//! (the fold of the log before it), the rule set in force and the resolver
//! version in force (all three recorded in the log).
//!
//! **Versions.** Each released version is a [`Resolver`] whose code stays in
//! the tree, frozen (`v1/`). The policy: any change that alters a single byte
//! of any decision (or any other follow-up record, or what admission accepts)
//! for the same log is a new version. A ledger starts with the version named
//! in its genesis record and moves only by a `resolver_adopted` record, so
//! `replay`, `audit` and `whatif` re-derive each decision with the version
//! in force at that point, with any later binary.
//!
//! Architecture invariant: no I/O, no clock (the ledger's "now" is the last
//! record's `recorded_at_ms`), no floats, no hash-map iteration. The sequencer
//! calls [`Resolvers::next_follow_up`] after every record until it returns
//! `None`; replay does the same, so the same log yields the same decisions
//! bit for bit.

mod refusal;
pub mod v1;
pub mod v2;
pub mod v3;
pub mod v4;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use refusal::Refusal;

use crate::context::Context;
use crate::record::Body;

/// Most follow-up records one record may cause (a bound, not an
/// expectation: each follow-up settles one pending intention). The
/// sequencer, replay and what-if all stop there.
pub const FOLLOW_UPS_MAX: usize = 100_000;

/// The version a new ledger starts with.
pub const CURRENT: u32 = 4;

/// One version of the decision logic.
pub trait Resolver: Send + Sync {
    /// Its number, from 1.
    fn version(&self) -> u32;
    /// The record that must follow the current context, if any: a decision,
    /// or workflow progress (`step_ready`, `step_timed_out`, `run_finished`).
    fn next_follow_up(&self, ctx: &Context) -> Option<Body>;
    /// Whether `author` may append `body` now (admission). Records written
    /// by parley itself are not admitted this way.
    fn admit(&self, ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal>;
}

/// Who writes a record: its producer and the credential it came with (the
/// seq of its `credential_granted` record; `None` for the embedded library
/// and the CLI, which act with the data directory's owner's rights).
#[derive(Clone, Copy, Debug)]
pub struct Author<'a> {
    pub producer: &'a str,
    pub credential: Option<u64>,
}

impl<'a> Author<'a> {
    /// The author of a record as its envelope says.
    pub fn of(envelope: &'a crate::record::Envelope) -> Author<'a> {
        Author {
            producer: &envelope.producer,
            credential: envelope.credential,
        }
    }
}

/// The resolver versions a build knows.
#[derive(Clone)]
pub struct Resolvers {
    versions: BTreeMap<u32, Arc<dyn Resolver>>,
}

impl Default for Resolvers {
    fn default() -> Resolvers {
        Resolvers::released()
    }
}

impl std::fmt::Debug for Resolvers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.versions.keys()).finish()
    }
}

impl Resolvers {
    /// Every released version.
    pub fn released() -> Resolvers {
        let mut versions: BTreeMap<u32, Arc<dyn Resolver>> = BTreeMap::new();
        versions.insert(1, Arc::new(v1::V1));
        versions.insert(2, Arc::new(v2::V2));
        versions.insert(3, Arc::new(v3::V3));
        versions.insert(4, Arc::new(v4::V4));
        debug_assert!(versions.contains_key(&CURRENT));
        Resolvers { versions }
    }

    /// These versions plus `r` (tests use it to try a version before release).
    pub fn with(mut self, r: Arc<dyn Resolver>) -> Resolvers {
        self.versions.insert(r.version(), r);
        self
    }

    pub fn get(&self, version: u32) -> Option<&dyn Resolver> {
        self.versions.get(&version).map(|r| r.as_ref())
    }

    /// The known version numbers, ascending.
    pub fn known(&self) -> Vec<u32> {
        self.versions.keys().copied().collect()
    }

    /// The version in force in `ctx`. A ledger that names a version this
    /// build does not know is refused when it is opened, so this falls back
    /// to the newest known version only for contexts built by hand.
    fn in_force(&self, ctx: &Context) -> &dyn Resolver {
        let v = ctx.authority.resolver.value;
        match self.versions.get(&v) {
            Some(r) => r.as_ref(),
            None => {
                debug_assert!(v == 0, "resolver version {v} is unknown to this build");
                self.versions
                    .values()
                    .next_back()
                    .map(|r| r.as_ref())
                    .unwrap_or(&v1::V1)
            }
        }
    }

    /// The record owed next under the version in force.
    pub fn next_follow_up(&self, ctx: &Context) -> Option<Body> {
        self.in_force(ctx).next_follow_up(ctx)
    }

    /// Admission under the version in force; a `resolver_adopted` record must
    /// name a version this build knows, newer than the one in force.
    pub fn admit(&self, ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal> {
        // A `[writers]` table means nothing to version 1: refused there, so a
        // rule set never says more than the version in force enforces.
        if let Body::RulesInstalled { text } = body {
            let current = ctx.authority.resolver.value;
            let parsed = crate::rules::RuleSet::parse(text).ok();
            let writers = parsed.as_ref().is_some_and(|r| r.writers.is_some());
            if writers && current < v2::VERSION {
                return Err(Refusal::NeedsResolver {
                    what: "a [writers] table",
                    version: v2::VERSION,
                    current,
                });
            }
            let custom = parsed.as_ref().is_some_and(|r| !r.custom.is_empty());
            let change = parsed.as_ref().is_some_and(|r| r.change.is_some());
            for (used, what) in [(custom, "[[custom]] guards"), (change, "a [change] table")] {
                if used && current < v3::VERSION {
                    return Err(Refusal::NeedsResolver {
                        what,
                        version: v3::VERSION,
                        current,
                    });
                }
            }
            if parsed.as_ref().is_some_and(|r| r.learns()) && current < v4::VERSION {
                return Err(Refusal::NeedsResolver {
                    what: "learning from outcomes ([calibration], [precedent] retire_if_worse_bp)",
                    version: v4::VERSION,
                    current,
                });
            }
        }
        if let Body::ResolverAdopted { version } = body {
            let current = ctx.authority.resolver.value;
            if !self.versions.contains_key(version) {
                return Err(Refusal::UnknownResolver {
                    version: *version,
                    known: self.known(),
                });
            }
            if *version <= current {
                return Err(Refusal::ResolverNotNewer {
                    version: *version,
                    current,
                });
            }
        }
        self.in_force(ctx).admit(ctx, author, body)
    }

    /// Whether `author` may send a `clock` command: ask the sequencer to
    /// record the timers due by the command's time (nothing of the request
    /// itself is recorded). Its credential, if any, must be in force, its
    /// own, and of a role that may move time (admin, agent); from version 2
    /// on, an unregistered producer asks nothing of a ledger that has
    /// credentials.
    pub fn may_request_time(&self, ctx: &Context, author: Author<'_>) -> Result<(), Refusal> {
        v1::admit_credential(ctx, author, &Body::Clock)?;
        let unregistered = ctx.authority.holder(author.producer).is_none();
        if ctx.authority.resolver.value >= v2::VERSION
            && unregistered
            && !ctx.authority.credentials.is_empty()
        {
            return Err(Refusal::Unregistered {
                producer: author.producer.to_owned(),
            });
        }
        Ok(())
    }

    /// Checks that this build can continue a ledger whose context is `ctx`.
    pub fn check_known(&self, ctx: &Context) -> Result<(), Refusal> {
        let v = ctx.authority.resolver.value;
        if self.versions.contains_key(&v) {
            Ok(())
        } else {
            Err(Refusal::UnknownResolver {
                version: v,
                known: self.known(),
            })
        }
    }
}
