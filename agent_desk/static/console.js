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
import { loadMyScores, renderMyScores } from "./my_scores.js";
import { BrowserPhone } from "./phone.js";
import { SeatRecorder } from "./seat_recorder.js";
import { cityName, loadNames, queueName, routeReasons } from "./names.js";

const CALLBACK_OUTCOMES = ["reached", "no_answer", "busy", "wrong_number", "cancelled"];
const TRANSFER_ACTIONS = ["consult", "three_way", "blind", "leave", "cancel", "emergency"];
let STATE = null, FORM_VERSION = null, CASE = null, TIMER_FROM = null, SINCE = null, CLOCK_SKEW = 0;
let CALLBACKS = [], DESTINATIONS = [], CAPTIONS = [], NEXT_CAPTION = 0, FORM_MSG = null;
// The phone in the page (agents whose phone is the browser); its state is shown beside the
// toolbar and the toolbar drives it. Other agents' SIP phones are driven through the service.
const PHONE = new BrowserPhone({ api, audio: $("phone-audio"), onChange: () => { render(); renderPhone(); syncRecorder(); },
  videos: { remote: $("seat-remote"), local: $("seat-local") } });
// A video call (the sign-language seat's) recorded here when the service asks for it.
const RECORDER = new SeatRecorder({ api, onChange: () => renderRecorder() });
// The case on screen survives a reload of the page (this tab only): the call may have ended
// meanwhile, its case has not.
const CASE_KEY = "hotline.console.case";
let SIP_HELD = false;  // the SIP phone's hold, as last asked from this page (F3 toggles it)
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
  const ringing = (call && call.state === "ringing") || PHONE.ringing();
  const talking = (call && call.state === "talking") || PHONE.inCall();
  $("answer").disabled = !ringing;
  $("hold").disabled = $("unhold").disabled = $("hangup").disabled = !talking;
  $("mute").disabled = !PHONE.inCall();
  $("ringing").classList.toggle("hidden", !ringing);
  TIMER_FROM = call && call.answered_at ? call.answered_at : null;
  if (s.case) showCase(s.case);
  if (call) {
    $("r-caller").textContent = s.case ? s.case.caller : ""; $("r-city").textContent = s.case ? cityName(s.case.city) : "";
    $("r-queue").textContent = queueName(call.queue);
    $("p-callstate").textContent = tEnum("call_state", call.state);
  } else { $("p-callstate").textContent = CASE ? t("call.ended") : ""; }
  // Only when the [supervision] policy lets agents see it (the server leaves it out otherwise).
  const watched = call ? s.monitored : null;
  $("monitored").classList.toggle("hidden", !watched);
  $("monitored").textContent = watched ? t("monitor.on_your_call", { mode: tEnum("monitor_mode", watched.mode) }) : "";
  paint(repeat(call ? call.legs || [] : [], (l, i) => l.leg_id ?? i, l => html`<div>${l.name} ·
    ${tEnum("leg_state", l.state)} ${tEnum("leg_outcome", l.outcome)}</div>`), $("legs"));
}
function renderPhone() {
  const p = PHONE, badge = $("phone");
  badge.hidden = p.state === "off";
  badge.dataset.state = p.state;
  badge.textContent = t("phone.label") + " " + tEnum("phone_state", p.state) + (p.held ? " · " + t("call.held") : "") +
    (p.muted ? " · " + t("call.muted") : "");
  $("mute").textContent = t(p.muted ? "call.unmute" : "call.mute");
  $("dialpad").classList.toggle("hidden", !p.inCall());
  // A video call (the sign-language page's): both videos and the text chat.
  $("video").classList.toggle("hidden", !(p.inCall() && p.video));
  $("seat-chat").replaceChildren(...p.chat.map(m => {
    const d = document.createElement("div");
    d.className = m.from === "me" ? "agent" : "caller"; d.dataset.from = m.from;
    d.textContent = t(m.from === "me" ? "sign.me" : "sign.caller") + "：" + m.text;
    return d;
  }));
  if (p.error) say("msg", p.error.key ? t(p.error.key) : p.error.text);
}
// The recording follows the video call: started when it is up, closed when it ends; its
// pieces go up once the console knows the call's case.
function syncRecorder() {
  const p = PHONE, on = p.inCall() && p.video && !!(p.creds && p.creds.record_video);
  if (on && RECORDER.owner !== p.session) {
    const sdh = p.session.sessionDescriptionHandler;
    RECORDER.start(p.session, $("seat-remote"), $("seat-local"), [sdh.remoteMediaStream, sdh.localMediaStream]);
  } else if (!on && RECORDER.state === "recording") RECORDER.stop();
  if (STATE && STATE.call && STATE.case) RECORDER.setCase(STATE.case.number);
}
function renderRecorder() {
  const r = RECORDER, el = $("recording");
  el.hidden = r.state === "off"; el.dataset.state = r.state;
  el.textContent = tEnum("record_state", r.state) + (r.error ? " · " + t(r.error.key, { text: r.error.text || "" }) : "");
  el.className = r.error ? "msg" : "msg ok";
}
function renderCase() {
  const c = CASE; if (!c) return;
  $("p-case").textContent = c.number; $("p-caller").textContent = c.caller; $("p-city").textContent = cityName(c.city);
  $("p-dialed").textContent = c.dialed_number || ""; $("p-queue").textContent = queueName(c.queue);
  $("p-priority").textContent = (c.priority || 0) + (c.flags && c.flags.length ? " · " + c.flags.join(", ") : "");
  $("p-reasons").textContent = routeReasons(c.route_reasons);
  const earlier = c.earlier || [];
  paint(earlier.length ? earlier.map((e, i) => html`${i ? html`<br>` : nothing}<a href="/cases#${e.case}">${e.case}</a>
    (${tEnum("case_status", e.status === "open" ? "open" : "closed")})`) : t("common.none"), $("p-earlier"));
}
function showCase(c) {
  const fresh = !CASE || CASE.number !== c.number;
  CASE = c;
  try { sessionStorage.setItem(CASE_KEY, c.number); } catch { /* private mode: not kept */ }
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
  try { STATE = await api("GET", "/api/console/state"); CLOCK_SKEW = Date.now() / 1000 - STATE.now; render(); syncRecorder(); }
  catch (e) { say("msg", e.message); }
}
// After a reload: the case that was on screen comes back (with the form as saved), even if
// its call has ended meanwhile; the current call's case, if any, comes with the state.
async function restoreCase() {
  let number = null;
  try { number = sessionStorage.getItem(CASE_KEY); } catch { return; }
  if (!number || CASE) return;
  try { showCase({ ...(await api("GET", `/api/cases/${encodeURIComponent(number)}`)), earlier: [] }); }
  catch { try { sessionStorage.removeItem(CASE_KEY); } catch { /* nothing kept */ } }
}
// The toolbar drives the phone in the page when the call is there, else the SIP phone
// through the service.
async function answer() {
  if (PHONE.ringing()) { say("msg", ""); if (await PHONE.answer()) await refresh(); return; }
  await act("/api/console/answer");
}
async function hold(on) {
  if (PHONE.inCall()) {
    say("msg", "");
    try { await PHONE.hold(on); } catch (e) { say("msg", e.message); }
    return;
  }
  await act(on ? "/api/console/hold" : "/api/console/unhold");
  SIP_HELD = on;
}
async function hangup() {
  if (PHONE.ringing()) { await PHONE.hangup(); return; }
  await act("/api/console/hangup");
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
    <td>${cityName(c.city)}</td><td>${tEnum("callback_status", c.status)} <small>${tEnum("callback_reason", c.reason)}</small></td><td>${c.attempts}/${c.max_attempts}</td>
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
  // Branch centers and emergency lines, then colleagues (同事) and skill queues (技能队列).
  paint(repeat(DESTINATIONS, x => x.id, x => html`<option value=${x.id}>${x.kind === "colleague" ? t("transfer.colleague") + " " + x.name
    : x.kind === "queue" ? t("transfer.queue") + " " + x.name : x.name + " " + x.number}</option>`), $("dest"));
  const lines = DESTINATIONS.filter(x => x.kind === "branch_center" || x.kind === "emergency_line");
  paint(repeat(lines, x => x.id, x => html`<option value=${x.name}></option>`), $("departments"));
}
function tick() {
  const now = Date.now() / 1000 - CLOCK_SKEW;
  $("timer").textContent = TIMER_FROM ? fmtSecs(now - TIMER_FROM) : "00:00";
  $("in-state").textContent = SINCE ? fmtSecs(now - SINCE) : "";
}

