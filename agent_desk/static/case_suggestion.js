// The suggested 事项 and department on a case form (agent_desk/insight), for the form's
// page to hook: the server is asked with what the agent has typed (in the body, never the
// address), the answer is shown with its confidence and where it came from (the trained
// model or the keyword rules), and the agent takes it or chooses otherwise; classifying the
// case is what confirms it (the server compares the two).
//
//   import { suggestionPanel } from "./case_suggestion.js";
//   const panel = suggestionPanel(el, { number, text: () => subject.value + "\n" + content.value,
//                                       onAccept: s => { matter.value = s.matter; dept.value = s.department; } });
//   panel.refresh();           // once the case is open
//   content.oninput = panel.typed;   // again, a moment after typing stops
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { api } from "./app.js";
import { pct, t } from "./i18n.js";

export function fetchSuggestion(number, text) {
  return api("POST", `/api/cases/${encodeURIComponent(number)}/suggestion`, { text: text || "" });
}

export function suggestionTemplate(s, onAccept) {
  if (!s || !s.matter) return html`<p class="suggestion none">${t("suggest.none")}</p>`;
  return html`<p class="suggestion" data-suggested=${s.matter}>${t("suggest.label")}
    <strong>${s.matter_name}</strong>${s.department ? html` → ${s.department_name || s.department}` : nothing}
    <span>${t("suggest.confidence", { value: pct(s.confidence) })} · ${t(s.source === "model" ? "suggest.source_model" : "suggest.source_rules")}</span>
    ${onAccept ? html`<button data-accept-suggestion @click=${() => onAccept(s)}>${t("suggest.accept")}</button>` : nothing}</p>`;
}

export function suggestionPanel(el, { number, text, onAccept, delay = 800 }) {
  let current = null, error = "", timer = null;
  let off = false;
  const draw = () => paint(off ? nothing : error ? html`<p class="msg">${error}</p>`
    : suggestionTemplate(current, onAccept), el);
  async function refresh() {
    try { current = await fetchSuggestion(typeof number === "function" ? number() : number, text ? text() : ""); error = ""; }
    // Suggestions switched off on this service ([insight]): nothing to show, not an error.
    catch (e) { current = null; off = e.code === "not_available"; error = off ? "" : e.message; }
    draw();
    return current;
  }
  function typed() { clearTimeout(timer); timer = setTimeout(refresh, delay); }
  document.addEventListener("langchange", draw);
  return { refresh, typed, get current() { return current; } };
}
