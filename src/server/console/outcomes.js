// parley operator console: the scorecard page (#/scorecard). What followed
// the decisions, drawn from GET /v1/scorecard: revenue and margin per day
// with the decisions that changed terms marked, each agent's forecast
// record, escalations per day with the rule-set installations marked; then
// GET /v1/suggestions, each with its evidence, its what-if preview and (for
// admins) an install button. Every mark carries the number it draws
// (data-value) so what is seen can be checked against the API. Uses the
// helpers of app.js (h, $, api, S, fmtMoney, fmtTime, status).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PLOT = { w: 720, h: 200, pad: 36 };

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, String(v));
  for (const k of kids.flat(Infinity)) if (k != null) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

// A scale from [lo, hi] onto [a, b] (a flat range maps to the middle).
function scale(lo, hi, a, b) {
  return (v) => (hi === lo ? (a + b) / 2 : a + ((v - lo) * (b - a)) / (hi - lo));
}

function axes(title, lo, hi, fmt) {
  const { w, h: ht, pad } = PLOT;
  return [
    svg("title", {}, title),
    svg("line", { x1: pad, y1: ht - pad, x2: w - 8, y2: ht - pad, stroke: "currentColor", "stroke-width": 1 }),
    svg("line", { x1: pad, y1: 8, x2: pad, y2: ht - pad, stroke: "currentColor", "stroke-width": 1 }),
    svg("text", { x: 2, y: 16, "font-size": 10, fill: "currentColor" }, fmt(hi)),
    svg("text", { x: 2, y: ht - pad, "font-size": 10, fill: "currentColor" }, fmt(lo)),
  ];
}

// Revenue and margin per day, as two lines; a tick for each decision.
function dailyPlot(days, decisions) {
  const { w, h: ht, pad } = PLOT;
  if (!days.length) return h("p", { class: "muted", id: "plot-daily-empty" }, "No sales recorded yet: outcome records fill this plot.");
  const values = days.flatMap((d) => [d.revenue_minor, d.margin_minor]);
  const lo = Math.min(0, ...values), hi = Math.max(...values);
  const t0 = days[0].from_ms, t1 = days[days.length - 1].from_ms + 86400000;
  const x = scale(t0, t1, pad, w - 8), y = scale(lo, hi, ht - pad, 8);
  const line = (key, colour, id) => svg("polyline", { id, fill: "none", stroke: colour, "stroke-width": 2,
    points: days.map((d) => `${x(d.from_ms + 43200000).toFixed(1)},${y(d[key]).toFixed(1)}`).join(" ") });
  const dots = (key, colour, cls) => days.map((d) => svg("circle", { class: cls, cx: x(d.from_ms + 43200000), cy: y(d[key]), r: 3,
    fill: colour, "data-day": d.day, "data-value": d[key] }, svg("title", {}, `${d.day}: ${key.replace("_minor", "")} ${fmtMoney(d[key])}`)));
  const marks = decisions.filter((d) => d.from_ms >= t0 && d.from_ms < t1).map((d) => svg("line", {
    class: "decision-mark", "data-intention": d.intention, "data-value": d.from_ms,
    x1: x(d.from_ms), x2: x(d.from_ms), y1: ht - pad, y2: ht - pad + 8, stroke: "#b45309", "stroke-width": 2 },
  svg("title", {}, `#${d.intention} ${d.kind} by ${d.agent} (${d.rule})`)));
  return svg("svg", { id: "plot-daily", viewBox: `0 0 ${w} ${ht}`, role: "img", "aria-label": "Revenue and margin per day" },
    axes("Revenue (blue) and margin (green) per day; ticks: decisions that changed terms", lo, hi, fmtMoney),
    line("revenue_minor", "#1d4ed8", "line-revenue"), line("margin_minor", "#15803d", "line-margin"),
    dots("revenue_minor", "#1d4ed8", "dot-revenue"), dots("margin_minor", "#15803d", "dot-margin"), marks);
}

