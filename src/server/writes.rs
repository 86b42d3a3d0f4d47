//! The write routes. `POST /v1/commands` takes one command (the JSON line
//! `parley run` reads) and answers once it is durable, in the shape `parley
//! run` prints (`crate::answer::CommandAnswer`); `POST /v1/commands/batch`
//! takes up to `BATCH_MAX` and answers each. The envelope's producer must be
//! the token's identity; the sequencer checks the credential again against
//! the log (admission), so a revocation between the two checks still wins.

use crate::vocab::ProblemCode;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::problem::Problem;
use super::App;
use crate::answer::CommandAnswer;
use crate::command::{Checked, Command};
use crate::ledger::Ticket;
use crate::sequencer::AppendError;

/// The most commands one batch request carries.
pub const BATCH_MAX: usize = 256;

/// The body's bytes, or the problem with it (too large, unreadable).
pub fn body_bytes(
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<axum::body::Bytes, Problem> {
    body.map_err(|r| {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ProblemCode::BodyTooLarge
        } else {
            ProblemCode::BadBody
        };
        Problem::new(status, code, "Bad request body", r.body_text())
    })
}

/// The body as UTF-8 text, or the problem with it (too large, unreadable).
pub fn body_text(body: Result<axum::body::Bytes, BytesRejection>) -> Result<String, Problem> {
    let body = body_bytes(body)?;
    String::from_utf8(body.to_vec())
        .map_err(|_| Problem::bad_request(ProblemCode::BadBody, "the body is not UTF-8".into()))
}

/// A JSON object body as `T`, with the path of the first thing wrong in it.
/// Every request body of the API is an object: an array is refused here
/// (serde would otherwise read a struct from one, by position).
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let text = body_text(body)?;
    // The commands' strict reading: repeated keys refused, 2.0 read as 2.
    let value = crate::command::strict_parse(&text)
        .map_err(|e| Problem::bad_request(ProblemCode::BadBody, e.to_string()))?;
    if !value.is_object() {
        return Err(Problem::bad_request(
            ProblemCode::BadBody,
            "the body is a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let detail = if at == "." {
            e.inner().to_string()
        } else {
            format!("at {at}: {}", e.inner())
        };
        Problem::bad_request(ProblemCode::BadBody, detail)
    })
}

/// 429 unless `caller` is within its write quota for `n` more commands.
pub(super) fn quota(app: &App, caller: &Caller, n: usize) -> Result<(), Problem> {
    let n = std::num::NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or(std::num::NonZeroU32::MIN);
    let over = match app.limiter.check_key_n(&caller.identity, n) {
        Ok(Ok(())) => None,
        Ok(Err(not_until)) => {
            use governor::clock::Clock as _;
            Some(not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
        }
        // More than the quota's burst: never allowed at once.
        Err(_) => Some(std::time::Duration::from_secs(1)),
    };
    if let Some(wait) = over {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            ProblemCode::RateLimited,
            "Too many requests",
            format!("`{}` is over its write quota; retry later", caller.identity),
        );
        let secs = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX);
        p.retry_after_s = Some(secs.saturating_add(1));
        return Err(p);
    }
    Ok(())
}

/// Parses one command (one parse, one validation) and checks it is written
/// as the caller.
pub(crate) fn command_as(caller: &Caller, text: &str) -> Result<Checked, Problem> {
    let checked = Command::parse_checked(text)?;
    let command = checked.command();
    if command.envelope.producer != caller.identity {
        return Err(Problem::forbidden(
            ProblemCode::NotYourIdentity,
            format!(
                "this token writes as `{}`, not as `{}`",
                caller.identity, command.envelope.producer
            ),
        ));
    }
    Ok(checked)
}

/// Hands a command to the writer without blocking (a full queue is `Busy`).
fn submit(app: &App, caller: &Caller, command: Checked) -> Result<Ticket, AppendError> {
    app.ledger.try_submit(command, Some(caller.grant))
}

