//! The read routes: the shared context and one entity (now, or as of a
//! seq), records from a seq (filtered, paginated), the audit of a field,
//! escalations, workflows and the rule set in force.
//!
//! Current reads come from the context the writer publishes after each
//! batch, after waiting (bounded) until it holds every record durable when
//! the request arrived: a client that got an acknowledgement reads its own
//! write. Reads of the log run on the blocking pool, a few at a time.

use super::extract::{Path, Query};
use crate::vocab::ProblemCode;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::filter::{FilterQuery, RecordFilter};
use super::problem::Problem;
use super::App;
use crate::audit::AuditReport;
use crate::context::view::{self, EntityView, RunView, StateView, WorkflowView};
use crate::entity::EntityRef;
use crate::escalations::EscalationView;
use crate::export::ExportedRecord;
use crate::reader::LedgerRead;
use crate::record::{Digest, StoredRecord};

/// `?at=SEQ` or `?at_time=RFC3339`: the context as of a seq or a time (a
/// fold of the log up to it).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AtQuery {
    /// A seq between 1 and the head (default: the durable head); not with `at_time`.
    #[schemars(range(min = 1, max = u64::MAX))]
    pub at: Option<u64>,
    /// A time (RFC 3339): the last record at or before it; not with `at`.
    #[schemars(length(min = 1), extend("format" = "date-time"))]
    pub at_time: Option<String>,
}

impl AtQuery {
    /// The seq asked for, if any (`at_time` is looked up in the log).
    async fn seq(self, app: &App) -> Result<Option<u64>, Problem> {
        match (self.at, self.at_time) {
            // A combination the query's schema cannot state: unprocessable.
            (Some(_), Some(_)) => Err(Problem::unprocessable(
                ProblemCode::BadSeq,
                "give `at` or `at_time`, not both".into(),
            )),
            (Some(at), None) => check_at(app, at).map(Some),
            (None, Some(t)) => {
                // A time before 1970 is before every record: not found.
                let ms = crate::time::parse_rfc3339_from_epoch(&t).map_err(|e| {
                    Problem::bad_request(ProblemCode::BadTime, format!("at_time: {e}"))
                })?;
                app.blocking(move |ledger| seq_at_time(ledger, ms).map(Some))
                    .await
            }
            (None, None) => Ok(None),
        }
    }
}

/// The last seq recorded at or before `ms` (record times never go back, so
/// a binary search over seqs reads about log2(head) records).
fn seq_at_time(ledger: &dyn LedgerRead, ms: u64) -> Result<u64, Problem> {
    let time_of = |seq: u64| -> Result<u64, Problem> {
        let r = ledger.read(&[seq])?;
        r.first()
            .map(|r| r.record.envelope.recorded_at_ms)
            .ok_or_else(|| Problem::internal(format!("seq {seq} is missing")))
    };
    let head = ledger.head_seq();
    if head == 0 || time_of(1)? > ms {
        return Err(Problem::not_found(format!(
            "the ledger has no record at or before {}",
            crate::time::format_rfc3339(ms)
        )));
    }
    let (mut lo, mut hi) = (1u64, head);
    // Invariant: time_of(lo) <= ms; the answer is in lo..=hi.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if time_of(mid)? <= ms {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    debug_assert!(lo >= 1 && lo <= head);
    Ok(lo)
}

/// Checks an `at` seq against the head.
fn check_at(app: &App, at: u64) -> Result<u64, Problem> {
    let head = app.ledger.head_seq();
    if at == 0 {
        return Err(Problem::bad_request(
            ProblemCode::BadSeq,
            "`at` is a seq, and seqs start at 1".into(),
        ));
    }
    if at > head {
        return Err(Problem::not_found(format!(
            "no record has seq {at}: the head is seq {head}"
        )));
    }
    Ok(at)
}

/// `GET /v1/state`.
pub async fn state(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<AtQuery>,
) -> Result<Json<StateView>, Problem> {
    app.caller(&headers).await?;
    let Some(at) = q.seq(&app).await? else {
        return app.current(view::state).await.map(Json);
    };
    app.blocking(move |ledger| Ok(view::state(&ledger.context_at(at)?)))
        .await
        .map(Json)
}

/// `GET /v1/entities/{entity}`.
pub async fn entity(
    State(app): State<App>,
    headers: HeaderMap,
    Path(text): Path<String>,
    Query(q): Query<AtQuery>,
) -> Result<Json<EntityView>, Problem> {
    app.caller(&headers).await?;
    let e = EntityRef::parse(&text)
        .map_err(|m| Problem::bad_request(ProblemCode::BadEntity, m.to_string()))?;
    let found = match q.seq(&app).await? {
        None => {
            let e = e.clone();
            app.current(move |ctx| view::entity(ctx, &e)).await?
        }
        Some(at) => {
            let e = e.clone();
            app.blocking(move |ledger| Ok(view::entity(&ledger.context_at(at)?, &e)))
                .await?
        }
    };
    found
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("the shared context holds nothing about {e}")))
}

