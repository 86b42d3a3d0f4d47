//! `parley run --server URL`, `parley resolve --server URL` and `parley
//! rules install --server URL`: the same
//! commands, sent to a running `parley serve` (token from `PARLEY_TOKEN`),
//! with the same output as on a local ledger.

use crate::command::CommandError;
use crate::vocab::ProblemCode;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{token_from_env, Answer, Client};
use crate::command::{Command, CommandEnvelope};
use crate::record::Body;

/// Commands sent per batch request (the server takes up to 256).
const BATCH: usize = 128;
/// Times a command whose outcome is unknown is sent again (with its own
/// idempotency key, so it is appended at most once), waiting as the server says.
const UNKNOWN_RETRIES: u32 = 3;

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

pub(super) async fn connect(url: &str) -> Result<Client> {
    let token = token_from_env()?;
    Ok(Client::connect(url, token).await?)
}

/// One output line: `{"line": n, "ok": …, …answer or code/error}`.
fn line(n: u64, ok: bool, mut fields: Value) -> Value {
    let mut out = json!({"line": n, "ok": ok});
    if let (Some(o), Some(f)) = (out.as_object_mut(), fields.as_object_mut()) {
        o.append(f);
    }
    out
}

fn failed(n: u64, code: &str, error: &str) -> Value {
    line(n, false, json!({"code": code, "error": error}))
}

/// Sends one command; its output line.
async fn one(client: &mut Client, n: u64, text: &str) -> Result<Value> {
    let a: Answer = client
        .request(Method::POST, "/v1/commands", Some(text.as_bytes().to_vec()))
        .await?;
    if a.status == 200 {
        return Ok(line(n, true, a.json()));
    }
    let (code, detail) = a.problem();
    Ok(failed(n, &code, &detail))
}

/// Sends a batch; one output line per command. A batch refused as a whole
/// (a malformed command, another identity's) is sent again one by one so
/// each line gets its own answer.
pub(super) async fn batch(client: &mut Client, lines: &[(u64, String)]) -> Result<Vec<Value>> {
    let mut body = Vec::from(&b"["[..]);
    for (i, (_, text)) in lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(text.as_bytes());
    }
    body.push(b']');
    let a = client
        .request(Method::POST, "/v1/commands/batch", Some(body))
        .await?;
    let items = a.json();
    match items.as_array() {
        Some(items) if a.status == 200 && items.len() == lines.len() => Ok(lines
            .iter()
            .zip(items)
            .map(|((n, _), item)| match item["ok"].as_bool() {
                Some(true) => line(*n, true, item["answer"].clone()),
                _ => {
                    let code = item["problem"]["type"]
                        .as_str()
                        .and_then(|t| t.strip_prefix("urn:parley:problem:"))
                        .unwrap_or("refused");
                    failed(*n, code, item["problem"]["detail"].as_str().unwrap_or(""))
                }
            })
            .collect()),
        _ if a.status == 400 || a.status == 403 => {
            let mut out = Vec::with_capacity(lines.len());
            for (n, text) in lines {
                out.push(one(client, *n, text).await?);
            }
            Ok(out)
        }
        _ => {
            let (code, detail) = a.problem();
            anyhow::bail!(
                "the server refused a batch ({}): {code}: {detail}",
                a.status
            )
        }
    }
}

/// A command the server could not confirm (`outcome-unknown`) is sent again
/// when it carries an idempotency key: the ledger appends it at most once, and
/// the retry's answer says whether it was there already. Without a key a
/// retry could append it twice, so the line says to check the log instead.
async fn settle_unknown(client: &mut Client, n: u64, text: &str, answer: Value) -> Result<Value> {
    if answer["code"] != "outcome-unknown" {
        return Ok(answer);
    }
    let keyed = serde_json::from_str::<Value>(text).is_ok_and(|v| v["idempotency_key"].is_string());
    if !keyed {
        let error = format!(
            "{} — this command has no idempotency key, so it is not sent again: look for it in the log (GET /v1/records) before sending it again",
            answer["error"].as_str().unwrap_or("")
        );
        return Ok(failed(n, ProblemCode::OutcomeUnknown.name(), &error));
    }
    for _ in 0..UNKNOWN_RETRIES {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        // A server that is down (being reopened) is unavailable too.
        let Ok(retry) = one(client, n, text).await else {
            continue;
        };
        // The ledger unavailable (not yet reopened) says nothing of the
        // first attempt: its outcome stays unknown.
        let unavailable = ["outcome-unknown", "ledger-failed", "ledger-closed", "busy"]
            .iter()
            .any(|c| retry["code"] == *c);
        if !unavailable {
            return Ok(retry);
        }
    }
    Ok(answer)
}

