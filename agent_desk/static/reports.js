// The supervisors' loop reports: figures per department or city for a day, week or month
// (GET /api/reports/loop), the same as CSV or XLSX, and two charts drawn as inline SVG by
// lit-html (no chart library): rates per row, and accepted/closed cases over the period.
import { html, svg, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, hotlineToday, loadMe, newestWins, pageReady, say, startPage } from "./app.js";
import { loadFigures, loadForecast, startFigures } from "./figures.js";
import { DASH, currentLang, pct, t } from "./i18n.js";

// The table's columns: the figure's field, its catalogue key, how it is shown.
const COLUMNS = [
  ["accepted", "report.col_accepted", "n"], ["sign_due", "report.col_sign_due", "n"],
  ["signed_on_time", "report.col_signed_on_time", "n"], ["sign_rate", "report.col_sign_rate", "%"],
  ["handle_due", "report.col_handle_due", "n"], ["handled_on_time", "report.col_handled_on_time", "n"],
  ["handle_rate", "report.col_handle_rate", "%"], ["followups", "report.col_followups", "n"],
  ["satisfaction_rate", "report.col_satisfaction_rate", "%"], ["resolution_rate", "report.col_resolution_rate", "%"],
  ["reopened", "report.col_reopened", "n"], ["reopen_rate", "report.col_reopen_rate", "%"],
  ["repeats", "report.col_repeats", "n"], ["repeat_rate", "report.col_repeat_rate", "%"],
  ["avg_handle_hours", "report.col_avg_handle_hours", "h"],
];
// The rates charted per row, and their colours.
const CHARTED = [["handle_rate", "report.col_handle_rate", "#1f7a3a"],
                 ["satisfaction_rate", "report.col_satisfaction_rate", "#173d6b"],
                 ["sign_rate", "report.col_sign_rate", "#d9822b"]];
const MAX_BARS = 15;
let REPORT = null;
const reportTurn = newestWins();

function params() {
  const p = new URLSearchParams({ period: $("q-period").value, by: $("q-by").value });
  if ($("q-date").value) p.set("date", $("q-date").value);
  if ($("q-city").value) p.set("city", $("q-city").value);
  return p;
}
function exportLinks() {
  for (const fmt of ["csv", "xlsx"]) {
    const p = params(); p.set("format", fmt); p.set("lang", currentLang());
    $("export-" + fmt).href = "/api/reports/loop/export?" + p;
  }
}
async function load(ev) {
  if (ev) ev.preventDefault();
  exportLinks();
  const current = reportTurn();
  try {
    const doc = await api("GET", "/api/reports/loop?" + params());
    if (!current()) return;
    REPORT = doc; say("msg", ""); fillCities(); render();
  } catch (e) { if (current()) { REPORT = null; say("msg", e.message); render(); } }
}
function fillCities() {
  const sel = $("q-city"), chosen = sel.value;
  const only = REPORT.cities.length === 1 && REPORT.city;
  paint(html`${only ? "" : html`<option value="">${t("report.all_cities")}</option>`}${REPORT.cities.map(c =>
    html`<option value=${c.id} ?selected=${c.id === (chosen || REPORT.city)}>${c.name}</option>`)}`, sel);
  sel.disabled = !!only;
}

// -- formats ---------------------------------------------------------------------------------
function fmtDate(iso, opts) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Intl.DateTimeFormat(currentLang(), { timeZone: "UTC", ...opts }).format(new Date(Date.UTC(y, m - 1, d)));
}
const DAY = { year: "numeric", month: "long", day: "numeric" };
function periodLabel(p) {
  if (p.kind === "day") return fmtDate(p.first, DAY);
  if (p.kind === "month") return fmtDate(p.first, { year: "numeric", month: "long" });
  const [year, week] = p.key.split("-W");
  return t("report.week_label", { year, week: Number(week), first: fmtDate(p.first, { month: "long", day: "numeric" }),
                                   last: fmtDate(p.last, { month: "long", day: "numeric" }) });
}
function cell(v, kind) {
  if (v == null) return DASH;
  if (kind === "%") return pct(v);
  if (kind === "h") return v.toFixed(1);
  return String(v);
}
function rowName(r) { return r.key == null ? t(REPORT.by === "city" ? "report.no_city" : "report.no_department") : (r.name || r.key); }
function partLabel(label) { return REPORT.period.kind === "day" ? t("report.hour_label", { hour: label }) : fmtDate(label, { month: "numeric", day: "numeric" }); }

// -- rendering -------------------------------------------------------------------------------
function render() {
  if (!REPORT) { for (const id of ["title", "chart-rates", "chart-trend"]) paint("", $(id)); paint("", $("figures").tBodies[0]); return; }
  const by = t(REPORT.by === "city" ? "report.by_city" : "report.by_department");
  paint(t("report.title", { period: periodLabel(REPORT.period), by }), $("title"));
  const table = $("figures");
  paint(html`<tr><th>${by}</th>${COLUMNS.map(([, key]) => html`<th class="num">${t(key)}</th>`)}</tr>`, table.tHead);
  paint(repeat(REPORT.rows, r => r.key ?? "", r => html`<tr data-key=${r.key ?? ""}><td>${rowName(r)}</td>
    ${COLUMNS.map(([f, , kind]) => html`<td class="num" data-f=${f}>${cell(r[f], kind)}</td>`)}</tr>`), table.tBodies[0]);
  paint(html`<tr data-key="total"><th>${t("report.total")}</th>${COLUMNS.map(([f, , kind]) => html`<th class="num" data-f=${f}>${cell(REPORT.total[f], kind)}</th>`)}</tr>`, table.tFoot);
  paint(ratesChart(), $("chart-rates"));
  paint(trendChart(), $("chart-trend"));
}

