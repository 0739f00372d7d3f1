// The department's page (承办单位): for a department's staff, their cases (to do, 待签收,
// 办理中, 已答复, 已退回; overdue first, with the 红黄灯 and the time limit) and one case's
// detail with its actions (签收, 退单, 办理备注, 答复, 延期申请); for an admin, the directory
// (departments, CSV, defaults per 事项, each department's users and API tokens).
// Every change carries an Idempotency-Key: a retried click applies once.
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, loadMe, newestWins, pageReady, say, startPage } from "./app.js";
import { fmtTime, t, tEnum } from "./i18n.js";

const listTurn = newestWins(), caseTurn = newestWins();

const TABS = ["todo", "pending", "signed", "replied", "returned", "all"];
const LEVELS = ["province", "city", "district", "street"];
let ME = null, TAB = "todo", LIST = null, CASE = null, BUSY = false, NOTE = null;
let DIR = [], CITIES = [], DEFAULTS = null, PICKED = null, PICKED_USERS = [], PICKED_TOKENS = [], ISSUED = null, EDIT = null;
// The departments' webhooks: their state, the dead-letter list, a signing secret shown once.
let HOOKS = [], DEAD = [], SECRET = null;

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
}
function cityName(id) { const c = CITIES.find(x => x.id === id); return c ? c.name : id; }
function light(l) { return html`<span class="badge light-${l}" data-light=${l}>${tEnum("dept_light", l)}</span>`; }

// -- the department's cases -------------------------------------------------------------------