await startPage();
const me = await loadMe();
await loadNames();
$("who").textContent = `${me.agent_name || me.user} (${me.agent || ""})`;
$("signin").onclick = () => act("/api/console/signin");
$("signout").onclick = () => act("/api/console/signout");
$("ready").onclick = () => act("/api/console/ready");
$("pause").onclick = () => act("/api/console/pause", { reason: $("reason").value });
$("wrapup").onclick = () => act("/api/console/wrapup");
$("answer").onclick = $("r-answer").onclick = answer;
$("hold").onclick = () => hold(true);
$("unhold").onclick = () => hold(false);
$("hangup").onclick = hangup;
$("mute").onclick = () => PHONE.mute(!PHONE.muted);
$("seat-chat-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const text = $("seat-chat-text").value.trim();
  try { await PHONE.say(text); $("seat-chat-text").value = ""; } catch (e) { say("msg", e.message); }
});
for (const b of document.querySelectorAll("[data-dtmf]")) b.onclick = () => PHONE.dtmf(b.dataset.dtmf);
// Keyboard: F2 answers, F3 holds or takes back, F4 hangs up (also while typing in the form).
document.addEventListener("keydown", ev => {
  const key = { F2: "answer", F3: "hold", F4: "hangup" }[ev.key];
  if (!key || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  ev.preventDefault();
  if (key === "answer" && !$("answer").disabled) answer();
  else if (key === "hold" && !$("hold").disabled) hold(!(PHONE.inCall() ? PHONE.held : SIP_HELD));
  else if (key === "hangup" && !$("hangup").disabled) hangup();
});
for (const a of TRANSFER_ACTIONS) {
  $("t-" + a).onclick = () => act("/api/console/transfer", { action: a, destination: $("dest").value || null });
}
$("save").onclick = saveForm; $("close").onclick = closeCase;
startKnowledge();
loadMyScores();
PHONE.start();
window.hotlinePhone = PHONE;  // for the browser tests' measurements (state, stats)
window.hotlineRecorder = RECORDER;
await refresh();
await restoreCase();
DESTINATIONS = (await api("GET", "/api/console/destinations")).destinations;
renderDestinations();
openSocket(msg => {
  if (msg.type !== "console") return;
  const e = msg.event;
  if (e.type === "caption") { addCaption(e); return; }
  if (e.type === "call" && e.fact === "abandoned") loadCallbacks();
  refresh();
}, () => { refresh(); loadCallbacks(); });
document.addEventListener("langchange", () => { render(); renderPhone(); renderRecorder(); renderCase(); renderCaptions(); renderCallbacks(); renderFormMsg(); PANEL.render(); renderKnowledge(); renderMyScores(); });
setInterval(tick, 250);
