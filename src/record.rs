//! Records: the envelope and typed body of every entry in the log, their canonical
//! encoding and their chain hash.
//!
//! Architecture invariant: this module is pure. It does no I/O, reads no clock and
//! uses no floats. The canonical bytes of a record are `bincode 2.0.1` with
//! [`codec_config`] (fixed-width little-endian integers, 1 MiB limit); they never
//! change for a given `FORMAT_VERSION`, and `tests/golden/` holds the byte vectors
//! that prove it.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

pub use crate::digest::{hash_from_hex, to_hex, Digest, Hash, ZERO_HASH};
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::{AgentProfile, Decision, Intention, Lifecycle, Observed, RunOutcome, Synced};

mod checkpoint;
mod role;
pub use checkpoint::{head_from_hex, Checkpoint, HexBytes, PublicKey, Signature};
pub use role::Role;

/// Version of the record schema (envelope + body). Stored in every envelope.
pub const FORMAT_VERSION: u16 = 1;
/// Largest canonical encoding of one record, in bytes.
pub const RECORD_BYTES_MAX: usize = 1 << 20;

/// The one bincode configuration of format version 1.
pub type CodecConfig = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<RECORD_BYTES_MAX>,
>;

/// The one bincode configuration of format version 1.
pub fn codec_config() -> CodecConfig {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<RECORD_BYTES_MAX>()
}

/// Metadata every record carries, assigned by the sequencer (seq, time) or taken
/// from the command (producer, keys).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Envelope {
    /// Record schema version ([`FORMAT_VERSION`]).
    pub format: u16,
    /// Gapless position in the log, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch; never decreases along the log.
    pub recorded_at_ms: u64,
    /// The agent or human (or `parley` itself) that produced the record.
    pub producer: String,
    /// Producer-chosen key that makes a retried command append nothing.
    pub idempotency_key: Option<String>,
    /// The seq of the record that caused this one.
    pub causation: Option<u64>,
    /// A grouping id, e.g. a workflow run.
    pub correlation: Option<String>,
    /// The credential (the seq of its `credential_granted` record) the
    /// command came with, when it came through the server.
    pub credential: Option<u64>,
}

/// Where a ledger's time comes from, fixed when it is created.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Timeline {
    /// The wall clock: a command's `at_ms`, if given, may not be more than
    /// 5 minutes ahead of it (`CLOCK_SKEW_MS_MAX`).
    Wall,
    /// The commands' own `at_ms` (simulations, scripts, the demo): each must be
    /// given, and none more than 366 days (`SCRIPTED_STEP_MS_MAX`) after
    /// the last record.
    Scripted,
}

