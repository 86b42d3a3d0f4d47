//! `POST /v1/tokens` (admins only): grants a credential and answers its token
//! once. The log records only the token's blake3 hash, in a
//! `credential_granted` record written as the admin; revoking is a
//! `credential_revoked` command posted to `/v1/commands`.

use crate::vocab::ProblemCode;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::{new_token, token_hash};
use super::problem::Problem;
use super::writes::json_body;
use super::App;
use crate::command::{Command, CommandEnvelope};
use crate::record::{Body, Role, Timeline};

/// Who the new credential is for.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The identity it writes as (an agent's, a human's or an admin's name).
    #[schemars(with = "crate::bounds::schema::Producer")]
    pub name: String,
    pub role: Role,
}

/// The new credential; `token` is shown only here.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TokenAnswer {
    pub token: String,
    pub identity: String,
    pub role: Role,
    /// The grant's seq (what `credential_revoked` names).
    pub seq: u64,
}

/// The handler.
pub async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<TokenAnswer>), Problem> {
    let caller = app.caller(&headers).await?;
    if caller.role != Role::Admin {
        return Err(Problem::forbidden(
            ProblemCode::AdminsOnly,
            format!(
                "`{}` is not an admin; only admins grant tokens",
                caller.identity
            ),
        ));
    }
    let req: TokenRequest = json_body(body)?;
    let token =
        new_token().map_err(|e| Problem::internal(format!("the system's random source: {e}")))?;
    let (timeline, head_at) = app
        .current(|ctx| (ctx.authority.timeline, ctx.now_ms))
        .await?;
    let command = Command {
        envelope: CommandEnvelope {
            producer: caller.identity.clone(),
            // A scripted ledger's time comes from its commands.
            at_ms: (timeline == Some(Timeline::Scripted)).then_some(head_at),
            ..CommandEnvelope::default()
        },
        body: Body::CredentialGranted {
            identity: req.name.clone(),
            role: req.role,
            token_hash: token_hash(&token),
        },
    };
    let ticket = crate::command::Checked::new(command)
        .map_err(crate::sequencer::AppendError::from)
        .and_then(|c| app.ledger.try_submit(c, Some(caller.grant)));
    let ack = match ticket {
        Ok(t) => t.outcome().await,
        Err(e) => Err(e),
    }
    .map_err(|e| Problem::from(&e))?;
    tracing::info!(identity = %caller.identity, seq = ack.seq, granted = %req.name, "token granted");
    let answer = TokenAnswer {
        token,
        identity: req.name,
        role: req.role,
        seq: ack.seq,
    };
    Ok((StatusCode::CREATED, Json(answer)))
}
