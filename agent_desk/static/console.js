"use strict";
// The agent's console: CTI toolbar, ringing pop-up, screen pop, case form, transfer panel,
// transcript, callbacks. State comes from GET /api/console/state, refreshed on WebSocket events.
let STATE = null, FORM_VERSION = null, CASE = null, TIMER_FROM = null, SINCE = null, CLOCK_SKEW = 0;

function render() {
  const s = STATE; if (!s) return;
  const st = s.signed_in ? (s.state || "unknown") : "signed_out";
  const badge = $("state"); badge.textContent = t("st_" + st) + (s.reason && st !== "ready" ? ` (${t("reason_" + s.reason)})` : "");
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
    $("p-callstate").textContent = t(call.state) || call.state;
    $("legs").innerHTML = (call.legs || []).map(l => `<div>${esc(l.name)} · ${esc(l.state)} ${esc(l.outcome || "")}</div>`).join("");
  } else { $("p-callstate").textContent = CASE ? t("ended") : ""; }
}
function showCase(c) {
  const fresh = !CASE || CASE.number !== c.number;
  CASE = c;
  $("p-case").textContent = c.number; $("p-caller").textContent = c.caller; $("p-city").textContent = c.city || "";
  $("p-dialed").textContent = c.dialed_number || ""; $("p-queue").textContent = c.queue || "";
  $("p-priority").textContent = (c.priority || 0) + (c.flags && c.flags.length ? " · " + c.flags.join(", ") : "");
  $("p-reasons").textContent = c.route_reasons || "";
  const earlier = (c.earlier || []).map(e => `<a href="/cases#${esc(e.case)}">${esc(e.case)}</a> (${esc(t(e.status === "open" ? "open" : "closed_st"))})`);
  $("p-earlier").innerHTML = earlier.length ? earlier.join("<br>") : t("none");
  if (fresh) {
    const f = c.form || {};
    $("f-category").value = f.category || ""; $("f-subject").value = f.subject || ""; $("f-address").value = f.address || "";
    $("f-content").value = f.content || ""; $("f-department").value = f.department || "";
    FORM_VERSION = f.version || 0; $("captions").innerHTML = ""; say("form-msg", "");
    loadTranscript();
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
async function saveForm() {
  if (!CASE) return;
  const body = { category: $("f-category").value || null, subject: $("f-subject").value, address: $("f-address").value,
                 content: $("f-content").value, department: $("f-department").value, version: FORM_VERSION };
  if (!body.category) delete body.category;
  try { const r = await api("PUT", `/api/cases/${CASE.number}/form`, body); FORM_VERSION = r.form.version; sayKey("form-msg", "saved"); }
  catch (e) { say("form-msg", e.message); }
}
async function closeCase() {
  if (!CASE) return;
  await saveForm();
  try { await api("POST", `/api/cases/${CASE.number}/close`); sayKey("form-msg", "closed"); } catch (e) { say("form-msg", e.message); }
}
function addCaption(c) {
  const box = $("captions");
  let el = c.final ? null : box.querySelector(`.partial[data-speaker="${c.speaker}"]`);
  if (!el) { el = document.createElement("div"); box.appendChild(el); }
  el.className = (c.speaker === "agent" ? "agent" : "caller") + (c.final ? "" : " partial");
  el.dataset.speaker = c.speaker; el.dataset.text = c.text;
  el.textContent = `${t(c.speaker === "agent" ? "speaker_agent" : "speaker_caller")}: ${c.text}`;
  box.scrollTop = box.scrollHeight;
}
async function loadTranscript() {
  if (!CASE) return;
  try {
    const tr = await api("GET", `/api/cases/${CASE.number}/transcript`);
    (tr.segments || []).forEach(s => addCaption({ ...s, final: true }));
  } catch (e) { /* the pane stays empty */ }
}
async function loadCallbacks() {
  try {
    // The agent's own city first: the callbacks of callers who called it.
    const r = await api("GET", "/api/callbacks?status=pending" + (ME.city ? "&city=" + encodeURIComponent(ME.city) : ""));
    $("cb").innerHTML = r.callbacks.map(c => `<tr><td>${esc(c.case)}</td><td>${esc(c.caller)}</td><td>${esc(c.city || "")}</td>
      <td>${esc(t(c.status))}</td><td>${c.attempts}/${c.max_attempts}</td>
      <td><button data-cb="${c.id}" class="cb-call">${esc(t("call_back"))}</button>
      <select data-cbo="${c.id}" style="width:auto"><option value=""></option>${["reached", "no_answer", "busy", "wrong_number", "cancelled"].map(o => `<option value="${o}">${esc(t(o))}</option>`).join("")}</select></td></tr>`).join("");
  } catch (e) { say("msg", e.message); }
}
function sayKey(id, key) { say(id, t(key), true); $(id).dataset.key = key; }
function relabel() {
  document.querySelectorAll("#captions div").forEach(el => {
    el.textContent = `${t(el.dataset.speaker === "agent" ? "speaker_agent" : "speaker_caller")}: ${el.dataset.text}`;
  });
  const m = $("form-msg"); if (m.dataset.key && m.className.includes("ok")) m.textContent = t(m.dataset.key);
}
function tick() {
  const now = Date.now() / 1000 - CLOCK_SKEW;
  $("timer").textContent = TIMER_FROM ? fmtSecs(now - TIMER_FROM) : "00:00";
  $("in-state").textContent = SINCE ? fmtSecs(now - SINCE) : "";
}
document.addEventListener("DOMContentLoaded", async () => {
  await loadMe();
  $("who").textContent = `${ME.agent_name || ME.user} (${ME.agent || ""})`;
  $("signin").onclick = () => act("/api/console/signin");
  $("signout").onclick = () => act("/api/console/signout");
  $("ready").onclick = () => act("/api/console/ready");
  $("pause").onclick = () => act("/api/console/pause", { reason: $("reason").value });
  $("wrapup").onclick = () => act("/api/console/wrapup");
  $("answer").onclick = $("r-answer").onclick = () => act("/api/console/answer");
  $("hold").onclick = () => act("/api/console/hold");
  $("unhold").onclick = () => act("/api/console/unhold");
  $("hangup").onclick = () => act("/api/console/hangup");
  for (const a of ["consult", "three_way", "leave", "cancel", "emergency"]) {
    $("t-" + a).onclick = () => act("/api/console/transfer", { action: a, destination: $("dest").value || null });
  }
  $("save").onclick = saveForm; $("close").onclick = closeCase;
  $("cb").addEventListener("click", async ev => {
    const id = ev.target.dataset.cb; if (id) { try { await act(`/api/callbacks/${id}/call`); } finally { loadCallbacks(); } }
  });
  $("cb").addEventListener("change", async ev => {
    const id = ev.target.dataset.cbo; if (id && ev.target.value) { try { await act(`/api/callbacks/${id}/outcome`, { outcome: ev.target.value }); } finally { loadCallbacks(); } }
  });
  const d = await api("GET", "/api/console/destinations");
  $("dest").innerHTML = d.destinations.map(x => `<option value="${esc(x.id)}">${esc(x.name)} ${esc(x.number)}</option>`).join("");
  $("departments").innerHTML = d.destinations.map(x => `<option value="${esc(x.name)}">`).join("");
  openSocket(msg => {
    if (msg.type !== "console") return;
    const e = msg.event;
    if (e.type === "caption") { addCaption(e); return; }
    if (e.type === "call" && e.fact === "abandoned") loadCallbacks();
    refresh();
  }, () => { refresh(); loadCallbacks(); });
  document.addEventListener("langchange", () => { if (CASE) showCase(CASE); render(); relabel(); loadCallbacks(); });
  setInterval(tick, 250);
});
