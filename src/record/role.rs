//! Credential roles: what the bearer of a token may write.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::Body;

/// What a credential lets its bearer do.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Writes facts, broadcasts and intentions as itself; reads.
    Agent,
    /// Resolves escalations and reports steps as itself; reads.
    Human,
    /// Changes agents, humans, admins, rules, workflows and credentials; reads.
    Admin,
    /// Reads only.
    Reader,
    /// A store platform's connector: writes the store's facts, outcomes and
    /// platform objects (`synced`) as itself; never intentions, human or
    /// admin records. Only a registered agent of domain `integration` holds it.
    Integration,
}

impl Role {
    /// Whether a credential of this role may write `body`: agents write
    /// facts, broadcasts, intentions and workflow records as themselves;
    /// humans resolve escalations and report steps; admins change who may act
    /// and what the rules are; readers write nothing. Every role may also
    /// broadcast, except readers.
    pub fn permits(self, body: &Body) -> bool {
        let human_kind = matches!(
            body,
            Body::HumanResolution { .. } | Body::StepCompleted { .. } | Body::StepFailed { .. }
        );
        match self {
            Role::Reader => false,
            _ if matches!(body, Body::Broadcast { .. }) => true,
            Role::Admin => body.is_admin() || matches!(body, Body::Clock),
            Role::Human => human_kind,
            Role::Agent => !body.is_admin() && !matches!(body, Body::HumanResolution { .. }),
            Role::Integration => Self::integration_writes(body),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Human => "human",
            Role::Admin => "admin",
            Role::Reader => "reader",
            Role::Integration => "integration",
        }
    }

    /// The kinds an integration writes: the store's facts, never an
    /// intention, a workflow's progress, a human's or an admin's record.
    fn integration_writes(body: &Body) -> bool {
        matches!(
            body,
            Body::Synced { .. }
                | Body::Outcome { .. }
                | Body::Fact { .. }
                | Body::Catalog { .. }
                | Body::StockChanged { .. }
                | Body::CompetitorPrice { .. }
                | Body::SupplierDelay { .. }
                | Body::TrafficSpike { .. }
                | Body::OrderPlaced { .. }
                | Body::OrderDelayed { .. }
                | Body::CustomerContacted { .. }
        )
    }
}
