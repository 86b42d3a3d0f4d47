//! Version 2's check of the rule set's `[writers]` table: whether a
//! producer's standing (its role, its agent domain, or none) is among the
//! writers of a record's kind. Pure.

use crate::context::{Authority, Holder};
use crate::record::Body;
use crate::writers::{writers_of, Writer, WritersTable, WrittenKind};

/// Why a producer may not write a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Denied {
    /// The table does not list the producer's standing for the kind.
    NotListed {
        kind: WrittenKind,
        standing: String,
        writers: Vec<Writer>,
    },
    /// An unregistered producer, on a ledger that has credentials.
    Unregistered,
}

/// What `producer` is, in words ("an agent of domain fraud").
fn standing(authority: &Authority, producer: &str) -> String {
    match authority.holder(producer) {
        Some(Holder::Agent) => authority.agents.get(producer).map_or_else(
            || "an agent".into(),
            |a| format!("an agent of domain {}", a.value.domain.name()),
        ),
        Some(h) => format!("a registered {}", h.name()),
        None => "not registered".into(),
    }
}

/// Whether `producer` may write `body` under `table`.
pub(super) fn check(
    authority: &Authority,
    table: Option<&WritersTable>,
    producer: &str,
    body: &Body,
) -> Result<(), Denied> {
    let holder = authority.holder(producer);
    let credentialed = !authority.credentials.is_empty();
    if holder.is_none() && credentialed {
        return Err(Denied::Unregistered);
    }
    let Some(kind) = WrittenKind::of(body) else {
        return Ok(());
    };
    let writers = writers_of(table, kind);
    let domain = authority.agents.get(producer).map(|a| a.value.domain);
    let allowed = writers.iter().any(|w| match (w, holder) {
        (Writer::Agents, Some(Holder::Agent)) => true,
        (Writer::Humans, Some(Holder::Human)) => true,
        (Writer::Admins, Some(Holder::Admin)) => true,
        (Writer::Domain(d), Some(Holder::Agent)) => domain == Some(*d),
        (Writer::Unregistered, None) => !credentialed,
        _ => false,
    });
    if allowed {
        return Ok(());
    }
    Err(Denied::NotListed {
        kind,
        standing: standing(authority, producer),
        writers,
    })
}
