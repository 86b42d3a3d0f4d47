//! A small HTTP/1.1 client for `parley serve` (hyper, one keep-alive
//! connection), used by `parley run --server` and `parley resolve --server`.
//! Plain `http://` only: put TLS in a proxy in front of the server.

use crate::vocab::ProblemCode;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri};

/// How often a request is sent again after 429 or 503.
const RETRIES: u32 = 10;

/// The largest answer read (a batch of 256 answers fits many times over).
const ANSWER_BYTES_MAX: usize = 64 << 20;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("`{0}` is not a server address; give one like http://127.0.0.1:7420")]
    BadUrl(String),
    #[error("connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("request to {addr} failed: {reason}")]
    Request { addr: String, reason: String },
    #[error("the answer from {addr} is larger than {ANSWER_BYTES_MAX} bytes")]
    TooLarge { addr: String },
}

/// An answer: status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` in seconds (429, 503).
    pub retry_after_s: Option<u64>,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// For a problem+json answer: (code, detail).
    /// The problem code of a refusal, if it is one parley names.
    pub(crate) fn code(&self) -> Option<ProblemCode> {
        self.json()["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:parley:problem:"))
            .and_then(ProblemCode::parse)
    }

    pub(crate) fn problem(&self) -> (String, String) {
        let v = self.json();
        let code = v["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:parley:problem:"))
            .map_or_else(|| format!("http-{}", self.status), str::to_owned);
        let detail = v["detail"].as_str().map_or_else(
            || String::from_utf8_lossy(&self.body).into_owned(),
            str::to_owned,
        );
        (code, detail)
    }
}

/// One connection to a server, with the bearer token every request carries.
pub(crate) struct Client {
    addr: String,
    token: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connects to `url` (`http://host:port`).
    pub(crate) async fn connect(url: &str, token: String) -> Result<Client, ClientError> {
        let bad = || ClientError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let connect_err = |e: &dyn std::fmt::Display| ClientError::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        };
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| connect_err(&e))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| connect_err(&e))?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server closes.
            let _ = conn.await;
        });
        Ok(Client {
            addr,
            token,
            sender,
        })
    }

    /// One request, sent again (at most `RETRIES` times) while the server
    /// answers 429 or 503 with `Retry-After`. An unknown outcome (503
    /// `outcome-unknown`) is never sent again here: only a caller that knows
    /// the command carries an idempotency key may retry it.
    pub(crate) async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut tries = 0;
        loop {
            let a = self.once(method.clone(), path, body.clone()).await?;
            let unknown = a.status == 503 && a.code() == Some(ProblemCode::OutcomeUnknown);
            match a.retry_after_s {
                Some(s) if tries < RETRIES && !unknown && (a.status == 429 || a.status == 503) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(s.clamp(1, 60))).await;
                }
                _ => return Ok(a),
            }
        }
    }

    /// One request; `body` is JSON.
    async fn once(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let failed = |e: &dyn std::fmt::Display| ClientError::Request {
            addr: self.addr.clone(),
            reason: e.to_string(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| failed(&e))?;
        self.sender.ready().await.map_err(|e| failed(&e))?;
        let res = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| failed(&e))?;
        let status = res.status().as_u16();
        let retry_after_s = res
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let limited = http_body_util::Limited::new(res.into_body(), ANSWER_BYTES_MAX);
        let body = limited.collect().await.map_err(|_| ClientError::TooLarge {
            addr: self.addr.clone(),
        })?;
        Ok(Answer {
            status,
            body: body.to_bytes().to_vec(),
            retry_after_s,
        })
    }
}

/// The token for `--server`, from `PARLEY_TOKEN`.
pub(crate) fn token_from_env() -> Result<String, NoToken> {
    match std::env::var("PARLEY_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => Err(NoToken),
    }
}

/// `PARLEY_TOKEN` is unset or empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("set PARLEY_TOKEN to your token (`parley token create` prints one) to use --server")]
pub(crate) struct NoToken;
