//! Bearer tokens: a request's token is hashed (blake3) and looked up among
//! the credentials the log granted and did not revoke. Tokens never reach a
//! record, a log line or an error; only their hash is kept.

use axum::http::{header, HeaderMap};

use super::problem::Problem;
use crate::context::Context;
use crate::record::{Digest, Role};

/// Who is calling: the credential's grant seq, identity and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub grant: u64,
    pub identity: String,
    pub role: Role,
}

/// The longest token accepted (tokens parley issues are 64 hex digits + prefix).
const TOKEN_BYTES_MAX: usize = 256;

/// The digest a token is stored as.
pub fn token_hash(token: &str) -> Digest {
    Digest(*blake3::hash(token.as_bytes()).as_bytes())
}

/// A fresh token: 32 bytes from the operating system's random source.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("pk_{}", crate::record::to_hex(&bytes)))
}

/// The caller a request's `Authorization: Bearer …` names, in `ctx`, at
/// `now_ms` by the server's clock (an expired credential names no one).
pub fn caller(headers: &HeaderMap, ctx: &Context, now_ms: u64) -> Result<Caller, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("send `Authorization: Bearer <token>`"))?;
    let text = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the Authorization header is not text"))?;
    let token = text
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= TOKEN_BYTES_MAX)
        .ok_or_else(|| Problem::unauthorized("the Authorization header is not `Bearer <token>`"))?;
    let hash = token_hash(token);
    let grant = *ctx
        .authority
        .tokens
        .get(&hash)
        .ok_or_else(|| Problem::unauthorized("unknown or revoked token"))?;
    let c = ctx
        .authority
        .credentials
        .get(&grant)
        .filter(|c| c.revoked.is_none())
        .ok_or_else(|| Problem::unauthorized("unknown or revoked token"))?;
    if let Some(at) = c.expires_at_ms.filter(|at| now_ms >= *at) {
        return Err(Problem::unauthorized(&format!(
            "this token expired at {} (an admin grants a new one)",
            crate::time::format_rfc3339(at)
        )));
    }
    debug_assert_eq!(c.grant, grant);
    Ok(Caller {
        grant,
        identity: c.identity.clone(),
        role: c.role,
    })
}

/// `GET /v1/whoami`: the identity and role of the request's token.
pub async fn whoami(
    axum::extract::State(app): axum::extract::State<super::App>,
    headers: HeaderMap,
) -> Result<axum::Json<WhoAmI>, Problem> {
    let c = app.caller(&headers).await?;
    Ok(axum::Json(WhoAmI {
        identity: c.identity,
        role: c.role,
        grant: c.grant,
    }))
}

/// Who a token writes as.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct WhoAmI {
    pub identity: String,
    pub role: Role,
    /// The seq of the credential's grant.
    pub grant: u64,
}
