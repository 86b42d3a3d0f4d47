//! MCP (the Model Context Protocol, on the official Rust SDK `rmcp`): LLM
//! agents use parley as tools and resources, with no glue code. Two
//! transports: Streamable HTTP at `/mcp` on `parley serve` (the same bearer
//! tokens), and stdio from `parley mcp --server URL` (token in
//! `PARLEY_TOKEN`). Every tool is a request to the HTTP API as the caller
//! (`backend`), so identity, roles and validation are the API's own.

mod args;
pub(crate) mod backend;
pub(crate) mod http;
pub(crate) mod resources;
pub(crate) mod tools;

use crate::record::Role;
use std::sync::Arc;
use tools::McpTool;

use axum::http::Method;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResult, ServerCapabilities,
    ServerInfo, SubscribeRequestParams, Tool, ToolAnnotations, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{json, Value};

use backend::{Backend, Reply};
use tools::Plan;

/// How often a long tool reports progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// One MCP session's handler.
#[derive(Clone)]
pub(crate) struct Parley {
    backend: Arc<Backend>,
    /// In `parley serve`: the ledger, for resource update notifications.
    app: Option<crate::server::App>,
    subscriptions: Arc<tokio::sync::Mutex<resources::Subscriptions>>,
}

impl Parley {
    /// Inside `parley serve`: tools call `api` in process.
    pub(crate) fn local(app: crate::server::App, api: axum::Router) -> Parley {
        Parley {
            backend: Arc::new(Backend::Local(api)),
            app: Some(app),
            subscriptions: Arc::default(),
        }
    }

    /// For `parley mcp --server URL`.
    pub(crate) fn remote(url: String, token: String) -> Parley {
        Parley {
            backend: Arc::new(Backend::Remote {
                url,
                token,
                client: tokio::sync::Mutex::new(None),
            }),
            app: None,
            subscriptions: Arc::default(),
        }
    }

