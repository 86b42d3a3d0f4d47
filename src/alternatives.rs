//! Rule sets tried against what happened: a what-if of each over the log,
//! scored with the ledger's outcomes (`crate::scorecard::estimate`), and the
//! previews of `parley suggest`. The shell's side: it reads the log through
//! [`LedgerRead`]; everything it computes is the pure modules'.

use std::collections::BTreeMap;

use crate::context::Context;
use crate::log::LogError;
use crate::reader::LedgerRead;
use crate::record::Body;
use crate::resolver::Resolvers;
use crate::rules::RuleSet;
use crate::scorecard::estimate::{self, AlternativeScore, Intended};
use crate::scorecard::suggest::{propose, Install, SuggestReport, Suggested};
use crate::vocab::Action;
use crate::whatif::{Alternative, WhatIf};

/// The what-if of `rules` (named `name`) over the whole log, scored on
/// `ctx`, the context at the log's head.
pub fn score(
    ledger: &dyn LedgerRead,
    ctx: &Context,
    name: &str,
    rules: (String, RuleSet),
) -> Result<AlternativeScore, LogError> {
    let head = ctx.seq;
    let alt = Alternative {
        rules: Some(rules),
        resolver: None,
    };
    let mut run = WhatIf::new(alt, 1, head, Resolvers::released());
    ledger.scan(1, head, &mut |r| {
        run.feed(&r);
        Ok(())
    })?;
    let report = run.finish();
    let mut intended = BTreeMap::new();
    let seqs: Vec<u64> = report.changed.iter().map(|c| c.seq).collect();
    for chunk in seqs.chunks(256) {
        for r in ledger.read(chunk)? {
            let Body::Intend { intention } = &r.record.body else {
                continue;
            };
            if let Action::SetPrice { sku, price_minor } = &intention.action {
                let i = Intended {
                    sku: sku.clone(),
                    price_minor: *price_minor,
                    at_ms: r.record.envelope.recorded_at_ms,
                };
                intended.insert(r.record.envelope.seq, i);
            }
        }
    }
    Ok(estimate::alternative(ctx, (name, &report), &intended))
}

/// `parley suggest`: the proposals for `ctx`, each rule set previewed.
pub fn suggestions(ledger: &dyn LedgerRead, ctx: &Context) -> Result<SuggestReport, LogError> {
    let mut suggestions = Vec::new();
    for proposal in propose(ctx) {
        let preview = match &proposal.install {
            Install::Rules { text } => match RuleSet::parse(text) {
                Ok(parsed) => Some(score(ledger, ctx, &proposal.id, (text.clone(), parsed))?),
                // `propose` only makes rule sets that parse.
                Err(_) => None,
            },
            Install::Agent { .. } => None,
        };
        suggestions.push(Suggested { proposal, preview });
    }
    Ok(SuggestReport {
        ledger_seq: ctx.seq,
        suggestions,
    })
}
