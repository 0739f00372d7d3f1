// The agent's console: CTI toolbar, ringing pop-up, screen pop, case form, knowledge base
// (knowledge.js), transfer panel, transcript, callbacks. State comes from GET
// /api/console/state, refreshed on WebSocket events. Lists are lit-html templates: an update
// patches the rows in place, so an outcome being chosen in the callbacks table is not reset
// by a refresh.
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, currentUser, loadMe, openSocket, say, startPage } from "./app.js";
import { fmtSecs, t, tEnum } from "./i18n.js";
import { LoopPanel } from "./loop.js";
import { caseChanged, renderKnowledge, startKnowledge } from "./knowledge.js";

const CALLBACK_OUTCOMES = ["reached", "no_answer", "busy", "wrong_number", "cancelled"];
const TRANSFER_ACTIONS = ["consult", "three_way", "blind", "leave", "cancel", "emergency"];
let STATE = null, FORM_VERSION = null, CASE = null, TIMER_FROM = null, SINCE = null, CLOCK_SKEW = 0;
let CALLBACKS = [], DESTINATIONS = [], CAPTIONS = [], NEXT_CAPTION = 0, FORM_MSG = null;
// The screen-popped case's 工单流转: classified and dispatched during or after the call. A
// classification with an address saves it on the form: the form takes its new version.
const PANEL = new LoopPanel($("loop"), async () => {
  if (!CASE) return;
  try {
    const f = (await api("GET", `/api/cases/${CASE.number}`)).form || {};
    if (f.version > FORM_VERSION) { FORM_VERSION = f.version; $("f-address").value = f.address || ""; }
  } catch { /* the form keeps its version; a save says if it is stale */ }
}, () => $("f-address").value);