// Each agent's forecast record: the realized share of its projections (100 %
// is right on) as a bar, and its mean error per measured decision.
function forecastPlot(agents) {
  const { w, pad } = PLOT;
  const measured = agents.filter((a) => a.bias_bp != null);
  if (!measured.length) return h("p", { class: "muted", id: "plot-forecast-empty" }, "No forecast is measured yet.");
  const row = 26, ht = measured.length * row + 20;
  const hi = Math.max(10000, ...measured.map((a) => Math.abs(a.bias_bp)));
  const x = scale(0, hi, 120, w - 220);
  return svg("svg", { id: "plot-forecast", viewBox: `0 0 ${w} ${ht}`, role: "img", "aria-label": "Forecast record per agent" },
    svg("title", {}, "Realized revenue impact over projected, per agent (the line is 100 %)"),
    svg("line", { x1: x(10000), x2: x(10000), y1: 0, y2: ht, stroke: "currentColor", "stroke-dasharray": "4 3" }),
    measured.map((a, i) => [
      svg("text", { x: 4, y: i * row + 18, "font-size": 12, fill: "currentColor" }, a.agent),
      svg("rect", { class: "forecast-bar", "data-agent": a.agent, "data-value": a.bias_bp, x: 120, y: i * row + 6,
        width: Math.max(1, x(Math.abs(a.bias_bp)) - 120), height: row - 10, fill: a.bias_bp >= 5000 && a.bias_bp <= 15000 ? "#15803d" : "#b91c1c" },
      svg("title", {}, `${a.agent}: ${(a.bias_bp / 100).toFixed(2)} % of projections over ${a.measured} measured`)),
      svg("text", { x: x(Math.abs(a.bias_bp)) + 4, y: i * row + 18, "font-size": 11, fill: "currentColor", class: "forecast-error",
        "data-agent": a.agent, "data-value": a.mean_abs_error_minor },
      `${(a.bias_bp / 100).toFixed(0)} % · mean error ${fmtMoney(a.mean_abs_error_minor)}`),
    ]));
}

// Escalations per day as bars; a dashed line where a rule set was installed.
function escalationPlot(days, installs) {
  const { w, h: ht, pad } = PLOT;
  if (!days.length) return h("p", { class: "muted" }, "Nothing decided yet.");
  const hi = Math.max(1, ...days.map((d) => d.escalations));
  const t0 = days[0].from_ms, t1 = days[days.length - 1].from_ms + 86400000;
  const x = scale(t0, t1, pad, w - 8), y = scale(0, hi, ht - pad, 8);
  const bw = Math.max(2, (w - pad - 8) / days.length - 2);
  return svg("svg", { id: "plot-escalations", viewBox: `0 0 ${w} ${ht}`, role: "img", "aria-label": "Escalations per day" },
    axes("Escalations per day; dashed: a rule set installed", 0, hi, String),
    days.map((d) => svg("rect", { class: "escalation-bar", "data-day": d.day, "data-value": d.escalations,
      x: x(d.from_ms) + 1, y: y(d.escalations), width: bw, height: ht - pad - y(d.escalations), fill: "#7c3aed" },
    svg("title", {}, `${d.day}: ${d.escalations} escalation(s)`))),
    installs.filter((i) => i.recorded_at_ms >= t0 && i.recorded_at_ms < t1).map((i) => svg("line", {
      class: "rules-mark", "data-value": i.seq, x1: x(i.recorded_at_ms), x2: x(i.recorded_at_ms), y1: 8, y2: ht - pad,
      stroke: "#b45309", "stroke-dasharray": "4 3" }, svg("title", {}, `rule set of seq ${i.seq}${i.why ? `: ${i.why}` : ""}`))));
}

