// parley operator console: plain JavaScript over the JSON API (/v1/…) and
// its event stream. The token lives in sessionStorage for this browser tab's
// session only and is sent in the Authorization header, never in a URL.
"use strict";

// On a node serving several ledgers the console lives at /v1/ledgers/{name}/
// and talks to that ledger's API: /v1/X is then /v1/ledgers/{name}/X.
const BASE = (location.pathname.match(/^\/v1\/ledgers\/[^/]+/) || [""])[0];
const url = (path) => (BASE ? BASE + path.replace(/^\/v1/, "") : path);
// A token belongs to one ledger: each ledger's console keeps its own.
const TOKEN_KEY = "parley.token" + BASE;

const S = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
  lastSeq: 0,
  stream: null,
  feed: [],          // recent intentions and decisions, newest last (bounded)
  intents: new Map(), // intention seq -> {agent, action, reasoning}
  refreshTimer: null,
};
const FEED_MAX = 500;
const money = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });

// ---------------------------------------------------------------- helpers --
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}
const $ = (sel) => document.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmtMoney = (minor) => money.format(Number(minor) / 100);
const fmtTime = (ms) => new Date(ms).toLocaleString();
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
function until(ms) {
  const s = Math.round((ms - Date.now()) / 1000);
  if (s <= 0) return "expiring now";
  if (s < 3600) return `expires in ${Math.round(s / 60)} min`;
  if (s < 86400) return `expires in ${Math.round(s / 3600)} h`;
  return `expires in ${Math.round(s / 86400)} days`;
}
// Sentences from parley quote names in backticks: show them as code.
function prose(text) {
  return String(text).split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part));
}
const fieldName = (f) => f.replace(/_minor$/, "").replace(/_/g, " ");
const signed = (minor) => h("span", { class: minor < 0 ? "neg" : "pos" }, fmtMoney(minor));
const badge = (text) => h("span", { class: `badge ${text}` }, text);
function status(text) { $("#status").textContent = text; }

function describe(a) {
  switch (a.type) {
    case "set_price": return `set ${a.sku}'s price to ${fmtMoney(a.price_minor)}`;
    case "launch_promotion": {
      const t = a.target.category ? `category ${a.target.category}` : (a.target.skus || []).join(", ");
      return `${a.discount_bp / 100} % off ${t} from ${fmtTime(a.starts_at_ms)} to ${fmtTime(a.ends_at_ms)}`;
    }
    case "reorder": return `reorder ${a.quantity} of ${a.sku}`;
    case "discontinue": return `discontinue ${a.sku}`;
    case "notify_customer": return `message ${a.customer} about the ${a.topic} of ${a.order}`;
    case "offer_perk": return `offer ${JSON.stringify(a.perk)} on ${a.order}`;
    case "change_ad_budget": return `set campaign ${a.campaign}'s budget to ${fmtMoney(a.budget_minor)}`;
    case "reserve_stock": return `hold ${a.quantity} of ${a.sku}`;
    case "generic": return `set ${a.entity} ${a.attribute} to ${JSON.stringify(a.value)}`;
    default: return a.type;
  }
}

