//! Admission under version 1: whether a producer may append a command now.
//! The sequencer asks before appending, and replay asks again for every
//! record a producer wrote, so the log alone proves each producer had the
//! right to write what it did when it did.
//!
//! - Records that change who may act or what the rules are (agents, humans,
//!   admins, rules, workflows, resolver versions, credentials) come only from
//!   an admin; one identity holds one role; `parley` is nobody's name.
//! - Only a registered human resolves an open escalation, naming one of its options.
//! - Facts name skus that are catalogued and orders that were placed.
//! - Workflow records follow their runs (`crate::workflow`).

use crate::command::SYSTEM_PRODUCER;
use crate::context::{Context, Holder};
use crate::entity::EntityRef;
use crate::record::{Body, Role};
use crate::resolver::{Author, Refusal};
use crate::rules::RuleSet;
use crate::workflow::run::{owns, RunStatus, StepStatus};
use crate::workflow::Definition;

/// A record that came with a credential: the credential must be in force,
/// be the producer's, and its role must allow the record's kind. Records
/// without one come from the data directory's owner (library, CLI).
pub(super) fn credential(ctx: &Context, author: Author<'_>, body: &Body) -> Result<(), Refusal> {
    let Some(grant) = author.credential else {
        return Ok(());
    };
    let c = ctx
        .authority
        .credentials
        .get(&grant)
        .ok_or(Refusal::NoSuchCredential { grant })?;
    if let Some(revoked) = c.revoked {
        return Err(Refusal::CredentialRevoked { grant, revoked });
    }
    if c.identity != author.producer {
        return Err(Refusal::CredentialNotYours {
            grant,
            identity: c.identity.clone(),
            producer: author.producer.to_owned(),
        });
    }
    if !c.role.permits(body) {
        return Err(Refusal::RoleForbids {
            role: c.role.name(),
            kind: body.kind(),
        });
    }
    Ok(())
}

pub(super) fn admit(ctx: &Context, producer: &str, body: &Body) -> Result<(), Refusal> {
    if body.is_admin() && ctx.authority.holder(producer) != Some(Holder::Admin) {
        return Err(Refusal::NotAdmin {
            producer: producer.to_owned(),
            kind: body.kind(),
        });
    }
    match body {
        Body::AgentRegistered { profile } => claim(ctx, &profile.agent, Holder::Agent),
        Body::HumanRegistered { human } => claim(ctx, human, Holder::Human),
        Body::AdminRegistered { admin } => claim(ctx, admin, Holder::Admin),
        Body::CredentialGranted {
            identity,
            role,
            token_hash,
        } => grant(ctx, identity, *role, token_hash),
        // An expiry is set only on a credential still in force.
        Body::CredentialRevoked { grant } | Body::CredentialExpires { grant, .. } => {
            revoke(ctx, *grant)
        }
        Body::RulesInstalled { text } => RuleSet::parse(text)
            .map(|_| ())
            .map_err(|e| Refusal::RulesInvalid(e.to_string())),
        Body::HumanResolution {
            intention, option, ..
        } => resolution(ctx, producer, *intention, *option),
        Body::WorkflowDefined { text } => define(ctx, text),
        Body::IntentionWithdrawn { intention } => withdrawal(ctx, producer, *intention),
        Body::WorkflowStarted { .. } => start(ctx, body),
        Body::StepCompleted { run, step, .. } | Body::StepFailed { run, step, .. } => {
            report(ctx, producer, run, step)
        }
        _ => facts(ctx, body),
    }
}

/// `name` may take role `role`: not reserved, not held in another role.
fn claim(ctx: &Context, name: &str, role: Holder) -> Result<(), Refusal> {
    if name == SYSTEM_PRODUCER {
        return Err(Refusal::ReservedName {
            name: name.to_owned(),
            role: role.name(),
        });
    }
    match ctx.authority.holder(name) {
        Some(held) if held != role => Err(Refusal::IdentityTaken {
            name: name.to_owned(),
            held: held.name(),
        }),
        _ => Ok(()),
    }
}

