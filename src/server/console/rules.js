// parley operator console: the rules page (#/rules). The rule set in force
// as a form (thresholds and windows with their units, the objective order,
// the store's own guards with live validation), a what-if preview over the
// last days before anything is installed, installing with a rationale
// (admins), and the history of rule sets with what each changed. Uses the
// helpers of app.js (h, $, api, S, prose, fmtMoney, fmtTime, status).
"use strict";

const KINDS = ["set-price", "launch-promotion", "reorder", "discontinue", "notify-customer",
  "offer-perk", "change-ad-budget", "reserve-stock", "generic"];
// [section, key, label, unit]: minor units shown in pounds, basis points in %.
const NUMBERS = [
  ["threshold", "escalate_above_minor", "Escalate to a person above", "£"],
  ["guard", "min_margin_bp", "Minimum margin after discounts", "%"],
  ["priority", "live_window_h", "An approval stays live (for conflicts)", "hours"],
  ["temporal", "promotion_lead_h", "Hold price changes before a promotion", "hours"],
  ["dedup", "notification_window_h", "One message per order and topic within", "hours"],
  ["precedent", "window_h", "A person's decision is a precedent for", "hours"],
  ["pending", "max_wait_h", "No intention waits longer than", "hours"],
  ["escalation", "expire_after_h", "An escalation waits for a person", "hours"],
];
const R = { base: null, draft: null, timer: null, seq: 0, check: null, invalid: new Set() };
const toInput = (unit, v) => (unit === "£" || unit === "%" ? (Number(v) / 100).toFixed(2) : String(v));
const fromInput = (unit, s) => (unit === "£" || unit === "%" ? Math.round(Number(s) * 100) : Math.round(Number(s)));
const isAdmin = () => S.me && S.me.role === "admin";

async function viewRules(main) {
  const [view, history, state] = await Promise.all([api("/v1/rules"), api("/v1/rules/history"), api("/v1/state")]);
  R.base = view;
  R.invalid = new Set();
  R.draft = JSON.parse(JSON.stringify(view.rules));
  R.draft.custom = R.draft.custom || [];
  delete R.draft.change;
  const last = history[history.length - 1];
  main.replaceChildren(
    h("h2", {}, "Rules"),
    h("p", { class: "muted", id: "rules-in-force" }, `In force since seq ${view.seq}`,
      last ? ` · installed by ${last.by}, ${fmtTime(last.recorded_at_ms)}` : "",
      last && last.why ? h("span", {}, " · “", last.why, "”") : "",
      ` · resolver v${view.resolver}`),
    isAdmin() ? null : h("p", { class: "notice", id: "rules-read-only" }, "Read-only: only an admin can change the rules."),
    h("div", { class: "split" },
      h("form", { id: "rules-form", onsubmit: (e) => e.preventDefault() }, editor()),
      h("div", {},
        h("section", { class: "card", id: "draft-status", "aria-live": "polite" }, h("p", { class: "muted" }, "No change yet.")),
        preview(), install())),
    autonomyTable(state.agents),
    h("h3", {}, "History"),
    h("ol", { id: "rules-history", class: "timeline", reversed: true }, history.slice().reverse().map(historyItem)));
  if (!isAdmin()) for (const e of main.querySelectorAll("#rules-form input, #rules-form select, #rules-form textarea, #rules-form button, #autonomy select")) e.disabled = true;
}

