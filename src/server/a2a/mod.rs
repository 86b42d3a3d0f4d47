//! A2A 1.0: agents built on the Agent2Agent protocol talk to parley as a
//! peer. `GET /.well-known/agent-card.json` describes parley; `POST /a2a` is
//! the JSON-RPC binding (`SendMessage`, `SendStreamingMessage`, `GetTask`,
//! `ListTasks`, `CancelTask`, `SubscribeToTask`).
//!
//! A message carries one command (a data part holding the JSON of `POST
//! /v1/commands`); an intention becomes a task whose state follows its
//! decisions (`task.rs`), any other record a completed task. Tasks are read
//! from the ledger, never stored apart: they survive restarts and
//! failover, and replay is unaffected. Same tokens, roles and quotas as the
//! API: a token sees its own identity's tasks (admins and readers, all).

mod card;
mod rpc;
mod stream;
mod task;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::App;
use crate::entity::EntityRef;
use crate::reader::LedgerRead;
use crate::record::{Body, Role};
use rpc::RpcError;
use task::{TaskId, TaskRecords};

/// The most tasks one `ListTasks` page holds.
const PAGE_SIZE_MAX: u64 = 100;
/// The most records one `ListTasks` call scans for the caller's intentions.
const LIST_SCAN_MAX: u64 = 50_000;

/// The agent card and the JSON-RPC endpoint.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/.well-known/agent-card.json", get(card::agent_card))
        .route("/a2a", post(endpoint))
}

/// `POST /a2a`. JSON-RPC errors answer HTTP 200, but for a body that is not
/// a JSON-RPC request at all (`-32700`, `-32600`: 400).
async fn endpoint(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    // Over the command limit: the API's 413 (the body limit layer).
    let body = match super::writes::body_bytes(body) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    // The token first: a request without one learns nothing, not even
    // whether its body is a JSON-RPC request.
    let caller = match app.caller(&headers).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let req = match rpc::parse(&body) {
        Ok(r) => r,
        // Not a JSON-RPC request at all: the error object, with HTTP 400.
        Err((id, e)) => {
            let mut res = e.response(&id).into_json();
            if matches!(e, RpcError::Parse(_) | RpcError::InvalidRequest(_)) {
                *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            }
            return res;
        }
    };
    let version = headers.get("a2a-version").and_then(|v| v.to_str().ok());
    if let Err(e) = rpc::check_version(version) {
        return e.response(&req.id).into_json();
    }
    let id = req.id.clone();
    let answer = match req.method.as_str() {
        "SendStreamingMessage" => return stream::send_streaming(app, caller, req).await,
        "SubscribeToTask" => return stream::subscribe(app, caller, req).await,
        "SendMessage" => send_message(&app, &caller, &req.params)
            .await
            .map(|t| json!({"task": t})),
        "GetTask" => get_task(&app, &caller, &req.params).await,
        "ListTasks" => list_tasks(&app, &caller, &req.params).await,
        "CancelTask" => cancel_task(&app, &caller, &req.params).await,
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => Err(RpcError::PushNotSupported),
        "GetExtendedAgentCard" => Err(RpcError::NoExtendedCard),
        other => Err(RpcError::MethodNotFound(other.chars().take(64).collect())),
    };
    match answer {
        Ok(v) => rpc::result(&id, v).into_json(),
        Err(e) => e.response(&id).into_json(),
    }
}

/// A JSON-RPC answer: always HTTP 200 with the JSON body.
trait IntoJson {
    fn into_json(self) -> Response;
}

impl IntoJson for Value {
    fn into_json(self) -> Response {
        Json(self).into_response()
    }
}

/// Whether `caller` may see a task written by `producer`.
fn visible(caller: &Caller, producer: &str) -> bool {
    matches!(caller.role, Role::Admin | Role::Reader) || caller.identity == producer
}

/// The task `id` names, read from the log, if `caller` may see it.
async fn read_task(app: &App, caller: &Caller, id: &str) -> Result<TaskRecords, RpcError> {
    let not_found = || RpcError::TaskNotFound(id.chars().take(128).collect());
    let tid = TaskId::parse(id).ok_or_else(not_found)?;
    let t = load(app, tid).await?.ok_or_else(not_found)?;
    if !visible(caller, t.producer()) {
        return Err(not_found());
    }
    Ok(t)
}

/// The records of task `tid` (`None`: no such task in the log).
async fn load(app: &App, tid: TaskId) -> Result<Option<TaskRecords>, RpcError> {
    let seq = tid.seq();
    let loaded = app
        .blocking(move |ledger| {
            let head = ledger.head_seq();
            if seq > head {
                return Ok(None);
            }
            let mut seqs = vec![seq];
            if let TaskId::Intention(_) = tid {
                seqs.extend(
                    ledger
                        .entity_seqs(&EntityRef::Intention(seq))
                        .map_err(internal)?,
                );
                seqs.sort_unstable();
                seqs.dedup();
                seqs.retain(|s| *s <= head);
            }
            Ok(Some(ledger.read(&seqs).map_err(internal)?))
        })
        .await
        .map_err(|p| RpcError::Internal(p.detail))?;
    let Some(records) = loaded else {
        return Ok(None);
    };
    let mut first = None;
    let mut decisions = Vec::new();
    let mut withdrawn = None;
    for r in records {
        let is_first = r.record.envelope.seq == seq;
        match &r.record.body {
            Body::Decision { decision } if decision.intention == seq => decisions.push(r),
            Body::IntentionWithdrawn { intention } if *intention == seq => withdrawn = Some(r),
            b if is_first && is_task_kind(b) => first = Some(r),
            _ => {}
        }
    }
    let Some(first) = first else {
        return Ok(None);
    };
    let t = TaskRecords {
        first,
        decisions,
        withdrawn,
    };
    Ok((t.id() == tid).then_some(t))
}

