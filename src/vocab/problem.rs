//! The stable codes of every refusal and error the API answers with: the
//! last part of a problem's `type` URI (`urn:parley:problem:<code>`), the
//! `code` of a refused command's answer, and what clients branch on.

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::named_enum;

named_enum!(
    /// Why a request or command was refused. Appended only: clients match
    /// on these names.
    ProblemCode {
        // The request itself (the server).
        Unauthorized = "unauthorized",
        AdminsOnly = "admins-only",
        NotYourIdentity = "not-your-identity",
        RateLimited = "rate-limited",
        BodyTooLarge = "body-too-large",
        BadBody = "bad-body",
        BadBatch = "bad-batch",
        BadEntity = "bad-entity",
        BadFilter = "bad-filter",
        BadLastEventId = "bad-last-event-id",
        BadLimit = "bad-limit",
        BadPath = "bad-path",
        BadQuery = "bad-query",
        BadSeq = "bad-seq",
        BadTime = "bad-time",
        BadWait = "bad-wait",
        BadWhatif = "bad-whatif",
        NotFound = "not-found",
        UnknownField = "unknown-field",
        LogUnreadable = "log-unreadable",
        Internal = "internal",
        // Appending a command (the sequencer).
        InvalidCommand = "invalid-command",
        Time = "time",
        IdempotencyConflict = "idempotency-conflict",
        RecordTooLarge = "record-too-large",
        LedgerFailed = "ledger-failed",
        OutcomeUnknown = "outcome-unknown",
        LedgerClosed = "ledger-closed",
        Busy = "busy",
        // A command the resolver's admission refuses.
        NotAdmin = "not-admin",
        ReservedName = "reserved-name",
        IdentityTaken = "identity-taken",
        NotHuman = "not-human",
        NoOpenEscalation = "no-open-escalation",
        NoSuchOption = "no-such-option",
        RulesInvalid = "rules-invalid",
        WorkflowInvalid = "workflow-invalid",
        WorkflowExists = "workflow-exists",
        RunExists = "run-exists",
        NoSuchWorkflow = "no-such-workflow",
        WorkflowParams = "workflow-params",
        NoSuchRun = "no-such-run",
        NoSuchStep = "no-such-step",
        NotStepOwner = "not-step-owner",
        RunEnded = "run-ended",
        StepNotReady = "step-not-ready",
        UnknownEntity = "unknown-entity",
        OrderExists = "order-exists",
        OrderOfAnotherCustomer = "order-of-another-customer",
        ResolverVersion = "resolver-version",
        Credential = "credential",
        CredentialRevoked = "credential-revoked",
        RoleForbids = "role-forbids",
        NotAWriter = "not-a-writer",
        UnregisteredProducer = "unregistered-producer",
        ClockIsParleys = "clock-is-parleys",
        UnknownCausation = "unknown-causation",
        // Reading the current context (the server).
        ContextBehind = "context-behind",
        // A node of a cluster on PostgreSQL that does not write the ledger.
        NotTheWriter = "not-the-writer",
        // A store platform's webhook delivery (the server).
        BadSignature = "bad-signature",
        WebhooksOff = "webhooks-off",
        BadPayload = "bad-payload",
        WrongCurrency = "wrong-currency",
        // An intention its agent cannot withdraw (the resolver's admission).
        NotWithdrawable = "not-withdrawable",
    }
);

impl ProblemCode {
    /// The code named `text`, if it is one.
    pub fn parse(text: &str) -> Option<ProblemCode> {
        ProblemCode::ALL.iter().copied().find(|c| c.name() == text)
    }
}