// ------------------------------------------------------------------ form --
function editor() {
  const d = R.draft;
  const numbers = NUMBERS.filter(([s]) => d[s]).map(([s, k, label, unit]) => {
    const id = `f-${s}-${k}`;
    return h("div", { class: "field" },
      h("label", { for: id }, `${label} (${unit})`),
      h("input", { type: "text", inputmode: "decimal", id, value: toInput(unit, d[s][k]),
        oninput: (e) => {
          const v = fromInput(unit, e.target.value);
          const slot = e.target.parentElement.querySelector(".field-error");
          if (!Number.isFinite(v) || e.target.value.trim() === "") {
            slot.textContent = unit === "hours" ? "a whole number of hours" : "a number, e.g. 5000.00";
            R.invalid.add(id);
          } else {
            R.invalid.delete(id);
            d[s][k] = v;
          }
          changed();
        } }),
      h("p", { class: "error field-error", "data-for": `${s}.${k}` }));
  });
  const safe = d.escalation ? h("div", { class: "field" },
    h("label", { for: "f-safe-default" }, "When nobody answers an escalation"),
    h("select", { id: "f-safe-default", onchange: (e) => { d.escalation.safe_default = e.target.value; changed(); } },
      ["reject", "approve"].map((v) => h("option", { value: v, selected: d.escalation.safe_default === v }, v)))) : null;
  return [
    h("fieldset", {}, h("legend", {}, "Thresholds and windows"), numbers, safe),
    h("fieldset", {}, h("legend", {}, "Objectives, highest first"), h("ol", { id: "objectives" }, objectives())),
    h("fieldset", { id: "guards" }, h("legend", {}, "The store's own guards"),
      h("p", { class: "small muted" }, "A CEL expression over the view (action, intention, agent, sku, order, customer, category, campaign, now_ms); integers only: money in minor units, rates in basis points."),
      h("div", { id: "guard-list" }, d.custom.map(guardEditor)),
      h("button", { type: "button", class: "secondary", id: "add-guard", onclick: addGuard }, "Add a guard")),
  ];
}

function objectives() {
  const list = R.draft.priority.objectives;
  return list.map((o, i) => h("li", { "data-objective": o }, o, " ",
    h("button", { type: "button", class: "secondary small", "aria-label": `move ${o} up`, disabled: i === 0,
      onclick: () => { [list[i - 1], list[i]] = [list[i], list[i - 1]]; $("#objectives").replaceChildren(...objectives()); changed(); } }, "↑"),
    h("button", { type: "button", class: "secondary small", "aria-label": `move ${o} down`, disabled: i === list.length - 1,
      onclick: () => { [list[i + 1], list[i]] = [list[i], list[i + 1]]; $("#objectives").replaceChildren(...objectives()); changed(); } }, "↓")));
}

function guardEditor(g, i) {
  const set = (k) => (e) => { g[k] = e.target.value; changed(); };
  const kinds = new Set((g.applies_to || []).map((k) => k.replace(/_/g, "-")));
  return h("div", { class: "card guard", "data-index": i },
    h("label", { for: `g-${i}-id` }, "Id"), h("input", { type: "text", id: `g-${i}-id`, class: "guard-id", value: g.id, oninput: set("id") }),
    h("div", { class: "small" }, "Applies to: ", KINDS.map((k) => h("label", { class: "kind" },
      h("input", { type: "checkbox", value: k, checked: kinds.has(k), onchange: (e) => {
        if (e.target.checked) kinds.add(k); else kinds.delete(k);
        g.applies_to = KINDS.filter((x) => kinds.has(x)); changed();
      } }), ` ${k} `))),
    h("label", { for: `g-${i}-when` }, "When"), h("textarea", { id: `g-${i}-when`, class: "guard-when", spellcheck: "false", oninput: set("when") }, g.when),
    h("label", { for: `g-${i}-then` }, "Then"),
    h("select", { id: `g-${i}-then`, class: "guard-then", onchange: set("then") },
      ["refuse", "escalate"].map((v) => h("option", { value: v, selected: g.then === v }, v))),
    h("label", { for: `g-${i}-message` }, "Message"), h("input", { type: "text", id: `g-${i}-message`, class: "guard-message", value: g.message, oninput: set("message") }),
    h("p", { class: "error field-error", id: `g-${i}-error` }),
    h("button", { type: "button", class: "secondary", onclick: () => { R.draft.custom.splice(i, 1); redrawGuards(); changed(); } }, "Remove"));
}

function redrawGuards() { $("#guard-list").replaceChildren(...R.draft.custom.map(guardEditor)); }

