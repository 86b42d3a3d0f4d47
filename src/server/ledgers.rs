//! A node serving several ledgers: `/v1/ledgers/{ledger}/…` reaches that
//! ledger's own routes (API, console, MCP, metrics), each with its own
//! tokens, context and writer.
//!
//! `/v1/ledgers/{ledger}/X` is served as the ledger's `/v1/X`, except the
//! paths that live at a server's root (`mcp`, `metrics`, `healthz`,
//! `readyz`, the console), which are served as `/X`. A node serving one
//! ledger keeps today's routes at the root as well.
//!
//! Architecture invariant: a request reaches exactly one ledger's router,
//! chosen by name from the path; nothing is shared between ledgers but the
//! listener, so a token of one ledger is unknown to every other.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tower::ServiceExt as _;

use super::problem::Problem;

/// The routers of the ledgers a node serves, by name.
pub type Ledgers = BTreeMap<String, Router>;

/// The prefix every ledger's routes hang under.
const PREFIX: &str = "/v1/ledgers/";
/// Paths under a ledger served at its router's root rather than under `/v1/`.
const ROOT_PATHS: [&str; 5] = ["mcp", "metrics", "healthz", "readyz", "console"];

/// The routes of a node serving `ledgers` (at least one). With exactly one,
/// its routes are also served at the root, as a single-ledger server's are.
pub fn router(ledgers: Ledgers) -> Router {
    debug_assert!(!ledgers.is_empty(), "a node serves at least one ledger");
    let root = (ledgers.len() == 1)
        .then(|| ledgers.values().next().cloned())
        .flatten();
    let by_name = Router::new()
        .route("/v1/ledgers/{ledger}", any(dispatch))
        .route("/v1/ledgers/{ledger}/", any(dispatch))
        .route("/v1/ledgers/{ledger}/{*rest}", any(dispatch));
    let table = Arc::new(ledgers);
    match root {
        Some(one) => by_name.with_state(table).merge(one),
        None => by_name
            .route("/healthz", get(|| async { "ok" }))
            .fallback(several)
            .with_state(table),
    }
}

/// The path of `uri` (a ledger's own route, `/v1/X` or `/X`, with its query)
/// under ledger `name`'s prefix: how one node addresses a ledger on another.
pub fn path_of(name: &str, uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let rest = path
        .strip_prefix("/v1/")
        .unwrap_or(path.trim_start_matches('/'));
    let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    match uri.query() {
        Some(q) => format!("{PREFIX}{name}/{rest}?{q}"),
        None => format!("{PREFIX}{name}/{rest}"),
    }
}

/// Where `path` goes: the ledger's name (percent-decoded) and the path its
/// own router serves; `None` for a path outside `/v1/ledgers/{ledger}`.
pub fn split(path: &str) -> Option<(String, String)> {
    let after = path.strip_prefix(PREFIX)?;
    let (raw, rest) = after.split_once('/').unwrap_or((after, ""));
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?
        .into_owned();
    let first = rest.split('/').next().unwrap_or("");
    let inner = if rest.is_empty() || ROOT_PATHS.contains(&first) {
        format!("/{rest}")
    } else {
        format!("/v1/{rest}")
    };
    Some((name, inner))
}

async fn dispatch(State(table): State<Arc<Ledgers>>, req: Request) -> Response {
    let original = req.uri().clone();
    let Some((name, inner)) = split(original.path()) else {
        return Problem::not_found(format!("no route {}", original.path())).into_response();
    };
    let Some(ledger) = table.get(&name) else {
        return Problem::not_found(format!("this node does not serve a ledger named {name:?}"))
            .into_response();
    };
    if inner == "/" && !original.path().ends_with('/') {
        // The console's page: its assets are relative to the ledger's path.
        let to = format!("{}/", original.path());
        return axum::response::Redirect::permanent(&to).into_response();
    }
    let with_query = match original.query() {
        Some(q) => format!("{inner}?{q}"),
        None => inner,
    };
    let uri: axum::http::Uri = match with_query.parse() {
        Ok(uri) => uri,
        Err(_) => {
            return Problem::not_found(format!("no route {}", original.path())).into_response()
        }
    };
    // A fresh request: the outer route's path parameters (`ledger`, `rest`)
    // must not reach the ledger's own routes, whose extractors would count
    // them with their own (`/v1/intentions/{seq}` would see three).
    let (parts, body) = req.into_parts();
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = uri;
    *inner.version_mut() = parts.version;
    *inner.headers_mut() = parts.headers;
    match ledger.clone().oneshot(inner).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// A path outside `/v1/ledgers/{ledger}` on a node serving several ledgers.
async fn several(State(table): State<Arc<Ledgers>>, req: Request) -> Response {
    let names: Vec<&str> = table.keys().map(String::as_str).take(3).collect();
    Problem::not_found(format!(
        "this node serves {} ledgers: address one as /v1/ledgers/{{ledger}}{} (e.g. /v1/ledgers/{}{})",
        table.len(),
        req.uri().path(),
        names.first().copied().unwrap_or("shop"),
        req.uri().path()
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn paths_under_a_ledger_map_to_its_own_routes() {
        let s = split;
        assert_eq!(
            s("/v1/ledgers/shop/commands"),
            Some(("shop".into(), "/v1/commands".into()))
        );
        assert_eq!(
            s("/v1/ledgers/shop/entities/sku:A/audit"),
            Some(("shop".into(), "/v1/entities/sku:A/audit".into()))
        );
        assert_eq!(
            s("/v1/ledgers/shop/mcp"),
            Some(("shop".into(), "/mcp".into()))
        );
        assert_eq!(
            s("/v1/ledgers/shop/console/app.js"),
            Some(("shop".into(), "/console/app.js".into()))
        );
        assert_eq!(s("/v1/ledgers/shop"), Some(("shop".into(), "/".into())));
        assert_eq!(s("/v1/ledgers/shop/"), Some(("shop".into(), "/".into())));
        assert_eq!(
            s("/v1/ledgers/eu%2Fshop/state"),
            Some(("eu/shop".into(), "/v1/state".into()))
        );
        assert_eq!(s("/v1/state"), None);
        let uri = |u: &str| u.parse::<axum::http::Uri>().unwrap();
        assert_eq!(
            super::path_of("eu/shop", &uri("/v1/commands/batch?x=1")),
            "/v1/ledgers/eu%2Fshop/commands/batch?x=1"
        );
        // And back: the path maps to the same ledger and route.
        assert_eq!(
            s("/v1/ledgers/eu%2Fshop/commands/batch"),
            Some(("eu/shop".into(), "/v1/commands/batch".into()))
        );
        assert_eq!(s("/v1/ledgers/%FF/state"), None);
    }
}
