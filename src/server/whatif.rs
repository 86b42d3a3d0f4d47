//! `POST /v1/whatif`: replays the log's decisions under another rule set
//! (TOML text, as `parley whatif --rules FILE` reads) and/or another resolver
//! version, and reports what would have been decided differently. Reads the
//! log only; appends nothing.

use crate::vocab::ProblemCode;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;

use super::problem::Problem;
use super::writes::json_body;
use super::App;
use crate::reader::LedgerRead;
use crate::resolver::Resolvers;
use crate::rules::RuleSet;
use crate::whatif::{Alternative, WhatIf, WhatIfReport};

/// The alternative to replay.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "anyOf" = [
        {"required": ["rules"], "properties": {"rules": {"type": "string"}}},
        {"required": ["resolver"], "properties": {"resolver": {"type": "integer"}}}
    ],
    // `days` and `from` both given (null is not given: serde reads it as
    // absent, and schemathesis sent `{"days": null, "from": null}`).
    "not" = {
        "required": ["days", "from"],
        "properties": {"days": {"type": "integer"}, "from": {"type": "integer"}}
    }
))]
pub struct WhatIfRequest {
    /// Another rule set, as TOML text (`schemas/rules.schema.json`).
    #[serde(default)]
    pub rules: Option<String>,
    /// Another released resolver version.
    #[serde(default)]
    #[schemars(with = "Option<super::known::KnownResolver>")]
    pub resolver: Option<u32>,
    /// The first seq to compare (default 1).
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalSeq")]
    pub from: Option<u64>,
    /// The last (default: the durable head).
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalSeq")]
    pub to: Option<u64>,
    /// Instead of `from`: the records of the last `days` days before the
    /// head's time (1 to 3,660); the report's `from` says where that began.
    #[serde(default)]
    #[schemars(range(min = 1, max = 3660))]
    pub days: Option<u32>,
}

/// Most days a what-if window reaches back.
const DAYS_MAX: u32 = 3660;

/// Checks the request against the log and the versions this build knows.
fn alternative(
    req: WhatIfRequest,
    head: u64,
    resolvers: &Resolvers,
) -> Result<(Alternative, u64, u64), Problem> {
    let bad = |m: String| Problem::bad_request(ProblemCode::BadWhatif, m);
    // Well-formed, but not something to replay: unprocessable.
    let refused = |m: String| Problem::unprocessable(ProblemCode::BadWhatif, m);
    if req.rules.is_none() && req.resolver.is_none() {
        return Err(bad(
            "give `rules`, `resolver` or both: the alternative to replay".into(),
        ));
    }
    if let Some(v) = req.resolver.filter(|v| resolvers.get(*v).is_none()) {
        let known: Vec<String> = resolvers.known().iter().map(u32::to_string).collect();
        return Err(bad(format!(
            "resolver {v}: this build knows resolver versions {}",
            known.join(", ")
        )));
    }
    let rules = match req.rules {
        Some(text) => {
            let parsed = RuleSet::parse(&text).map_err(|e| refused(format!("rules: {e}")))?;
            Some((text, parsed))
        }
        None => None,
    };
    let (from, to) = (req.from.unwrap_or(1), req.to.unwrap_or(head));
    if from == 0 {
        return Err(bad("`from` is a seq, and seqs start at 1".into()));
    }
    if to > head || from > to {
        return Err(refused(format!(
            "`from` {from} and `to` {to} must satisfy 1 <= from <= to <= {head} (the head)"
        )));
    }
    Ok((
        Alternative {
            rules,
            resolver: req.resolver,
        },
        from,
        to,
    ))
}

/// The handler.
pub async fn whatif(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<WhatIfReport>, Problem> {
    app.caller(&headers).await?;
    let req: WhatIfRequest = json_body(body)?;
    let resolvers = Resolvers::released();
    let days = req.days;
    if days.is_some() && req.from.is_some() {
        return Err(Problem::bad_request(
            ProblemCode::BadWhatif,
            "give `from` or `days`, not both".into(),
        ));
    }
    if let Some(d) = days.filter(|d| !(1..=DAYS_MAX).contains(d)) {
        return Err(Problem::bad_request(
            ProblemCode::BadWhatif,
            format!("`days` is {d}; give 1 to {DAYS_MAX}"),
        ));
    }
    let (alt, from, to) = alternative(req, app.ledger.head_seq(), &resolvers)?;
    app.blocking(move |ledger| {
        let from = match days {
            Some(d) => first_seq_within(ledger, to, d)?,
            None => from,
        };
        let mut run = WhatIf::new(alt, from, to, resolvers);
        ledger.scan(1, to, &mut |r| {
            run.feed(&r);
            Ok(())
        })?;
        crate::reader::feed_follow_ups(ledger, &mut run)?;
        Ok(run.finish())
    })
    .await
    .map(Json)
}

/// The first seq recorded within `days` days before the time of seq `to`.
fn first_seq_within(ledger: &dyn LedgerRead, to: u64, days: u32) -> Result<u64, Problem> {
    let at = |seq: u64| -> Result<u64, Problem> {
        let r = ledger.read(&[seq])?;
        r.first()
            .map(|r| r.record.envelope.recorded_at_ms)
            .ok_or_else(|| Problem::internal(format!("seq {seq} is missing")))
    };
    if to == 0 {
        return Ok(1);
    }
    let cut = at(to)?.saturating_sub(u64::from(days) * 86_400_000);
    // Record times never go back: the first seq after `cut`, by bisection.
    let (mut lo, mut hi) = (1u64, to);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at(mid)? > cut {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    debug_assert!(lo >= 1 && lo <= to);
    Ok(lo)
}