function addGuard() {
  const n = R.draft.custom.length + 1;
  R.draft.custom.push({ id: `guard-${n}`, applies_to: ["set-price"], when: "action.price_minor < sku.cost_minor", then: "refuse", message: "describe the rule" });
  redrawGuards();
  changed();
}

// ------------------------------------------------------- live validation --
function changed() {
  clearTimeout(R.timer);
  R.timer = setTimeout(checkDraft, 300);
}

async function checkDraft() {
  const seq = ++R.seq;
  const box = $("#draft-status");
  const buttons = () => document.querySelectorAll("#preview-button, #install-button");
  if (R.invalid.size) {
    box.replaceChildren(h("p", { class: "error", id: "draft-error", role: "alert" }, "Correct the fields marked above."));
    for (const b of buttons()) b.disabled = true;
    return;
  }
  let result;
  try {
    result = await api("/v1/rules/check", { method: "POST", body: { rules: R.draft } });
  } catch (e) {
    if (seq !== R.seq) return;
    box.replaceChildren(h("p", { class: "error", id: "draft-error", role: "alert" }, e.message));
    for (const b of buttons()) b.disabled = true;
    return;
  }
  if (seq !== R.seq) return; // a newer draft is on its way
  R.check = result;
  for (const p of document.querySelectorAll(".field-error")) p.textContent = "";
  if (!result.ok) {
    const e = result.error;
    const slot = errorSlot(e.field);
    if (slot) slot.textContent = e.message;
    box.replaceChildren(h("p", { class: "error", id: "draft-error", role: "alert" }, `${e.field}: ${e.message}`));
  } else {
    box.replaceChildren(
      h("p", { id: "draft-ok" }, result.changes.length ? `${result.changes.length} change(s) from the rules in force:` : "The same as the rules in force."),
      h("ul", { class: "small", id: "draft-changes" }, result.changes.map((c) => h("li", {}, changeText(c)))));
  }
  for (const b of buttons()) b.disabled = !result.ok || (b.id === "install-button" && !isAdmin());
}

// Where an error goes: under its guard (by the guard's current id), or
// under its field.
function errorSlot(field) {
  const i = R.draft.custom.findIndex((g) => `custom.${g.id}` === field);
  if (i >= 0) return $(`#g-${i}-error`);
  return [...document.querySelectorAll(".field-error")].find((p) => p.dataset.for === field);
}