class ApiError extends Error {
  constructor(status, problem, fallback) {
    super((problem && problem.detail) || fallback);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, opts = {}) {
  const headers = { Authorization: `Bearer ${opts.token || S.token}` };
  if (opts.body) headers["Content-Type"] = "application/json";
  const res = await fetch(url(path), {
    method: opts.method || "GET",
    headers,
    body: opts.body ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && !opts.token) signOut("Your token was refused (unknown or revoked). Sign in again.");
    throw new ApiError(res.status, data, `${res.status} ${res.statusText}`);
  }
  if (opts.link) opts.link.next = nextLink(res.headers.get("Link"));
  return data;
}

// The `rel="next"` target of a Link header (RFC 8288), or null.
function nextLink(header) {
  const m = /<([^>]+)>\s*;\s*rel="next"/.exec(header || "");
  return m ? m[1] : null;
}

// The escalations in the log, page after page (at most `pages` pages);
// `more` is the next page's path when the log goes on past them.
async function allEscalations(pages = 50) {
  const all = [];
  let path = "/v1/escalations?limit=1000";
  for (let i = 0; path && i < pages; i++) {
    const link = {};
    all.push(...await api(path, { link }));
    path = link.next;
  }
  return { all, more: path };
}

// ------------------------------------------------------------ sign in/out --
function viewSignIn(main, message) {
  $("#nav").hidden = true;
  $("#who").replaceChildren();
  const input = h("input", { type: "password", id: "token-input", name: "token", autocomplete: "off", required: true, "aria-describedby": "signin-help" });
  const error = h("p", { id: "signin-error", class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "card", id: "signin", onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const token = input.value.trim();
    if (!token) { error.textContent = "Paste your token first."; return; }
    try {
      const me = await api("/v1/whoami", { token });
      S.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      await start(me);
    } catch (e) {
      error.textContent = e.status === 401
        ? "That token was refused: it is unknown or revoked."
        : `Could not sign in: ${e.message}`;
      input.focus();
    }
  } },
    h("h2", {}, "Sign in"),
    h("p", { id: "signin-help", class: "muted" }, "Paste the token `parley token create` printed for you. It is kept in this tab only, until you close it or sign out."),
    h("label", { for: "token-input" }, "Token"), input,
    h("p", {}, h("button", { type: "submit", id: "signin-button" }, "Sign in")),
    error);
  main.replaceChildren(form);
  input.focus();
}

function signOut(message) {
  if (S.stream) S.stream.abort();
  S.stream = null;
  S.token = null;
  S.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  viewSignIn($("#main"), message);
}

async function start(me) {
  S.me = me;
  $("#nav").hidden = false;
  $("#who").replaceChildren(
    h("span", { id: "who-name" }, `${me.identity} (${me.role})`),
    h("button", { class: "secondary", id: "signout", onclick: () => signOut("Signed out.") }, "Sign out"));
  const state = await api("/v1/state");
  S.lastSeq = state.seq;
  await loadFeed(state.seq);
  follow();
  refreshCount();
  if (!location.hash || location.hash === "#/") location.hash = "#/inbox";
  else route();
}