async function loadList() {
  const current = listTurn();
  try {
    const doc = await api("GET", "/api/department/cases?tab=" + TAB + "&limit=200");
    if (!current()) return;  // another tab was chosen meanwhile
    LIST = doc;
    $("dept-name").textContent = LIST.department.name;
    say("msg", "");
  } catch (e) { if (!current()) return; say("msg", e.message); }
  renderList();
}
function renderList() {
  if (!LIST) return;
  const counts = LIST.counts || {};
  paint(html`${TABS.map(k => html`<button class=${k === TAB ? "primary" : ""} data-tab=${k}
      @click=${() => { TAB = k; loadList(); }}>${tEnum("dept_tab", k)}${k === "all" ? nothing : html` (${counts[k] ?? 0})`}</button>`)}
    ${counts.overdue ? html`<span class="badge light-red">${t("dept.overdue_count", { n: counts.overdue })}</span>` : nothing}`, $("tabs"));
  paint(LIST.cases.length ? repeat(LIST.cases, c => c.number, c => html`<tr data-case=${c.number} class=${c.overdue ? "overdue" : ""}>
      <td>${light(c.light)}</td><td><a href="#${c.number}">${c.number}</a></td>
      <td>${c.matter_name}</td><td>${c.appeal_type_name}</td><td>${tEnum("dept_dispatch", c.dispatch_state)}</td>
      <td>${c.deadline ? fmtTime(c.deadline) : ""}</td><td>${tEnum("dept_role", c.role)}</td></tr>`)
    : html`<tr><td colspan="7">${t("common.none")}</td></tr>`, $("list"));
}
async function show() {
  const number = location.hash.slice(1);
  if (!number || !ME || ME.role !== "department") return;
  const current = caseTurn();
  let doc = null, failed = null;
  try { doc = await api("GET", "/api/department/cases/" + encodeURIComponent(number)); }
  catch (e) { failed = e; }
  if (!current()) return;  // another case was opened meanwhile
  CASE = doc; NOTE = failed ? { text: failed.message } : null;
  renderDetail();
}
async function act(op, body) {
  if (BUSY || !CASE) return;
  BUSY = true; renderDetail();
  try {
    CASE = await api("POST", `/api/department/cases/${encodeURIComponent(CASE.number)}/${op}`, body,
                     { "Idempotency-Key": newKey() });
    NOTE = { text: tEnum("dept_done", op), ok: true };
    await loadList();
  } catch (e) { NOTE = { text: e.message }; }
  BUSY = false; renderDetail();
}
function field(id) { return $(id) ? $(id).value.trim() : ""; }
function actions(c) {
  const can = new Set(c.actions);
  const panels = [];
  if (can.has("sign")) panels.push(html`<button id="a-sign" class="primary" ?disabled=${BUSY} @click=${() => act("sign")}>${t("dept.action.sign")}</button>`);
  if (can.has("reply")) panels.push(html`<div class="panel"><h3>${t("dept.action.reply")}</h3>
    <textarea id="a-reply-text" placeholder=${t("dept.reply_placeholder")}></textarea>
    <label class="check"><input type="checkbox" id="a-contacted"> ${t("dept.contacted")}</label>
    <button id="a-reply" class="primary" ?disabled=${BUSY} @click=${() => act("reply", { text: field("a-reply-text"), contacted: $("a-contacted").checked })}>${t("dept.action.reply")}</button></div>`);
  if (can.has("note")) panels.push(html`<div class="panel"><h3>${t("dept.action.note")}</h3>
    <textarea id="a-note-text"></textarea>
    <button id="a-note" ?disabled=${BUSY} @click=${() => act("note", { text: field("a-note-text") })}>${t("dept.action.note")}</button></div>`);
  if (can.has("extension")) panels.push(html`<div class="panel"><h3>${t("dept.action.extension")}</h3>
    <label>${t("dept.extension_days")}</label><input id="a-ext-days" type="number" min="1" max="60" value="3">
    <label>${t("dept.reason")}</label><textarea id="a-ext-reason"></textarea>
    <button id="a-extension" ?disabled=${BUSY} @click=${() => act("extension", { days: Number($("a-ext-days").value), reason: field("a-ext-reason") })}>${t("dept.action.extension")}</button></div>`);
  if (can.has("return")) panels.push(html`<div class="panel"><h3>${t("dept.action.return")}</h3>
    <textarea id="a-return-reason" placeholder=${t("dept.return_placeholder")}></textarea>
    <button id="a-return" class="danger" ?disabled=${BUSY} @click=${() => act("return", { reason: field("a-return-reason") })}>${t("dept.action.return")}</button></div>`);
  return panels.length ? panels : html`<p>${t("dept.no_action")}</p>`;
}
function renderDetail() {
  const note = NOTE ? html`<p class=${NOTE.ok ? "msg ok" : "msg"} id="a-msg">${NOTE.text}</p>` : html`<p class="msg" id="a-msg"></p>`;
  if (!CASE) { paint(html`${note}<p>${t("dept.pick_case")}</p>`, $("detail")); return; }
  const c = CASE, f = c.form || {};
  const mine = c.dispatches.filter(d => d.round === c.round)[0] || {};
  paint(html`<h2>${t("field.case_no")} <span id="d-number">${c.number}</span> ${light(c.light)}</h2>${note}
    <div class="kv">
      <div>${t("dept.dispatch_state")}</div><div id="d-state">${tEnum("dept_dispatch", c.dispatch_state)}</div>
      <div>${t("dept.case_state")}</div><div id="d-case-state">${tEnum("dept_state", c.state)}</div>
      <div>${t("dept.role")}</div><div>${tEnum("dept_role", c.role)}</div>
      <div>${t("dept.appeal_type")}</div><div>${c.appeal_type_name}</div>
      <div>${t("dept.matter")}</div><div id="d-matter">${c.matter_name}</div>
      <div>${t("field.city")}</div><div>${[c.city_name || c.city, c.district_name || c.district].filter(Boolean).join(" · ")}</div>
      <div>${t("field.caller")}</div><div id="d-caller">${c.caller}${c.caller_clear ? html` <span class="badge">${t("dept.call_back")}</span>` : nothing}</div>
      <div>${t("dept.accepted_at")}</div><div>${fmtTime(c.accepted_at)}</div>
      <div>${t("dept.sign_due")}</div><div>${fmtTime(c.sign_due_at)}</div>
      <div>${t("dept.handle_due")}</div><div id="d-due">${fmtTime(c.due_at)}</div>
      ${mine.extension && mine.extension.state ? html`<div>${t("dept.extension")}</div>
        <div>${tEnum("dept_extension", mine.extension.state)} · ${t("dept.days", { n: mine.extension.days })}</div>` : nothing}
    </div>
    <h2>${t("dept.form")}</h2><div class="kv">
      <div>${t("field.subject")}</div><div>${f.subject}</div>
      <div>${t("field.address")}</div><div>${f.address}</div>
      <div>${t("field.content")}</div><div id="d-content" style="white-space:pre-wrap">${f.content}</div></div>
    ${mine.reply ? html`<h2>${t("dept.our_reply")}</h2><p id="d-reply" style="white-space:pre-wrap">${mine.reply}</p>
      <p>${mine.contacted_caller ? t("dept.contacted_yes") : t("dept.contacted_no")}</p>` : nothing}
    ${c.others.length ? html`<h2>${t("dept.others")}</h2><table>${c.others.map(o => html`<tr><td>${o.department_name}</td>
      <td>${tEnum("dept_role", o.role)}</td><td>${tEnum("dept_dispatch", o.state)}</td></tr>`)}</table>` : nothing}
    <h2>${t("dept.actions")}</h2><div id="actions">${actions(c)}</div>
    <h2>${t("dept.timeline")}</h2><table id="d-timeline">${c.timeline.map(e => html`<tr><td>${fmtTime(e.at)}</td>
      <td>${tEnum("dept_fact", e.kind)}</td><td>${e.own ? t("dept.by_us") : t("dept.by_hotline_or_other")}</td>
      <td style="white-space:normal">${e.reason || ""}</td></tr>`)}</table>`, $("detail"));
}

