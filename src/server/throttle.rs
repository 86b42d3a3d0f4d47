//! Repeated bad tokens: an address whose requests failed authentication
//! (401) more than `per_min` times in a one-minute window gets 429 for every
//! request until the window ends, before any token of its is looked at. The
//! failures and the refusals are counted in `/metrics`. A valid token is
//! never slowed by someone else's failures from another address. The
//! probes (`/healthz`, `/readyz`) and `/metrics` are never held, so
//! monitoring keeps working.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse as _;

use super::problem::Problem;
use super::App;
use crate::vocab::ProblemCode;

/// Authentication failures an address may make per minute (the default).
pub const BAD_TOKENS_PER_MIN: u32 = 60;
/// Addresses tracked at once; past it, windows that ended are dropped and,
/// if none has, the oldest.
const ADDRESSES_MAX: usize = 65_536;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// The failures of each address in its current window.
pub struct BadTokens {
    per_min: u32,
    windows: Mutex<BTreeMap<IpAddr, Window>>,
}

#[allow(clippy::disallowed_methods)] // the server's own throttle, not the ledger's time
fn now() -> Instant {
    Instant::now()
}

impl BadTokens {
    /// `per_min` 0 turns the throttle off.
    pub fn new(per_min: u32) -> BadTokens {
        BadTokens {
            per_min,
            windows: Mutex::new(BTreeMap::new()),
        }
    }

    /// How long `ip` must wait, when it is over its failures.
    fn blocked(&self, ip: IpAddr, at: Instant) -> Option<Duration> {
        if self.per_min == 0 {
            return None;
        }
        let windows = self.windows.lock().ok()?;
        let w = windows.get(&ip)?;
        let ends = w.start + WINDOW;
        (w.failures >= self.per_min && at < ends).then(|| ends - at)
    }

    fn failed(&self, ip: IpAddr, at: Instant) {
        if self.per_min == 0 {
            return;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() >= ADDRESSES_MAX && !windows.contains_key(&ip) {
            windows.retain(|_, w| at < w.start + WINDOW);
            if windows.len() >= ADDRESSES_MAX {
                let oldest = windows.iter().min_by_key(|(_, w)| w.start).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    windows.remove(&k);
                }
            }
        }
        let w = windows.entry(ip).or_insert(Window {
            start: at,
            failures: 0,
        });
        if at >= w.start + WINDOW {
            *w = Window {
                start: at,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
        debug_assert!(windows.len() <= ADDRESSES_MAX);
    }
}

/// The middleware: refuses an address over its failures, counts 401s.
pub async fn guard(
    State(app): State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Routers built without the peer's address (in-process use) are not
    // throttled, nor the probes and /metrics (monitoring keeps working).
    let open = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .filter(|_| !open);
    if let Some(ip) = peer {
        if let Some(wait) = app.bad_tokens.blocked(ip, now()) {
            app.metrics.auth_throttled.inc();
            let mut p = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                ProblemCode::RateLimited,
                "Too many bad tokens",
                format!(
                    "more than {} requests from {ip} failed authentication this minute; retry later",
                    app.bad_tokens.per_min
                ),
            );
            p.retry_after_s = Some(
                u32::try_from(wait.as_secs())
                    .unwrap_or(60)
                    .saturating_add(1),
            );
            return p.into_response();
        }
    }
    let res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        app.metrics.auth_failures.inc();
        if let Some(ip) = peer {
            app.bad_tokens.failed(ip, now());
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_failures_waits_for_its_window_and_others_do_not() {
        let t = BadTokens::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = now();
        for _ in 0..3 {
            assert_eq!(t.blocked(a, t0), None);
            t.failed(a, t0);
        }
        assert!(t.blocked(a, t0).is_some());
        assert_eq!(t.blocked(b, t0), None, "another address is not held");
        assert_eq!(
            t.blocked(a, t0 + WINDOW),
            None,
            "the next window starts afresh"
        );
        t.failed(a, t0 + WINDOW);
        assert_eq!(t.blocked(a, t0 + WINDOW), None);
        assert_eq!(BadTokens::new(0).blocked(a, t0), None);
    }
}