function render() {
  const s = STATE; if (!s) return;
  const st = s.signed_in ? (s.state || "unknown") : "signed_out";
  const badge = $("state");
  badge.textContent = tEnum("state", st) + (s.reason && st !== "ready" ? ` (${tEnum("reason", s.reason)})` : "");
  badge.className = "badge st-" + st; badge.dataset.state = st;
  SINCE = s.since;
  $("signin").disabled = s.signed_in; $("signout").disabled = !s.signed_in || !!s.call;
  $("ready").disabled = !s.signed_in; $("pause").disabled = !s.signed_in; $("wrapup").disabled = !s.signed_in;
  const call = s.call;
  $("answer").disabled = !(call && call.state === "ringing");
  $("hold").disabled = $("unhold").disabled = $("hangup").disabled = !(call && call.state === "talking");
  $("ringing").classList.toggle("hidden", !(call && call.state === "ringing"));
  TIMER_FROM = call && call.answered_at ? call.answered_at : null;
  if (s.case) showCase(s.case);
  if (call) {
    $("r-caller").textContent = s.case ? s.case.caller : ""; $("r-city").textContent = s.case ? (s.case.city || "") : "";
    $("r-queue").textContent = call.queue || "";
    $("p-callstate").textContent = tEnum("call_state", call.state);
  } else { $("p-callstate").textContent = CASE ? t("call.ended") : ""; }
  paint(repeat(call ? call.legs || [] : [], (l, i) => l.leg_id ?? i, l => html`<div>${l.name} ·
    ${tEnum("leg_state", l.state)} ${tEnum("leg_outcome", l.outcome)}</div>`), $("legs"));
}
function renderCase() {
  const c = CASE; if (!c) return;
  $("p-case").textContent = c.number; $("p-caller").textContent = c.caller; $("p-city").textContent = c.city || "";
  $("p-dialed").textContent = c.dialed_number || ""; $("p-queue").textContent = c.queue || "";
  $("p-priority").textContent = (c.priority || 0) + (c.flags && c.flags.length ? " · " + c.flags.join(", ") : "");
  $("p-reasons").textContent = c.route_reasons || "";
  const earlier = c.earlier || [];
  paint(earlier.length ? earlier.map((e, i) => html`${i ? html`<br>` : nothing}<a href="/cases#${e.case}">${e.case}</a>
    (${tEnum("case_status", e.status === "open" ? "open" : "closed")})`) : t("common.none"), $("p-earlier"));
}
function showCase(c) {
  const fresh = !CASE || CASE.number !== c.number;
  CASE = c;
  renderCase();
  if (fresh) {
    const f = c.form || {};
    $("f-category").value = f.category || ""; $("f-subject").value = f.subject || ""; $("f-address").value = f.address || "";
    $("f-content").value = f.content || ""; $("f-department").value = f.department || "";
    FORM_VERSION = f.version || 0; CAPTIONS = []; renderCaptions(); setFormMsg(null);
    loadTranscript(); caseChanged();
    $("loop").classList.remove("hidden"); PANEL.show(c.number);
  }
}
async function refresh() {
  try { STATE = await api("GET", "/api/console/state"); CLOCK_SKEW = Date.now() / 1000 - STATE.now; render(); }
  catch (e) { say("msg", e.message); }
}
async function act(path, body) {
  say("msg", "");
  try { const r = await api("POST", path, body); await refresh(); return r; } catch (e) { say("msg", e.message); throw e; }
}
// The form's own line: a catalogue key for our messages (re-said on a language change), or
// the server's text for an error.
function setFormMsg(msg) { FORM_MSG = msg; renderFormMsg(); }
function renderFormMsg() {
  const m = FORM_MSG;
  say("form-msg", !m ? "" : m.key ? t(m.key) : m.text, !!(m && m.key));
}
async function saveForm() {
  if (!CASE) return;
  const body = { category: $("f-category").value || null, subject: $("f-subject").value, address: $("f-address").value,
                 content: $("f-content").value, department: $("f-department").value, version: FORM_VERSION };
  if (!body.category) delete body.category;
  try { const r = await api("PUT", `/api/cases/${CASE.number}/form`, body); FORM_VERSION = r.form.version; setFormMsg({ key: "form.saved" }); }
  catch (e) { setFormMsg({ text: e.message }); }
}
async function closeCase() {
  if (!CASE) return;
  await saveForm();
  try { await api("POST", `/api/cases/${CASE.number}/close`); setFormMsg({ key: "form.closed" }); }
  catch (e) { setFormMsg({ text: e.message }); }
}
// Live captions: a partial line per speaker is replaced by the next partial or the final one.
function addCaption(c) {
  const open = CAPTIONS.findIndex(x => !x.final && x.speaker === c.speaker);
  const line = { speaker: c.speaker, text: c.text, final: !!c.final, n: open >= 0 ? CAPTIONS[open].n : NEXT_CAPTION++ };
  if (open >= 0) CAPTIONS[open] = line; else CAPTIONS.push(line);
  renderCaptions();
  const box = $("captions"); box.scrollTop = box.scrollHeight;
}
function renderCaptions() {
  paint(repeat(CAPTIONS, c => c.n, c => html`<div class="${c.speaker === "agent" ? "agent" : "caller"}${c.final ? "" : " partial"}"
    data-speaker=${c.speaker}>${t("transcript.line", { speaker: tEnum("speaker", c.speaker === "agent" ? "agent" : "caller"), text: c.text })}</div>`), $("captions"));
}
async function loadTranscript() {
  if (!CASE) return;
  try {
    const tr = await api("GET", `/api/cases/${CASE.number}/transcript`);
    (tr.segments || []).forEach(s => addCaption({ ...s, final: true }));
  } catch { /* the pane stays empty */ }
}
async function loadCallbacks() {
  try {
    // The agent's own city first: the callbacks of callers who called it.
    const me = currentUser();
    const r = await api("GET", "/api/callbacks?status=pending" + (me.city ? "&city=" + encodeURIComponent(me.city) : ""));
    CALLBACKS = r.callbacks; renderCallbacks();
  } catch (e) { say("msg", e.message); }
}
function renderCallbacks() {
  paint(repeat(CALLBACKS, c => c.id, c => html`<tr data-callback=${c.id}><td>${c.case}</td><td>${c.caller}</td>
    <td>${c.city || ""}</td><td>${tEnum("callback_status", c.status)} <small>${tEnum("callback_reason", c.reason)}</small></td><td>${c.attempts}/${c.max_attempts}</td>
    <td><button class="cb-call" @click=${() => callBack(c.id)}>${t("callback.call")}</button>
    <select style="width:auto" @change=${ev => setOutcome(c.id, ev.target)}><option value=""></option>
    ${CALLBACK_OUTCOMES.map(o => html`<option value=${o}>${tEnum("callback_outcome", o)}</option>`)}</select></td></tr>`),
  $("cb"));
}
async function callBack(id) { try { await act(`/api/callbacks/${id}/call`); } finally { loadCallbacks(); } }
async function setOutcome(id, select) {
  if (!select.value) return;
  // The row stays while attempts remain: its choice goes back to blank for the next attempt.
  try { await act(`/api/callbacks/${id}/outcome`, { outcome: select.value }); } finally { select.value = ""; loadCallbacks(); }
}
function renderDestinations() {
  paint(repeat(DESTINATIONS, x => x.id, x => html`<option value=${x.id}>${x.name} ${x.number}</option>`), $("dest"));
  paint(repeat(DESTINATIONS, x => x.id, x => html`<option value=${x.name}></option>`), $("departments"));
}
function tick() {
  const now = Date.now() / 1000 - CLOCK_SKEW;
  $("timer").textContent = TIMER_FROM ? fmtSecs(now - TIMER_FROM) : "00:00";
  $("in-state").textContent = SINCE ? fmtSecs(now - SINCE) : "";
}

await startPage();
const me = await loadMe();
$("who").textContent = `${me.agent_name || me.user} (${me.agent || ""})`;
$("signin").onclick = () => act("/api/console/signin");
$("signout").onclick = () => act("/api/console/signout");
$("ready").onclick = () => act("/api/console/ready");
$("pause").onclick = () => act("/api/console/pause", { reason: $("reason").value });
$("wrapup").onclick = () => act("/api/console/wrapup");
$("answer").onclick = $("r-answer").onclick = () => act("/api/console/answer");
$("hold").onclick = () => act("/api/console/hold");
$("unhold").onclick = () => act("/api/console/unhold");
$("hangup").onclick = () => act("/api/console/hangup");
for (const a of TRANSFER_ACTIONS) {
  $("t-" + a).onclick = () => act("/api/console/transfer", { action: a, destination: $("dest").value || null });
}
$("save").onclick = saveForm; $("close").onclick = closeCase;
startKnowledge();
DESTINATIONS = (await api("GET", "/api/console/destinations")).destinations;
renderDestinations();
openSocket(msg => {
  if (msg.type !== "console") return;
  const e = msg.event;
  if (e.type === "caption") { addCaption(e); return; }
  if (e.type === "call" && e.fact === "abandoned") loadCallbacks();
  refresh();
}, () => { refresh(); loadCallbacks(); });
document.addEventListener("langchange", () => { render(); renderCase(); renderCaptions(); renderCallbacks(); renderFormMsg(); PANEL.render(); renderKnowledge(); });
setInterval(tick, 250);