// -- the directory (admins) ---------------------------------------------------------------------

async function loadDirectory() {
  try {
    const d = await api("GET", "/api/directory?all=true");
    DIR = d.departments; CITIES = d.cities;
    DEFAULTS = await api("GET", "/api/directory/defaults");
    HOOKS = (await api("GET", "/api/webhooks/departments")).departments;
    DEAD = (await api("GET", "/api/webhooks/deliveries?state=dead&limit=50")).deliveries;
  } catch (e) { NOTE = { text: e.message }; }
  renderAdmin();
}
// A department's signing secret: revealed once, then only rotated (the old one signs a while).
async function secret(id, how) {
  try { SECRET = await api("POST", `/api/webhooks/departments/${encodeURIComponent(id)}/${how}`); NOTE = null; }
  catch (e) { NOTE = { text: e.message }; SECRET = null; }
  await loadDirectory();
}
function webhooks() {
  return html`<section id="webhooks"><h2>${t("dept.hooks.title")}</h2>
    <table id="hook-departments"><tr><th>${t("dept.hooks.department")}</th><th>${t("dept.hooks.url")}</th><th>${t("dept.hooks.generation")}</th>
      <th>${t("dept.hooks.pending")}</th><th>${t("dept.hooks.dead")}</th><th></th></tr>
      ${HOOKS.length ? HOOKS.map(h => html`<tr data-hook=${h.id}><td>${h.name}</td><td>${h.webhook_url || t("common.none")}</td><td>${h.generation}</td>
        <td>${h.pending}</td><td>${h.dead}</td><td>${h.revealed
          ? html`<button @click=${() => secret(h.id, "rotate")}>${t("dept.hooks.rotate")}</button>`
          : html`<button @click=${() => secret(h.id, "secret")}>${t("dept.hooks.reveal")}</button>`}</td></tr>`)
        : html`<tr><td colspan="6">${t("common.none")}</td></tr>`}</table>
    ${SECRET ? html`<p class="ok">${t("dept.hooks.secret_once", { name: (HOOKS.find(h => h.id === SECRET.department) || {}).name || SECRET.department, n: SECRET.generation })}</p>
      <pre id="hook-secret">${SECRET.secret}</pre>` : nothing}
    <h3>${t("dept.hooks.dead_list")}</h3>
    <table id="dead-letters">${DEAD.length ? DEAD.map(d => html`<tr data-delivery=${d.id}><td>${fmtTime(d.created_at)}</td><td>${d.department_name}</td>
        <td>${d.event}</td><td>${d.case || ""}</td><td>${t("dept.hooks.attempts", { n: d.attempts })}</td>
        <td style="white-space:normal">${d.last_error || (d.last_status ? `HTTP ${d.last_status}` : "")}</td>
        <td><button @click=${() => adminDo(async () => { await api("POST", `/api/webhooks/deliveries/${d.id}/retry`); return t("dept.hooks.retried"); })}>${t("dept.hooks.retry")}</button></td></tr>`)
      : html`<tr><td>${t("dept.hooks.no_dead")}</td></tr>`}</table></section>`;
}
async function pick(id) {
  PICKED = id; ISSUED = null;
  try {
    PICKED_USERS = (await api("GET", `/api/directory/departments/${encodeURIComponent(id)}/users`)).users;
    PICKED_TOKENS = (await api("GET", `/api/directory/departments/${encodeURIComponent(id)}/tokens`)).tokens;
  } catch (e) { NOTE = { text: e.message }; }
  renderAdmin();
}
// An admin's change, then the directory again; ``fn`` answers what to tell.
async function adminDo(fn) {
  try { NOTE = { text: await fn(), ok: true }; }
  catch (e) { NOTE = { text: e.message }; }
  await loadDirectory();
  if (PICKED) await pick(PICKED);
}
function saveDepartment(ev) {
  ev.preventDefault();
  const id = field("e-id");
  const body = { name: field("e-name"), level: $("e-level").value, unit: field("e-unit"), active: $("e-active").checked };
  if (field("e-city")) body.city = field("e-city");
  if (field("e-parent")) body.parent = field("e-parent");
  adminDo(async () => { await api("PUT", "/api/directory/departments/" + encodeURIComponent(id), body); return t("dept.admin.saved"); });
}
async function importCsv(dryRun) {
  const file = $("i-file").files[0];
  const text = file ? await file.text() : field("i-text");
  adminDo(async () => {
    const r = await api("POST", "/api/directory/import", { csv: text, dry_run: dryRun });
    return t(dryRun ? "dept.admin.checked" : "dept.admin.imported", { n: r.count, created: r.created });
  });
}
function renderAdmin() {
  const e = EDIT || {};
  const names = Object.fromEntries(DIR.map(d => [d.id, d.name]));
  const note = NOTE ? html`<p class=${NOTE.ok ? "msg ok" : "msg"} id="admin-msg">${NOTE.text}</p>` : nothing;
  const picked = DIR.find(d => d.id === PICKED);
  paint(html`<section><h2>${t("dept.admin.directory")}</h2>${note}
    <p><a href="/api/directory/export" download="departments.csv" id="export">${t("dept.admin.export")}</a></p>
    <table id="directory"><thead><tr><th>${t("dept.admin.id")}</th><th>${t("dept.admin.name")}</th><th>${t("dept.admin.level")}</th>
      <th>${t("field.city")}</th><th>${t("dept.admin.parent")}</th><th>${t("dept.admin.unit")}</th><th>${t("dept.admin.active")}</th><th></th></tr></thead>
    <tbody>${repeat(DIR, d => d.id, d => html`<tr data-dept=${d.id}><td>${d.id}</td><td>${d.name}</td><td>${tEnum("dept_level", d.level)}</td>
      <td>${d.city_name || d.city || ""}</td><td>${d.parent_name || ""}</td><td>${d.unit}</td><td>${d.active ? t("dept.admin.yes") : t("dept.admin.no")}</td>
      <td><button @click=${() => { EDIT = d; renderAdmin(); }}>${t("dept.admin.edit")}</button>
        <button @click=${() => pick(d.id)}>${t("dept.admin.users_tokens")}</button>
        <button class=${d.active ? "danger" : ""} @click=${() => adminDo(async () => { await api("POST", `/api/directory/departments/${encodeURIComponent(d.id)}/state`, { active: !d.active }); return t("dept.admin.saved"); })}>
          ${d.active ? t("dept.admin.deactivate") : t("dept.admin.activate")}</button></td></tr>`)}</tbody></table></section>
  <section><h2>${e.id ? t("dept.admin.edit") : t("dept.admin.create")}</h2><form id="edit" @submit=${saveDepartment}>
    <label>${t("dept.admin.id")}</label><input id="e-id" .value=${e.id || ""} required>
    <label>${t("dept.admin.name")}</label><input id="e-name" .value=${e.name || ""} required>
    <label>${t("dept.admin.level")}</label><select id="e-level">${LEVELS.map(l => html`<option value=${l} ?selected=${e.level === l}>${tEnum("dept_level", l)}</option>`)}</select>
    <label>${t("field.city")}</label><select id="e-city"><option value="">${t("dept.admin.any_city")}</option>
      ${CITIES.map(c => html`<option value=${c.id} ?selected=${e.city === c.id}>${c.name}</option>`)}</select>
    <label>${t("dept.admin.parent")}</label><select id="e-parent"><option value="">${t("common.none")}</option>
      ${DIR.map(d => html`<option value=${d.id} ?selected=${e.parent === d.id}>${d.name}</option>`)}</select>
    <label>${t("dept.admin.unit")}</label><input id="e-unit" .value=${e.unit || ""}>
    <label class="check"><input type="checkbox" id="e-active" .checked=${e.active !== false}> ${t("dept.admin.active")}</label>
    <p class="row"><button class="primary" type="submit">${t("dept.admin.save")}</button>
      <button type="button" @click=${() => { EDIT = null; renderAdmin(); }}>${t("dept.admin.new")}</button></p></form>
    <h2>${t("dept.admin.import")}</h2><input type="file" id="i-file" accept=".csv,text/csv"><textarea id="i-text" placeholder="id,name,level,city,parent,unit,webhook_url"></textarea>
    <p class="row"><button @click=${() => importCsv(true)}>${t("dept.admin.check")}</button><button class="primary" @click=${() => importCsv(false)}>${t("dept.admin.import")}</button></p></section>
  <section><h2>${t("dept.admin.defaults")}</h2><table>${(DEFAULTS ? DEFAULTS.defaults : []).map(d => html`<tr><td>${d.matter_name}</td>
      <td>${d.city ? cityName(d.city) : t("dept.admin.any_city")}</td><td>${d.department_name}</td>
      <td><button data-default-delete=${d.matter + "|" + (d.city || "")} @click=${() => adminDo(async () => {
        await api("DELETE", "/api/directory/defaults?" + new URLSearchParams(Object.assign({ matter: d.matter }, d.city ? { city: d.city } : {})));
        return t("dept.admin.default_removed"); })}>${t("dept.admin.remove")}</button></td></tr>`)}</table>
    <div class="row"><select id="df-matter">${(DEFAULTS ? DEFAULTS.matters : []).map(m => html`<option value=${m.code}>${m.name}</option>`)}</select>
      <select id="df-city" style="width:auto"><option value="">${t("dept.admin.any_city")}</option>
        ${CITIES.map(c => html`<option value=${c.id}>${c.name}</option>`)}</select>
      <select id="df-dept">${DIR.filter(d => d.active).map(d => html`<option value=${d.id}>${d.name}</option>`)}</select>
      <button @click=${() => adminDo(async () => { await api("PUT", "/api/directory/defaults", Object.assign({ matter: $("df-matter").value, department: $("df-dept").value },
        field("df-city") ? { city: field("df-city") } : {})); return t("dept.admin.saved"); })}>${t("dept.admin.save")}</button></div></section>
  ${picked ? html`<section id="picked"><h2>${picked.name}</h2>
    <h3>${t("dept.admin.users")}</h3><table>${PICKED_USERS.length ? PICKED_USERS.map(u => html`<tr><td>${u.user}</td><td>${u.name}</td>
      <td>${u.disabled ? t("dept.admin.disabled") : ""}</td></tr>`) : html`<tr><td>${t("common.none")}</td></tr>`}</table>
    <p>${t("dept.admin.users_hint")}</p>
    <h3>${t("dept.admin.tokens")}</h3><table>${PICKED_TOKENS.map(k => html`<tr><td>${k.hint}…</td><td>${k.label}</td><td>${fmtTime(k.created_at)}</td>
      <td>${k.revoked_at ? t("dept.admin.revoked_at", { at: fmtTime(k.revoked_at) }) : html`<button class="danger" @click=${() =>
        adminDo(async () => { await api("DELETE", `/api/directory/departments/${encodeURIComponent(picked.id)}/tokens/${k.id}`); return t("dept.admin.revoked"); })}>${t("dept.admin.revoke")}</button>`}</td></tr>`)}</table>
    ${ISSUED ? html`<p class="ok">${t("dept.admin.token_once")}</p><pre id="issued">${ISSUED}</pre>` : nothing}
    <div class="row"><input id="t-label" placeholder=${t("dept.admin.token_label")} style="width:220px">
      <button class="primary" @click=${async () => {
        try { const r = await api("POST", `/api/directory/departments/${encodeURIComponent(picked.id)}/tokens`, { label: field("t-label") });
              PICKED_TOKENS = (await api("GET", `/api/directory/departments/${encodeURIComponent(picked.id)}/tokens`)).tokens; ISSUED = r.token; NOTE = null; }
        catch (err) { NOTE = { text: err.message }; }
        renderAdmin(); }}>${t("dept.admin.issue")}</button></div></section>` : nothing}
  ${webhooks()}`, $("admin"));
}

await startPage();
ME = await loadMe();
if (ME.role === "department") {
  $("work").classList.remove("hidden");
  window.addEventListener("hashchange", show);
  await loadList(); await show(); renderDetail();
} else if (ME.role === "admin") {
  $("admin").classList.remove("hidden");
  await loadDirectory();
} else {
  $("work").classList.remove("hidden"); say("msg", t("dept.not_for_role"));
}
document.addEventListener("langchange", () => { renderList(); renderDetail(); if (ME.role === "admin") renderAdmin(); });
pageReady();
