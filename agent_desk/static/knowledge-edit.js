// The knowledge base for its editors (supervisors, admins): the articles of their city, one
// article's working copy to write, and its review (提交审核 → another editor 审核通过 or 退回;
// 撤回发布). Every published version is listed. The server holds the rules (workflow.py): a
// button it refuses says why in the message line.
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, hotlineToday, loadMe, say, startPage } from "./app.js";
import { fmtTime, t, tEnum } from "./i18n.js";

let ARTICLES = [], CURRENT = null, VERSIONS = [], ME = null;
const DONE = { save: () => t("kbe.saved"), submit: () => t("kbe.done_submit"), approve: () => t("kbe.done_approve"),
               reject: () => t("kbe.done_reject"), withdraw: () => t("kbe.done_withdraw") };

async function load() {
  const status = $("e-filter").value;
  try {
    ARTICLES = (await api("GET", "/api/knowledge/articles?limit=200" + (status ? "&status=" + status : ""))).articles;
    say("msg", "");
  } catch (e) { say("msg", e.message); }
  renderList();
}
function renderList() {
  paint(repeat(ARTICLES, a => a.id, a => html`<tr data-article=${a.ref}><td><a href="#${a.id}">${a.title}</a></td>
    <td>${a.matter_name || a.matter}</td><td>${tEnum("city", a.city || "province")}</td>
    <td>${tEnum("kb_status", a.status)}</td><td>${a.live_version ? t("kb.version", { n: a.live_version }) : ""}</td>
    <td>${fmtTime(a.updated_at)}</td></tr>`), $("e-list"));
}
function fill(a) {
  CURRENT = a;
  $("e-title").value = a ? a.title : ""; $("e-matter").value = a ? a.matter : "";
  $("e-city").value = a ? a.city || "" : ""; $("e-from").value = a ? a.valid_from : hotlineToday();
  $("e-to").value = a && a.valid_to ? a.valid_to : ""; $("e-body").value = a ? a.body || "" : ""; $("e-note").value = "";
  renderState();
}
function renderState() {
  const a = CURRENT;
  const mine = a && (a.authors || []).includes(ME.user);
  $("e-submit").disabled = !a || a.status !== "draft";
  $("e-approve").disabled = $("e-reject").disabled = !a || a.status !== "in_review" || mine;
  $("e-withdraw").disabled = !a || a.status === "withdrawn";
  paint(a ? html`<span data-status=${a.status}>${tEnum("kb_status", a.status)}</span> · ${a.ref} ·
    ${t("kbe.revision", { n: a.revision })}${a.live_version ? html` · ${t("kbe.live_now", { n: a.live_version })}` : nothing}
    ${(a.authors || []).length ? html` · ${t("kbe.authors", { names: a.authors.join("、") })}` : nothing}
    ${a.review_note ? html`<div>${t("kbe.review_note", { note: a.review_note })}</div>` : nothing}` : t("kbe.new_hint"), $("e-state"));
  paint(repeat(VERSIONS, v => v.version, v => html`<li>${t("kb.version", { n: v.version })} · ${v.title} ·
    ${t("kbe.approved_by", { name: v.approved_by })} · ${fmtTime(v.published_at)}${v.live ? html` · <b>${t("kbe.live_mark")}</b>` : nothing}</li>`),
  $("e-versions"));
}
async function open() {
  const id = location.hash.slice(1);
  if (!id) { VERSIONS = []; fill(null); return; }
  try {
    const doc = await api("GET", `/api/knowledge/articles/${encodeURIComponent(id)}`);
    VERSIONS = (await api("GET", `/api/knowledge/articles/${encodeURIComponent(id)}/versions`)).versions;
    fill(doc.working); say("e-msg", "");
  } catch (e) { say("e-msg", e.message); }
}
function fields() {
  return { title: $("e-title").value.trim(), body: $("e-body").value, matter: $("e-matter").value.trim(),
           city: $("e-city").value.trim() || null, valid_from: $("e-from").value, valid_to: $("e-to").value || null };
}
async function done(r, action) {
  CURRENT = r.article; say("e-msg", DONE[action](), true);
  if (location.hash !== "#" + r.article.id) location.hash = "#" + r.article.id; else await open();
  await load(); renderState();
}
async function save() {
  try {
    const r = CURRENT ? await api("PUT", `/api/knowledge/articles/${CURRENT.id}`, { ...fields(), revision: CURRENT.revision })
      : await api("POST", "/api/knowledge/articles", fields());
    await done(r, "save");
  } catch (e) { say("e-msg", e.message); }
}
async function review(action) {
  if (!CURRENT) return;
  const body = action === "withdraw" ? undefined : { revision: CURRENT.revision };
  if (action === "reject") body.note = $("e-note").value;
  try { await done(await api("POST", `/api/knowledge/articles/${CURRENT.id}/${action}`, body), action); }
  catch (e) { say("e-msg", e.message); }
}

await startPage();
ME = await loadMe();
$("who").textContent = ME.name || ME.user;
$("e-filter").onchange = load;
$("e-new").onclick = () => { location.hash = ""; VERSIONS = []; fill(null); };
$("e-save").onclick = save;
for (const action of ["submit", "approve", "reject", "withdraw"]) $("e-" + action).onclick = () => review(action);
window.addEventListener("hashchange", open);
document.addEventListener("langchange", () => { renderList(); renderState(); });
await load();
await open();
