// Agent figures (per agent, team or city) and the staffing forecast (per city and half-hour),
// computed by the server from the facts: the wallboard shows today's, the reports page any
// day, week or month's. Exports are the same figures as CSV or XLSX.
import { html, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, newestWins } from "./app.js";
import { DASH, currentLang, fmtSecs, pct, t, tEnum } from "./i18n.js";

let FIG = null, FC = null;
const figTurn = newestWins(), fcTurn = newestWins();

function query() {
  const p = new URLSearchParams();
  p.set("period", $("fig-period")?.value || "today");
  const day = $("fig-date")?.value; if (day) p.set("date", day);
  p.set("by", $("fig-by").value);
  p.set("lang", currentLang());
  return p;
}
// A duration: mm:ss, or h:mm:ss from an hour on (a day's signed-in time).
function dur(s) {
  if (s == null || s < 3600) return fmtSecs(s);
  const h = Math.floor(s / 3600);
  return `${h}:${fmtSecs(s - h * 3600).padStart(5, "0")}`;
}
function num(v, digits = 0) { return v == null ? DASH : Number(v).toFixed(digits); }
function paused(p) {
  const e = Object.entries(p || {});
  return e.length ? e.map(([r, s]) => `${tEnum("reason", r)} ${dur(s)}`).join("，") : DASH;
}
function cells(r) {
  return html`<td>${r.name}</td><td class="num handled">${r.handled}</td><td class="num">${fmtSecs(r.avg_talk_s)}</td>
    <td class="num">${fmtSecs(r.avg_wrap_s)}</td><td class="num">${dur(r.signed_in_s)}</td><td>${paused(r.paused_s)}</td>
    <td class="num occupancy">${pct(r.occupancy)}</td><td class="num">${r.missed}</td>
    <td class="num">${r.transfers}${r.emergency_transfers ? ` (${t("figures.emergency_n", { n: r.emergency_transfers })})` : ""}</td>
    <td class="num satisfaction">${pct(r.satisfaction_rate)}</td><td class="num qa">${num(r.qa_avg, 1)}${r.qa_count ? ` (${r.qa_count})` : ""}</td>`;
}
const HEAD = ["figures.name", "figures.handled", "figures.avg_talk", "figures.avg_wrap", "figures.signed_in",
  "figures.paused", "figures.occupancy", "figures.missed", "figures.transfers", "figures.satisfaction", "figures.qa"];

export async function loadFigures() {
  const p = query(), current = figTurn();
  $("fig-csv").href = "/api/figures/agents/export?" + p + "&format=csv";
  $("fig-xlsx").href = "/api/figures/agents/export?" + p + "&format=xlsx";
  try {
    const doc = await api("GET", "/api/figures/agents?" + p);
    if (!current()) return;
    FIG = doc; renderFigures(); say("");
  } catch (e) { if (current()) say(e.message); }
}
function say(text) { const el = $("fig-msg"); if (el) el.textContent = text; }

export function renderFigures() {
  const table = $("agent-figures");
  paint(html`<tr>${HEAD.map(k => html`<th>${t(k)}</th>`)}</tr>`, table.tHead);
  if (!FIG) return;
  $("fig-period-label").textContent = FIG.period.label;
  paint(repeat(FIG.rows, r => r.key, r => html`<tr data-figures=${r.key}>${cells(r)}</tr>`), table.tBodies[0]);
  paint(html`<tr class="total">${cells(FIG.total)}</tr>`, table.tFoot);
}

export async function loadForecast() {
  const sel = $("fc-city"), p = new URLSearchParams();
  if (sel.value) p.set("city", sel.value);
  const day = $("fig-date")?.value; if (day) p.set("date", day);
  const current = fcTurn();
  let doc = null;
  try { doc = await api("GET", "/api/figures/forecast?" + p); }
  catch (e) { if (current()) say(e.message); }
  if (!current()) return;
  FC = doc;
  if (FC && !sel.options.length) {
    paint(FC.cities.map(c => html`<option value=${c.id}>${c.name}</option>`), sel);
    sel.value = FC.city;
  }
  p.set("lang", currentLang());
  $("fc-csv").href = "/api/figures/forecast/export?" + p + "&format=csv";
  $("fc-xlsx").href = "/api/figures/forecast/export?" + p + "&format=xlsx";
  renderForecast();
}
// The half-hours with calls expected or agents signed in, and the current one.
export function renderForecast() {
  const table = $("forecast");
  paint(html`<tr><th>${t("forecast.interval")}</th><th>${t("forecast.expected")}</th><th>${t("forecast.needed")}</th>
    <th>${t("forecast.signed_in")}</th><th>${t("forecast.sl")}</th></tr>`, table.tHead);
  if (!FC) return;
  $("fc-line").textContent = t("forecast.line", { city: FC.city_name, day: FC.day, weeks: FC.weeks, aht: Math.round(FC.aht_s),
    sl: pct(FC.target.service_level), s: FC.target.seconds });
  const rows = FC.intervals.filter(i => i.expected_calls > 0 || i.signed_in || i.index === FC.current);
  paint(rows.length ? repeat(rows, i => i.index, i => html`<tr data-interval=${i.start}
      class=${i.index === FC.current ? "current" : ""}><td>${i.start}</td><td class="num">${num(i.expected_calls, 1)}</td>
      <td class="num needed">${i.agents_needed}</td>
      <td class="num ${i.signed_in != null && i.signed_in < i.agents_needed ? "short" : ""}">${i.signed_in ?? DASH}</td>
      <td class="num">${pct(i.forecast_sl)}</td></tr>`)
    : html`<tr><td colspan="5">${t("common.none")}</td></tr>`, table.tBodies[0]);
}

export async function startFigures({ every } = {}) {
  $("fig-by").addEventListener("change", loadFigures);
  $("fc-city").addEventListener("change", loadForecast);
  await loadFigures(); await loadForecast();
  if (every) setInterval(() => { loadFigures(); loadForecast(); }, every);
  // The headings at once; the rows' display names come back from the server in the language.
  document.addEventListener("langchange", () => { renderFigures(); loadFigures(); renderForecast(); });
}