    /// The `Authorization` header of the HTTP request carrying this MCP
    /// request (Streamable HTTP only).
    fn auth(ctx: &RequestContext<RoleServer>) -> Option<String> {
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    async fn api(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, McpError> {
        self.backend
            .call(auth, method, path, body)
            .await
            .map_err(|e| McpError::internal_error(format!("parley's API: {e}"), None))
    }
}

/// A tool's failure the model reads and can act on.
fn refusal(what: &str, reply: &Reply) -> CallToolResult {
    let (code, detail) = reply.problem();
    let text = format!(
        "{what} refused ({} {code}): {detail}\nWhat to do: {}",
        reply.status,
        tools::hint(reply.code())
    );
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    r.structured_content = None;
    r
}

fn failed(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// A successful tool answer: the structured result, and as text a one-line
/// summary (when there is one) followed by the JSON.
fn success(value: Value) -> CallToolResult {
    let summary = value["decision"]["summary"]
        .as_str()
        .or_else(|| value["summary"].as_str())
        .map(|s| format!("{s}\n"));
    let mut text = summary.unwrap_or_default();
    if let Some(next) = value["decision"]["next"].as_str() {
        text.push_str(&format!("Next: {next}\n"));
    }
    text.push_str(&value.to_string());
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(value);
    r
}

impl Parley {
    async fn run_plan(
        &self,
        auth: Option<&str>,
        name: &str,
        plan: Plan,
    ) -> Result<CallToolResult, McpError> {
        match plan {
            Plan::Api {
                method,
                path,
                body,
                wrap,
            } => {
                let reply = self.api(auth, method, &path, body.as_ref()).await?;
                if !reply.ok() {
                    return Ok(refusal(name, &reply));
                }
                Ok(success(match wrap {
                    Some(key) => json!({ key: reply.body }),
                    None => reply.body,
                }))
            }
            Plan::Explain { seq } => self.explain(auth, seq).await,
            Plan::Workflow { run } => {
                let reply = self.api(auth, Method::GET, "/v1/workflows", None).await?;
                if !reply.ok() {
                    return Ok(refusal(name, &reply));
                }
                let mut body = reply.body;
                if let Some(run) = run {
                    let runs = body["runs"].as_array().cloned().unwrap_or_default();
                    let one: Vec<Value> = runs.into_iter().filter(|r| r["run"] == run).collect();
                    if one.is_empty() {
                        return Ok(failed(format!(
                            "no workflow run `{run}`; call workflow_status without `run` to list them"
                        )));
                    }
                    body["runs"] = Value::Array(one);
                }
                Ok(success(body))
            }
        }
    }

    /// A decision explained; an intention's seq explains its latest decision.
    async fn explain(&self, auth: Option<&str>, seq: u64) -> Result<CallToolResult, McpError> {
        let path = format!("/v1/decisions/{seq}");
        let reply = self.api(auth, Method::GET, &path, None).await?;
        if reply.ok() {
            return Ok(success(reply.body));
        }
        let path = format!("/v1/intentions/{seq}");
        let intention = self.api(auth, Method::GET, &path, None).await?;
        let latest = intention.body["decisions"]
            .as_array()
            .and_then(|d| d.last())
            .and_then(|d| d["seq"].as_u64());
        match latest {
            Some(d) => {
                let path = format!("/v1/decisions/{d}");
                let reply = self.api(auth, Method::GET, &path, None).await?;
                if reply.ok() {
                    Ok(success(reply.body))
                } else {
                    Ok(refusal("explain_decision", &reply))
                }
            }
            None if intention.ok() => Ok(failed(format!("intention {seq} has no decision yet"))),
            None => Ok(refusal("explain_decision", &reply)),
        }
    }

    /// Runs `fut`, sending progress notifications while it runs when the
    /// client asked for them (a progress token in the request).
    async fn with_progress<F: std::future::Future<Output = T>, T>(
        ctx: &RequestContext<RoleServer>,
        what: &str,
        fut: F,
    ) -> T {
        let Some(token) = ctx.meta.get_progress_token() else {
            return fut.await;
        };
        let peer = ctx.peer.clone();
        tokio::pin!(fut);
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                out = &mut fut => {
                    let _ = peer.notify_progress(ProgressNotificationParam::new(token.clone(), f64::from(ticks + 1))
                        .with_total(f64::from(ticks + 1))
                        .with_message(format!("{what}: done"))).await;
                    return out;
                }
                () = tokio::time::sleep(PROGRESS_EVERY) => {
                    ticks += 1;
                    let ms = u64::from(ticks) * 250;
                    let _ = peer.notify_progress(ProgressNotificationParam::new(token.clone(), f64::from(ticks))
                        .with_message(format!("{what}: replaying the log ({ms} ms so far)"))).await;
                }
            }
        }
    }

    /// A tool call: who is calling, the plan, the API requests.
    async fn call(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let auth = Parley::auth(&ctx);
        let Some(tool) = McpTool::parse(&request.name) else {
            return Err(McpError::invalid_params(
                format!("there is no tool `{}`; tools/list names them", request.name),
                None,
            ));
        };
        let name = tool.name();
        let me = self
            .api(auth.as_deref(), Method::GET, "/v1/whoami", None)
            .await?;
        if !me.ok() {
            return Ok(refusal(name, &me));
        }
        let identity = me.body["identity"].as_str().unwrap_or_default().to_owned();
        let role = serde_json::from_value::<Role>(me.body["role"].clone()).ok();
        if tool == McpTool::ResolveEscalation && role != Some(Role::Human) {
            return Ok(failed(format!(
                "resolve_escalation is for people: your token is `{identity}`, role {}. What to do: ask a human to decide (list_escalations shows what waits).",
                me.body["role"]
            )));
        }
        let state = self
            .api(auth.as_deref(), Method::GET, "/v1/records?limit=1", None)
            .await?;
        let head = state.body["head_seq"].as_u64().unwrap_or(0);
        let raw = Value::Object(request.arguments.unwrap_or_default());
        let plan = match tools::plan(tool, &raw, &identity, head) {
            Ok(p) => p,
            Err(why) => return Ok(failed(format!("{name} refused: {why}"))),
        };
        let run = self.run_plan(auth.as_deref(), name, plan);
        if tool == McpTool::Whatif {
            Parley::with_progress(&ctx, "what-if", run).await
        } else {
            run.await
        }
    }
}

impl ServerHandler for Parley {
    fn get_info(&self) -> ServerInfo {
        let mut caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources();
        if self.app.is_some() {
            caps = caps.enable_resources_subscribe();
        }
        ServerInfo::new(caps.build())
            .with_server_info(Implementation::new("parley", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = tools::catalog()
            .into_iter()
            .map(|s| {
                let input = s.input.as_object().cloned().unwrap_or_default();
                let output = s.output.as_object().cloned().unwrap_or_default();
                Tool::new(s.name.name(), s.description, Arc::new(input))
                    .with_title(s.title)
                    .with_raw_output_schema(Arc::new(output))
                    .with_annotations(
                        ToolAnnotations::new()
                            .read_only(s.read_only)
                            .destructive(false)
                            .idempotent(s.read_only)
                            .open_world(false),
                    )
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        match self.call(request, ctx).await {
            // The API could not be reached or answered oddly: tell the model
            // in words (hosts show protocol errors opaquely).
            Err(e) if e.code == rmcp::model::ErrorCode::INTERNAL_ERROR => Ok(failed(format!(
                "{}\nWhat to do: check that the parley server is running and reachable, then call again.",
                e.message
            ))),
            other => other,
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResult, McpError> {
        let auth = Parley::auth(&ctx);
        let path = resources::api_path(&request.uri).map_err(|e| {
            McpError::resource_not_found(e.to_string(), Some(json!({"uri": request.uri})))
        })?;
        let reply = self.api(auth.as_deref(), Method::GET, &path, None).await?;
        if !reply.ok() {
            let (code, detail) = reply.problem();
            let data = Some(json!({"uri": request.uri, "status": reply.status, "code": code}));
            return Err(if reply.status == 404 {
                McpError::resource_not_found(detail, data)
            } else {
                McpError::invalid_request(detail, data)
            });
        }
        Ok(resources::contents(&request.uri, &reply.body))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let Some(app) = &self.app else {
            return Err(McpError::invalid_request(
                "subscriptions need the Streamable HTTP transport of `parley serve`",
                None,
            ));
        };
        let entity = resources::entity_of(&request.uri)
            .map_err(|e| McpError::resource_not_found(e.to_string(), None))?;
        let mut subs = self.subscriptions.lock().await;
        subs.add(app, request.uri, entity, ctx.peer.clone())
            .map_err(|e| McpError::invalid_request(e.to_string(), None))
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.lock().await.remove(&request.uri);
        Ok(())
    }
}

/// What the server tells a model about itself at initialization.
const INSTRUCTIONS: &str = "parley is the coordination ledger of an online store's agents. \
Before you change anything (a price, a promotion, a reorder, a customer message), call \
announce_intention and act only if the decision is approved or modified; deferred and \
escalated mean wait (the decision's `next` says for what), rejected means do not act. \
Read the shared context with get_entity / get_context before deciding, publish what you \
learn with publish_fact, and ask explain_decision or audit_field why something happened. \
You write only as the agent your token names.";
