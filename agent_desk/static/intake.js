// The public page (no sign-in): the citizen's form (市长信箱) at #submit and the status query
// at #status. Its own fetch helper: the console's api() sends a CSRF token and goes to the
// sign-in page on 401, neither of which applies here.
import { html, render as paint } from "./vendor/lit-html/lit-html.js";
import { $, startPage } from "./app.js";
import { fmtTime, t, tEnum } from "./i18n.js";

let OPTIONS = null, RESULT = null, CONTENT_MAX = 4000;

// Refusals the web kit answers before the intake (its messages are not the citizen's words).
const KIT_ERRORS = ["too_many_requests", "too_large", "bad_json", "busy", "internal"];

async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: "omit" };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  let resp;
  try { resp = await fetch(path, opts); } catch { throw new Error(t("intake.error.network")); }
  let doc = {};
  try { doc = await resp.json(); } catch { doc = {}; }
  if (!resp.ok) {
    const code = doc.error || "internal";
    throw new Error(KIT_ERRORS.includes(code) || !doc.message ? t(`intake.error.${KIT_ERRORS.includes(code) ? code : "internal"}`) : doc.message);
  }
  return doc;
}

function say(id, text, ok) { const el = $(id); el.textContent = text || ""; el.className = ok ? "msg ok" : "msg"; }

function route() {
  const status = location.hash === "#status";
  $("submit-view").classList.toggle("hidden", status);
  $("status-view").classList.toggle("hidden", !status);
}

// -- the form's choices -------------------------------------------------------------------
function leaves(nodes, path, out) {
  for (const n of nodes) {
    const here = path ? `${path} › ${n.name}` : n.name;
    if (n.children && n.children.length) leaves(n.children, here, out); else out.push({ code: n.code, name: here });
  }
  return out;
}
function renderOptions() {
  if (!OPTIONS) return;
  const keep = id => $(id).value;
  const [city, type, matter] = [keep("f-city"), keep("f-type"), keep("f-matter")];
  paint(html`<option value="">${t("intake.choose")}</option>${OPTIONS.cities.map(c => html`<option value=${c.id}>${c.name}</option>`)}`, $("f-city"));
  paint(html`<option value="">${t("intake.not_sure")}</option>${OPTIONS.appeal_types.map(a => html`<option value=${a.code}>${a.name}</option>`)}`, $("f-type"));
  paint(html`<option value="">${t("intake.not_sure")}</option>${OPTIONS.matters.map(g => html`<optgroup label=${g.name}>
    ${leaves(g.children || [], "", []).map(m => html`<option value=${m.code}>${m.name}</option>`)}</optgroup>`)}`, $("f-matter"));
  $("f-city").value = city; $("f-type").value = type; $("f-matter").value = matter;
  CONTENT_MAX = OPTIONS.content_max;
  count();
}
function count() { $("f-count").textContent = t("intake.count", { n: $("f-content").value.length, max: CONTENT_MAX }); }

// -- submitting ---------------------------------------------------------------------------
async function submit(ev) {
  ev.preventDefault();
  if (!$("f-consent").checked) { say("f-msg", t("intake.need_consent")); return; }
  const v = id => $(id).value.trim();
  const body = { name: v("f-name"), phone: v("f-phone"), city: v("f-city"), subject: v("f-subject"),
                 address: v("f-address"), content: $("f-content").value, consent: true, website: $("f-website").value };
  if (v("f-type")) body.appeal_type = v("f-type");
  if (v("f-matter")) body.matter = v("f-matter");
  $("f-submit").disabled = true; say("f-msg", t("intake.sending"), true);
  try {
    const done = await call("POST", "/api/intake/web", body);
    $("done-number").textContent = done.number; $("done-code").textContent = done.query_code;
    $("form").classList.add("hidden"); $("done").classList.remove("hidden");
    $("q-number").value = done.number; $("q-code").value = done.query_code;
    say("f-msg", "");
  } catch (e) { say("f-msg", e.message); }
  finally { $("f-submit").disabled = false; }
}
function again() {
  $("form").reset(); count();
  $("done").classList.add("hidden"); $("form").classList.remove("hidden");
}

// -- the status query ---------------------------------------------------------------------
async function query(ev) {
  ev.preventDefault();
  const number = $("q-number").value.trim(), phone = $("q-phone").value.trim(), code = $("q-code").value.trim();
  if (!number || (!phone && !code)) { say("q-msg", t("intake.need_number_and_key")); return; }
  const body = phone ? { number, phone } : { number, code };
  $("q-submit").disabled = true; RESULT = null; renderResult();
  try { RESULT = await call("POST", "/api/intake/status", body); say("q-msg", ""); renderResult(); }
  catch (e) { say("q-msg", e.message); }
  finally { $("q-submit").disabled = false; }
}
function renderResult() {
  const r = RESULT;
  if (!r) { paint(html``, $("q-result")); return; }
  paint(html`<div class="kv" id="q-kv">
    <div>${t("intake.case_number")}</div><div>${r.number}</div>
    <div>${t("intake.state")}</div><div><span class="badge" id="q-state" data-state=${r.status}>${tEnum("intake_status", r.status)}</span></div>
    <div>${t("intake.accepted_at")}</div><div>${fmtTime(r.accepted_at)}</div>
    ${r.appeal_type_name ? html`<div>${t("intake.appeal_type_short")}</div><div>${r.appeal_type_name}</div>` : ""}
    ${r.matter_name ? html`<div>${t("intake.matter_short")}</div><div>${r.matter_name}</div>` : ""}
    ${r.department_name ? html`<div>${t("intake.department")}</div><div>${r.department_name}</div>` : ""}
    ${r.closed_at ? html`<div>${t("intake.closed_at")}</div><div>${fmtTime(r.closed_at)}</div>` : ""}</div>
    <h2>${t("intake.reply")}</h2>
    ${r.reply ? html`<div class="reply" id="q-reply">${r.reply}</div><p class="hint">${t("intake.replied_at", { at: fmtTime(r.replied_at) })}</p>`
      : html`<p class="hint" id="q-no-reply">${t("intake.no_reply_yet")}</p>`}`, $("q-result"));
}

await startPage();
route();
window.addEventListener("hashchange", route);
$("form").addEventListener("submit", submit);
$("q").addEventListener("submit", query);
$("f-content").addEventListener("input", count);
$("f-consent").addEventListener("change", () => say("f-msg", ""));
$("done-status").addEventListener("click", () => { location.hash = "#status"; });
$("done-again").addEventListener("click", again);
document.addEventListener("langchange", () => { renderOptions(); renderResult(); });
try { OPTIONS = await call("GET", "/api/intake/options"); renderOptions(); }
catch (e) { say("f-msg", e.message); $("f-submit").disabled = true; }