/// The typed content of a record.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// Always seq 1: names the ledger, its format, its time line, its first
    /// admin and the resolver version it starts with.
    Genesis {
        ledger_id: String,
        format: u16,
        timeline: Timeline,
        first_admin: String,
        resolver: u32,
    },
    /// A fact about an entity: `entity.attribute = value`.
    Fact {
        entity: EntityRef,
        #[schemars(with = "crate::bounds::schema::Id")]
        attribute: String,
        value: Value,
    },
    /// An event announced to every agent.
    Broadcast {
        #[schemars(with = "crate::bounds::schema::Id")]
        topic: String,
        entity: Option<EntityRef>,
        #[serde(default)]
        #[schemars(with = "crate::bounds::schema::ValueMap")]
        detail: BTreeMap<String, Value>,
    },
    /// A catalog entry: the sku's full state.
    Catalog {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        category: String,
        #[schemars(with = "crate::bounds::schema::Money")]
        cost_minor: i64,
        #[schemars(with = "crate::bounds::schema::Price")]
        price_minor: i64,
        #[schemars(with = "crate::bounds::schema::Stock")]
        stock: i64,
        lifecycle: Lifecycle,
    },
    /// A sku's stock level changed.
    StockChanged {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::Stock")]
        stock: i64,
    },
    /// A competitor's price was observed.
    CompetitorPrice {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        competitor: String,
        #[schemars(with = "crate::bounds::schema::Money")]
        price_minor: i64,
    },
    /// A supplier announced a delay on skus.
    SupplierDelay {
        #[schemars(with = "crate::bounds::schema::Id")]
        supplier: String,
        #[schemars(with = "crate::bounds::schema::Skus")]
        skus: Vec<String>,
        #[schemars(with = "crate::bounds::schema::Days")]
        days: u32,
    },
    /// Traffic to a sku rose by `increase_bp`.
    TrafficSpike {
        #[schemars(with = "crate::bounds::schema::Id")]
        sku: String,
        #[schemars(with = "crate::bounds::schema::IncreaseBp")]
        increase_bp: u32,
    },
    OrderPlaced {
        #[schemars(with = "crate::bounds::schema::Id")]
        order: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        customer: String,
        #[schemars(with = "crate::bounds::schema::Money")]
        total_minor: i64,
    },
    OrderDelayed {
        #[schemars(with = "crate::bounds::schema::Id")]
        order: String,
        #[schemars(with = "crate::bounds::schema::Days")]
        days: u32,
    },
    OrderFlagged {
        #[schemars(with = "crate::bounds::schema::Id")]
        order: String,
        #[schemars(with = "crate::bounds::schema::Text")]
        reason: String,
    },
    /// A customer was contacted (outside an intention).
    CustomerContacted {
        #[schemars(with = "crate::bounds::schema::Id")]
        customer: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        order: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        topic: String,
    },
    AgentRegistered {
        profile: Box<AgentProfile>,
    },
    /// An identity allowed to resolve escalations.
    HumanRegistered {
        #[schemars(with = "crate::bounds::schema::Id")]
        human: String,
    },
    /// An agent announces what it intends to do; the resolver answers with a decision.
    Intend {
        intention: Box<Intention>,
    },
    /// Written by parley: the resolver's answer to an intention.
    Decision {
        decision: Box<Decision>,
    },
    /// A rule set (TOML text) in force from this record on.
    RulesInstalled {
        text: String,
    },
    /// A human settles an escalated intention by choosing one of its options.
    HumanResolution {
        #[schemars(with = "crate::bounds::schema::Seq")]
        intention: u64,
        option: u32,
        #[schemars(with = "crate::bounds::schema::Said")]
        rationale: String,
    },
    /// Written by parley when time passes with nothing else arriving.
    Clock,
    /// A workflow definition (TOML text) that runs may start from this record on.
    WorkflowDefined {
        text: String,
    },
    /// A run of a defined workflow starts.
    WorkflowStarted {
        #[schemars(with = "crate::bounds::schema::Id")]
        run: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        workflow: String,
        #[schemars(with = "crate::bounds::schema::Version")]
        version: u32,
        #[serde(default)]
        #[schemars(with = "crate::bounds::schema::ValueMap")]
        params: BTreeMap<String, Value>,
    },
    /// A step's owner reports it done.
    StepCompleted {
        #[schemars(with = "crate::bounds::schema::Id")]
        run: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        step: String,
        #[serde(default)]
        #[schemars(with = "crate::bounds::schema::Text")]
        note: String,
    },
    /// A step's owner reports it failed.
    StepFailed {
        #[schemars(with = "crate::bounds::schema::Id")]
        run: String,
        #[schemars(with = "crate::bounds::schema::Id")]
        step: String,
        #[schemars(with = "crate::bounds::schema::Text")]
        reason: String,
    },
    /// Written by parley: a step's dependencies are complete; its owner may act.
    StepReady {
        run: String,
        step: String,
        owner: String,
    },
    /// Written by parley: a step passed its deadline before completing.
    StepTimedOut {
        run: String,
        step: String,
        deadline_ms: u64,
    },
    /// Written by parley: a run ended.
    RunFinished {
        run: String,
        outcome: RunOutcome,
    },
    /// An identity allowed to change who may act and what the rules are.
    AdminRegistered {
        #[schemars(with = "crate::bounds::schema::Id")]
        admin: String,
    },
    /// From this record on, decisions are made by resolver `version`.
    ResolverAdopted {
        #[schemars(with = "crate::bounds::schema::Version")]
        version: u32,
    },
    /// A bearer token for `identity` in `role`; only its blake3 hash is kept.
    CredentialGranted {
        #[schemars(with = "crate::bounds::schema::Id")]
        identity: String,
        role: Role,
        token_hash: Digest,
    },
    /// The credential granted at seq `grant` no longer authenticates anyone.
    CredentialRevoked {
        #[schemars(with = "crate::bounds::schema::Seq")]
        grant: u64,
    },
    /// The credential granted at seq `grant` authenticates no one from
    /// `expires_at_ms` on (the server's clock decides; the latest such
    /// record for a grant holds).
    CredentialExpires {
        #[schemars(with = "crate::bounds::schema::Seq")]
        grant: u64,
        #[schemars(with = "crate::bounds::schema::TimeMs")]
        expires_at_ms: u64,
    },
    /// What the store observed after acting: sales, refunds, complaints,
    /// stock-outs, campaign results (`crate::outcomes` attributes them to
    /// the decisions in force).
    Outcome {
        outcome: Box<Observed>,
    },
    /// A store platform's object as it delivered it (a webhook, a catalog
    /// import): the fold keeps the newest version of each object by the
    /// platform's `updated_at` (`crate::context::synced`).
    Synced {
        synced: Box<Synced>,
    },
    /// An agent withdraws its own pending intention (deferred, waiting on a
    /// step, or escalated and not yet settled): the resolver closes it next
    /// with an `expired` decision citing this record.
    IntentionWithdrawn {
        #[schemars(with = "crate::bounds::schema::Seq")]
        intention: u64,
    },
    /// Written by parley: the writer's ed25519 signature over the log's
    /// head (`crate::checkpoint`), every N records and at a clean close.
    Checkpoint {
        checkpoint: Box<Checkpoint>,
    },
}

