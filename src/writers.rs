//! Who may write which kind of store record: the rule set's `[writers]`
//! table, by role and agent domain (resolver version 2 on). Kinds the table
//! does not list keep version 2's defaults ([`default_writers`]): fraud
//! flags from the fraud domain, the catalog from merchandising or an
//! integration, orders from orders or an integration, and so on. Clock
//! records are parley's alone (version 2 refuses them from anyone else): a
//! `clock` command asks parley to record the timers due by its time.
//!
//! ```toml
//! [writers]
//! order_flagged = ["domain:fraud"]
//! catalog = ["domain:merchandising", "domain:integration"]
//! ```
//!
//! A writer is `role:agent`, `role:human`, `role:admin` (registered
//! identities holding that role), `domain:<domain>` (registered agents of
//! that domain), or `unregistered` (a producer holding no role, admitted only
//! while the ledger has granted no credential: a single-owner ledger written
//! through `parley run` or the library).
//!
//! The records that change who may act (admin kinds), human resolutions,
//! step reports and intentions keep their own rules (`resolver`), and an
//! unregistered producer writes nothing on a ledger that has credentials.
//!
//! Architecture invariant: pure; a table is a function of the rule text.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::record::Body;
use crate::vocab::{named_enum, Domain};

named_enum!(
    /// The record kinds the `[writers]` table governs.
    WrittenKind {
        Fact = "fact",
        Broadcast = "broadcast",
        Catalog = "catalog",
        StockChanged = "stock_changed",
        CompetitorPrice = "competitor_price",
        SupplierDelay = "supplier_delay",
        TrafficSpike = "traffic_spike",
        OrderPlaced = "order_placed",
        OrderDelayed = "order_delayed",
        OrderFlagged = "order_flagged",
        CustomerContacted = "customer_contacted",
        WorkflowStarted = "workflow_started",
        Outcome = "outcome",
        Synced = "synced",
    }
);

impl WrittenKind {
    /// The kind of `body`, when the table governs it.
    pub fn of(body: &Body) -> Option<WrittenKind> {
        Some(match body {
            Body::Fact { .. } => WrittenKind::Fact,
            Body::Broadcast { .. } => WrittenKind::Broadcast,
            Body::Catalog { .. } => WrittenKind::Catalog,
            Body::StockChanged { .. } => WrittenKind::StockChanged,
            Body::CompetitorPrice { .. } => WrittenKind::CompetitorPrice,
            Body::SupplierDelay { .. } => WrittenKind::SupplierDelay,
            Body::TrafficSpike { .. } => WrittenKind::TrafficSpike,
            Body::OrderPlaced { .. } => WrittenKind::OrderPlaced,
            Body::OrderDelayed { .. } => WrittenKind::OrderDelayed,
            Body::OrderFlagged { .. } => WrittenKind::OrderFlagged,
            Body::CustomerContacted { .. } => WrittenKind::CustomerContacted,
            Body::WorkflowStarted { .. } => WrittenKind::WorkflowStarted,
            Body::Outcome { .. } => WrittenKind::Outcome,
            Body::Synced { .. } => WrittenKind::Synced,
            _ => return None,
        })
    }
}

/// One entry of a `[writers]` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub enum Writer {
    /// Registered agents.
    Agents,
    /// Registered humans.
    Humans,
    /// Registered admins.
    Admins,
    /// Registered agents of this domain.
    Domain(Domain),
    /// Producers holding no role, while the ledger has no credential.
    Unregistered,
}

impl Writer {
    /// The entry as written in the table.
    pub fn name(self) -> String {
        match self {
            Writer::Agents => "role:agent".into(),
            Writer::Humans => "role:human".into(),
            Writer::Admins => "role:admin".into(),
            Writer::Domain(d) => format!("domain:{}", d.name()),
            Writer::Unregistered => "unregistered".into(),
        }
    }

    /// Parses an entry; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Writer, NotAWriter> {
        match text {
            "role:agent" => return Ok(Writer::Agents),
            "role:human" => return Ok(Writer::Humans),
            "role:admin" => return Ok(Writer::Admins),
            "unregistered" => return Ok(Writer::Unregistered),
            _ => {}
        }
        if let Some(d) = text.strip_prefix("domain:") {
            if let Some(domain) = Domain::ALL.iter().find(|x| x.name() == d) {
                return Ok(Writer::Domain(*domain));
            }
        }
        Err(NotAWriter(text.to_owned()))
    }
}

/// A `[writers]` entry that names no writer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a writer: use role:agent, role:human, role:admin, unregistered, or domain:<{domains}>", domains = domain_names())]
pub struct NotAWriter(pub String);

fn domain_names() -> String {
    let domains: Vec<&str> = Domain::ALL.iter().map(|d| d.name()).collect();
    domains.join("|")
}