// ----------------------------------------------------------------- stream --
async function follow() {
  const ctrl = new AbortController();
  S.stream = ctrl;
  let backoff = 500;
  while (!ctrl.signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${S.token}`, Accept: "text/event-stream", "Last-Event-ID": String(S.lastSeq) };
      const res = await fetch(url("/v1/stream"), { headers, signal: ctrl.signal });
      if (res.status === 401) { signOut("Your token was refused (revoked?). Sign in again."); return; }
      if (!res.ok) throw new Error(`stream answered ${res.status}`);
      status(`live · following the ledger from seq ${S.lastSeq + 1}`);
      backoff = 500;
      await readEvents(res.body.getReader());
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    status("connection lost · reconnecting…");
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 10000);
  }
}

async function readEvents(reader) {
  const dec = new TextDecoder();
  let buf = "";
  let ev = {};
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, "");
      buf = buf.slice(i + 1);
      if (line === "") { dispatch(ev); ev = {}; continue; }
      if (line.startsWith(":")) continue;
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      let val = c < 0 ? "" : line.slice(c + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "data") ev.data = ev.data == null ? val : `${ev.data}\n${val}`;
      else ev[field] = val;
    }
  }
}

function dispatch(ev) {
  if (!ev.data) return;
  if (ev.event === "resume") {
    const from = JSON.parse(ev.data).from;
    S.lastSeq = Math.max(0, from - 1);
    return;
  }
  const r = JSON.parse(ev.data);
  S.lastSeq = Number(ev.id);
  status(`live · seq ${S.lastSeq}`);
  remember(r);
  if (currentView() === "activity") prependFeed(r);
  const k = r.body.kind;
  if (k === "decision" || k === "human_resolution" || k.startsWith("workflow") || k.startsWith("step")) scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(S.refreshTimer);
  S.refreshTimer = setTimeout(() => {
    refreshCount();
    const v = currentView();
    // The activity feed updates row by row; a decision being made is not redrawn under the person.
    if (v === "inbox" || v === "history" || v === "workflows") route();
  }, 250);
}

async function refreshCount() {
  try {
    const open = await api("/v1/escalations?open=true");
    $("#inbox-count").textContent = open.length ? String(open.length) : "";
  } catch { /* shown by the view */ }
}

// ------------------------------------------------------------------ feed --
function remember(r) {
  const b = r.body;
  if (b.kind === "intend") {
    S.intents.set(r.seq, { agent: r.producer, action: b.intention.action, reasoning: b.intention.reasoning });
  }
  if (b.kind === "intend" || b.kind === "decision" || b.kind === "human_resolution") {
    S.feed.push(r);
    if (S.feed.length > FEED_MAX) S.feed.shift();
  }
}

async function loadFeed(head) {
  const from = Math.max(1, head - 999);
  const page = await api(`/v1/records?from=${from}&limit=1000`);
  page.records.forEach(remember);
}

function feedFilter() {
  return {
    agent: ($("#f-agent") || {}).value || "",
    entity: (($("#f-entity") || {}).value || "").trim(),
    outcome: ($("#f-outcome") || {}).value || "",
  };
}

function feedRow(r) {
  const b = r.body;
  const f = feedFilter();
  if (b.kind === "intend") {
    if (f.outcome) return null;
    if (f.agent && r.producer !== f.agent) return null;
    if (f.entity && !JSON.stringify(b.intention.action).includes(f.entity.replace(/^[a-z]+:/, ""))) return null;
    return h("li", { "data-seq": r.seq },
      h("span", { class: "when" }, fmtTime(r.recorded_at_ms)),
      h("span", {}, h("b", {}, r.producer), ` #${r.seq} intends to ${describe(b.intention.action)}: `, h("span", { class: "muted" }, b.intention.reasoning)));
  }
  if (b.kind === "decision") {
    const d = b.decision;
    const who = S.intents.get(d.intention);
    if (f.outcome && d.outcome.kind !== f.outcome) return null;
    if (f.agent && (!who || who.agent !== f.agent)) return null;
    if (f.entity && d.entity !== f.entity) return null;
    const trace = h("div", { class: "trace", hidden: true });
    const why = h("button", { class: "secondary small", "aria-expanded": "false", onclick: () => toggleTrace(why, trace, r.seq) }, "Why?");
    return h("li", { "data-seq": r.seq, class: "decision" },
      h("span", { class: "when" }, fmtTime(r.recorded_at_ms)),
      h("span", {}, "→ ", `#${d.intention}`, who ? ` (${who.agent}, ${d.entity})` : ` (${d.entity})`, " ", badge(d.outcome.kind), ` by ${d.rule} `,
        d.outcome.action ? h("span", { class: "small" }, `to ${describe(d.outcome.action)} `) : null, why),
      trace);
  }
  if (b.kind === "human_resolution") {
    if (f.outcome) return null;
    if (f.agent && r.producer !== f.agent) return null;
    return h("li", { "data-seq": r.seq },
      h("span", { class: "when" }, fmtTime(r.recorded_at_ms)),
      h("span", {}, h("b", {}, r.producer), ` settled #${b.intention} with option ${b.option}: “${b.rationale}”`));
  }
  return null;
}