/// Generates `Body::KINDS`, `Body::kind` and `Body::is_system_kind` from
/// one list, so they agree. `[system]` marks a kind only parley writes.
macro_rules! kinds {
    (@system system) => { true };
    (@system) => { false };
    ($($variant:ident => $name:literal $([$flag:ident])?),+ $(,)?) => {
        impl Body {
            /// Every record kind's name, as used in JSON (`kind`).
            pub const KINDS: &'static [&'static str] = &[$($name),+];

            /// The record kind's name, as used in JSON (`kind`).
            pub fn kind(&self) -> &'static str {
                match self { $(Body::$variant { .. } => $name),+ }
            }

            /// True for the kinds only parley itself writes (no producer
            /// may send them); false for an unknown name.
            pub fn is_system_kind(kind: &str) -> bool {
                match kind { $($name => kinds!(@system $($flag)?),)+ _ => false }
            }
        }
    };
}

kinds! {
    Genesis => "genesis" [system],
    Fact => "fact",
    Broadcast => "broadcast",
    Catalog => "catalog",
    StockChanged => "stock_changed",
    CompetitorPrice => "competitor_price",
    SupplierDelay => "supplier_delay",
    TrafficSpike => "traffic_spike",
    OrderPlaced => "order_placed",
    OrderDelayed => "order_delayed",
    OrderFlagged => "order_flagged",
    CustomerContacted => "customer_contacted",
    AgentRegistered => "agent_registered",
    HumanRegistered => "human_registered",
    Intend => "intend",
    Decision => "decision" [system],
    RulesInstalled => "rules_installed",
    HumanResolution => "human_resolution",
    Clock => "clock",
    WorkflowDefined => "workflow_defined",
    WorkflowStarted => "workflow_started",
    StepCompleted => "step_completed",
    StepFailed => "step_failed",
    StepReady => "step_ready" [system],
    StepTimedOut => "step_timed_out" [system],
    RunFinished => "run_finished" [system],
    AdminRegistered => "admin_registered",
    ResolverAdopted => "resolver_adopted",
    CredentialGranted => "credential_granted",
    CredentialRevoked => "credential_revoked",
    Outcome => "outcome",
    Synced => "synced",
    IntentionWithdrawn => "intention_withdrawn",
    Checkpoint => "checkpoint" [system],
    CredentialExpires => "credential_expires",
}

impl Body {
    /// True for the records parley derives from the log before them (decisions
    /// and workflow progress): replay must re-derive each one exactly.
    pub fn is_follow_up(&self) -> bool {
        matches!(
            self,
            Body::Decision { .. }
                | Body::StepReady { .. }
                | Body::StepTimedOut { .. }
                | Body::RunFinished { .. }
        )
    }

    /// True for kinds only parley itself writes.
    pub fn is_system(&self) -> bool {
        Body::is_system_kind(self.kind())
    }