async function viewScorecard(main) {
  const [card, installs] = await Promise.all([api("/v1/scorecard"), api("/v1/rules/history").catch(() => [])]);
  const t = card.realized;
  const escalations = card.days.reduce((n, d) => n + d.escalations, 0);
  main.replaceChildren(
    h("h2", {}, "Scorecard"),
    h("p", { class: "muted", id: "scorecard-summary" },
      `As of seq ${card.ledger_seq}: ${t.units} units sold, revenue ${fmtMoney(t.revenue_minor)}, margin ${fmtMoney(t.margin_minor)}, `,
      `refunds ${fmtMoney(t.refund_minor)}; ${escalations} escalation(s), ${card.resolutions} settled by a person after ${card.waited_minutes} minute(s) of waiting.`),
    h("section", { class: "card" }, h("h3", {}, "Revenue and margin per day"), dailyPlot(card.days, card.decisions)),
    h("section", { class: "card" }, h("h3", {}, "Forecast record per agent"), forecastPlot(card.agents)),
    h("section", { class: "card" }, h("h3", {}, "Escalations per day"), escalationPlot(card.days, installs)),
    h("h3", {}, "Suggestions"),
    h("div", { id: "suggestions", "aria-live": "polite" }, h("p", { class: "muted" }, "Computing suggestions and their previews…")));
  try {
    const s = await api("/v1/suggestions");
    $("#suggestions").replaceChildren(...(s.suggestions.length
      ? s.suggestions.map((x) => suggestionCard(x))
      : [h("p", { class: "card muted", id: "no-suggestions" }, `No suggestion as of seq ${s.ledger_seq}: the evidence does not call for a change.`)]));
  } catch (e) {
    $("#suggestions").replaceChildren(h("p", { class: "error", role: "alert" }, `Could not compute suggestions: ${e.message}`));
  }
}

function changeWords(c) {
  switch (c.change) {
    case "threshold": return `Raise the escalation threshold from ${fmtMoney(c.from_minor)} to ${fmtMoney(c.to_minor)}`;
    case "autonomy": return `Let ${c.agent} ${c.kind} without a person`;
    case "calibration": return `Calibrate ${c.agent}'s impacts: its forecasts realized ${(c.bias_bp / 100).toFixed(1)} % of what it projected`;
    case "margin_floor": return `Raise the margin floor from ${(c.from_bp / 100).toFixed(2)} % to ${(c.to_bp / 100).toFixed(2)} %`;
    case "escalation_window": return `Give people ${c.to_h} h instead of ${c.from_h} h to settle an escalation`;
    case "retire_precedents": return `Retire precedents whose cases do worse (resolution ${c.resolution}'s did)`;
    default: return c.change;
  }
}

function suggestionCard(x) {
  const v = x.preview;
  const preview = v ? h("p", { class: "small" },
    `Preview on this ledger: ${v.changed} decision(s) differ; escalations ${v.escalations_alternative} instead of ${v.escalations_recorded}; `,
    h("b", {}, "estimated"), ` margin ${fmtMoney(v.margin_delta_minor)} (${v.estimated} estimated, ${v.not_estimated} not; ${v.model}).`)
    : h("p", { class: "small muted" }, "An agent's registration: the what-if preview varies rule sets only.");
  const out = h("div", { class: "install-result", "aria-live": "polite" });
  const button = S.me && S.me.role === "admin"
    ? h("button", { type: "button", class: "install-suggestion", onclick: () => installSuggestion(x, out) }, "Install")
    : null;
  return h("section", { class: "card suggestion", "data-id": x.id },
    h("h4", {}, changeWords(x.change)),
    h("p", { class: "small muted" }, `${x.evidence.supporting} of ${x.evidence.cases} case(s) support it; records ${x.evidence.seqs.join(", ")}`),
    preview, button, out);
}

async function installSuggestion(x, out) {
  try {
    let a;
    if (x.install.install === "rules") {
      a = await api("/v1/rules", { method: "POST", body: { text: x.install.text, why: x.why } });
    } else {
      a = await api("/v1/commands", { method: "POST", body: { producer: S.me.identity, kind: "agent_registered", profile: x.install.profile } });
    }
    out.replaceChildren(h("p", { class: "notice installed-suggestion" }, `Installed at seq ${a.seq}.`));
    status(`Suggestion ${x.id} installed at seq ${a.seq}.`);
  } catch (e) {
    out.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
  }
}
