//! `GET /v1/intentions/{seq}`: an intention and every decision about it, with
//! a bounded long poll for the next one, so a deferral's later approval or an
//! escalation's human settlement reaches the agent that announced it; and
//! `GET /v1/decisions/{seq}`: one decision explained in sentences.

use super::extract::{Path, Query};
use crate::vocab::ProblemCode;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;

use super::problem::Problem;
use super::App;
use crate::entity::EntityRef;
use crate::explain::Explanation;
use crate::export::ExportedRecord;
use crate::reader::LedgerRead;

/// An intention and every decision about it so far, oldest first.
#[derive(Serialize, schemars::JsonSchema)]
pub struct IntentionAnswer {
    intention: ExportedRecord,
    decisions: Vec<ExportedRecord>,
    /// True once a decision settled it for good (approved, modified,
    /// rejected, expired): no later decision will follow.
    settled: bool,
}

/// `?wait_ms=N`: wait up to N ms (at most 30 s) for a decision while the
/// intention is not settled (a long poll).
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntentionQuery {
    #[schemars(range(min = 0, max = 30_000))]
    wait_ms: Option<u64>,
}

/// The longest a long poll waits.
const WAIT_MS_MAX: u64 = 30_000;

pub async fn intention(
    State(app): State<App>,
    headers: HeaderMap,
    Path(seq): Path<u64>,
    Query(q): Query<IntentionQuery>,
) -> Result<Json<IntentionAnswer>, Problem> {
    app.caller(&headers).await?;
    let wait_ms = q.wait_ms.unwrap_or(0);
    if wait_ms > WAIT_MS_MAX {
        return Err(Problem::bad_request(
            ProblemCode::BadWait,
            format!("`wait_ms` is at most {WAIT_MS_MAX}; got {wait_ms}"),
        ));
    }
    // Subscribe before reading, so no decision slips between the two.
    let mut rx = app.ledger.subscribe();
    let answer = read_intention(&app, seq).await?;
    let (true, false, Some(rx)) = (wait_ms > 0, answer.settled, rx.as_mut()) else {
        return Ok(Json(answer));
    };
    let known = answer.decisions.len();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
    loop {
        let batch = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(batch)) => batch,
            // Timed out, lagged or closing: answer with what the log holds.
            _ => return Ok(Json(read_intention(&app, seq).await?)),
        };
        let about_it = batch.records.iter().any(|r| {
            matches!(&r.record.body, crate::record::Body::Decision { decision } if decision.intention == seq)
        });
        if about_it {
            let now = read_intention(&app, seq).await?;
            if now.decisions.len() > known {
                return Ok(Json(now));
            }
        }
    }
}

/// The intention at `seq` and its decisions, from the log.
async fn read_intention(app: &App, seq: u64) -> Result<IntentionAnswer, Problem> {
    let head = app.ledger.head_seq();
    if seq == 0 || seq > head {
        return Err(Problem::not_found(format!(
            "seq {seq} is not in the log (its head is {head})"
        )));
    }
    let ledger = app.ledger.clone();
    let records = tokio::task::spawn_blocking(move || {
        let mut seqs = ledger.entity_seqs(&EntityRef::Intention(seq))?;
        seqs.push(seq);
        seqs.sort_unstable();
        seqs.dedup();
        seqs.retain(|s| *s <= head);
        ledger.read(&seqs)
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?
    .map_err(|e| Problem::internal(e.to_string()))?;
    let first = records
        .iter()
        .find(|r| r.record.envelope.seq == seq)
        .filter(|r| matches!(r.record.body, crate::record::Body::Intend { .. }))
        .ok_or_else(|| Problem::not_found(format!("seq {seq} is not an intention")))?;
    let mut settled = false;
    let decisions = records
        .iter()
        .filter(|r| {
            matches!(&r.record.body, crate::record::Body::Decision { decision } if decision.intention == seq)
        })
        .inspect(|r| {
            if let crate::record::Body::Decision { decision } = &r.record.body {
                settled = decision.outcome.is_final();
            }
        })
        .map(ExportedRecord::from)
        .collect();
    Ok(IntentionAnswer {
        intention: ExportedRecord::from(first),
        decisions,
        settled,
    })
}

/// `GET /v1/decisions/{seq}`: a decision explained in sentences (its rule,
/// each trace step and the values it read).
pub async fn decision(
    State(app): State<App>,
    headers: HeaderMap,
    Path(seq): Path<u64>,
) -> Result<Json<Explanation>, Problem> {
    app.caller(&headers).await?;
    let head = app.ledger.head_seq();
    if seq == 0 || seq > head {
        return Err(Problem::not_found(format!(
            "seq {seq} is not in the log (its head is {head})"
        )));
    }
    let records = app.blocking(move |ledger| Ok(ledger.read(&[seq])?)).await?;
    let r = records
        .first()
        .ok_or_else(|| Problem::not_found(format!("seq {seq} is not in the log")))?;
    let crate::record::Body::Decision { decision } = &r.record.body else {
        return Err(Problem::not_found(format!(
            "seq {seq} is a `{}` record, not a decision",
            r.record.body.kind()
        )));
    };
    let explained = Explanation::of(seq, r.record.envelope.recorded_at_ms, decision);
    let (Some(hash), false) = (
        decision.rules_hash,
        Explanation::guards_named(decision).is_empty(),
    ) else {
        return Ok(Json(explained));
    };
    // The custom guards' messages, from the rule set the decision names.
    let seqs: Vec<u64> = app
        .current(|ctx| ctx.authority.rules_installed.iter().copied().collect())
        .await?;
    let rules = app
        .blocking(move |ledger| {
            Ok(crate::rules::history::installed_with_hash(
                &seqs, ledger, &hash,
            )?)
        })
        .await?;
    Ok(Json(match rules {
        Some(rules) => explained.with_guard_messages(decision, &rules),
        None => explained,
    }))
}