fn grant(
    ctx: &Context,
    identity: &str,
    role: Role,
    token_hash: &crate::record::Digest,
) -> Result<(), Refusal> {
    if identity == SYSTEM_PRODUCER {
        return Err(Refusal::ReservedName {
            name: identity.to_owned(),
            role: "given a credential",
        });
    }
    if let Some(grant) = ctx.authority.tokens.get(token_hash) {
        return Err(Refusal::TokenReused { grant: *grant });
    }
    let holder = ctx.authority.holder(identity);
    let (ok, needs) = match role {
        Role::Admin => (holder == Some(Holder::Admin), "registered admins"),
        Role::Human => (holder == Some(Holder::Human), "registered humans"),
        Role::Agent => (
            matches!(holder, None | Some(Holder::Agent)),
            "agents and other producers that are not humans or admins",
        ),
        Role::Reader => (true, "anyone"),
        Role::Integration => (
            holder == Some(Holder::Agent)
                && ctx.authority.agents.get(identity).map(|a| a.value.domain)
                    == Some(crate::vocab::Domain::Integration),
            "registered agents of domain integration",
        ),
    };
    if !ok {
        return Err(Refusal::CredentialRole {
            identity: identity.to_owned(),
            role: role.name(),
            needs,
        });
    }
    Ok(())
}

fn revoke(ctx: &Context, grant: u64) -> Result<(), Refusal> {
    let c = ctx
        .authority
        .credentials
        .get(&grant)
        .ok_or(Refusal::NoSuchCredential { grant })?;
    match c.revoked {
        Some(revoked) => Err(Refusal::AlreadyRevoked { grant, revoked }),
        None => Ok(()),
    }
}

fn resolution(ctx: &Context, producer: &str, intention: u64, option: u32) -> Result<(), Refusal> {
    if ctx.authority.holder(producer) != Some(Holder::Human) {
        return Err(Refusal::NotHuman {
            producer: producer.to_owned(),
        });
    }
    let open = ctx
        .intentions
        .get(intention)
        .and_then(|s| s.escalation.as_ref())
        .ok_or(Refusal::NoOpenEscalation { intention })?;
    let count = u32::try_from(open.options.len()).unwrap_or(u32::MAX);
    if option >= count {
        return Err(Refusal::NoSuchOption {
            intention,
            option,
            last: count.saturating_sub(1),
        });
    }
    Ok(())
}

/// Only an intention's own agent withdraws it, and only while it is pending
/// (deferred, waiting on a step, or escalated) and no person has settled it.
fn withdrawal(ctx: &Context, producer: &str, intention: u64) -> Result<(), Refusal> {
    let refuse = |why| Err(Refusal::NotWithdrawable { intention, why });
    let Some(s) = ctx.intentions.get(intention) else {
        return refuse("it is not an open intention (never announced, or already closed)");
    };
    if s.agent != producer {
        return refuse("only the agent that announced it withdraws it");
    }
    if s.settlement.is_some() {
        return refuse("a person has settled its escalation; the decision that records it is next");
    }
    if s.withdrawn.is_some() {
        return refuse("it was withdrawn already");
    }
    if !s.status.is_pending() {
        return refuse(
            "it is not pending (approved intentions stay; a new one is decided in the same batch)",
        );
    }
    Ok(())
}

fn define(ctx: &Context, text: &str) -> Result<(), Refusal> {
    let def = Definition::parse(text).map_err(|e| Refusal::WorkflowInvalid(e.to_string()))?;
    let versions = ctx.workflows.definitions.get(&def.name);
    if let Some(old) = versions.and_then(|v| v.get(&def.version)) {
        let next = versions.and_then(|v| v.keys().last()).map_or(1, |v| v + 1);
        return Err(Refusal::WorkflowExists {
            name: def.name,
            version: def.version,
            seq: old.seq,
            next,
        });
    }
    Ok(())
}

