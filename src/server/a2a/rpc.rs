//! The JSON-RPC 2.0 envelope of A2A 1.0: requests, results and the
//! specification's error codes.

use serde_json::{json, Value};

/// The A2A protocol version parley speaks (major 1).
pub(super) const PROTOCOL_VERSION: &str = "1.0";

/// A JSON-RPC error, with the code the A2A specification gives it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum RpcError {
    #[error("the body is not JSON: {0}")]
    Parse(String),
    #[error("not a JSON-RPC 2.0 request: {0}")]
    InvalidRequest(String),
    #[error("no method `{0}`: parley serves SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask and SubscribeToTask")]
    MethodNotFound(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("no task `{0}` visible to this token")]
    TaskNotFound(String),
    #[error("task `{id}` cannot be canceled: {why}")]
    TaskNotCancelable { id: String, why: String },
    #[error("push notifications are not supported: follow a task with SendStreamingMessage or SubscribeToTask")]
    PushNotSupported,
    #[error("{0}")]
    Unsupported(String),
    #[error("no extended agent card is configured")]
    NoExtendedCard,
    #[error("A2A-Version {0}: parley speaks A2A {PROTOCOL_VERSION} (send the header `A2A-Version: {PROTOCOL_VERSION}`)")]
    Version(String),
    #[error("{0}")]
    Internal(String),
}

impl RpcError {
    pub(super) fn code(&self) -> i64 {
        match self {
            RpcError::Parse(_) => -32700,
            RpcError::InvalidRequest(_) => -32600,
            RpcError::MethodNotFound(_) => -32601,
            RpcError::InvalidParams(_) => -32602,
            RpcError::Internal(_) => -32603,
            RpcError::TaskNotFound(_) => -32001,
            RpcError::TaskNotCancelable { .. } => -32002,
            RpcError::PushNotSupported => -32003,
            RpcError::Unsupported(_) => -32004,
            RpcError::NoExtendedCard => -32007,
            RpcError::Version(_) => -32009,
        }
    }

    /// The error response to request `id`.
    pub(super) fn response(&self, id: &Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": self.code(), "message": self.to_string()}})
    }
}

/// A request's id (a string or number; `null` when it could not be read).
pub(super) fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A parsed request: its id, method and params (an object).
pub(super) struct Request {
    pub(super) id: Value,
    pub(super) method: String,
    pub(super) params: serde_json::Map<String, Value>,
}

/// Reads a JSON-RPC 2.0 request; the error carries the id when one was read.
pub(super) fn parse(body: &[u8]) -> Result<Request, (Value, RpcError)> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| (Value::Null, RpcError::Parse(e.to_string())))?;
    let Some(o) = v.as_object() else {
        let why = if v.is_array() {
            "batches are not served: send one request per call"
        } else {
            "a request is a JSON object"
        };
        return Err((Value::Null, RpcError::InvalidRequest(why.into())));
    };
    let id = match o.get("id") {
        Some(id @ Value::String(_)) => id.clone(),
        // An integer, also as JSON Schema counts one (`-2670.0`).
        Some(Value::Number(n))
            if n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0) =>
        {
            Value::Number(n.clone())
        }
        Some(Value::Null) | None => {
            return Err((
                Value::Null,
                RpcError::InvalidRequest(
                    "`id` (a string or number) is required: A2A has no notifications".into(),
                ),
            ))
        }
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::InvalidRequest("`id` is a string or an integer (at most 64 bits)".into()),
            ))
        }
    };
    let bad = |why: &str| Err((id.clone(), RpcError::InvalidRequest(why.into())));
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad("`jsonrpc` must be \"2.0\"");
    }
    let Some(method) = o.get("method").and_then(Value::as_str) else {
        return bad("`method` (a string) is required");
    };
    let params = match o.get("params") {
        None => serde_json::Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => {
            return Err((
                id.clone(),
                RpcError::InvalidParams("`params` is an object".into()),
            ))
        }
    };
    Ok(Request {
        id,
        method: method.to_owned(),
        params,
    })
}

/// The `A2A-Version` header must name major version 1.
pub(super) fn check_version(header: Option<&str>) -> Result<(), RpcError> {
    let Some(v) = header.map(str::trim).filter(|v| !v.is_empty()) else {
        return Err(RpcError::Version(
            "missing (a client without it speaks 0.3)".into(),
        ));
    };
    let major = v.split('.').next().unwrap_or("");
    if major == "1"
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(());
    }
    Err(RpcError::Version(format!("`{v}` is not supported")))
}

/// A string param, if given.
pub(super) fn text<'a>(
    p: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, RpcError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RpcError::InvalidParams(format!("`{name}` is a string"))),
    }
}

/// A string param that must be given.
pub(super) fn required<'a>(
    p: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a str, RpcError> {
    text(p, name)?.ok_or_else(|| RpcError::InvalidParams(format!("`{name}` is required")))
}

/// `historyLength`: how many history messages a task carries (`None`: all).
pub(super) fn history_length(
    p: &serde_json::Map<String, Value>,
) -> Result<Option<usize>, RpcError> {
    Ok(count(p, "historyLength")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
}

/// A non-negative integer param, if given (ProtoJSON writes int64 as a string).
pub(super) fn count(
    p: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, RpcError> {
    let bad = || RpcError::InvalidParams(format!("`{name}` is a non-negative integer"));
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_versions() {
        assert!(matches!(
            parse(b"{"),
            Err((Value::Null, RpcError::Parse(_)))
        ));
        assert!(matches!(
            parse(b"[]"),
            Err((_, RpcError::InvalidRequest(_)))
        ));
        let e = parse(br#"{"jsonrpc":"1.0","id":7,"method":"GetTask"}"#)
            .err()
            .unwrap();
        assert_eq!((e.0, e.1.code()), (json!(7), -32600));
        let e = parse(br#"{"jsonrpc":"2.0","id":"a","method":"GetTask","params":[1]}"#)
            .err()
            .unwrap();
        assert_eq!(e.1.code(), -32602);
        let r = parse(br#"{"jsonrpc":"2.0","id":"a","method":"GetTask","params":{"id":"x"}}"#)
            .ok()
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.params["id"].as_str()),
            ("GetTask", Some("x"))
        );
        assert_eq!(check_version(Some("1.0")), Ok(()));
        assert_eq!(check_version(Some("1.0.1")), Ok(()));
        assert_eq!(check_version(None).unwrap_err().code(), -32009);
        assert_eq!(check_version(Some("0.3")).unwrap_err().code(), -32009);
        assert_eq!(check_version(Some("1.x")).unwrap_err().code(), -32009);
    }
}