async function toggleTrace(button, box, seq) {
  const open = box.hidden;
  box.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (!open || box.childElementCount) return;
  try {
    const x = await api(`/v1/decisions/${seq}`);
    box.replaceChildren(
      h("p", {}, prose(x.summary)),
      h("ol", {}, x.steps.map((s) => h("li", {}, h("b", {}, `${s.rule} ${s.verdict}: `), prose(s.text),
        s.reads.length ? h("div", { class: "small muted" }, `read ${s.reads.join("; ")}`) : null))),
      Object.entries(x.guard_messages || {}).map(([id, m]) => h("p", { class: "small guard-message" }, h("code", {}, id), ": ", m)),
      h("p", { class: "small muted" }, `resolver v${x.resolver}, context at seq ${x.context_seq}`));
  } catch (e) {
    box.replaceChildren(h("p", { class: "error" }, e.message));
  }
}

function prependFeed(r) {
  const list = $("#feed");
  if (!list) return;
  const row = feedRow(r);
  if (row) list.prepend(row);
  $("#feed-empty")?.remove();
}

// ----------------------------------------------------------------- views --
function currentView() {
  return (location.hash.replace(/^#\//, "").split(/[/?]/)[0]) || "inbox";
}

async function route() {
  const main = $("#main");
  if (!S.token || !S.me) return;
  const hash = location.hash.replace(/^#\//, "");
  const [path, query] = hash.split("?");
  const parts = path.split("/");
  const view = parts[0] || "inbox";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === (view === "escalation" ? "inbox" : view)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    if (view === "escalation") await viewEscalation(main, Number(parts[1]));
    else if (view === "history") await viewHistory(main);
    else if (view === "activity") await viewActivity(main);
    else if (view === "audit") await viewAudit(main, new URLSearchParams(query || ""));
    else if (view === "workflows") await viewWorkflows(main);
    else if (view === "rules") await viewRules(main);
    else if (view === "scorecard") await viewScorecard(main);
    else await viewInbox(main);
  } catch (e) {
    if (S.token) main.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not load this view: ${e.message}`));
  }
}

function impactOf(e) {
  let revenue = 0, margin = 0;
  for (const i of e.escalation.involved) { revenue += i.impact.revenue_minor; margin += i.impact.margin_minor; }
  return { revenue, margin };
}

function byUrgency(a, b) {
  const ea = a.expires_at_ms ?? Infinity, eb = b.expires_at_ms ?? Infinity;
  if (ea !== eb) return ea - eb;
  return Math.abs(impactOf(b).revenue) - Math.abs(impactOf(a).revenue);
}

function escalationCard(e) {
  const imp = impactOf(e);
  return h("li", { class: "card", "data-id": e.id },
    h("div", { class: "head" },
      h("h3", {}, h("a", { href: `#/escalation/${e.id}` }, `${e.entity} · ${e.rule}`)),
      badge(e.status),
      h("span", { class: "muted small" }, `escalated ${ago(e.at_ms)} (${fmtTime(e.at_ms)})`),
      h("span", { class: "small" }, e.expires_at_ms ? until(e.expires_at_ms) : "no expiry")),
    h("div", { class: "figures" },
      h("div", { class: "figure" }, h("span", { class: "muted small" }, "revenue impact"), h("b", {}, signed(imp.revenue))),
      h("div", { class: "figure" }, h("span", { class: "muted small" }, "margin impact"), h("b", {}, signed(imp.margin))),
      h("div", { class: "figure" }, h("span", { class: "muted small" }, "agents"), h("b", {}, e.escalation.involved.map((i) => i.agent).join(", ")))),
    h("p", {}, prose(e.summary)));
}

async function viewInbox(main) {
  const open = await api("/v1/escalations?open=true");
  open.sort(byUrgency);
  $("#inbox-count").textContent = open.length ? String(open.length) : "";
  main.replaceChildren(
    h("h2", {}, "Waiting for a person"),
    h("p", { class: "muted" }, "Conflicts the rules could not settle alone, most urgent first (soonest expiry, then largest impact). This list updates by itself."),
    open.length
      ? h("ul", { class: "inbox", id: "inbox-list" }, open.map(escalationCard))
      : h("p", { class: "card muted", id: "inbox-empty" }, "Nothing is waiting. New escalations appear here as they happen."));
}

function contextCard(view, seq) {
  if (!view || view.kind !== "sku") return h("p", { class: "muted" }, "No sku context for this entity.");
  const s = view.sku;
  const promos = view.promotions.map((p) => h("li", {},
    `${p.discount_bp / 100} % off ${p.target.category ? "category " + p.target.category : p.target.skus.join(", ")}, ${fmtTime(p.starts_at_ms)} – ${fmtTime(p.ends_at_ms)} `,
    h("span", { class: "muted small" }, `(${p.starts_at_ms > Date.now() ? "planned" : "active"}, decision #${p.decision})`)));
  return h("dl", { class: "kv", id: "context" },
    h("dt", {}, "price"), h("dd", {}, fmtMoney(s.price_minor.value), h("span", { class: "muted small" }, ` (seq ${s.price_minor.seq})`)),
    h("dt", {}, "cost"), h("dd", {}, fmtMoney(s.cost_minor.value)),
    h("dt", {}, "margin"), h("dd", {}, `${((s.price_minor.value - s.cost_minor.value) * 100 / s.price_minor.value).toFixed(1)} %`),
    h("dt", {}, "stock"), h("dd", {}, `${s.stock.value} (reserved ${s.reserved.value}, on order ${s.on_order.value})`),
    h("dt", {}, "competitors"), h("dd", {}, Object.entries(s.competitor_prices).map(([c, p]) => `${c} ${fmtMoney(p.value)}`).join(", ") || "none"),
    h("dt", {}, "promotions"), h("dd", {}, promos.length ? h("ul", {}, promos) : "none active or planned"),
    h("dt", {}, "as of"), h("dd", {}, `seq ${seq}`));
}

async function precedentsFor(e, state) {
  const kind = e.escalation.reason.kind || e.escalation.involved[0].action.type.replace(/_/g, "-");
  const similar = state.precedents.filter((p) => p.action === kind).slice(0, 5);
  const rows = await Promise.all(similar.map(async (p) => {
    const page = await api(`/v1/records?from=${p.resolution}&limit=1`).catch(() => null);
    const r = page && page.records[0];
    const who = r && r.body.kind === "human_resolution" ? `${r.producer}: “${r.body.rationale}”` : `resolution #${p.resolution}`;
    return h("li", {}, `${p.approved ? (p.modified ? "approved with changes" : "approved") : "rejected"} a ${p.action} in ${p.categories.join(", ") || "—"} worth `,
      signed(p.impact_minor), ` (${fmtTime(p.at_ms)}) · ${who}`);
  }));
  return rows.length ? h("ul", { id: "precedents" }, rows) : h("p", { class: "muted", id: "precedents" }, "No earlier human decision on this kind of change.");
}

async function viewEscalation(main, id) {
  const views = await api(`/v1/escalations/${id}`);
  const e = views[views.length - 1];
  const [ctx, state] = await Promise.all([
    e.entity.startsWith("sku:") ? api(`/v1/entities/${encodeURIComponent(e.entity)}?at=${e.context_seq}`).catch(() => null) : null,
    api("/v1/state"),
  ]);
  const sides = h("div", { class: "grid", id: "sides" }, e.escalation.involved.map((i) => h("section", { class: "card" },
    h("h3", {}, `${i.agent} · #${i.intention}`),
    h("p", {}, `intends to ${describe(i.action)}`),
    h("p", {}, h("span", { class: "muted" }, "reasoning: "), i.reasoning),
    h("dl", { class: "kv" },
      h("dt", {}, "objective"), h("dd", {}, i.objective),
      h("dt", {}, "revenue impact"), h("dd", {}, signed(i.impact.revenue_minor)),
      h("dt", {}, "margin impact"), h("dd", {}, signed(i.impact.margin_minor))))));
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/inbox" }, "← Inbox")),
    h("h2", { id: "detail-title" }, `Escalation #${e.id}: ${e.entity}`),
    h("p", { class: "card", id: "summary" }, badge(e.status), " ", prose(e.summary),
      h("span", { class: "muted small" }, ` · escalated by ${e.rule} ${ago(e.at_ms)} · ${e.expires_at_ms ? until(e.expires_at_ms) : "no expiry"}`)),
    h("h3", {}, "Each agent's side"), sides,
    h("div", { class: "split" },
      h("div", {}, e.status === "open" ? decideForm(e) : closedCard(e)),
      h("div", {},
        h("section", { class: "card" }, h("h3", {}, "The shared context when it escalated"), contextCard(ctx, e.context_seq)),
        h("section", { class: "card" }, h("h3", {}, "Similar precedents"), await precedentsFor(e, state)))));
}

