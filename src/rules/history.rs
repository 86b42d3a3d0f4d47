//! The rule sets a ledger installed, newest last: who, when, why, and what
//! changed from the one before (`parley rules history`, the console's
//! rules page). Read from the log by the seqs the context remembers
//! (`Authority::rules_installed`).

use serde::Serialize;

use super::diff::{diff, FieldChange};
use super::{rules_hash, RuleSet};
use crate::context::Context;
use crate::digest::Digest;
use crate::log::LogError;
use crate::reader::LedgerRead;
use crate::record::Body;

/// One installation.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Installation {
    pub seq: u64,
    pub recorded_at_ms: u64,
    /// The admin (or `parley` at genesis) that installed it.
    pub by: String,
    /// Its `[change] why`, if it has one.
    pub why: Option<String>,
    pub hash: Digest,
    /// Its custom guards, by id.
    pub custom: Vec<String>,
    /// What differs from the installation before it (none for the first).
    pub changes: Vec<FieldChange>,
    /// The whole text.
    pub text: String,
}

/// Every installation the context remembers, oldest first.
pub fn history(ctx: &Context, ledger: &dyn LedgerRead) -> Result<Vec<Installation>, LogError> {
    let seqs: Vec<u64> = ctx.authority.rules_installed.iter().copied().collect();
    history_of(&seqs, ledger)
}

/// The installations at `seqs` (as the context lists them), oldest first.
pub fn history_of(seqs: &[u64], ledger: &dyn LedgerRead) -> Result<Vec<Installation>, LogError> {
    let records = ledger.read(seqs)?;
    debug_assert_eq!(records.len(), seqs.len());
    let mut out: Vec<Installation> = Vec::with_capacity(records.len());
    let mut previous: Option<RuleSet> = None;
    for r in records {
        let Body::RulesInstalled { text } = &r.record.body else {
            continue;
        };
        // The context remembers only rule sets that passed every check when
        // installed: read the structure, without compiling guards again.
        let Ok(rules) = toml::from_str::<RuleSet>(text) else {
            continue;
        };
        out.push(Installation {
            seq: r.record.envelope.seq,
            recorded_at_ms: r.record.envelope.recorded_at_ms,
            by: r.record.envelope.producer.clone(),
            why: rules.change.as_ref().map(|c| c.why.clone()),
            hash: rules_hash(text),
            custom: rules.custom.iter().map(|g| g.id.clone()).collect(),
            changes: previous.as_ref().map_or_else(Vec::new, |p| diff(p, &rules)),
            text: text.clone(),
        });
        previous = Some(rules);
    }
    Ok(out)
}

/// The rule set among the installations at `seqs` whose text hashes to
/// `hash` (the one a decision records), if the context still lists it.
pub fn installed_with_hash(
    seqs: &[u64],
    ledger: &dyn LedgerRead,
    hash: &Digest,
) -> Result<Option<RuleSet>, LogError> {
    for r in ledger.read(seqs)?.iter().rev() {
        if let Body::RulesInstalled { text } = &r.record.body {
            if rules_hash(text) == *hash {
                return Ok(RuleSet::parse(text).ok());
            }
        }
    }
    Ok(None)
}
