// Case search and one case's detail (#<number> in the address). lit-html templates: a new
// search patches the rows it shares with the last one.
import { html, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, loadMe, newestWins, pageReady, say, startPage } from "./app.js";
import { fmtTime, t, tEnum } from "./i18n.js";
import { LoopPanel } from "./loop.js";
import { callRecord } from "./call_record.js";
import { agentName, cityName, loadNames, queueName, routeReasons } from "./names.js";

const detailTurn = newestWins();

let CASES = [], DETAIL = null;
// The case's 工单流转 (loop.js); a change there may close the case: the detail follows.
const PANEL = new LoopPanel($("loop"), () => loadDetail(location.hash.slice(1)),
                           () => DETAIL?.c.form?.address);

function status(s) { return tEnum("case_status", s === "open" ? "open" : "closed"); }

async function search(ev) {
  if (ev) ev.preventDefault();
  const p = new URLSearchParams();
  for (const k of ["number", "from", "to", "city", "category", "status"]) { const v = $("q-" + k).value; if (v) p.set(k, v); }
  try { CASES = (await api("GET", "/api/cases?" + p)).cases; renderList(); say("msg", ""); }
  catch (e) { say("msg", e.message); }
}
function renderList() {
  paint(repeat(CASES, c => c.number, c => html`<tr><td><a href="#${c.number}">${c.number}</a></td><td>${c.caller}</td>
    <td>${cityName(c.city)}</td><td>${tEnum("category", c.category)}</td><td>${status(c.status)}</td></tr>`), $("list"));
}
async function show() {
  const number = location.hash.slice(1); if (!number) return;
  const shown = await loadDetail(number);
  if (shown === null) return;  // superseded by a case opened after it
  if (shown) { $("loop").classList.remove("hidden"); await PANEL.show(number); }
  else $("loop").classList.add("hidden");
}
async function loadDetail(number) {
  const current = detailTurn();
  try {
    const c = await api("GET", "/api/cases/" + encodeURIComponent(number));
    const tr = await api("GET", `/api/cases/${encodeURIComponent(number)}/transcript`);
    if (!current()) return null;  // another case was opened meanwhile
    DETAIL = { c, tr }; renderDetail(); return true;
  } catch (e) {
    if (!current()) return null;
    DETAIL = null; paint(e.message, $("detail")); return false;
  }
}
function renderDetail() {
  if (!DETAIL) return;
  const { c, tr } = DETAIL, f = c.form || {};
  paint(html`<h2>${t("field.case_no")} ${c.number}</h2><div class="kv">
    <div>${t("field.caller")}</div><div>${c.caller}</div><div>${t("field.city")}</div><div>${cityName(c.city)}</div>
    <div>${t("field.queue")}</div><div>${queueName(c.queue)}</div>
    <div>${t("field.agent")}</div><div>${agentName(c.agent_id)}</div>
    <div>${t("field.route_reasons")}</div><div>${routeReasons(c.route_reasons)}</div>
    <div>${t("field.category")}</div><div>${tEnum("category", f.category)}</div>
    <div>${t("field.subject")}</div><div>${f.subject ?? ""}</div>
    <div>${t("field.address")}</div><div>${f.address ?? ""}</div>
    <div>${t("field.content")}</div><div style="white-space:pre-wrap">${f.content ?? ""}</div>
    <div>${t("field.department")}</div><div>${f.department ?? ""}</div>
    <div>${t("field.status")}</div><div>${status(c.status)}</div>
    <div>${t("field.rating")}</div><div>${tEnum("rating", c.rating)}</div></div>
    <h2>${t("section.timeline")}</h2><table>${c.timeline.map(e => html`<tr><td>${fmtTime(e.at)}</td>
      <td>${tEnum("fact", e.kind)}</td><td>${tEnum("source", e.source)}</td></tr>`)}</table>
    <h2>${t("section.transfers")}</h2><table>${c.transfers.length ? c.transfers.map(x => html`<tr><td>${x.name}</td>
      <td>${tEnum("transfer_mode", x.mode)}</td><td>${tEnum("leg_outcome", x.outcome)}</td></tr>`)
      : html`<tr><td>${t("common.none")}</td></tr>`}</table>
    ${callRecord(tr)}`, $("detail"));
}

await startPage();
const me = await loadMe();
await loadNames();
$("nav-supervision").classList.toggle("hidden", !["supervisor", "admin"].includes(me.role));
$("q").addEventListener("submit", search);
window.addEventListener("hashchange", show);
search(); show();
document.addEventListener("langchange", () => { renderList(); renderDetail(); PANEL.render(); });
pageReady();
