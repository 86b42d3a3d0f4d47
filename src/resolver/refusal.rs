//! Why a command was refused before it reached the log: a typed value a
//! caller can branch on (the HTTP layer maps each to a status and a stable
//! problem type), with a message that names what is wrong.

use crate::entity::EntityRef;
use crate::vocab::ProblemCode;

/// A command the ledger will not append.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{producer}` is not an admin; only admins write `{kind}` records")]
    NotAdmin {
        producer: String,
        kind: &'static str,
    },
    #[error("`{name}` is reserved for parley itself and cannot be {role}")]
    ReservedName { name: String, role: &'static str },
    #[error("`{name}` is already registered as {held}; one identity holds one role")]
    IdentityTaken { name: String, held: &'static str },
    #[error("`{producer}` is not a registered human; only humans resolve escalations")]
    NotHuman { producer: String },
    #[error("intention {intention} is not waiting for a human (it has no open escalation)")]
    NoOpenEscalation { intention: u64 },
    #[error("intention {intention} cannot be withdrawn: {why}")]
    NotWithdrawable { intention: u64, why: &'static str },
    #[error("option {option} does not exist; escalation {intention} has options 0 to {last}")]
    NoSuchOption {
        intention: u64,
        option: u32,
        last: u32,
    },
    #[error("rule set refused: {0}")]
    RulesInvalid(String),
    #[error("workflow definition refused: {0}")]
    WorkflowInvalid(String),
    #[error(
        "workflow `{name}` version {version} is already defined (seq {seq}); define version {next}"
    )]
    WorkflowExists {
        name: String,
        version: u32,
        seq: u64,
        next: u32,
    },
    #[error("run `{run}` already exists (started at seq {seq})")]
    RunExists { run: String, seq: u64 },
    #[error("no workflow `{workflow}` is defined; defined: {}", known.join(", "))]
    NoSuchWorkflow {
        workflow: String,
        known: Vec<String>,
    },
    #[error(
        "workflow `{workflow}` has no version {version}; defined: {}",
        list(known)
    )]
    NoSuchWorkflowVersion {
        workflow: String,
        version: u32,
        known: Vec<u32>,
    },
    #[error("workflow `{workflow}` needs parameter `{param}`")]
    MissingParam { workflow: String, param: String },
    #[error("workflow `{workflow}` has no parameter `{param}`; it takes {}", known.join(", "))]
    UnknownParam {
        workflow: String,
        param: String,
        known: Vec<String>,
    },
    #[error("there is no workflow run `{run}`")]
    NoSuchRun { run: String },
    #[error("workflow `{workflow}` has no step `{step}`")]
    NoSuchStep { workflow: String, step: String },
    #[error("step `{step}` belongs to `{owner}`; `{producer}` may not report it")]
    NotStepOwner {
        step: String,
        owner: String,
        producer: String,
    },
    #[error("run `{run}` has ended ({outcome})")]
    RunEnded { run: String, outcome: &'static str },
    #[error("step `{step}` is not ready: it waits for step `{waits_for}`")]
    StepNotReady { step: String, waits_for: String },
    #[error("`{step}` is a compensation step; no failure has triggered it")]
    CompensationNotTriggered { step: String },
    #[error("step `{step}` is already {status} (seq {seq})")]
    StepSettled {
        step: String,
        status: &'static str,
        seq: u64,
    },
    #[error("step `{step}` was skipped: run `{run}` turned to compensation")]
    StepSkipped { step: String, run: String },
    #[error("{entity} is not known: {hint}")]
    UnknownEntity {
        entity: EntityRef,
        hint: &'static str,
    },
    #[error("order {order} was already placed (seq {seq})")]
    OrderExists { order: String, seq: u64 },
    #[error("order {order} belongs to customer {customer}, not {claimed}")]
    OrderOfAnotherCustomer {
        order: String,
        customer: String,
        claimed: String,
    },
    #[error(
        "resolver version {version} is not known to this build (it knows {})",
        list(known)
    )]
    UnknownResolver { version: u32, known: Vec<u32> },
    #[error("resolver version {version} is not newer than the version in force ({current})")]
    ResolverNotNewer { version: u32, current: u32 },
    #[error(
        "{role} credentials are only for {needs}; `{identity}` is not one{}",
        register_hint(role)
    )]
    CredentialRole {
        identity: String,
        role: &'static str,
        needs: &'static str,
    },
    #[error("this token is already granted (seq {grant})")]
    TokenReused { grant: u64 },
    #[error("no credential was granted at seq {grant}")]
    NoSuchCredential { grant: u64 },
    #[error("the credential granted at seq {grant} was already revoked (seq {revoked})")]
    AlreadyRevoked { grant: u64, revoked: u64 },
    #[error("`causation` {causation} names no record: the log ends at seq {head}")]
    CausationUnknown { causation: u64, head: u64 },
    #[error("the credential granted at seq {grant} was revoked at seq {revoked}")]
    CredentialRevoked { grant: u64, revoked: u64 },
    #[error(
        "the credential granted at seq {grant} is `{identity}`'s; it cannot write as `{producer}`"
    )]
    CredentialNotYours {
        grant: u64,
        identity: String,
        producer: String,
    },
    #[error("a credential of role `{role}` cannot write `{kind}` records")]
    RoleForbids {
        role: &'static str,
        kind: &'static str,
    },
    #[error("`{producer}` ({standing}) may not write `{kind}` records: the rule set's [writers] table allows {} (an admin changes it by installing a rule set)", if writers.is_empty() { "no producer (parley writes them itself)".to_owned() } else { writers.join(", ") })]
    NotAWriter {
        producer: String,
        kind: &'static str,
        standing: String,
        writers: Vec<String>,
    },
    #[error("`{producer}` is not registered, and this ledger has credentials: an admin registers it (agent_registered) and it writes with its own token")]
    Unregistered { producer: String },
    #[error("clock records are parley's: `{producer}` cannot write one (a `clock` command asks parley to record the timers due by its time)")]
    ClockIsParleys { producer: String },
    #[error("{what} needs resolver version {version} (this ledger is on version {current}); an admin adopts it first (`resolver_adopted`)")]
    NeedsResolver {
        what: &'static str,
        version: u32,
        current: u32,
    },
}

