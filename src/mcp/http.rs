//! `/mcp`: the MCP server (`crate::mcp`) over Streamable HTTP (rmcp's tower
//! service), behind a gate that checks the bearer token like every API
//! route, limits the body, and leaves Host/Origin checks against DNS
//! rebinding to the SDK (loopback names, the listen address and any
//! `--mcp-allowed-host`).

use crate::vocab::ProblemCode;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::Parley;
use crate::command::COMMAND_BYTES_MAX;
use crate::server::problem::Problem;
use crate::server::App;

/// How `/mcp` is served.
#[derive(Clone, Debug, Default)]
pub(crate) struct McpOptions {
    /// Let clients without a token initialize and list tools and resources
    /// (conformance suites cannot send one); every tool call and resource
    /// read still needs a token.
    pub anonymous_handshake: bool,
    /// Host names accepted besides loopback and the listen address.
    pub allowed_hosts: Vec<String>,
}

/// The `/mcp` routes, and the sessions (which `close_sessions` ends at
/// shutdown: a session holds the ledger until then). Streams end when
/// `stop` is cancelled.
pub(crate) fn routes(
    app: App,
    api: Router,
    opts: &McpOptions,
    listen: std::net::SocketAddr,
    stop: CancellationToken,
) -> (Router, Arc<LocalSessionManager>) {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    }
    hosts.extend(opts.allowed_hosts.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_cancellation_token(stop);
    let factory_app = app.clone();
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(
        move || Ok(Parley::local(factory_app.clone(), api.clone())),
        sessions.clone(),
        config,
    );
    let anonymous = opts.anonymous_handshake;
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state((app, anonymous), gate));
    (router, sessions)
}

/// Ends every open MCP session (their workers otherwise live until an idle
/// timeout, holding the ledger).
pub(crate) async fn close_sessions(sessions: &LocalSessionManager) {
    let open: Vec<_> = sessions.sessions.write().await.drain().collect();
    for (_, handle) in open {
        // A session already gone is fine.
        let _ = handle.close().await;
    }
}

/// Checks the token (when one is sent, or always unless anonymous
/// handshakes are allowed) and bounds the body.
async fn gate(State((app, anonymous)): State<(App, bool)>, req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::AUTHORIZATION) || !anonymous {
        if let Err(p) = app.caller(req.headers()).await {
            let mut res = p.into_response();
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parley\""),
            );
            return res;
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > COMMAND_BYTES_MAX) {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::BodyTooLarge,
            "Bad request body",
            format!("an MCP message is at most {COMMAND_BYTES_MAX} bytes"),
        )
        .into_response();
    }
    let (parts, body) = req.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, COMMAND_BYTES_MAX));
    next.run(Request::from_parts(parts, body)).await
}
