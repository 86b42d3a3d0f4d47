//! The rule set as its owners edit it (the console's rules page):
//! `POST /v1/rules/check` checks a draft (text, or the rule set as JSON)
//! and says what it would change; `POST /v1/rules` installs one as the
//! caller, with its rationale; `GET /v1/rules/history` lists what was
//! installed, by whom, when and why. Installing is an admin's: the token's
//! identity is the record's producer and admission checks the role.

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::problem::Problem;
use super::writes::{append_one, json_body, quota};
use super::App;
use crate::answer::CommandAnswer;
use crate::command::{Checked, Command, CommandEnvelope};
use crate::record::Body;
use crate::rules::diff::{diff, FieldChange};
use crate::rules::history::{history_of, Installation};
use crate::rules::{to_text, with_rationale, RuleSet, RulesError};
use crate::vocab::ProblemCode;

/// A draft rule set: its TOML text, or the rule set as JSON (the shape
/// `GET /v1/rules` gives), which is written out as text. One of the two.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["text"]}, {"required": ["rules"]}]))]
pub struct Draft {
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "String")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "RuleSet")]
    pub rules: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A field that, when given, holds a value: `null` is refused (the schema
/// has no null here).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `POST /v1/rules`: a draft and why it is installed.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Install {
    #[serde(flatten)]
    pub draft: Draft,
    /// The rationale (1 to 4,096 characters), recorded in the rule set's
    /// `[change]` table.
    #[schemars(length(min = 1, max = 4096))]
    pub why: String,
}

/// Where a draft is wrong.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DraftError {
    pub line: usize,
    /// `section.key`, or `custom.ID` for a custom guard.
    pub field: String,
    pub message: String,
}

impl From<RulesError> for DraftError {
    fn from(e: RulesError) -> DraftError {
        DraftError {
            line: e.line,
            field: e.field,
            message: e.message,
        }
    }
}

/// The answer to `POST /v1/rules/check`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DraftCheck {
    pub ok: bool,
    /// The draft as text (what would be installed, before the rationale).
    pub text: String,
    /// The draft as data, when it is sound (the shape `GET /v1/rules` gives).
    pub rules: Option<RuleSet>,
    pub error: Option<DraftError>,
    /// Its custom guards, by id.
    pub custom: Vec<String>,
    /// What it changes from the rule set in force.
    pub changes: Vec<FieldChange>,
}

/// The draft's text: as given, or written from its JSON form. A JSON form
/// that is not a rule set's shape is a malformed request (400), with the
/// path of what is wrong; what the text then says is the check's answer.
fn text_of(d: Draft) -> Result<String, Problem> {
    match (d.text, d.rules) {
        (Some(t), None) => Ok(t),
        (None, Some(v)) => {
            let v = serde_json::Value::Object(v);
            let rules: RuleSet = serde_path_to_error::deserialize(v).map_err(|e| {
                Problem::bad_request(
                    ProblemCode::BadBody,
                    format!("at rules.{}: {}", e.path(), e.inner()),
                )
            })?;
            to_text(&rules).map_err(|e| Problem::internal(e.to_string()))
        }
        _ => Err(Problem::bad_request(
            ProblemCode::BadBody,
            "give `text` (TOML) or `rules` (JSON), one of them".into(),
        )),
    }
}

/// `POST /v1/rules/check`: 200 with `ok` and, when it is not, the error.
pub async fn check(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<DraftCheck>, Problem> {
    app.caller(&headers).await?;
    let draft: Draft = json_body(body)?;
    let in_force = app
        .current(|ctx| ctx.authority.rules.as_ref().map(|r| r.rules.clone()))
        .await?;
    let text = text_of(draft)?;
    Ok(Json(match RuleSet::parse(&text) {
        Ok(rules) => DraftCheck {
            ok: true,
            custom: rules.custom.iter().map(|g| g.id.clone()).collect(),
            changes: in_force.map_or_else(Vec::new, |f| diff(&f, &rules)),
            error: None,
            text,
            rules: Some(rules),
        },
        Err(e) => DraftCheck {
            ok: false,
            text,
            rules: None,
            error: Some(e.into()),
            custom: vec![],
            changes: vec![],
        },
    }))
}

/// `POST /v1/rules`: installs the draft as the caller (an admin), with its
/// rationale; answers as `POST /v1/commands` does. On a scripted ledger it
/// is recorded at the ledger's own time (its last record's).
pub async fn install(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<CommandAnswer>, Problem> {
    let caller = app.caller(&headers).await?;
    quota(&app, &caller, 1)?;
    let req: Install = json_body(body)?;
    let refused = |e: DraftError| {
        Problem::unprocessable(
            ProblemCode::InvalidCommand,
            format!("rules line {}, field `{}`: {}", e.line, e.field, e.message),
        )
    };
    let text = text_of(req.draft)?;
    let text = with_rationale(&text, &req.why).map_err(|e| refused(e.into()))?;
    // A scripted ledger (the demo's, a simulation) keeps its own time: the
    // installation is recorded at it, the last record's time.
    let (timeline, now_ms) = app
        .current(|ctx| (ctx.authority.timeline, ctx.now_ms))
        .await?;
    let at_ms = (timeline == Some(crate::record::Timeline::Scripted)).then_some(now_ms);
    let command = Command {
        envelope: CommandEnvelope {
            producer: caller.identity.clone(),
            at_ms,
            ..CommandEnvelope::default()
        },
        body: Body::RulesInstalled { text },
    };
    append_one(&app, &caller, Checked::new(command)?)
        .await
        .map(Json)
}

/// `GET /v1/rules/history`: the installations the ledger remembers, oldest
/// first, each with what it changed.
pub async fn history(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<Vec<Installation>>, Problem> {
    app.caller(&headers).await?;
    let seqs: Vec<u64> = app
        .current(|ctx| ctx.authority.rules_installed.iter().copied().collect())
        .await?;
    app.blocking(move |ledger| Ok(history_of(&seqs, ledger)?))
        .await
        .map(Json)
}