fn start(ctx: &Context, body: &Body) -> Result<(), Refusal> {
    let Body::WorkflowStarted {
        run,
        workflow,
        version,
        params,
    } = body
    else {
        return Ok(());
    };
    let wf = &ctx.workflows;
    if let Some(r) = wf.runs.get(run) {
        return Err(Refusal::RunExists {
            run: run.clone(),
            seq: r.started_seq,
        });
    }
    let versions = wf
        .definitions
        .get(workflow)
        .ok_or_else(|| Refusal::NoSuchWorkflow {
            workflow: workflow.clone(),
            known: wf.definitions.keys().cloned().collect(),
        })?;
    let def = &versions
        .get(version)
        .ok_or_else(|| Refusal::NoSuchWorkflowVersion {
            workflow: workflow.clone(),
            version: *version,
            known: versions.keys().copied().collect(),
        })?
        .definition;
    if let Some(missing) = def.params.iter().find(|p| !params.contains_key(*p)) {
        return Err(Refusal::MissingParam {
            workflow: workflow.clone(),
            param: missing.clone(),
        });
    }
    if let Some(unknown) = params.keys().find(|k| !def.params.contains(k)) {
        return Err(Refusal::UnknownParam {
            workflow: workflow.clone(),
            param: unknown.clone(),
            known: def.params.clone(),
        });
    }
    Ok(())
}

fn report(ctx: &Context, producer: &str, run: &str, step: &str) -> Result<(), Refusal> {
    let r = ctx
        .workflows
        .runs
        .get(run)
        .ok_or_else(|| Refusal::NoSuchRun {
            run: run.to_owned(),
        })?;
    let (idx, def) = r.definition.step(step).ok_or_else(|| Refusal::NoSuchStep {
        workflow: r.workflow.clone(),
        step: step.to_owned(),
    })?;
    let domain = ctx
        .authority
        .agents
        .get(producer)
        .map(|a| a.value.domain.name());
    let human = ctx.authority.holder(producer) == Some(Holder::Human);
    if !owns(&def.owner, producer, domain) && !human {
        return Err(Refusal::NotStepOwner {
            step: step.to_owned(),
            owner: def.owner.clone(),
            producer: producer.to_owned(),
        });
    }
    if let RunStatus::Ended { outcome } = &r.status {
        return Err(Refusal::RunEnded {
            run: run.to_owned(),
            outcome: outcome.name(),
        });
    }
    let step = step.to_owned();
    match &r.steps[idx].status {
        StepStatus::Ready { .. } => Ok(()),
        StepStatus::Waiting if !def.compensation => Err(Refusal::StepNotReady {
            step,
            waits_for: r.missing_dependency(idx).unwrap_or_default().to_owned(),
        }),
        StepStatus::Waiting => Err(Refusal::CompensationNotTriggered { step }),
        StepStatus::Skipped => Err(Refusal::StepSkipped {
            step,
            run: run.to_owned(),
        }),
        settled => Err(Refusal::StepSettled {
            step,
            status: settled.name(),
            seq: settled.seq().unwrap_or(0),
        }),
    }
}

/// Facts name skus that are catalogued and orders that were placed; an
/// order is placed once.
fn facts(ctx: &Context, body: &Body) -> Result<(), Refusal> {
    let store = &ctx.store;
    let sku = |s: &String| -> Result<(), Refusal> {
        if store.sku(s).is_some() {
            return Ok(());
        }
        Err(Refusal::UnknownEntity {
            entity: EntityRef::Sku(s.clone()),
            hint: "record it with a `catalog` command first",
        })
    };
    let order = |o: &String| -> Result<(), Refusal> {
        if store.order(o).is_some() {
            return Ok(());
        }
        Err(Refusal::UnknownEntity {
            entity: EntityRef::Order(o.clone()),
            hint: "record it with an `order_placed` command first",
        })
    };
    match body {
        Body::StockChanged { sku: s, .. }
        | Body::CompetitorPrice { sku: s, .. }
        | Body::TrafficSpike { sku: s, .. } => sku(s),
        Body::SupplierDelay { skus, .. } => skus.iter().try_for_each(sku),
        Body::OrderDelayed { order: o, .. } | Body::OrderFlagged { order: o, .. } => order(o),
        Body::CustomerContacted {
            customer, order: o, ..
        } => {
            order(o)?;
            match store.order(o) {
                Some(placed) if &placed.customer.value != customer => {
                    Err(Refusal::OrderOfAnotherCustomer {
                        order: o.clone(),
                        customer: placed.customer.value.clone(),
                        claimed: customer.clone(),
                    })
                }
                _ => Ok(()),
            }
        }
        Body::OrderPlaced { order: o, .. } => match store.order(o) {
            Some(placed) => Err(Refusal::OrderExists {
                order: o.clone(),
                seq: placed.customer.seq,
            }),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}