fn internal(e: impl std::fmt::Display) -> super::problem::Problem {
    super::problem::Problem::internal(e.to_string())
}

/// The records a message may append (what a producer writes).
fn is_task_kind(b: &Body) -> bool {
    !b.is_system()
}

/// Appends `command` as `caller` (quota first). A refusal of the command
/// (4xx) is the caller's to answer; a busy or failing ledger is an
/// internal error.
async fn append(
    app: &App,
    caller: &Caller,
    command: crate::command::Checked,
) -> Result<Result<crate::answer::CommandAnswer, super::problem::Problem>, RpcError> {
    let busy =
        |p: super::problem::Problem| RpcError::Internal(format!("{}: {}", p.title, p.detail));
    super::writes::quota(app, caller, 1).map_err(busy)?;
    match super::writes::append_one(app, caller, command).await {
        Ok(a) => Ok(Ok(a)),
        Err(p) if p.status >= 500 || p.status == 429 => Err(busy(p)),
        Err(p) => Ok(Err(p)),
    }
}

/// `SendMessage`: the task the message's command made (or a failed one).
async fn send_message(
    app: &App,
    caller: &Caller,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    match stream::append_message(app, caller, params).await? {
        stream::Sent::Task(t) => Ok(t.task(None)),
        stream::Sent::Failed(v) => Ok(v),
    }
}

/// `GetTask`.
async fn get_task(
    app: &App,
    caller: &Caller,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let id = rpc::required(params, "id")?;
    let history = rpc::history_length(params)?;
    Ok(read_task(app, caller, id).await?.task(history))
}

/// `CancelTask`: the caller withdraws its pending intention (an
/// `intention_withdrawn` record; parley closes it at once) and gets the
/// canceled task. An ended task, a record, or an intention admission will
/// not let it withdraw (another agent's, one a person has settled) is not
/// cancelable, and the error says why.
async fn cancel_task(
    app: &App,
    caller: &Caller,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let id = rpc::required(params, "id")?;
    let t = read_task(app, caller, id).await?;
    let not = |why: String| RpcError::TaskNotCancelable {
        id: id.to_owned(),
        why,
    };
    let state = t.state();
    if state.is_terminal() {
        return Err(not(format!("it has ended ({})", state.name())));
    }
    let TaskId::Intention(seq) = t.id() else {
        return Err(not("a recorded fact or broadcast stays recorded".into()));
    };
    let command =
        json!({"producer": caller.identity, "kind": "intention_withdrawn", "intention": seq});
    let checked = crate::command::Command::parse_checked(&command.to_string())
        .map_err(|e| RpcError::Internal(e.to_string()))?;
    match append(app, caller, checked).await? {
        Ok(_) => Ok(read_task(app, caller, id).await?.task(None)),
        Err(p) => Err(not(p.detail)),
    }
}

/// `ListTasks`: the caller's tasks (intentions) from `pageToken` (a seq) on,
/// oldest first, filtered by `contextId` and `status`.
async fn list_tasks(
    app: &App,
    caller: &Caller,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let context = rpc::text(params, "contextId")?.map(str::to_owned);
    let status = rpc::text(params, "status")?
        .filter(|s| *s != "TASK_STATE_UNSPECIFIED")
        .map(str::to_owned);
    let size = rpc::count(params, "pageSize")?
        .unwrap_or(50)
        .clamp(1, PAGE_SIZE_MAX);
    let history = rpc::history_length(params)?;
    let from = match rpc::text(params, "pageToken")?.filter(|t| !t.is_empty()) {
        Some(t) => t.parse::<u64>().map_err(|_| {
            RpcError::InvalidParams("`pageToken` is one a ListTasks answer gave".into())
        })?,
        None => 1,
    };
    let who = (!matches!(caller.role, Role::Admin | Role::Reader)).then(|| caller.identity.clone());
    let (seqs, next) = app
        .blocking(move |ledger| {
            let head = ledger.head_seq();
            let to = head.min(from.saturating_add(LIST_SCAN_MAX - 1));
            let mut found = Vec::new();
            let mut next = (to < head).then_some(to + 1);
            ledger
                .scan_until(from, to, &mut |r| {
                    let mine = who
                        .as_deref()
                        .is_none_or(|w| w == r.record.envelope.producer);
                    let ctx_ok = context
                        .as_deref()
                        .is_none_or(|c| r.record.envelope.correlation.as_deref() == Some(c));
                    if matches!(r.record.body, Body::Intend { .. }) && mine && ctx_ok {
                        found.push(r.record.envelope.seq);
                    }
                    if found.len() as u64 >= size {
                        next = Some(r.record.envelope.seq + 1).filter(|s| *s <= head);
                        return std::ops::ControlFlow::Break(());
                    }
                    std::ops::ControlFlow::Continue(())
                })
                .map_err(internal)?;
            Ok((found, next))
        })
        .await
        .map_err(|p| RpcError::Internal(p.detail))?;
    let mut tasks = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(t) = load(app, TaskId::Intention(seq)).await? {
            if status.as_deref().is_none_or(|s| s == t.state().name()) {
                tasks.push(t.task(history));
            }
        }
    }
    let n = tasks.len();
    Ok(
        json!({"tasks": tasks, "nextPageToken": next.map_or(String::new(), |s| s.to_string()), "pageSize": n}),
    )
}