/// How an identity comes to hold `role` (for a refused credential).
fn register_hint(role: &str) -> String {
    match role {
        "admin" => " (an admin registers it first with an `admin_registered` record; a new ledger's first admin is named by `--admin`)".into(),
        "human" => " (an admin registers it first with a `human_registered` record)".into(),
        _ => String::new(),
    }
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

impl Refusal {
    /// A stable name for the refusal (the `type` of an HTTP problem).
    pub fn code(&self) -> ProblemCode {
        match self {
            Refusal::NotAdmin { .. } => ProblemCode::NotAdmin,
            Refusal::ReservedName { .. } => ProblemCode::ReservedName,
            Refusal::IdentityTaken { .. } => ProblemCode::IdentityTaken,
            Refusal::NotHuman { .. } => ProblemCode::NotHuman,
            Refusal::NoOpenEscalation { .. } => ProblemCode::NoOpenEscalation,
            Refusal::NoSuchOption { .. } => ProblemCode::NoSuchOption,
            Refusal::NotWithdrawable { .. } => ProblemCode::NotWithdrawable,
            Refusal::RulesInvalid(_) => ProblemCode::RulesInvalid,
            Refusal::WorkflowInvalid(_) => ProblemCode::WorkflowInvalid,
            Refusal::WorkflowExists { .. } => ProblemCode::WorkflowExists,
            Refusal::RunExists { .. } => ProblemCode::RunExists,
            Refusal::NoSuchWorkflow { .. } | Refusal::NoSuchWorkflowVersion { .. } => {
                ProblemCode::NoSuchWorkflow
            }
            Refusal::MissingParam { .. } | Refusal::UnknownParam { .. } => {
                ProblemCode::WorkflowParams
            }
            Refusal::NoSuchRun { .. } => ProblemCode::NoSuchRun,
            Refusal::NoSuchStep { .. } => ProblemCode::NoSuchStep,
            Refusal::NotStepOwner { .. } => ProblemCode::NotStepOwner,
            Refusal::RunEnded { .. } => ProblemCode::RunEnded,
            Refusal::StepNotReady { .. }
            | Refusal::CompensationNotTriggered { .. }
            | Refusal::StepSettled { .. }
            | Refusal::StepSkipped { .. } => ProblemCode::StepNotReady,
            Refusal::UnknownEntity { .. } => ProblemCode::UnknownEntity,
            Refusal::OrderExists { .. } => ProblemCode::OrderExists,
            Refusal::OrderOfAnotherCustomer { .. } => ProblemCode::OrderOfAnotherCustomer,
            Refusal::UnknownResolver { .. } | Refusal::ResolverNotNewer { .. } => {
                ProblemCode::ResolverVersion
            }
            Refusal::CredentialRole { .. }
            | Refusal::TokenReused { .. }
            | Refusal::NoSuchCredential { .. }
            | Refusal::AlreadyRevoked { .. } => ProblemCode::Credential,
            Refusal::CredentialRevoked { .. } => ProblemCode::CredentialRevoked,
            Refusal::CredentialNotYours { .. } => ProblemCode::NotYourIdentity,
            Refusal::RoleForbids { .. } => ProblemCode::RoleForbids,
            Refusal::NotAWriter { .. } => ProblemCode::NotAWriter,
            Refusal::Unregistered { .. } => ProblemCode::UnregisteredProducer,
            Refusal::ClockIsParleys { .. } => ProblemCode::ClockIsParleys,
            Refusal::NeedsResolver { .. } => ProblemCode::ResolverVersion,
            Refusal::CausationUnknown { .. } => ProblemCode::UnknownCausation,
        }
    }

    /// True when the refusal is about who is asking (403 rather than 409/422).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Refusal::NotAdmin { .. }
                | Refusal::NotHuman { .. }
                | Refusal::NotStepOwner { .. }
                | Refusal::CredentialRevoked { .. }
                | Refusal::CredentialNotYours { .. }
                | Refusal::RoleForbids { .. }
                | Refusal::NotAWriter { .. }
                | Refusal::Unregistered { .. }
                | Refusal::ClockIsParleys { .. }
        )
    }
}