function closedCard(e) {
  const c = e.closed_by;
  const r = c && c.resolution;
  return h("section", { class: "notice", id: "closed" },
    h("h3", {}, `Closed: ${e.status}`),
    r ? h("p", {}, `${r.human} chose option ${r.option}: “${r.rationale}”`) : null,
    c ? h("p", {}, `decision #${c.decision}: `, prose(c.summary)) : null);
}

function decideForm(e) {
  const isHuman = S.me.role === "human";
  const error = h("p", { class: "error", role: "alert", id: "decide-error" });
  const result = h("div", { id: "decision-result-box" });
  const options = e.options.map((o) => h("div", { class: "option" },
    h("input", { type: "radio", name: "option", id: `option-${o.number}`, value: o.number, "data-choice": o.choice, required: true, disabled: !isHuman }),
    h("label", { for: `option-${o.number}` }, `${o.number}. `, prose(o.label))));
  const rationale = h("textarea", { id: "rationale", name: "rationale", required: true, disabled: !isHuman, "aria-describedby": "rationale-help" });
  const submit = h("button", { type: "submit", id: "decide", disabled: !isHuman }, "Record my decision");
  const form = h("form", { class: "card", id: "decide-form", onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const chosen = form.querySelector("input[name=option]:checked");
    const why = rationale.value.trim();
    if (!chosen) { error.textContent = "Choose one of the options."; return; }
    if (!why) { error.textContent = "Write why: the rationale is recorded with your decision."; rationale.focus(); return; }
    submit.disabled = true;
    try {
      const answer = await api("/v1/commands", { method: "POST", body: {
        producer: S.me.identity, kind: "human_resolution", intention: e.id, option: Number(chosen.value), rationale: why } });
      result.replaceChildren(h("div", { class: "notice", id: "decision-result", tabindex: "-1" },
        h("h3", {}, `Recorded as seq ${answer.seq}`),
        h("p", {}, "What followed:"),
        h("ul", {}, (answer.caused || []).map((c) => h("li", {}, `#${c.seq} `, prose(c.summary || c.kind))))));
      form.querySelectorAll("input, textarea, button").forEach((x) => { x.disabled = true; });
      $("#decision-result").focus();
      refreshCount();
    } catch (err) {
      error.textContent = `Not recorded: ${err.message}`;
      submit.disabled = false;
    }
  } },
    h("h3", {}, "Decide"),
    isHuman ? null : h("p", { class: "error" }, `Only a human's token can decide; you are signed in as ${S.me.identity} (${S.me.role}).`),
    h("fieldset", {}, h("legend", {}, "Options"), options),
    h("label", { for: "rationale" }, "Why (required, recorded in the ledger)"),
    h("p", { id: "rationale-help", class: "small muted" }, "Say what you weighed; the agents and later audits read it."),
    rationale,
    h("p", {}, submit),
    error);
  return h("div", {}, form, result);
}