function changeText(c) {
  const show = (v) => (v == null ? "(none)" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const path = c.path.join(".");
  if (c.before == null) return `${path}: added`;
  if (c.after == null) return `${path}: removed`;
  return `${path}: ${show(c.before)} → ${show(c.after)}`;
}

// --------------------------------------------------------------- preview --
function preview() {
  return h("section", { class: "card" },
    h("h3", {}, "Preview"),
    h("label", { for: "preview-days" }, "Decide the last days again under this draft"),
    h("input", { type: "text", inputmode: "numeric", id: "preview-days", value: "7" }),
    h("p", {}, h("button", { type: "button", id: "preview-button", onclick: runPreview }, "Preview")),
    h("div", { id: "preview", "aria-live": "polite" }));
}

async function runPreview() {
  const out = $("#preview");
  const days = Number($("#preview-days").value) || 7;
  out.replaceChildren(h("p", { class: "muted" }, "Deciding again…"));
  try {
    const check = await api("/v1/rules/check", { method: "POST", body: { rules: R.draft } });
    if (!check.ok) throw new Error(`${check.error.field}: ${check.error.message}`);
    const r = await api("/v1/whatif", { method: "POST", body: { rules: check.text, days } });
    out.replaceChildren(...previewReport(r, days));
  } catch (e) {
    out.replaceChildren(h("p", { class: "error" }, e.message));
  }
}

function previewReport(r, days) {
  const a = r.summary.recorded, b = r.summary.whatif;
  const row = (label, k, f = String) => h("tr", { "data-k": k }, h("th", {}, label), h("td", { class: "recorded" }, f(a[k])), h("td", { class: "whatif" }, f(b[k])));
  return [
    h("p", { class: "small muted", id: "preview-window", "data-from": r.from, "data-to": r.to }, `Last ${days} day(s): seqs ${r.from} to ${r.to}, ${r.summary.intentions} intention(s).`),
    h("table", { id: "preview-summary" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "As recorded"), h("th", {}, "With this draft"))),
      h("tbody", {}, row("Approved", "approved"), row("Rejected", "rejected"), row("Escalations", "escalations"),
        row("Approved revenue impact", "approved_revenue_impact_minor", fmtMoney),
        row("Approved margin impact", "approved_margin_impact_minor", fmtMoney))),
    h("h4", {}, "Escalations per day"), chart(a.escalations_by_day, b.escalations_by_day),
    h("h4", {}, `Decisions that would change (${r.changed.length})`),
    h("div", { class: "scroll" }, h("table", { id: "preview-changed" },
      h("thead", {}, h("tr", {}, ["Intention", "Agent", "Action", "As recorded", "With this draft", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, r.changed.map(changedRow)))),
  ];
}

function changedRow(c) {
  const v = (x) => (x ? h("span", {}, badge(x.outcome), " ", h("code", {}, x.rule)) : "—");
  const box = h("div", { class: "trace", hidden: true });
  const button = h("button", { type: "button", class: "secondary small", "aria-expanded": "false",
    onclick: async () => {
      if (box.hidden && !box.childElementCount) {
        const i = await api(`/v1/intentions/${c.seq}`);
        const last = i.decisions[i.decisions.length - 1];
        if (last) return toggleTrace(button, box, last.seq);
      }
      box.hidden = !box.hidden;
    } }, "Why, as recorded");
  return h("tr", { "data-seq": c.seq },
    h("td", {}, `#${c.seq}`, h("div", { class: "small muted" }, c.entity)), h("td", {}, c.agent), h("td", {}, c.action),
    h("td", {}, v(c.recorded)), h("td", {}, v(c.whatif)), h("td", {}, button, box));
}

// Escalations per day, both ways, as bars (SVG drawn with the DOM: no inline styles).
function chart(before, after) {
  const days = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const max = Math.max(1, ...days.map((d) => Math.max(before[d] || 0, after[d] || 0)));
  const NS = "http://www.w3.org/2000/svg";
  const el = (tag, attrs) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const w = Math.max(120, days.length * 40), hgt = 90;
  const svg = el("svg", { width: w, height: hgt + 18, id: "preview-chart", role: "img", "aria-label": `escalations per day: ${days.map((d) => `${d} ${before[d] || 0} → ${after[d] || 0}`).join(", ")}` });
  days.forEach((d, i) => {
    const bar = (n, dx, fill) => el("rect", { x: i * 40 + dx, y: hgt - (n / max) * hgt, width: 14, height: (n / max) * hgt, fill });
    svg.append(bar(before[d] || 0, 4, "#9fb3cf"), bar(after[d] || 0, 20, "#1f5fbf"));
    const t = el("text", { x: i * 40 + 4, y: hgt + 14, "font-size": 10 }); t.textContent = d.slice(5); svg.append(t);
  });
  return h("figure", {}, svg, h("figcaption", { class: "small muted" }, "light: as recorded · dark: with this draft"));
}

// --------------------------------------------------------------- install --
function install() {
  if (!isAdmin()) return null;
  return h("section", { class: "card" },
    h("h3", {}, "Install"),
    h("label", { for: "install-why" }, "Why (recorded with the rule set)"),
    h("textarea", { id: "install-why" }),
    h("p", {}, h("button", { type: "button", id: "install-button", onclick: doInstall }, "Install as ", S.me.identity)),
    h("div", { id: "install-result", "aria-live": "polite" }));
}

async function doInstall() {
  const why = $("#install-why").value.trim();
  const out = $("#install-result");
  if (!why) { out.replaceChildren(h("p", { class: "error" }, "Say why: the rationale is recorded with the rule set.")); return; }
  try {
    const a = await api("/v1/rules", { method: "POST", body: { rules: R.draft, why } });
    status(`Rule set installed at seq ${a.seq}.`);
    await viewRules($("#main"));
    $("#draft-status").replaceChildren(h("p", { class: "notice", id: "installed" }, `Installed at seq ${a.seq}.`));
  } catch (e) {
    out.replaceChildren(h("p", { class: "error", id: "install-error", role: "alert" }, e.message));
  }
}

// -------------------------------------------------------------- autonomy --
// Autonomy is part of each agent's registration, not of the rule set: saved
// on its own as `agent_registered` records (not part of the preview).
const LEVELS = ["autonomous", "propose-and-approve", "manual"];

function autonomyTable(agents) {
  R.agents = agents.map((a) => ({ ...a, autonomy: { ...a.autonomy } }));
  R.autonomyChanged = new Set();
  const cell = (a, k) => h("td", {}, h("select", { "aria-label": `${a.agent} ${k}`, id: `a-${a.agent}-${k}`,
    onchange: (e) => { a.autonomy[k] = e.target.value; R.autonomyChanged.add(a.agent); } },
    LEVELS.map((l) => h("option", { value: l, selected: (a.autonomy[k] || "autonomous") === l }, l))));
  return h("section", { class: "card", id: "autonomy" },
    h("h3", {}, "Autonomy per agent and action"),
    h("p", { class: "small muted" }, "Part of each agent's registration: saved on its own, not with the rule set, and not in the preview."),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Agent"), KINDS.map((k) => h("th", { class: "small" }, k)))),
      h("tbody", {}, R.agents.map((a) => h("tr", {}, h("th", {}, a.agent), KINDS.map((k) => cell(a, k))))))),
    isAdmin() ? h("p", {}, h("button", { type: "button", id: "save-autonomy", onclick: saveAutonomy }, "Save autonomy")) : null,
    h("div", { id: "autonomy-result", "aria-live": "polite" }));
}