/// Sends the pending lines (malformed ones are answered here) and prints one
/// output line each, in line order; (failures, lines).
async fn send(
    client: &mut Client,
    pending: &mut Vec<(u64, Result<String, CommandError>)>,
    out: &mut impl Write,
) -> Result<(u64, u64)> {
    let mut good = Vec::with_capacity(pending.len());
    let mut lines = Vec::with_capacity(pending.len());
    for (n, r) in pending.drain(..) {
        match r {
            Ok(text) => good.push((n, text)),
            Err(e) => lines.push(failed(
                n,
                ProblemCode::InvalidCommand.name(),
                &e.to_string(),
            )),
        }
    }
    if !good.is_empty() {
        let answers = batch(client, &good).await?;
        for (answer, (n, text)) in answers.into_iter().zip(&good) {
            lines.push(settle_unknown(client, *n, text, answer).await?);
        }
    }
    lines.sort_by_key(|l| l["line"].as_u64());
    let mut failures = 0;
    for l in &lines {
        failures += u64::from(l["ok"] != Value::Bool(true));
        serde_json::to_writer(&mut *out, l)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok((failures, lines.len() as u64))
}

/// `parley run --server URL FILE`.
pub(super) fn run(url: &str, file: &Path) -> Result<ExitCode> {
    let mut input = super::write::open_input(file)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let mut client = connect(url).await?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut buf = Vec::new();
        // (line, the command's text or why the line is not one)
        let mut pending: Vec<(u64, Result<String, CommandError>)> = Vec::new();
        let (mut n, mut failures, mut commands) = (0u64, 0u64, 0u64);
        loop {
            let read = super::write::read_line(&mut *input, &mut buf)?;
            let done = read.is_none();
            if let Some(r) = read {
                n += 1;
                match r {
                    Ok(text) if text.is_empty() => {}
                    r => pending.push((n, r)),
                }
            }
            let flush = pending.len() >= BATCH || (done && !pending.is_empty());
            if flush {
                let (bad, sent) = send(&mut client, &mut pending, &mut out).await?;
                failures += bad;
                commands += sent;
            }
            if done {
                break;
            }
        }
        if failures > 0 {
            eprintln!("parley: {failures} of {commands} commands were not appended");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `parley resolve --server URL ID …`.
pub(super) fn resolve(
    url: &str,
    id: u64,
    option: u32,
    human: &str,
    why: &str,
    json_out: bool,
) -> Result<ExitCode> {
    let command = Command {
        envelope: CommandEnvelope {
            producer: human.to_owned(),
            ..CommandEnvelope::default()
        },
        body: Body::HumanResolution {
            intention: id,
            option,
            rationale: why.to_owned(),
        },
    };
    let answer = post_command(url, &command, &format!("escalation {id} not resolved"))?;
    if json_out {
        println!("{answer}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("resolution recorded at seq {}", answer["seq"]);
    for c in answer["caused"].as_array().into_iter().flatten() {
        if let Some(summary) = c["summary"].as_str() {
            println!("  {} {}", c["seq"], summary);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends one command to `POST /v1/commands`; its answer, or an error that
/// starts with `failure` and names the problem the server reported.
pub(super) fn post_command(url: &str, command: &Command, failure: &str) -> Result<Value> {
    let text = command.to_json();
    runtime()?.block_on(async move {
        let mut client = connect(url).await?;
        let a = client
            .request(Method::POST, "/v1/commands", Some(text.into_bytes()))
            .await?;
        if a.status != 200 {
            let (code, detail) = a.problem();
            anyhow::bail!("{failure}: {code}: {detail}");
        }
        Ok(a.json())
    })
}
