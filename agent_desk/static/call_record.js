// A call's recordings (player per side) and saved transcript: the case page's view, shared
// with the 质检 page (quality.js), which scores the call beside it.
import { html } from "./vendor/lit-html/lit-html.js";
import { t, tEnum } from "./i18n.js";

export function callRecord(tr) {
  const recordings = (tr.recordings || []).filter(r => !r.deleted_at);
  const segments = tr.segments || [];
  return html`<h2>${t("section.recordings")}</h2>${recordings.length ? recordings.map(r => html`<div>${tEnum("recording_side", r.side)}
      ${r.kind === "video" ? html`<video controls preload="none" width="640" src=${r.url}></video>`
        : html`<audio controls preload="none" src=${r.url}></audio>`}</div>`) : t("common.none")}
    <h2>${t("section.transcript_saved")}</h2>${segments.length
      ? segments.map(s => html`<div>${t("transcript.line", { speaker: tEnum("speaker", s.speaker), text: s.text })}</div>`)
      : tEnum("transcript_status", tr.status)}`;
}