    /// True for the kinds that change who may act or what the rules are:
    /// only an admin writes them.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Body::AgentRegistered { .. }
                | Body::HumanRegistered { .. }
                | Body::AdminRegistered { .. }
                | Body::RulesInstalled { .. }
                | Body::WorkflowDefined { .. }
                | Body::ResolverAdopted { .. }
                | Body::CredentialGranted { .. }
                | Body::CredentialRevoked { .. }
                | Body::CredentialExpires { .. }
        )
    }

    /// The entities this record is about, in a fixed order.
    pub fn entities(&self) -> Vec<EntityRef> {
        let sku = |s: &String| EntityRef::Sku(s.clone());
        let order = |o: &String| EntityRef::Order(o.clone());
        match self {
            Body::Genesis { .. }
            | Body::RulesInstalled { .. }
            | Body::Clock
            | Body::WorkflowDefined { .. }
            | Body::ResolverAdopted { .. }
            | Body::Checkpoint { .. }
            | Body::CredentialExpires { .. }
            | Body::CredentialRevoked { .. } => Vec::new(),
            Body::HumanResolution { intention, .. } | Body::IntentionWithdrawn { intention } => {
                vec![EntityRef::Intention(*intention)]
            }
            Body::WorkflowStarted { run, .. }
            | Body::StepCompleted { run, .. }
            | Body::StepFailed { run, .. }
            | Body::StepReady { run, .. }
            | Body::StepTimedOut { run, .. }
            | Body::RunFinished { run, .. } => vec![EntityRef::Run(run.clone())],
            Body::Fact { entity, .. } => vec![entity.clone()],
            Body::Broadcast { entity, .. } => entity.iter().cloned().collect(),
            Body::Catalog {
                sku: s, category, ..
            } => vec![sku(s), EntityRef::Category(category.clone())],
            Body::StockChanged { sku: s, .. }
            | Body::CompetitorPrice { sku: s, .. }
            | Body::TrafficSpike { sku: s, .. } => vec![sku(s)],
            Body::SupplierDelay { skus, .. } => skus.iter().map(sku).collect(),
            Body::OrderPlaced {
                order: o,
                customer: c,
                ..
            } => vec![order(o), EntityRef::Customer(c.clone())],
            Body::OrderDelayed { order: o, .. } | Body::OrderFlagged { order: o, .. } => {
                vec![order(o)]
            }
            Body::CustomerContacted {
                customer: c,
                order: o,
                ..
            } => vec![EntityRef::Customer(c.clone()), order(o)],
            Body::AgentRegistered { profile } => vec![EntityRef::Agent(profile.agent.clone())],
            Body::HumanRegistered { human } => vec![EntityRef::Human(human.clone())],
            Body::AdminRegistered { admin } => vec![EntityRef::Other(format!("admin:{admin}"))],
            Body::CredentialGranted { identity, .. } => {
                vec![EntityRef::Other(format!("credential:{identity}"))]
            }
            Body::Intend { intention } => intention.action.entities(),
            Body::Outcome { outcome } => outcome.entities(),
            Body::Synced { synced } => synced.entities(),
            Body::Decision { decision } => vec![
                decision.entity.clone(),
                EntityRef::Intention(decision.intention),
            ],
        }
    }

    /// Identifiers a producer wrote, for validation of commands.
    pub fn ids(&self) -> Vec<(&'static str, &str)> {
        match self {
            Body::Genesis { .. }
            | Body::Decision { .. }
            | Body::Clock
            | Body::RulesInstalled { .. }
            | Body::HumanResolution { .. }
            | Body::WorkflowDefined { .. }
            | Body::StepReady { .. }
            | Body::StepTimedOut { .. }
            | Body::RunFinished { .. }
            | Body::ResolverAdopted { .. }
            | Body::IntentionWithdrawn { .. }
            | Body::Checkpoint { .. }
            | Body::CredentialExpires { .. }
            | Body::CredentialRevoked { .. } => Vec::new(),
            Body::WorkflowStarted {
                run,
                workflow,
                params,
                ..
            } => {
                let mut v = vec![("run", run.as_str()), ("workflow", workflow.as_str())];
                v.extend(params.keys().map(|k| ("params", k.as_str())));
                v
            }
            Body::StepCompleted { run, step, .. } | Body::StepFailed { run, step, .. } => {
                vec![("run", run), ("step", step)]
            }
            Body::Fact { attribute, .. } => vec![("attribute", attribute)],
            Body::Broadcast { topic, detail, .. } => {
                let mut v = vec![("topic", topic.as_str())];
                v.extend(detail.keys().map(|k| ("detail", k.as_str())));
                v
            }
            Body::Catalog { sku, category, .. } => vec![("sku", sku), ("category", category)],
            Body::StockChanged { sku, .. } | Body::TrafficSpike { sku, .. } => vec![("sku", sku)],
            Body::CompetitorPrice {
                sku, competitor, ..
            } => vec![("sku", sku), ("competitor", competitor)],
            Body::SupplierDelay { supplier, skus, .. } => {
                let mut v = vec![("supplier", supplier.as_str())];
                v.extend(skus.iter().map(|s| ("skus", s.as_str())));
                v
            }
            Body::OrderPlaced {
                order, customer, ..
            } => vec![("order", order), ("customer", customer)],
            Body::OrderDelayed { order, .. } | Body::OrderFlagged { order, .. } => {
                vec![("order", order)]
            }
            Body::CustomerContacted {
                customer,
                order,
                topic,
            } => vec![("customer", customer), ("order", order), ("topic", topic)],
            Body::AgentRegistered { profile } => vec![("profile.agent", profile.agent.as_str())],
            Body::HumanRegistered { human } => vec![("human", human)],
            Body::AdminRegistered { admin } => vec![("admin", admin)],
            Body::CredentialGranted { identity, .. } => vec![("identity", identity)],
            Body::Outcome { outcome } => outcome.ids(),
            Body::Synced { synced } => synced.ids(),
            Body::Intend { intention } => {
                let mut v = Vec::new();
                if let Some(r) = &intention.workflow_step {
                    v.push(("intention.workflow_step.run", r.run.as_str()));
                    v.push(("intention.workflow_step.step", r.step.as_str()));
                }
                v
            }
        }
    }
}