async function saveAutonomy() {
  const out = $("#autonomy-result");
  const saved = [];
  try {
    for (const name of R.autonomyChanged) {
      const a = R.agents.find((x) => x.agent === name);
      const autonomy = Object.fromEntries(Object.entries(a.autonomy).filter(([, v]) => v !== "autonomous"));
      const answer = await api("/v1/commands", { method: "POST", body: {
        producer: S.me.identity, kind: "agent_registered",
        profile: { agent: a.agent, domain: a.domain, priority: a.priority, autonomy } } });
      saved.push(`${name} at seq ${answer.seq}`);
    }
    R.autonomyChanged.clear();
    out.replaceChildren(h("p", { class: "notice", id: "autonomy-saved" }, saved.length ? `Saved: ${saved.join(", ")}.` : "Nothing changed."));
  } catch (e) {
    out.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
  }
}

// --------------------------------------------------------------- history --
function historyItem(i) {
  return h("li", { "data-seq": i.seq },
    h("div", { class: "card" },
      h("b", {}, `seq ${i.seq}`), ` · ${fmtTime(i.recorded_at_ms)} · ${i.by}`,
      h("p", {}, i.why ? `“${i.why}”` : h("span", { class: "muted" }, "no rationale recorded")),
      i.changes.length ? h("ul", { class: "small" }, i.changes.map((c) => h("li", {}, changeText(c)))) : null,
      isAdmin() && i.seq !== R.base.seq ? h("button", { type: "button", class: "secondary", onclick: () => loadEarlier(i) }, "Load into the editor (to roll back)") : null));
}

async function loadEarlier(i) {
  // The form edits the rule set as data: the server reads the earlier text.
  const check = await api("/v1/rules/check", { method: "POST", body: { text: i.text } });
  if (!check.ok) return;
  R.draft = check.rules;
  R.draft.custom = R.draft.custom || [];
  delete R.draft.change;
  $("#rules-form").replaceChildren(...editor());
  status(`Loaded the rule set of seq ${i.seq}: preview it, then install it to roll back.`);
  changed();
}
