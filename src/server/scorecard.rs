//! `GET`/`POST /v1/scorecard` and `GET /v1/suggestions`: what followed the
//! decisions, what other rule sets would have changed, and the proposals
//! `parley suggest` makes. Read only.

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;

use super::extract::Query;
use super::problem::Problem;
use super::writes::json_body;
use super::App;
use crate::rules::RuleSet;
use crate::scorecard::suggest::SuggestReport;
use crate::scorecard::{scorecard, Report};
use crate::vocab::ProblemCode;

/// Most alternative rule sets one request compares.
pub const ALTERNATIVES_MAX: usize = 8;

/// The range of days and decisions a scorecard covers.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScorecardQuery {
    /// From this time on: RFC 3339, or a UTC date `YYYY-MM-DD`.
    #[schemars(with = "Option<crate::bounds::schema::DayOrTime>")]
    pub from: Option<String>,
    /// Before this time.
    #[schemars(with = "Option<crate::bounds::schema::DayOrTime>")]
    pub to: Option<String>,
}

/// A scorecard with alternatives to compare.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScorecardRequest {
    /// Rule sets (TOML text) to compare, at most 8.
    #[schemars(length(max = 8))]
    pub rules: Vec<String>,
    /// As `GET`'s query.
    #[serde(default)]
    #[schemars(with = "Option<crate::bounds::schema::DayOrTime>")]
    pub from: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<crate::bounds::schema::DayOrTime>")]
    pub to: Option<String>,
}

fn range(q: &ScorecardQuery) -> Result<(Option<u64>, Option<u64>), Problem> {
    let at = |name: &str, t: &Option<String>| {
        t.as_deref()
            .map(crate::time::parse_day_or_time)
            .transpose()
            .map_err(|e| Problem::bad_request(ProblemCode::BadTime, format!("{name}: {e}")))
    };
    let (from, to) = (at("from", &q.from)?, at("to", &q.to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            let m = "`from` is not before `to`: the range is empty".into();
            return Err(Problem::unprocessable(ProblemCode::BadTime, m));
        }
    }
    Ok((from, to))
}

/// `GET /v1/scorecard`.
pub async fn get_scorecard(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<ScorecardQuery>,
) -> Result<Json<Report>, Problem> {
    app.caller(&headers).await?;
    let (from, to) = range(&q)?;
    let card = app.current(move |ctx| scorecard(ctx, from, to)).await?;
    Ok(Json(Report {
        scorecard: card,
        alternatives: Vec::new(),
    }))
}

/// `POST /v1/scorecard`: the scorecard and each rule set's what-if.
pub async fn post_scorecard(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Report>, Problem> {
    app.caller(&headers).await?;
    let req: ScorecardRequest = json_body(body)?;
    if req.rules.len() > ALTERNATIVES_MAX {
        let m = format!(
            "`rules` holds {} rule sets; compare at most {ALTERNATIVES_MAX}",
            req.rules.len()
        );
        return Err(Problem::unprocessable(ProblemCode::BadWhatif, m));
    }
    let (from, to) = range(&ScorecardQuery {
        from: req.from,
        to: req.to,
    })?;
    let mut parsed = Vec::new();
    for (i, text) in req.rules.into_iter().enumerate() {
        let rules = RuleSet::parse(&text).map_err(|e| {
            Problem::unprocessable(ProblemCode::BadWhatif, format!("rules[{i}]: {e}"))
        })?;
        parsed.push((format!("rules[{i}]"), text, rules));
    }
    // Read-your-writes first; the copy is taken under a log-read permit.
    app.current(|_| ()).await?;
    app.blocking(move |ledger| {
        let ctx = super::published_copy(ledger)?;
        let mut alternatives = Vec::new();
        for (name, text, rules) in parsed {
            alternatives.push(crate::alternatives::score(
                ledger,
                &ctx,
                &name,
                (text, rules),
            )?);
        }
        Ok(Json(Report {
            scorecard: scorecard(&ctx, from, to),
            alternatives,
        }))
    })
    .await
}

/// `GET /v1/suggestions`.
pub async fn suggestions(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<SuggestReport>, Problem> {
    app.caller(&headers).await?;
    app.current(|_| ()).await?;
    app.blocking(move |ledger| {
        let ctx = super::published_copy(ledger)?;
        Ok(Json(crate::alternatives::suggestions(ledger, &ctx)?))
    })
    .await
}
