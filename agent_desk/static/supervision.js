// The supervisors' 督办 page: open cases by 红黄灯, department, city and state (most overdue
// first, a page at a time), the extension requests waiting for a decision and the replies
// waiting for review (审核), each decided here. GET /api/supervision; the decisions are the
// case loop's actions (POST /api/cases/<number>/loop/...).
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, changeKey, loadMe, newestWins, pageReady, say, startPage } from "./app.js";
import { fmtTime, t, tEnum } from "./i18n.js";
import { deptName, lightBadge, loadDirectory } from "./loop.js";

const listTurn = newestWins();

const OPEN_STATES = ["accepted", "dispatched", "returned", "handling", "replied", "follow_up"];
const PAGE = 20;
let LIST = { total: 0, cases: [], extensions: [], replies: [] }, OFFSET = 0, MSG = null;
let DEPTS = [], CITIES = {};

function setMsg(m) { MSG = m; renderMsg(); }
function renderMsg() { say("msg", !MSG ? "" : MSG.key ? t(MSG.key, MSG.vars) : MSG.text, !!(MSG && MSG.ok)); }
function cityName(id) { return id ? (CITIES[id]?.name || id) : ""; }

// How long until the time limit, or how long past it: days and hours.
function timeLeft(due) {
  if (!due) return "";
  const secs = (new Date(due).getTime() - Date.now()) / 1000;
  const abs = Math.abs(secs), d = Math.floor(abs / 86400), h = Math.floor((abs % 86400) / 3600);
  const span = t("supervision.days_hours", { d, h });
  return secs < 0 ? t("supervision.overdue", { span }) : t("supervision.remaining", { span });
}

function renderFilters() {
  const keep = id => $(id).value;
  const dept = keep("s-department"), city = keep("s-city"), state = keep("s-state");
  paint(html`<option value="">${t("search.all")}</option>${DEPTS.map(d => html`<option value=${d.id} ?selected=${d.id === dept}>${d.name}</option>`)}`, $("s-department"));
  paint(html`<option value="">${t("search.all")}</option>${Object.entries(CITIES).map(([id, c]) => html`<option value=${id} ?selected=${id === city}>${c.name || id}</option>`)}`, $("s-city"));
  paint(html`<option value="">${t("search.all")}</option>${OPEN_STATES.map(s => html`<option value=${s} ?selected=${s === state}>${tEnum("loop_state", s)}</option>`)}`, $("s-state"));
}

async function load() {
  const p = new URLSearchParams();
  for (const k of ["light", "supervised", "department", "city", "state"]) { const v = $("s-" + k).value; if (v) p.set(k, v); }
  p.set("limit", PAGE); p.set("offset", OFFSET);
  const current = listTurn();
  try {
    const doc = await api("GET", "/api/supervision?" + p);
    if (current()) { LIST = doc; render(); }
  } catch (e) { if (current()) setMsg({ text: e.message }); }
}

function none(cols) { return html`<tr><td colspan=${cols}>${t("common.none")}</td></tr>`; }
function caseLink(n) { return html`<a href="/cases#${n}">${n}</a>`; }

function render() {
  paint(!LIST.cases.length ? none(10) : repeat(LIST.cases, c => c.number, c => html`<tr data-case=${c.number} data-light=${c.light}>
    <td>${lightBadge(c.light)}</td><td>${caseLink(c.number)}</td><td>${cityName(c.city)}</td>
    <td>${tEnum("loop_state", c.state)}</td><td>${c.appeal_type_name}</td><td>${c.matter_name}</td>
    <td>${c.lead_department_name || deptName(c.lead_department)}</td><td>${fmtTime(c.due_at)}</td>
    <td class=${c.due_at && new Date(c.due_at) < new Date() ? "msg" : ""}>${timeLeft(c.due_at)}</td>
    <td>${c.supervised ? html`<span class="badge light-red">${t("loop.supervised")}</span>` : nothing}</td></tr>`),
  $("s-cases").querySelector("tbody"));
  $("s-page").textContent = LIST.total ? t("supervision.page", { from: OFFSET + 1, to: OFFSET + LIST.cases.length, total: LIST.total }) : "";
  $("s-prev").disabled = OFFSET === 0; $("s-next").disabled = OFFSET + LIST.cases.length >= LIST.total;
  paint(!LIST.extensions.length ? none(7) : repeat(LIST.extensions, x => x.number + x.department, x => html`<tr data-extension=${x.number}>
    <td>${caseLink(x.number)}</td><td>${t("loop.dept_role", { department: x.department_name || deptName(x.department), role: tEnum("dispatch_role", x.role) })}</td>
    <td>${x.matter_name}</td><td>${x.days}</td><td class="pre">${x.reason}</td><td>${fmtTime(x.due_at)}</td>
    <td><button class="primary" data-approve=${x.number}>${t("loop.approve")}</button> <button data-refuse=${x.number}>${t("loop.refuse")}</button></td></tr>`),
  $("s-extensions").querySelector("tbody"));
  paint(!LIST.replies.length ? none(7) : repeat(LIST.replies, x => x.number, x => html`<tr data-reply=${x.number}>
    <td>${caseLink(x.number)}</td><td>${x.department_name || deptName(x.department)}</td><td>${x.matter_name}</td>
    <td class="pre">${x.reply}</td><td>${x.contacted_caller == null ? "" : x.contacted_caller ? t("common.yes") : t("common.no")}</td>
    <td>${fmtTime(x.replied_at)}</td>
    <td><input data-reason=${x.number} maxlength="2000" style="width:180px" placeholder=${t("loop.review_placeholder")}>
      <button class="primary" data-accept=${x.number}>${t("loop.accept")}</button> <button data-reject=${x.number}>${t("loop.reject")}</button></td></tr>`),
  $("s-replies").querySelector("tbody"));
}

async function decide(number, action, body, done) {
  setMsg(null);
  try {
    await api("POST", `/api/cases/${encodeURIComponent(number)}/loop/${action}`, body, { "Idempotency-Key": changeKey() });
    setMsg({ ...done, vars: { case: number }, ok: true });
  } catch (e) { setMsg({ text: e.message }); }
  await load();
}

await startPage();
const me = await loadMe();
$("who").textContent = me.name || me.user;
await loadDirectory();
const [depts, board] = await Promise.all([api("GET", "/api/departments"), api("GET", "/api/wallboard")]);
DEPTS = depts.departments; CITIES = board.cities || {};
renderFilters();
$("filters").addEventListener("submit", ev => { ev.preventDefault(); OFFSET = 0; load(); });
$("s-prev").onclick = () => { OFFSET = Math.max(0, OFFSET - PAGE); load(); };
$("s-next").onclick = () => { OFFSET += PAGE; load(); };
document.querySelector("main").addEventListener("click", ev => {
  const d = ev.target.dataset;
  const reason = n => document.querySelector(`[data-reason="${n}"]`)?.value || "";
  if (d.approve) decide(d.approve, "decide_extension", { accept: true }, { key: "supervision.extension_approved" });
  if (d.refuse) decide(d.refuse, "decide_extension", { accept: false }, { key: "supervision.extension_refused" });
  if (d.accept) decide(d.accept, "review", { accept: true, reason: reason(d.accept) }, { key: "supervision.reply_accepted" });
  if (d.reject) decide(d.reject, "review", { accept: false, reason: reason(d.reject) }, { key: "supervision.reply_rejected" });
});
load();
document.addEventListener("langchange", () => { renderFilters(); render(); renderMsg(); });
setInterval(render, 60000);  // the time left moves on
pageReady();
