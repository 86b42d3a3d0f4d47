//! What opening a ledger needs: a new ledger's first records, and the
//! context at the head of a checked log (from a snapshot when one fits).

use std::path::Path;

use super::{LedgerError, Options};
use crate::command::SYSTEM_PRODUCER;
use crate::context::Context;
use crate::derived::Derived;
use crate::log::{encode_record, Head, LogError, LogReader};
use crate::reader::{fold, fold_onto};
use crate::record::{Body, Envelope, Hash, Record, FORMAT_VERSION, ZERO_HASH};
use crate::resolver::Refusal;

fn new_ledger_id(dir: Option<&Path>) -> String {
    let nanos = crate::sequencer::wall_ns();
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    if let Some(d) = dir {
        h.update(d.as_os_str().as_encoded_bytes());
    }
    format!(
        "ldg-{}",
        &crate::record::to_hex(h.finalize().as_bytes())[..16]
    )
}

/// The records a new ledger starts with: genesis, rules, workflows.
pub(super) fn genesis_batch(
    opts: &Options,
    dir: Option<&Path>,
) -> Result<Vec<crate::log::EncodedRecord>, LedgerError> {
    crate::bounds::check_id("first admin", &opts.first_admin)
        .map_err(|e| LedgerError::Setup(e.to_string()))?;
    if opts.first_admin == SYSTEM_PRODUCER {
        return Err(LedgerError::Setup(format!(
            "`{SYSTEM_PRODUCER}` cannot be an admin"
        )));
    }
    if opts.resolvers.get(opts.resolver_version).is_none() {
        return Err(LedgerError::Resolver(Refusal::UnknownResolver {
            version: opts.resolver_version,
            known: opts.resolvers.known(),
        }));
    }
    let at = opts.genesis_at_ms.unwrap_or_else(|| opts.clock.now_ms());
    let mut bodies = vec![Body::Genesis {
        ledger_id: opts.ledger_id.clone().unwrap_or_else(|| new_ledger_id(dir)),
        format: FORMAT_VERSION,
        timeline: opts.timeline,
        first_admin: opts.first_admin.clone(),
        resolver: opts.resolver_version,
    }];
    if let Some(text) = &opts.initial_rules {
        crate::rules::RuleSet::parse(text)
            .map_err(|e| LedgerError::Setup(format!("initial rules: {e}")))?;
        bodies.push(Body::RulesInstalled { text: text.clone() });
    }
    for text in &opts.initial_workflows {
        crate::workflow::Definition::parse(text)
            .map_err(|e| LedgerError::Setup(format!("initial workflow: {e}")))?;
        bodies.push(Body::WorkflowDefined { text: text.clone() });
    }
    let mut batch: Vec<crate::log::EncodedRecord> = Vec::new();
    for (seq, body) in (1..).zip(bodies) {
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq,
                recorded_at_ms: at,
                producer: SYSTEM_PRODUCER.into(),
                idempotency_key: None,
                causation: (seq > 1).then_some(1),
                correlation: None,
                credential: None,
            },
            body,
        };
        let prev = batch.last().map_or(ZERO_HASH, |e| e.hash);
        batch.push(encode_record(&record, &prev).map_err(LogError::from)?);
    }
    Ok(batch)
}

/// The hash of seq 1, if the log has it.
pub(super) fn genesis_hash(
    reader: &dyn LogReader,
    head: Option<Head>,
) -> Result<Option<Hash>, LogError> {
    if head.is_none() {
        return Ok(None);
    }
    let mut hash = None;
    reader.scan(1, 1, &mut |r| {
        hash = Some(r.hash);
        Ok(())
    })?;
    Ok(hash)
}

/// The context at `head`: a snapshot from the derived store when its seq is
/// in the log with the same record hash (then the records before it are only
/// checked, and the ones after it folded), else a fold of the whole log.
/// Returns the snapshot's seq if used.
pub(super) fn open_context(
    reader: &dyn LogReader,
    derived: &Derived,
    head: u64,
) -> Result<(Context, Option<u64>), LogError> {
    // The derived store is rebuildable: a snapshot that cannot be read only
    // costs a fold from zero, so it is reported, not fatal.
    let stored = derived.snapshot().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the context snapshot cannot be read; folding the log");
        None
    });
    let usable = stored.filter(|(seq, _, _)| (1..=head).contains(seq));
    if let Some((seq, hash, bytes)) = usable {
        let at = reader.read(&[seq], head)?;
        let same_log = at.first().is_some_and(|r| r.hash == hash);
        match Context::from_snapshot(&bytes) {
            Ok(ctx) if same_log && ctx.seq == seq => {
                // Every record before the snapshot is still read and its hash
                // and link checked (a writer never opens a damaged log); only
                // folding it is skipped.
                reader.check_opening(seq)?;
                let ctx = fold_onto(reader, ctx, head)?;
                debug_assert_eq!(ctx.seq, head);
                return Ok((ctx, Some(seq)));
            }
            Ok(_) => tracing::info!(seq, "the context snapshot is not of this log; folding it"),
            Err(e) => {
                tracing::warn!(seq, error = %e, "the context snapshot does not decode; folding the log")
            }
        }
    }
    Ok((fold(reader, head)?, None))
}