impl Serialize for Writer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Writer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Writer, D::Error> {
        let text = String::deserialize(d)?;
        Writer::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Writer {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Writer".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut names: Vec<String> = ["role:agent", "role:human", "role:admin", "unregistered"]
            .map(str::to_owned)
            .to_vec();
        names.extend(Domain::ALL.iter().map(|d| Writer::Domain(*d).name()));
        schemars::json_schema!({
            "description": "Who may write a kind of record: a role, an agent domain, or unregistered producers (only while the ledger has no credential).",
            "type": "string",
            "enum": names
        })
    }
}

/// A `[writers]` table: who may write each listed kind.
pub(crate) type WritersTable = BTreeMap<WrittenKind, Vec<Writer>>;

/// Version 2's writers of `kind`, where the rule set's table does not list it.
pub(crate) fn default_writers(kind: WrittenKind) -> &'static [Writer] {
    use Domain as D;
    use Writer::{Admins, Agents, Domain as Of, Humans, Unregistered};
    match kind {
        WrittenKind::Fact => &[Agents, Unregistered],
        WrittenKind::Broadcast => &[Agents, Humans, Admins, Unregistered],
        WrittenKind::Catalog => &[Of(D::Merchandising), Of(D::Integration)],
        WrittenKind::StockChanged => &[
            Of(D::Inventory),
            Of(D::Supply),
            Of(D::Orders),
            Of(D::Integration),
        ],
        WrittenKind::CompetitorPrice => &[
            Of(D::CompetitorTracking),
            Of(D::Pricing),
            Of(D::Integration),
        ],
        WrittenKind::SupplierDelay => &[Of(D::Supply), Of(D::Inventory), Of(D::Integration)],
        WrittenKind::TrafficSpike => &[
            Of(D::Marketing),
            Of(D::Merchandising),
            Of(D::CompetitorTracking),
            Of(D::Integration),
        ],
        WrittenKind::OrderPlaced => &[Of(D::Orders), Of(D::Integration)],
        WrittenKind::OrderDelayed => &[
            Of(D::Orders),
            Of(D::Supply),
            Of(D::Inventory),
            Of(D::Integration),
        ],
        WrittenKind::OrderFlagged => &[Of(D::Fraud)],
        WrittenKind::CustomerContacted => {
            &[Of(D::CustomerService), Of(D::Orders), Of(D::Integration)]
        }
        WrittenKind::WorkflowStarted => &[Agents, Admins],
        WrittenKind::Outcome => &[Agents, Unregistered],
        WrittenKind::Synced => &[Of(D::Integration), Unregistered],
    }
}

/// Kinds added after `rules/default.toml` was written, which it does not
/// list (their defaults hold). The file is not edited for them: its text is
/// hashed into every decision of every ledger that installs it, and the
/// pinned decisions of `tests/corpus` would all move.
#[cfg(test)]
const ADDED_SINCE_DEFAULTS: &[WrittenKind] = &[WrittenKind::Outcome, WrittenKind::Synced];

/// The writers of `kind` under `table` (the rule set's, if any).
pub(crate) fn writers_of(table: Option<&WritersTable>, kind: WrittenKind) -> Vec<Writer> {
    match table.and_then(|t| t.get(&kind)) {
        Some(list) => list.clone(),
        None => default_writers(kind).to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writer_round_trips_through_its_name() {
        let mut all = vec![
            Writer::Agents,
            Writer::Humans,
            Writer::Admins,
            Writer::Unregistered,
        ];
        all.extend(Domain::ALL.iter().map(|d| Writer::Domain(*d)));
        for w in all {
            assert_eq!(Writer::parse(&w.name()), Ok(w));
        }
        let e = Writer::parse("domain:nobody").unwrap_err();
        assert_eq!(e, NotAWriter("domain:nobody".into()));
        assert!(e.to_string().contains("domain:<pricing|"), "{e}");
        assert!(
            Writer::parse("parley").is_err(),
            "parley is nobody's to list"
        );
    }

    #[test]
    fn the_shipped_rules_state_the_defaults_in_full() {
        let rules = crate::rules::RuleSet::parse(crate::rules::DEFAULT_RULES).unwrap();
        let table = rules
            .writers
            .expect("rules/default.toml has a [writers] table");
        for k in WrittenKind::ALL
            .iter()
            .filter(|k| !ADDED_SINCE_DEFAULTS.contains(k))
        {
            assert_eq!(
                table.get(k).map(Vec::as_slice),
                Some(default_writers(*k)),
                "{}",
                k.name()
            );
        }
        for k in ADDED_SINCE_DEFAULTS {
            assert!(
                !table.contains_key(k),
                "{} is listed: move it out",
                k.name()
            );
        }
    }

    #[test]
    fn every_governed_kind_is_a_record_kind() {
        for k in WrittenKind::ALL {
            assert!(Body::KINDS.contains(&k.name()), "{}", k.name());
        }
        assert_eq!(
            default_writers(WrittenKind::OrderFlagged),
            &[Writer::Domain(Domain::Fraud)]
        );
    }
}