/// The most records one page holds.
const PAGE_MAX: u32 = 1_000;
/// The most records one page request reads looking for matches.
const SCAN_MAX: u64 = 100_000;
/// Records read per step of a scan.
const SCAN_CHUNK: u64 = 1_000;

/// `GET /v1/records` parameters.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// The first seq to look at (default 1).
    #[schemars(range(min = 1, max = u64::MAX))]
    pub from: Option<u64>,
    /// Records per page, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// A record kind, e.g. `decision`.
    #[serde(default)]
    #[schemars(with = "super::known::OptionalKind")]
    pub kind: Option<String>,
    /// An entity the record names, e.g. `sku:SKU-1`.
    #[serde(default)]
    #[schemars(with = "Option<crate::entity::EntityRef>")]
    pub entity: Option<String>,
    /// A broadcast's topic.
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalId")]
    pub topic: Option<String>,
    /// The producer.
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalId")]
    pub producer: Option<String>,
}

/// One page of records.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RecordsPage {
    pub records: Vec<ExportedRecord>,
    /// Pass as `from` for the next page; absent when the head was reached.
    pub next: Option<u64>,
    /// The durable head when the page was read.
    pub head_seq: u64,
}

/// `GET /v1/records`.
pub async fn records(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<RecordsQuery>,
) -> Result<Json<RecordsPage>, Problem> {
    app.caller(&headers).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(Problem::bad_request(
            ProblemCode::BadLimit,
            format!("`limit` is 1 to {PAGE_MAX}; got {limit}"),
        ));
    }
    let from = q.from.unwrap_or(1);
    if from == 0 {
        return Err(Problem::bad_request(
            ProblemCode::BadSeq,
            "`from` is a seq, and seqs start at 1".into(),
        ));
    }
    let filter = RecordFilter::parse(FilterQuery {
        kind: q.kind,
        entity: q.entity,
        topic: q.topic,
        producer: q.producer,
    })?;
    app.blocking(move |ledger| page(ledger, &filter, from, limit as usize))
        .await
        .map(Json)
}

