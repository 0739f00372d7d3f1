// The wallboard's hot topics (agent_desk/insight): the open alerts as the live feed sends
// them, each with the cases behind it on demand; a supervisor acknowledges an alert or merges
// its cases into one (并单) for a single dispatch. wallboard.js hands over the feed's lists.
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, say } from "./app.js";
import { DASH, fmtTime, pct, t, tEnum } from "./i18n.js";

let ALERTS = [];
const CASES = {};  // alert id -> its cases, once asked for
const SHOWN = new Set();

// What the alert is about: the matter in its district, or the word.
export function alertTitle(a) {
  if (a.kind === "matter") return t("hot.title_matter", { matter: a.matter_name || a.matter || DASH, district: a.district_name || a.district || DASH });
  return t("hot.title_keyword", { term: a.term || DASH });
}
function words(a) {
  return a.signals.filter(s => s.kind === "keyword" && s.term).map(s => s.term).join("、") || DASH;
}

export function showHotTopics(alerts) {
  if (!Array.isArray(alerts)) return;
  ALERTS = alerts;
  renderHotTopics();
}

export async function loadHotTopics() {
  try {
    const r = await api("GET", "/api/insight/alerts?status=open");
    for (const a of r.alerts) CASES[a.id] = a.case_list;
    showHotTopics(r.alerts);
  } catch (e) {
    if (e.status === 404) { $("hot-panel").hidden = true; return; }
    say("hot-msg", e.message);
  }
}

function casesRow(a) {
  const cases = CASES[a.id];
  if (!cases) return html`<tr class="hot-cases"><td colspan="7">${t("hot.loading")}</td></tr>`;
  return html`<tr class="hot-cases" data-hot-cases=${a.id}><td colspan="7"><ul>${cases.map(c => html`<li data-case=${c.number}>
    ${c.number} · ${fmtTime(c.at)} · ${c.district_name || c.district || DASH} · ${c.matter_name || DASH} · ${tEnum("loop_state", c.state)}</li>`)}</ul></td></tr>`;
}

export function renderHotTopics() {
  const panel = $("hot-panel"); if (!panel) return;
  paint(ALERTS.length ? nothing : html`<p>${t("hot.none")}</p>`, $("hot-empty"));
  paint(repeat(ALERTS, a => a.id, a => html`<tr data-alert=${a.id} class=${a.acknowledged_by ? "" : "hot-new"}>
      <td>${fmtTime(a.opened_at)}</td><td>${a.city_name || a.city || DASH}</td><td>${alertTitle(a)}</td><td>${words(a)}</td>
      <td class="num">${t("hot.count", { observed: a.peak || a.observed, expected: a.expected, cases: a.cases })}</td>
      <td>${a.merged_into ? t("hot.merged_into", { number: a.merged_into }) : a.acknowledged_by ? t("hot.acknowledged_by", { user: a.acknowledged_by }) : t("hot.new")}</td>
      <td><button data-hot-show=${a.id}>${SHOWN.has(a.id) ? t("hot.hide_cases") : t("hot.show_cases")}</button>
        ${a.acknowledged_by ? nothing : html`<button data-hot-ack=${a.id}>${t("hot.acknowledge")}</button>`}
        ${a.merged_into ? nothing : html`<button data-hot-merge=${a.id}>${t("hot.merge")}</button>`}</td></tr>
    ${SHOWN.has(a.id) ? casesRow(a) : nothing}`),
  $("hot-topics").tBodies[0]);
}

async function onClick(ev) {
  const d = ev.target.dataset; if (!d.hotShow && !d.hotAck && !d.hotMerge) return;
  say("hot-msg", "");
  try {
    if (d.hotShow) {
      const id = Number(d.hotShow);
      if (SHOWN.has(id)) SHOWN.delete(id); else { SHOWN.add(id); renderHotTopics(); CASES[id] = (await api("GET", `/api/insight/alerts/${id}`)).case_list; }
    }
    if (d.hotAck) await api("POST", `/api/insight/alerts/${d.hotAck}/acknowledge`);
    if (d.hotMerge) {
      const r = await api("POST", `/api/insight/alerts/${d.hotMerge}/merge`, {});
      CASES[Number(d.hotMerge)] = (await api("GET", `/api/insight/alerts/${d.hotMerge}`)).case_list;
      say("hot-msg", t("hot.merged", { count: r.merged.length, number: r.into, skipped: r.skipped.length }), true);
    }
  } catch (e) { say("hot-msg", e.message); }
  renderHotTopics();
}

// The suggestion classifier's figures (GET /api/insight/classifier): the active model's
// accuracy on held-back confirmed cases beside the keyword rules' on the same cases.
let CLASSIFIER = null;
export async function loadClassifier() {
  try { CLASSIFIER = await api("GET", "/api/insight/classifier"); } catch { CLASSIFIER = null; }
  renderClassifier();
}
function renderClassifier() {
  const el = $("classifier-line");
  if (!el) return;
  const c = CLASSIFIER;
  const m = c && (c.models || []).find(x => x.id === c.model_id) || (c && (c.models || [])[0]);
  paint(!c ? nothing : !m ? html`${t("hot.classifier_untrained", { min: c.min_confirmed })}`
    : html`${t("hot.classifier", { accuracy: pct(m.accuracy), rules: pct(m.rules_accuracy), held: m.held_back,
                                   at: fmtTime(m.trained_at), source: t(c.source === "model" ? "suggest.source_model" : "suggest.source_rules") })}`, el);
}

export function startHotTopics() {
  $("hot-topics").addEventListener("click", onClick);
  document.addEventListener("langchange", renderHotTopics);
  document.addEventListener("langchange", renderClassifier);
  loadClassifier();
  return loadHotTopics();
}
