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
    let start = super::started();
    let outcome = match app.ledger.try_submit(command, Some(caller.grant)) {
        Ok(ticket) => ticket.outcome().await,
        Err(e) => Err(e),
    };
    let ack = outcome.map_err(|e| {
        app.metrics.command(crate::answer::code(&e));
        Problem::from(&e)
    })?;
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    app.metrics.latency_us.observe(latency_us as f64);
    app.metrics.command("ok");
    if let Some((_, d)) = ack.decision() {
        app.metrics.decision(d.rule.name(), d.outcome.name());
    }
    tracing::info!(identity = %caller.identity, seq = ack.seq, "appended");
    Ok(Json(CommandAnswer::from(ack)))
}
