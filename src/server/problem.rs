//! Errors as RFC 9457 `application/problem+json`, with a stable `type` per
//! kind of error, derived from the core's typed errors.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::command::CommandError;
use crate::resolver::Refusal;
use crate::sequencer::AppendError;
use crate::vocab::ProblemCode;

/// The base of every problem `type` URI.
const TYPE_BASE: &str = "urn:parley:problem:";

/// One problem: status, stable type, a human title and the specific detail.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The code `type_uri` ends in.
    #[serde(skip)]
    pub code: ProblemCode,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Seconds to wait before retrying (429, 503).
    #[serde(skip)]
    pub retry_after_s: Option<u32>,
}

/// A response's problem code, kept for the metrics.
#[derive(Clone, Copy, Debug)]
pub struct Rejected(pub ProblemCode);

impl Problem {
    pub fn new(
        status: StatusCode,
        code: ProblemCode,
        title: &'static str,
        detail: String,
    ) -> Problem {
        Problem {
            type_uri: format!("{TYPE_BASE}{code}"),
            code,
            title,
            status: status.as_u16(),
            detail,
            retry_after_s: None,
        }
    }

    pub fn unauthorized(detail: &str) -> Problem {
        let status = StatusCode::UNAUTHORIZED;
        Problem::new(
            status,
            ProblemCode::Unauthorized,
            "Not authenticated",
            detail.to_owned(),
        )
    }

    pub fn forbidden(code: ProblemCode, detail: String) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, code, "Not allowed", detail)
    }

    pub fn bad_request(code: ProblemCode, detail: String) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    /// A well-formed request whose content the server refuses (a
    /// combination the documented schema cannot state, a state it conflicts with).
    pub fn unprocessable(code: ProblemCode, detail: String) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "Unprocessable",
            detail,
        )
    }

    pub fn not_found(detail: String) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::NotFound,
            "Not found",
            detail,
        )
    }

    pub fn busy(detail: String) -> Problem {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        let mut p = Problem::new(status, ProblemCode::Busy, "Busy", detail);
        p.retry_after_s = Some(1);
        p
    }

    /// The published context has not reached what was durable when the
    /// read arrived: answering would hide the caller's own writes.
    pub fn context_behind(applied_seq: u64, durable_seq: u64) -> Problem {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        let detail = format!(
            "the shared context holds seq {applied_seq} of the durable seq {durable_seq} this read must include; retry"
        );
        let mut p = Problem::new(status, ProblemCode::ContextBehind, "Context behind", detail);
        p.retry_after_s = Some(1);
        p
    }

    pub fn internal(detail: String) -> Problem {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Problem::new(status, ProblemCode::Internal, "Internal error", detail)
    }
}

impl From<crate::log::LogError> for Problem {
    /// The log could not be read (damage, or an I/O error): the server's fault.
    fn from(e: crate::log::LogError) -> Problem {
        tracing::error!(error = %e, "reading the log");
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Problem::new(
            status,
            ProblemCode::LogUnreadable,
            "The log could not be read",
            e.to_string(),
        )
    }
}

impl From<crate::audit::AuditError> for Problem {
    fn from(e: crate::audit::AuditError) -> Problem {
        use crate::audit::AuditError;
        match e {
            AuditError::UnknownEntity(_) => Problem::not_found(e.to_string()),
            // The entity has no such field: a sub-resource that is not there.
            AuditError::UnknownField { .. } => Problem::new(
                StatusCode::NOT_FOUND,
                ProblemCode::UnknownField,
                "Not found",
                e.to_string(),
            ),
            AuditError::Log(l) => Problem::from(l),
        }
    }
}

impl From<CommandError> for Problem {
    fn from(e: CommandError) -> Problem {
        match e {
            // Fields that agree with the schema but not with each other.
            CommandError::Inconsistent(_) => {
                Problem::unprocessable(ProblemCode::InvalidCommand, e.to_string())
            }
            _ => Problem::bad_request(ProblemCode::InvalidCommand, e.to_string()),
        }
    }
}

impl From<&AppendError> for Problem {
    fn from(e: &AppendError) -> Problem {
        let code = crate::answer::code(e);
        let (status, title) = match e {
            AppendError::Invalid(CommandError::Inconsistent(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Invalid command")
            }
            AppendError::Invalid(_) => (StatusCode::BAD_REQUEST, "Invalid command"),
            // The record's encoded size: a limit no schema states exactly.
            AppendError::Record(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Command too large"),
            // The token's credential was revoked after the request was let in.
            AppendError::Refused(Refusal::CredentialRevoked { .. }) => {
                (StatusCode::UNAUTHORIZED, "Not authenticated")
            }
            AppendError::Refused(r) if r.is_forbidden() => (StatusCode::FORBIDDEN, "Not allowed"),
            AppendError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Refused"),
            AppendError::TimeBackwards { .. }
            | AppendError::TimeAhead { .. }
            | AppendError::TimeMissing
            | AppendError::TimeJump { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Wrong time"),
            AppendError::KeyConflict { .. } => (StatusCode::CONFLICT, "Idempotency key reused"),
            AppendError::Busy | AppendError::NotTheWriter(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Busy")
            }
            AppendError::Failed(_) | AppendError::Closed => {
                (StatusCode::SERVICE_UNAVAILABLE, "Ledger unavailable")
            }
            AppendError::OutcomeUnknown(_) => (StatusCode::SERVICE_UNAVAILABLE, "Outcome unknown"),
        };
        let mut p = Problem::new(status, code, title, e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // An unknown outcome needs the ledger reopened before a retry.
            p.retry_after_s = Some(if code == ProblemCode::OutcomeUnknown {
                5
            } else {
                1
            });
        }
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        // For the rejected-requests metric (read by the request middleware).
        res.extensions_mut().insert(Rejected(self.code));
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}
