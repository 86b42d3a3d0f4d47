//! `POST /v1/commands`: one command, answered once it is durable, in the
//! shape `parley run` prints (`crate::answer::CommandAnswer`). The envelope's
//! producer must be the token's identity; the sequencer checks the credential
//! again against the log (admission), so a revocation between the two checks
//! still wins.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use super::problem::Problem;
use super::App;
use crate::answer::CommandAnswer;
use crate::command::Command;

/// The handler.
pub async fn post_command(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<CommandAnswer>, Problem> {
    let caller = app.caller(&headers)?;
    if let Err(not_until) = app.limiter.check_key(&caller.identity) {
        use governor::clock::Clock as _;
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        let mut p = Problem::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("`{}` is over its write quota; retry later", caller.identity),
        );
        p.retry_after_s = Some(
            u32::try_from(wait.as_secs())
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        );
        return Err(p);
    }
    let body = body.map_err(|r| {
        let status = r.status();
        let code = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            "body-too-large"
        } else {
            "bad-body"
        };
        Problem::new(status, code, "Bad request body", r.body_text())
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::bad_request("invalid-command", "the body is not UTF-8".into()))?;
    let command = Command::parse(text)?;
    if command.envelope.producer != caller.identity {
        return Err(Problem::forbidden(
            "not-your-identity",
            format!(
                "this token writes as `{}`, not as `{}`",
                caller.identity, command.envelope.producer
            ),
        ));
    }
    let ticket = app
        .ledger
        .try_submit(command, Some(caller.grant))
        .map_err(|e| Problem::from(&e))?;
    let ack = ticket.outcome().await.map_err(|e| Problem::from(&e))?;
    tracing::info!(identity = %caller.identity, seq = ack.seq, "appended");
    Ok(Json(CommandAnswer::from(ack)))
}