/// Awaits a ticket and counts its result.
async fn answer(
    app: &App,
    caller: &Caller,
    ticket: Result<Ticket, AppendError>,
    start: std::time::Instant,
) -> Result<CommandAnswer, Problem> {
    let outcome = match ticket {
        Ok(t) => t.outcome().await,
        Err(e) => Err(e),
    };
    let ack = outcome.map_err(|e| {
        app.metrics.command(crate::answer::code(&e).name());
        Problem::from(&e)
    })?;
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    app.metrics.latency_us.observe(latency_us as f64);
    app.metrics.command("ok");
    if let Some((_, d)) = ack.decision() {
        app.metrics.decision(d.rule.name(), d.outcome.name());
    }
    tracing::info!(identity = %caller.identity, seq = ack.seq, "appended");
    Ok(CommandAnswer::from(ack))
}

/// `POST /v1/commands`.
pub async fn post_command(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<CommandAnswer>, Problem> {
    let caller = app.caller(&headers).await?;
    quota(&app, &caller, 1)?;
    let command = command_as(&caller, &body_text(body)?)?;
    append_one(&app, &caller, command).await.map(Json)
}

/// Appends one checked command as `caller` and answers once it is durable
/// (the caller's quota was checked).
pub(super) async fn append_one(
    app: &App,
    caller: &Caller,
    command: Checked,
) -> Result<CommandAnswer, Problem> {
    let start = super::started();
    let ticket = submit(app, caller, command);
    answer(app, caller, ticket, start).await
}

/// Appends one checked command as `caller` with no credential (a signed
/// webhook delivery: admission still checks the producer's standing).
pub(super) async fn append_without_credential(
    app: &App,
    caller: &Caller,
    command: Checked,
) -> Result<CommandAnswer, Problem> {
    let start = super::started();
    let ticket = app.ledger.try_submit(command, None);
    answer(app, caller, ticket, start).await
}

/// One command's result in a batch: its answer, or the problem that kept it
/// out of the log (the others are unaffected).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BatchItem {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<CommandAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// `POST /v1/commands/batch`: a JSON array of commands. A malformed command,
/// or one not written as the caller, refuses the whole batch (nothing is
/// appended); the others are admitted one by one in order (the resolver may
/// refuse some and approve the rest) and answered in the same order.
pub async fn post_batch(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Vec<BatchItem>>, Problem> {
    let caller = app.caller(&headers).await?;
    let text = body_text(body)?;
    let commands = parse_batch(&caller, &text)?;
    let count = commands.len();
    quota(&app, &caller, commands.len())?;
    let start = super::started();
    let tickets: Vec<Result<Ticket, AppendError>> = commands
        .into_iter()
        .map(|c| submit(&app, &caller, c))
        .collect();
    let mut out = Vec::with_capacity(tickets.len());
    for ticket in tickets {
        let result = answer(&app, &caller, ticket, start).await;
        out.push(match result {
            Ok(a) => BatchItem {
                ok: true,
                answer: Some(a),
                problem: None,
            },
            Err(p) => BatchItem {
                ok: false,
                answer: None,
                problem: Some(p),
            },
        });
    }
    debug_assert_eq!(out.len(), count);
    Ok(Json(out))
}

/// A batch body's commands: 1 to `BATCH_MAX`, every one parsed and the
/// caller's before any is appended (else the first problem, naming it).
pub(crate) fn parse_batch(caller: &Caller, text: &str) -> Result<Vec<Checked>, Problem> {
    // The array is only split here; each command is parsed once, strictly
    // (repeated keys refused, as on the single route), from its own text.
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)
        .map_err(|e| Problem::bad_request(ProblemCode::BadBody, e.to_string()))?;
    if items.is_empty() || items.len() > BATCH_MAX {
        return Err(Problem::bad_request(
            ProblemCode::BadBatch,
            format!(
                "a batch holds 1 to {BATCH_MAX} commands; got {}",
                items.len()
            ),
        ));
    }
    let mut commands = Vec::with_capacity(items.len());
    for (n, v) in items.iter().enumerate() {
        let c = command_as(caller, v.get()).map_err(|mut p| {
            p.detail = format!(
                "command {n} of the batch (nothing was appended): {}",
                p.detail
            );
            p
        })?;
        commands.push(c);
    }
    debug_assert!((1..=BATCH_MAX).contains(&commands.len()));
    Ok(commands)
}
