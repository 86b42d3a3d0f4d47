//! A message's command appended (`append_message`, for both send methods),
//! and a task followed over Server-Sent Events: `SendStreamingMessage` and
//! `SubscribeToTask` send the task, then a status update at every decision
//! about it, until a terminal state (or the server stops: the client
//! resubscribes). Subscribed before the task is read, so no decision slips
//! between the two.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{json, Map, Value};

use super::rpc::{self, Request, RpcError};
use super::task::{TaskId, TaskRecords};
use super::{read_task, IntoJson};
use crate::record::Body;
use crate::sequencer::projector::Committed;
use crate::server::auth::Caller;
use crate::server::App;

/// What a message made: a task in the ledger, or a failed task that was
/// never recorded (a message parley cannot take, a refused command).
pub(super) enum Sent {
    Task(Box<TaskRecords>),
    Failed(Value),
}

/// A failed, unrecorded task answering message `message_id`.
fn failed(message_id: &str, context: &str, text: String) -> Value {
    let id = format!("message-{message_id}");
    json!({
        "id": id,
        "contextId": context,
        "status": {"state": "TASK_STATE_FAILED", "message": {
            "messageId": format!("{id}-answer"), "contextId": context, "taskId": id,
            "role": "ROLE_AGENT", "parts": [{"text": text}]}},
    })
}

const ACCEPTS: &str = "parley takes one data part holding one command: the JSON of POST /v1/commands, e.g. {\"kind\":\"intend\",\"intention\":{…}} or {\"kind\":\"fact\",…} (the producer defaults to this token's identity); see the agent card's skills";

/// Appends the command the message carries, as the caller, and reads its task.
pub(super) async fn append_message(
    app: &App,
    caller: &Caller,
    params: &Map<String, Value>,
) -> Result<Sent, RpcError> {
    let message = match params.get("message") {
        Some(Value::Object(m)) => m,
        _ => {
            return Err(RpcError::InvalidParams(
                "`message` (an object) is required".into(),
            ))
        }
    };
    let message_id = rpc::text(message, "messageId")?
        .filter(|m| crate::bounds::check_id("messageId", m).is_ok() && m.len() <= 128)
        .ok_or_else(|| {
            RpcError::InvalidParams(
                "`message.messageId` (a non-blank id of at most 128 bytes) is required".into(),
            )
        })?;
    if rpc::text(message, "taskId")?.is_some_and(|t| !t.is_empty()) {
        return Err(RpcError::Unsupported("parley tasks take no follow-up messages: a person settles an escalation (the console, the API or `parley resolve`), and a new intention is a new message".into()));
    }
    // ProtoJSON writes an unset string as "" (or leaves it out): both unset.
    let context = match rpc::text(message, "contextId")?.filter(|c| !c.is_empty()) {
        Some(c) => c.to_owned(),
        None => derived_context(&caller.identity, message_id),
    };
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(mut command) = parts
        .iter()
        .find_map(|p| p.get("data").and_then(Value::as_object))
        .cloned()
    else {
        let what = if parts.iter().any(|p| p.get("text").is_some()) {
            "a text part"
        } else {
            "no data part"
        };
        return Ok(Sent::Failed(failed(
            message_id,
            &context,
            format!("the message has {what}: {ACCEPTS}"),
        )));
    };
    fill(&mut command, caller, &context, message_id)?;
    let text = Value::Object(command).to_string();
    let checked = crate::command::Command::parse_checked(&text)
        .map_err(|e| RpcError::InvalidParams(format!("the data part is not a command: {e}")))?;
    let ack = match super::append(app, caller, checked).await? {
        Ok(a) => a,
        Err(p) => {
            let text = format!("refused ({}): {}", p.code.name(), p.detail);
            return Ok(Sent::Failed(failed(message_id, &context, text)));
        }
    };
    let id = match ack.decision {
        Some(_) => TaskId::Intention(ack.seq),
        None => TaskId::Record(ack.seq),
    };
    let task = read_task(app, caller, &id.text()).await?;
    Ok(Sent::Task(Box::new(task)))
}

/// A context id for a message that names none: stable for (identity, message).
fn derived_context(identity: &str, message_id: &str) -> String {
    let h = blake3::hash(format!("{identity}\0{message_id}").as_bytes());
    format!("ctx-{}", &crate::record::to_hex(h.as_bytes())[..16])
}

