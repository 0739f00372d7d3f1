// The agent's own 质检 scores and the inspectors' comments (GET /api/quality/mine), on the
// console: an agent sees their own scores only.
import { html, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api } from "./app.js";
import { fmtTime, t } from "./i18n.js";

let SCORES = [];
export async function loadMyScores() {
  try { SCORES = (await api("GET", "/api/quality/mine")).scores; } catch { SCORES = []; }
  renderMyScores();
}
export function renderMyScores() {
  const body = $("my-scores"); if (!body) return;
  paint(SCORES.length ? repeat(SCORES, s => s.id, s => html`<tr data-score=${s.case}><td>${s.day}</td><td>${s.case}</td>
    <td class="num">${s.score.score}</td><td>${s.score.comment}</td><td>${fmtTime(s.score.at)}</td></tr>`)
    : html`<tr><td colspan="5">${t("common.none")}</td></tr>`, body);
}
