// The knowledge base on the agent's console: a search box, suggestions that follow the case
// form (its 事项 and what the agent writes), an article's text and the "helpful" mark. What is
// typed goes in request bodies (POST), never in a URL; the server neither stores nor logs it.
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api } from "./app.js";
import { currentLang, t, tEnum } from "./i18n.js";

const SUGGEST_AFTER_MS = 800;
const FORM_FIELDS = ["f-subject", "f-content"];
let RESULTS = [], MODE = null, ARTICLE = null, MSG = "", TIMER = null, LAST_ASKED = "";

function fmtDay(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(currentLang(), { year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(iso + "T00:00:00"));
}
function where(a) { return tEnum("city", a.city || "province"); }
function validity(a) {
  return a.valid_to ? t("kb.valid", { from: fmtDay(a.valid_from), to: fmtDay(a.valid_to) })
    : t("kb.valid_from", { from: fmtDay(a.valid_from) });
}
// The 事项 chosen for the case (the case loop panel's select, loop.js), once it is shown.
const MATTER = "lp-matter";
function formMatter() { const el = document.getElementById(MATTER); return el ? el.value || "" : ""; }
function formText() { return FORM_FIELDS.map(id => $(id) ? $(id).value : "").join("\n").slice(0, 8500); }

export function renderKnowledge() {
  paint(MODE ? html`<div class="muted" data-kb-mode=${MODE}>${t(MODE === "search" ? "kb.results" : "kb.suggested")}</div>` : nothing, $("kb-head"));
  paint(MODE && !RESULTS.length ? html`<li class="muted">${t("kb.empty")}</li>`
    : repeat(RESULTS, r => r.id, r => html`<li data-kb=${r.ref}><a href="#" @click=${ev => { ev.preventDefault(); open(r.id); }}>${r.title}</a>
      <span class="muted">${r.matter_name || ""} · ${where(r)}</span><div class="kb-snippet">${r.snippet}</div></li>`), $("kb-results"));
  const a = ARTICLE;
  $("kb-article").classList.toggle("hidden", !a);
  $("kb-results").classList.toggle("hidden", !!a);
  paint(a ? html`<h3 id="kb-title">${a.title}</h3>
    <div class="muted">${a.matter_name ? a.matter_name + " · " : ""}${where(a)} · ${validity(a)} · ${t("kb.version", { n: a.version })}</div>
    <div class="kb-body" id="kb-body">${a.body}</div>
    <div class="row"><button id="kb-helpful" ?disabled=${a.helped} @click=${helpful}>${t(a.helped ? "kb.helped" : "kb.helpful")}</button>
      <span class="muted" id="kb-stats">${t("kb.stats", { views: a.views, helpful: a.helpful })}</span>
      <button id="kb-back" @click=${() => { ARTICLE = null; renderKnowledge(); }}>${t("kb.back")}</button></div>` : nothing, $("kb-article"));
  paint(MSG, $("kb-msg"));
}
async function ask(path, body, mode) {
  try {
    RESULTS = (await api("POST", path, body)).results; MODE = mode; MSG = "";
  } catch (e) { MSG = e.message; }
  ARTICLE = null; renderKnowledge();
}
function search(ev) {
  if (ev) ev.preventDefault();
  const q = $("kb-q").value.trim(); if (!q) return;
  ask("/api/knowledge/search", { q: q.slice(0, 200), matter: formMatter() }, "search");
}
// Suggestions follow the form: a moment after the agent stops typing or picks a 事项.
function suggestSoon() {
  clearTimeout(TIMER);
  TIMER = setTimeout(() => {
    const body = { matter: formMatter(), text: formText() };
    const asked = JSON.stringify(body);
    if (asked === LAST_ASKED || (!body.matter && !body.text.trim())) return;
    LAST_ASKED = asked;
    if (MODE !== "search" || !$("kb-q").value.trim()) ask("/api/knowledge/suggest", body, "suggest");
  }, SUGGEST_AFTER_MS);
}
async function open(id) {
  try { ARTICLE = (await api("GET", `/api/knowledge/articles/${id}`)).published; MSG = ""; }
  catch (e) { MSG = e.message; }
  renderKnowledge();
}
async function helpful() {
  if (!ARTICLE) return;
  try {
    const r = await api("POST", `/api/knowledge/articles/${ARTICLE.id}/helpful`);
    ARTICLE = { ...ARTICLE, helpful: r.helpful, helped: r.helped };
  } catch (e) { MSG = e.message; }
  renderKnowledge();
}

export function startKnowledge() {
  $("kb-form").addEventListener("submit", search);
  $("kb-q").addEventListener("input", () => { if (!$("kb-q").value.trim() && MODE === "search") { MODE = null; suggestSoon(); } });
  for (const id of [...FORM_FIELDS, "f-category"]) { const el = $(id); if (el) el.addEventListener("input", suggestSoon); }
  // The loop panel re-renders its select: listen on the page.
  document.addEventListener("change", ev => { if (ev.target && ev.target.id === MATTER) suggestSoon(); });
  renderKnowledge();
}
// A new case on the line: its form's suggestions, not the last case's.
export function caseChanged() { LAST_ASKED = ""; RESULTS = []; MODE = null; ARTICLE = null; renderKnowledge(); suggestSoon(); }