/// The producer (the caller's identity), the correlation (the context) and
/// the idempotency key (the message id) a command leaves out.
fn fill(
    command: &mut Map<String, Value>,
    caller: &Caller,
    context: &str,
    message_id: &str,
) -> Result<(), RpcError> {
    match command.get("producer") {
        None => drop(command.insert("producer".into(), json!(caller.identity))),
        Some(Value::String(p)) if *p == caller.identity => {}
        Some(p) => {
            return Err(RpcError::InvalidParams(format!(
                "this token writes as `{}`, not as {p}",
                caller.identity
            )));
        }
    }
    match command.get("correlation") {
        None => drop(command.insert("correlation".into(), json!(context))),
        Some(Value::String(c)) if c == context => {}
        Some(c) => {
            return Err(RpcError::InvalidParams(format!(
                "the command's correlation {c} is not the message's contextId `{context}`"
            )));
        }
    }
    command
        .entry("idempotency_key")
        .or_insert_with(|| json!(format!("a2a:{message_id}")));
    Ok(())
}

/// `SendStreamingMessage`.
pub(super) async fn send_streaming(app: App, caller: Caller, req: Request) -> Response {
    // Subscribed before the append, so the first decisions are not missed.
    let rx = app.ledger.subscribe();
    match append_message(&app, &caller, &req.params).await {
        Ok(Sent::Task(t)) => follow(app, caller, req.id, *t, rx),
        Ok(Sent::Failed(v)) => one_event(&req.id, json!({"task": v})),
        Err(e) => e.response(&req.id).into_json(),
    }
}

/// `SubscribeToTask`: a task that ended cannot be subscribed to.
pub(super) async fn subscribe(app: App, caller: Caller, req: Request) -> Response {
    let rx = app.ledger.subscribe();
    let id = match rpc::required(&req.params, "id") {
        Ok(id) => id.to_owned(),
        Err(e) => return e.response(&req.id).into_json(),
    };
    let t = match read_task(&app, &caller, &id).await {
        Ok(t) => t,
        Err(e) => return e.response(&req.id).into_json(),
    };
    if t.state().is_terminal() {
        let e = RpcError::Unsupported(format!(
            "task `{id}` has ended ({}): read it with GetTask",
            t.state().name()
        ));
        return e.response(&req.id).into_json();
    }
    follow(app, caller, req.id, t, rx)
}

fn event(id: &Value, result: Value) -> Event {
    Event::default().data(rpc::result(id, result).to_string())
}

fn one_event(id: &Value, result: Value) -> Response {
    let events = stream::iter([Ok::<_, Infallible>(event(id, result))]);
    Sse::new(events).into_response()
}

/// Where a followed task's stream stands.
struct Follow {
    app: App,
    caller: Caller,
    id: Value,
    task: TaskRecords,
    rx: Option<tokio::sync::broadcast::Receiver<Arc<Committed>>>,
    started: bool,
    done: bool,
}

/// The task now, then a status update at each decision until it ends.
fn follow(
    app: App,
    caller: Caller,
    id: Value,
    task: TaskRecords,
    rx: Option<tokio::sync::broadcast::Receiver<Arc<Committed>>>,
) -> Response {
    let f = Follow {
        app,
        caller,
        id,
        task,
        rx,
        started: false,
        done: false,
    };
    let events = stream::unfold(f, |mut f| async move {
        let ev = next(&mut f).await?;
        Some((Ok::<_, Infallible>(ev), f))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn next(f: &mut Follow) -> Option<Event> {
    if f.done {
        return None;
    }
    if !f.started {
        f.started = true;
        f.done = f.task.state().is_terminal();
        return Some(event(&f.id, json!({"task": f.task.task(None)})));
    }
    let seq = f.task.id().seq();
    let known = f.task.decisions.len();
    loop {
        let batch = {
            let rx = f.rx.as_mut()?;
            let mut closing = f.app.closing.clone();
            tokio::select! {
                r = rx.recv() => r,
                _ = closing.wait_for(|c| *c) => return None,
            }
        };
        let about_it = match &batch {
            Ok(b) => b.records.iter().any(|r| matches!(&r.record.body, Body::Decision { decision } if decision.intention == seq)),
            // Fell behind: read the task again.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
            Err(_) => return None,
        };
        if !about_it {
            continue;
        }
        let now = read_task(&f.app, &f.caller, &f.task.id().text())
            .await
            .ok()?;
        if now.decisions.len() == known {
            continue;
        }
        f.task = now;
        f.done = f.task.state().is_terminal();
        let update = json!({"statusUpdate": {
            "taskId": f.task.id().text(),
            "contextId": f.task.context_id(),
            "status": f.task.status(),
        }});
        return Some(event(&f.id, update));
    }
}