async function viewHistory(main) {
  const { all, more } = await allEscalations();
  const closed = all.filter((e) => e.status !== "open").reverse();
  const rows = closed.map((e) => {
    const c = e.closed_by;
    const r = c && c.resolution;
    const opt = r && e.options[r.option];
    return h("tr", { "data-id": e.id },
      h("td", {}, h("a", { href: `#/escalation/${e.id}` }, `#${e.id}`), h("div", { class: "small muted" }, e.entity)),
      h("td", {}, badge(e.status)),
      h("td", {}, r ? r.human : (e.status === "expired" ? "safe default" : "rules")),
      h("td", {}, prose(opt ? opt.label : (c ? c.summary : ""))),
      h("td", {}, r ? `“${r.rationale}”` : (c ? c.outcome : "")),
      h("td", { class: "small" }, c ? fmtTime(r ? r.at_ms : e.at_ms) : ""));
  });
  main.replaceChildren(h("h2", {}, "Settled escalations"),
    more ? h("p", { class: "small muted", id: "history-partial" }, `The log goes on past these: the API's ${more} lists the next page.`) : "",
    rows.length
      ? h("table", { id: "history" }, h("thead", {}, h("tr", {}, ["Escalation", "Outcome", "Who", "Choice", "Why", "When"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows))
      : h("p", { class: "card muted" }, "Nothing settled yet."));
}

async function viewActivity(main) {
  const state = await api("/v1/state");
  const agentSelect = h("select", { id: "f-agent", onchange: redrawFeed }, h("option", { value: "" }, "all agents"), state.agents.map((a) => h("option", { value: a.agent }, a.agent)));
  const outcome = h("select", { id: "f-outcome", onchange: redrawFeed }, h("option", { value: "" }, "everything"),
    ["approved", "modified", "deferred", "escalated", "rejected", "expired"].map((o) => h("option", { value: o }, `${o} decisions`)));
  const entity = h("input", { type: "text", id: "f-entity", placeholder: "sku:E2", oninput: redrawFeed });
  main.replaceChildren(h("h2", {}, "Activity"),
    h("p", { class: "muted" }, "Intentions and decisions as they happen, newest first. “Why?” opens a decision's trace."),
    h("div", { class: "filters", role: "search" },
      h("div", {}, h("label", { for: "f-agent" }, "Agent"), agentSelect),
      h("div", {}, h("label", { for: "f-entity" }, "Entity"), entity),
      h("div", {}, h("label", { for: "f-outcome" }, "Outcome"), outcome)),
    h("ul", { class: "feed", id: "feed", "aria-live": "polite" }));
  redrawFeed();
}

function redrawFeed() {
  const list = $("#feed");
  if (!list) return;
  const rows = S.feed.slice().reverse().map(feedRow).filter(Boolean);
  list.replaceChildren(...rows);
  if (!rows.length) list.after(h("p", { class: "muted", id: "feed-empty" }, "Nothing yet."));
}

async function viewAudit(main, params) {
  const entity = params.get("entity") || "";
  const field = params.get("field") || "price";
  const eInput = h("input", { type: "text", id: "a-entity", value: entity, placeholder: "sku:S1", required: true });
  const fInput = h("input", { type: "text", id: "a-field", value: field, placeholder: "price" });
  const form = h("form", { class: "filters", role: "search", onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `#/audit?entity=${encodeURIComponent(eInput.value.trim())}&field=${encodeURIComponent(fInput.value.trim())}`;
  } },
    h("div", {}, h("label", { for: "a-entity" }, "Entity"), eInput),
    h("div", {}, h("label", { for: "a-field" }, "Field"), fInput),
    h("div", {}, h("button", { type: "submit", id: "a-go" }, "Show the chain")));
  main.replaceChildren(h("h2", {}, "Why is it what it is?"), form);
  if (!entity) { main.append(h("p", { class: "muted" }, "Name an entity and a field, e.g. sku:S1 and price.")); return; }
  let report;
  try {
    report = await api(`/v1/entities/${encodeURIComponent(entity)}/audit?field=${encodeURIComponent(field)}`);
  } catch (e) {
    main.append(h("p", { class: "error", role: "alert" }, e.message));
    return;
  }
  const money = report.changes.length && /_minor$/.test(report.changes[0].field);
  main.append(h("p", { class: "muted" }, `${report.changes.length} change(s) of ${entity} ${field}, newest first.`),
    h("ol", { class: "timeline", id: "audit" }, report.changes.map((c) => auditItem(c, money))));
}

function auditItem(c, isMoney) {
  const value = isMoney ? fmtMoney(c.value) : JSON.stringify(c.value);
  const chain = h("div", { class: "chain" });
  if (c.intention) {
    chain.append(h("div", {}, h("h4", {}, "intention"),
      h("b", {}, c.intention.agent), ` #${c.intention.seq} wants to ${describe(c.intention.action)}`,
      h("div", { class: "small muted" }, `“${c.intention.reasoning}”`),
      h("div", { class: "small" }, "impact ", signed(c.intention.impact.revenue_minor))));
  }
  if (c.decision) {
    const trace = h("div", { class: "trace", hidden: true });
    const why = h("button", { class: "secondary small", "aria-expanded": "false", onclick: () => toggleTrace(why, trace, c.seq) }, "Trace");
    chain.append(h("div", {}, h("h4", {}, "decision"), badge(c.decision.outcome.kind), ` by ${c.decision.rule}`,
      h("div", { class: "small" }, prose(c.summary || "")), why, trace));
  }
  if (c.resolution) {
    chain.append(h("div", { class: "human" }, h("h4", {}, "person"),
      h("b", { class: "human-name" }, c.resolution.human), ` chose option ${c.resolution.option}`,
      h("div", { class: "rationale" }, `“${c.resolution.rationale}”`)));
  }
  if (c.lost.length) {
    chain.append(h("div", {}, h("h4", {}, "lost"),
      h("ul", {}, c.lost.map((l) => h("li", {}, `${l.agent} #${l.seq}`)))));
  }
  return h("li", { class: "card", "data-seq": c.seq },
    h("h3", {}, `${fieldName(c.field)} ${c.addition ? "+" : "→"} ${value}`),
    h("p", { class: "small muted" }, `${fmtTime(c.at_ms)} · seq ${c.seq} · ${c.kind} by ${c.producer}`),
    chain);
}

async function viewWorkflows(main) {
  const w = await api("/v1/workflows");
  const runs = w.runs.slice().reverse().map((r) => h("section", { class: "card", "data-run": r.run },
    h("h3", {}, `${r.run} · ${r.workflow} v${r.version} `, badge(r.status)),
    h("p", { class: "small muted" }, `started by ${r.started_by} ${fmtTime(r.started_at_ms)} (seq ${r.started_seq})`),
    h("ol", { class: "steps" }, r.steps.map((s) => h("li", {},
      h("b", {}, s.step), ` · ${s.owner} `, badge(s.status),
      s.deadline_ms ? h("div", { class: "small muted" }, `deadline ${fmtTime(s.deadline_ms)}`) : null)))));
  main.replaceChildren(h("h2", {}, "Workflow runs"),
    runs.length ? h("div", { id: "runs" }, runs) : h("p", { class: "card muted" }, "No workflow has run yet."),
    h("h3", {}, "Definitions"),
    h("ul", {}, w.workflows.map((d) => h("li", {}, `${d.name} v${d.version}: ${d.steps.join(" → ")}`))));
}

// ------------------------------------------------------------------ boot --
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  if (!S.token) { viewSignIn($("#main")); return; }
  try {
    await start(await api("/v1/whoami"));
  } catch (e) {
    if (S.token) viewSignIn($("#main"), `Could not reach parley: ${e.message}`);
  }
});
