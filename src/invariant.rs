//! Invariants the state the resolver reads keeps, as checks that execute.
//! Below both `context` and `workflow` (each part's `check()` lives beside
//! its private fields and reports with these types).
//!
//! Each part with derived indexes (`Intentions`, `Store`, `Workflows`) has a
//! `check()` that rebuilds its indexes from its primary state and compares.
//! `Context::apply` runs them under `debug_assert!` after every record (so
//! every debug test runs the checker), a loaded snapshot must pass them in
//! every build, and the resolver's property tests run them after every step.

/// The part of the context an invariant belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Intentions,
    Store,
    Workflows,
    Outcomes,
}

/// An invariant that does not hold: the named index (or state rule) of a
/// part disagrees with the part's primary state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the context's {part:?} break an invariant: {broken}")]
pub struct Violation {
    pub part: Part,
    /// Which index or rule, in words fixed at compile time.
    pub broken: &'static str,
}

/// `Ok` when `holds`, else the violation of `broken` in `part`.
pub(crate) fn ensure(holds: bool, part: Part, broken: &'static str) -> Result<(), Violation> {
    if holds {
        Ok(())
    } else {
        Err(Violation { part, broken })
    }
}