fn page(
    ledger: &dyn LedgerRead,
    filter: &RecordFilter,
    from: u64,
    limit: usize,
) -> Result<RecordsPage, Problem> {
    let head = ledger.head_seq();
    let mut out: Vec<StoredRecord> = Vec::new();
    let mut next = from;
    if let Some(e) = &filter.entity {
        let seqs: Vec<u64> = ledger
            .entity_seqs(e)?
            .into_iter()
            .filter(|s| (from..=head).contains(s))
            .collect();
        for chunk in seqs.chunks(SCAN_CHUNK as usize) {
            for r in ledger.read(chunk)? {
                next = r.record.envelope.seq + 1;
                if filter.wants(&r) {
                    out.push(r);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if out.len() == limit {
                break;
            }
        }
        let more = seqs.last().is_some_and(|last| *last >= next);
        return Ok(finish(out, more.then_some(next), head));
    }
    let end = head.min(from.saturating_add(SCAN_MAX - 1));
    while next <= end && out.len() < limit {
        let to = end.min(next + SCAN_CHUNK - 1);
        ledger.scan(next, to, &mut |r| {
            if out.len() < limit {
                next = r.record.envelope.seq + 1;
                if filter.wants(&r) {
                    out.push(r);
                }
            }
            Ok(())
        })?;
        if out.len() < limit {
            next = to + 1;
        }
    }
    Ok(finish(out, (next <= head).then_some(next), head))
}

fn finish(records: Vec<StoredRecord>, next: Option<u64>, head: u64) -> RecordsPage {
    debug_assert!(records
        .windows(2)
        .all(|w| w[0].record.envelope.seq < w[1].record.envelope.seq));
    RecordsPage {
        records: records.iter().map(ExportedRecord::from).collect(),
        next,
        head_seq: head,
    }
}

/// `GET /v1/entities/{entity}/audit` parameters.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// One field (e.g. `price`); default: every field.
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalId")]
    pub field: Option<String>,
}

/// `GET /v1/entities/{entity}/audit`: every change, newest first.
pub async fn audit(
    State(app): State<App>,
    headers: HeaderMap,
    Path(text): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditReport>, Problem> {
    app.caller(&headers).await?;
    let e = EntityRef::parse(&text)
        .map_err(|m| Problem::bad_request(ProblemCode::BadEntity, m.to_string()))?;
    app.blocking(move |ledger| {
        crate::audit::audit(ledger, &e, q.field.as_deref()).map_err(Problem::from)
    })
    .await
    .map(Json)
}

/// `GET /v1/escalations` parameters.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationsQuery {
    /// Only the open ones (default false: the escalations in the log, a page
    /// at a time).
    #[serde(default)]
    pub open: bool,
    /// The first seq to look at for escalating decisions (default 1); a
    /// page's `Link: <…>; rel="next"` names the next one. Not with `open`.
    #[schemars(range(min = 1, max = u64::MAX))]
    pub from: Option<u64>,
    /// Escalations per page, 1 to 1000 (default 100). Ignored with `open`.
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

/// `GET /v1/escalations`: oldest first. The open ones all at once (they are
/// the context's); otherwise a page: at most `limit` escalations, looked for
/// in at most 100,000 records from `from`, and, when the log goes on, a
/// `Link` header (RFC 8288) naming the next page.
pub async fn escalations(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<EscalationsQuery>,
) -> Result<(HeaderMap, Json<Vec<EscalationView>>), Problem> {
    app.caller(&headers).await?;
    let limit = q.limit.unwrap_or(100);
    let max = crate::escalations::PAGE_ESCALATIONS_MAX;
    if !(1..=max).contains(&(limit as usize)) {
        return Err(Problem::bad_request(
            ProblemCode::BadLimit,
            format!("`limit` is 1 to {max}; got {limit}"),
        ));
    }
    if q.from == Some(0) {
        return Err(Problem::bad_request(
            ProblemCode::BadSeq,
            "`from` is a seq, and seqs start at 1".into(),
        ));
    }
    // Only what the views need of the context, not a copy of all of it.
    let waiting = app.current(crate::escalations::Waiting::of).await?;
    if q.open {
        let views = app
            .blocking(move |ledger| {
                Ok(crate::escalations::escalation_views(
                    ledger, &waiting, true,
                )?)
            })
            .await?;
        return Ok((HeaderMap::new(), Json(views)));
    }
    let from = q.from.unwrap_or(1);
    let page = app
        .blocking(move |ledger| {
            Ok(crate::escalations::escalations_page(
                ledger,
                &waiting,
                from,
                limit as usize,
            )?)
        })
        .await?;
    let mut out = HeaderMap::new();
    if let Some(next) = page.next {
        let link = format!("</v1/escalations?from={next}&limit={limit}>; rel=\"next\"");
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            out.insert(axum::http::header::LINK, v);
        }
    }
    Ok((out, Json(page.views)))
}

/// `GET /v1/escalations/{id}`: the escalations of intention `id`, oldest
/// first (the last is the current one).
pub async fn escalation(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<Vec<EscalationView>>, Problem> {
    app.caller(&headers).await?;
    let waiting = app.current(crate::escalations::Waiting::of).await?;
    let views = app
        .blocking(move |ledger| Ok(crate::escalations::escalations_of(ledger, &waiting, id)?))
        .await?;
    if views.is_empty() {
        return Err(Problem::not_found(format!(
            "seq {id} is not an intention that escalated"
        )));
    }
    Ok(Json(views))
}

/// The workflows defined and their runs.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WorkflowsView {
    pub workflows: Vec<WorkflowView>,
    pub runs: Vec<RunView>,
}

/// `GET /v1/workflows`.
pub async fn workflows(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<WorkflowsView>, Problem> {
    app.caller(&headers).await?;
    app.current(|ctx| WorkflowsView {
        workflows: ctx
            .workflows
            .definitions
            .values()
            .flat_map(|v| v.values())
            .map(view::workflow)
            .collect(),
        runs: ctx.workflows.runs.values().map(view::run).collect(),
    })
    .await
    .map(Json)
}

/// The rule set in force.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RulesView {
    /// The record that installed it.
    pub seq: u64,
    /// blake3 of its text, as decisions record it.
    pub hash: Digest,
    /// The resolver version in force.
    pub resolver: u32,
    pub rules: crate::rules::RuleSet,
}

/// `GET /v1/rules`.
pub async fn rules(State(app): State<App>, headers: HeaderMap) -> Result<Json<RulesView>, Problem> {
    app.caller(&headers).await?;
    app.current(|ctx| {
        let a = &ctx.authority;
        a.rules.as_ref().map(|r| RulesView {
            seq: r.seq,
            hash: r.hash,
            resolver: a.resolver.value,
            rules: r.rules.clone(),
        })
    })
    .await?
    .map(Json)
    .ok_or_else(|| Problem::not_found("no rule set is installed".into()))
}