/// One record as it stands in the log, without its hashes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Record {
    pub envelope: Envelope,
    pub body: Body,
}

/// A record with the hashes that chain it into the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub prev_hash: Hash,
    pub hash: Hash,
    pub record: Record,
}

impl Record {
    /// The entities the entity index files this record under: those its body
    /// names, plus the intention it is about (`intention:SEQ`) for an
    /// intention, a decision or a human resolution.
    pub fn index_entities(&self) -> Vec<EntityRef> {
        let mut out = self.body.entities();
        if let Body::Intend { .. } = self.body {
            out.push(EntityRef::Intention(self.envelope.seq));
        }
        out
    }
}

/// Why bytes are not a record.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is {0} bytes encoded; the limit is {RECORD_BYTES_MAX}")]
    TooLarge(usize),
    #[error("record does not encode: {0}")]
    Encode(String),
    #[error("record does not decode: {0}")]
    Decode(String),
    #[error("record decodes from {used} of its {len} bytes")]
    TrailingBytes { used: usize, len: usize },
    #[error("record is not in canonical form: its map entries are out of order or repeated")]
    NotCanonical,
    #[error("record has format version {0}; this build reads version {FORMAT_VERSION}")]
    UnknownFormat(u16),
}

impl Record {
    /// The canonical bytes that are hashed and stored.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, RecordError> {
        // bincode applies its limit when decoding only; the encoder is checked here.
        let bytes = bincode::encode_to_vec(self, codec_config())
            .map_err(|e| RecordError::Encode(e.to_string()))?;
        if bytes.len() > RECORD_BYTES_MAX {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Decodes canonical bytes; every byte must be used.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        let (record, used): (Record, usize) = bincode::decode_from_slice(bytes, codec_config())
            .map_err(|e| RecordError::Decode(e.to_string()))?;
        if used != bytes.len() {
            return Err(RecordError::TrailingBytes {
                used,
                len: bytes.len(),
            });
        }
        if record.envelope.format != FORMAT_VERSION {
            return Err(RecordError::UnknownFormat(record.envelope.format));
        }
        // Maps decode from entries in any order (and keep the last of repeated
        // keys), so two byte strings could mean one record. The few kinds that
        // hold a map must re-encode to exactly their bytes.
        let has_map = matches!(
            record.body,
            Body::Broadcast { .. } | Body::AgentRegistered { .. } | Body::WorkflowStarted { .. }
        );
        if has_map && record.canonical_bytes().as_deref() != Ok(bytes) {
            return Err(RecordError::NotCanonical);
        }
        Ok(record)
    }
}

/// `blake3(prev_hash ‖ canonical_bytes)`: the hash that links a record to the log.
pub fn chain_hash(prev_hash: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_hash);
    hasher.update(canonical);
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests;
