//! Where MCP tools send their requests: the HTTP API itself. Inside `parley
//! serve` a tool call becomes a request to the same axum router, in process,
//! with the MCP request's own `Authorization` header; from `parley mcp
//! --server URL` it goes over HTTP with the token in `PARLEY_TOKEN`. Either
//! way a tool can do exactly what its token may do through the API, no more.

use axum::body::Body;
use axum::http::{header, Method, Request};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::client::Client;

/// The largest API answer a tool reads.
const ANSWER_BYTES_MAX: usize = 64 << 20;

/// An API answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// For a problem answer: (code, detail).
    /// The problem code of a refusal, if it is one parley names.
    pub(crate) fn code(&self) -> Option<crate::vocab::ProblemCode> {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:parley:problem:"))
            .and_then(crate::vocab::ProblemCode::parse)
    }

    pub(crate) fn problem(&self) -> (String, String) {
        let code = self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:parley:problem:"))
            .map_or_else(|| format!("http-{}", self.status), str::to_owned);
        let detail = self.body["detail"]
            .as_str()
            .map_or_else(|| self.body.to_string(), str::to_owned);
        (code, detail)
    }
}

/// The API a session's tools talk to.
pub(crate) enum Backend {
    /// In process: the server's own API router.
    Local(axum::Router),
    /// Over HTTP, as the token's identity.
    Remote {
        url: String,
        token: String,
        client: tokio::sync::Mutex<Option<Client>>,
    },
}

/// A tool's API request that got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error("no connection to the server")]
    NoConnection,
    #[error("build the request: {0}")]
    Build(#[from] axum::http::Error),
    #[error("reading the answer: {0}")]
    Read(String),
}

impl Backend {
    /// One API request. `auth` is the `Authorization` value to send (local
    /// only; the remote backend always sends its own token).
    pub(crate) async fn call(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, BackendError> {
        debug_assert!(path.starts_with("/v1/"), "tools only call the API");
        match self {
            Backend::Local(router) => local(router, auth, method, path, body).await,
            Backend::Remote { url, token, client } => {
                let bytes = body.map(|b| b.to_string().into_bytes());
                let mut guard = client.lock().await;
                if guard.is_none() {
                    let c = Client::connect(url, token.clone()).await?;
                    *guard = Some(c);
                }
                let Some(c) = guard.as_mut() else {
                    return Err(BackendError::NoConnection);
                };
                match c.request(method, path, bytes).await {
                    Ok(a) => Ok(Reply {
                        status: a.status,
                        body: a.json(),
                    }),
                    Err(e) => {
                        // Reconnect on the next call.
                        *guard = None;
                        Err(e.into())
                    }
                }
            }
        }
    }
}

async fn local(
    router: &axum::Router,
    auth: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Reply, BackendError> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }?;
    // The router's error type is `Infallible`.
    let Ok(res) = router.clone().oneshot(req).await;
    let status = res.status().as_u16();
    let limited = http_body_util::Limited::new(res.into_body(), ANSWER_BYTES_MAX);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| BackendError::Read(e.to_string()))?
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Reply { status, body })
}