// Horizontal bars: per row (the busiest first), one bar per charted rate, 0–100 %.
function ratesChart() {
  const rows = REPORT.rows.filter(r => r.key != null && CHARTED.some(([f]) => r[f] != null))
    .sort((a, b) => b.accepted - a.accepted).slice(0, MAX_BARS);
  if (!rows.length) return html`<p>${t("common.none")}</p>`;
  const label = 190, width = 520, bar = 9, group = bar * CHARTED.length + 10, top = 24;
  const height = top + rows.length * group;
  return html`<svg id="rates-svg" role="img" aria-label=${t("report.chart_rates")} width=${label + width + 60} height=${height}
      viewBox="0 0 ${label + width + 60} ${height}" font-size="12">
    ${CHARTED.map(([, key, colour], i) => svg`<rect x=${label + i * 150} y="4" width="10" height="10" fill=${colour}></rect>
      <text x=${label + i * 150 + 14} y="13">${t(key)}</text>`)}
    ${[0, 0.5, 1].map(x => svg`<line x1=${label + x * width} x2=${label + x * width} y1=${top - 4} y2=${height} stroke="#ccd5df"></line>`)}
    ${rows.map((r, i) => svg`<g data-key=${r.key}>
      <text x=${label - 6} y=${top + i * group + group / 2} text-anchor="end" dominant-baseline="middle">${rowName(r).slice(0, 14)}</text>
      ${CHARTED.map(([f, , colour], j) => r[f] == null ? svg`` : svg`<rect class="bar" data-f=${f} x=${label}
        y=${top + i * group + j * bar} width=${Math.max(1, r[f] * width)} height=${bar - 2} fill=${colour}></rect>
        <text x=${label + r[f] * width + 4} y=${top + i * group + j * bar + bar - 2} font-size="10">${pct(r[f])}</text>`)}</g>`)}
  </svg>`;
}

// Accepted (bars) and closed (line) per hour of a day or per day of a week or month.
function trendChart() {
  const pts = REPORT.series;
  const max = Math.max(1, ...pts.map(p => Math.max(p.accepted, p.closed)));
  const left = 36, w = 760, h = 180, top = 24, step = w / pts.length;
  const y = v => top + h - (v / max) * h;
  const line = pts.map((p, i) => `${left + i * step + step / 2},${y(p.closed)}`).join(" ");
  const every = Math.ceil(pts.length / 16);
  return html`<svg id="trend-svg" role="img" aria-label=${t("report.chart_trend")} width=${left + w + 10} height=${top + h + 30}
      viewBox="0 0 ${left + w + 10} ${top + h + 30}" font-size="11">
    <rect x=${left} y="4" width="10" height="10" fill="#8ca0b8"></rect><text x=${left + 14} y="13">${t("report.col_accepted")}</text>
    <line x1=${left + 110} x2=${left + 130} y1="9" y2="9" stroke="#b3261e" stroke-width="2"></line><text x=${left + 134} y="13">${t("report.closed")}</text>
    <line x1=${left} x2=${left + w} y1=${top + h} y2=${top + h} stroke="#5a6a7c"></line>
    <text x=${left - 4} y=${top + 4} text-anchor="end">${max}</text><text x=${left - 4} y=${top + h} text-anchor="end">0</text>
    ${pts.map((p, i) => svg`<rect class="bar" data-accepted=${p.accepted} x=${left + i * step + 2} y=${y(p.accepted)}
      width=${Math.max(1, step - 4)} height=${top + h - y(p.accepted)} fill="#8ca0b8"></rect>
      ${i % every === 0 ? svg`<text x=${left + i * step + step / 2} y=${top + h + 14} text-anchor="middle">${partLabel(p.label)}</text>` : svg``}`)}
    <polyline points=${line} fill="none" stroke="#b3261e" stroke-width="2"></polyline>
  </svg>`;
}

await startPage();
await loadMe();
$("q-date").value = hotlineToday();
$("q").addEventListener("submit", load);
for (const id of ["q-period", "q-by", "q-city", "q-date"]) $(id).addEventListener("change", load);
document.addEventListener("langchange", () => { exportLinks(); if (REPORT) fillCities(); render(); });
load();
// Agent figures and the staffing forecast of a day, week or month (figures.js).
$("fig-date").value = hotlineToday();
$("fig-show").addEventListener("click", () => { loadFigures(); loadForecast(); });
for (const id of ["fig-period", "fig-date"]) $(id).addEventListener("change", () => { loadFigures(); loadForecast(); });
await startFigures();
pageReady();  // the date filled in, the listeners on, the first figures shown
