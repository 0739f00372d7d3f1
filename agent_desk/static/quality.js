// 质检: a finished day's sample of calls (random plus the rules' picks), and for one call
// the recording player and transcript (call_record.js, as on the case page) beside the
// checklist's scoring form. Inspectors see the sampled calls only, callers' numbers masked.
import { html, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, loadMe, newestWins, pageReady, say, startPage } from "./app.js";
import { DASH, currentLang, t, tEnum } from "./i18n.js";
import { callRecord } from "./call_record.js";

const dayTurn = newestWins(), sampleTurn = newestWins();

let DAY = null, SAMPLES = [], CHECKLIST = [], CURRENT = null;

async function load(ev) {
  if (ev) ev.preventDefault();
  const current = dayTurn();
  try {
    // Without a date the server answers with the centre's yesterday (its time zone, not the browser's).
    const day = $("q-date").value;
    const r = await api("GET", "/api/quality/samples" + (day ? "?date=" + day : ""));
    if (!current()) return;  // another day was asked for meanwhile
    DAY = r.day; $("q-date").value = DAY; SAMPLES = r.samples; CHECKLIST = r.checklist; render(); say("msg", "");
  } catch (e) { if (current()) say("msg", e.message); }
}
function reasons(s) { return s.reasons.map(r => tEnum("qa_reason", r)).join("、"); }
function render() {
  paint(SAMPLES.length ? repeat(SAMPLES, s => s.id, s => html`<tr data-sample=${s.case}><td>${s.case}</td>
    <td>${s.agent_name}</td><td>${s.city_name || ""}</td><td>${reasons(s)}</td>
    <td class="num">${s.score ? s.score.score : DASH}</td>
    <td><button data-inspect=${s.id}>${t(s.score ? "qa.rescore" : "qa.inspect")}</button></td></tr>`)
    : html`<tr><td colspan="6">${t("common.none")}</td></tr>`, $("samples").tBodies[0]);
  renderInspect();
}
async function inspect(id) {
  const current = sampleTurn();
  try {
    const s = await api("GET", `/api/quality/samples/${id}`);
    const c = await api("GET", `/api/cases/${encodeURIComponent(s.case)}`);
    const tr = await api("GET", `/api/cases/${encodeURIComponent(s.case)}/transcript`);
    if (!current()) return;  // another sample was opened meanwhile
    CURRENT = { s, c, tr }; $("inspect").classList.remove("hidden"); renderInspect(); say("score-msg", "");
  } catch (e) { say("msg", e.message); }
}
function label(item) { return currentLang() === "zh-CN" ? item.zh : item.en; }
function renderInspect() {
  if (!CURRENT) return;
  const { s, c, tr } = CURRENT, given = s.score ? s.score.items : {};
  paint(html`<h2>${t("field.case_no")} ${c.number} · ${s.agent_name}</h2><div class="kv">
    <div>${t("field.caller")}</div><div id="qa-caller">${c.caller}</div>
    <div>${t("field.category")}</div><div>${tEnum("category", (c.form || {}).category)}</div>
    <div>${t("field.rating")}</div><div>${tEnum("rating", c.rating)}</div>
    <div>${t("qa.reasons")}</div><div>${reasons(s)}</div></div>${callRecord(tr)}`, $("record"));
  paint(html`<h2>${t("qa.checklist")}</h2>${CHECKLIST.map(i => html`<label class="row">${label(i)}
      <input type="number" min="0" max=${i.points} step="1" name=${i.id} style="width:80px"
        .value=${String(given[i.id] ?? i.points)}> / ${i.points}</label>`)}
    <label>${t("qa.comment")}<textarea name="comment" rows="3" style="width:100%" .value=${s.score ? s.score.comment : ""}></textarea></label>
    <button class="primary" id="save-score">${t("qa.save")}</button>`, $("score-form"));
}
async function save(ev) {
  ev.preventDefault();
  const form = $("score-form"), items = {};
  for (const i of CHECKLIST) items[i.id] = parseInt(form.elements[i.id].value, 10);
  try {
    const r = await api("PUT", `/api/quality/samples/${CURRENT.s.id}/score`, { items, comment: form.elements.comment.value });
    CURRENT.s = { ...CURRENT.s, score: r.sample.score };
    SAMPLES = SAMPLES.map(x => (x.id === r.sample.id ? { ...x, score: r.sample.score } : x));
    render(); say("score-msg", t("qa.saved", { score: r.sample.score.score }), true);
  } catch (e) { say("score-msg", e.message); }
}

await startPage();
const me = await loadMe();
$("who").textContent = me.user;
$("nav-wallboard").classList.toggle("hidden", !["supervisor", "admin"].includes(me.role));
$("q").addEventListener("submit", load);
$("samples").addEventListener("click", ev => { const id = ev.target.dataset.inspect; if (id) inspect(id); });
$("score-form").addEventListener("submit", save);
document.addEventListener("langchange", render);
load();
pageReady();
