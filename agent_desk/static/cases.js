"use strict";
async function search(ev) {
  if (ev) ev.preventDefault();
  const p = new URLSearchParams();
  for (const k of ["number", "from", "to", "city", "category", "status"]) { const v = $("q-" + k).value; if (v) p.set(k, v); }
  try {
    const r = await api("GET", "/api/cases?" + p);
    $("list").innerHTML = r.cases.map(c => `<tr><td><a href="#${esc(c.number)}">${esc(c.number)}</a></td><td>${esc(c.caller)}</td><td>${esc(c.city || "")}</td>
      <td>${c.category ? esc(t("cat_" + c.category)) : ""}</td><td>${esc(t(c.status === "open" ? "open" : "closed_st"))}</td></tr>`).join("");
    say("msg", "");
  } catch (e) { say("msg", e.message); }
}
async function show() {
  const number = location.hash.slice(1); if (!number) return;
  try {
    const c = await api("GET", "/api/cases/" + encodeURIComponent(number));
    const tr = await api("GET", `/api/cases/${encodeURIComponent(number)}/transcript`);
    const f = c.form || {};
    $("detail").innerHTML = `<h2>${esc(t("case_no"))} ${esc(c.number)}</h2><div class="kv">
      <div>${esc(t("caller"))}</div><div>${esc(c.caller)}</div><div>${esc(t("city"))}</div><div>${esc(c.city || "")}</div>
      <div>${esc(t("category"))}</div><div>${f.category ? esc(t("cat_" + f.category)) : ""}</div><div>${esc(t("subject"))}</div><div>${esc(f.subject)}</div>
      <div>${esc(t("address"))}</div><div>${esc(f.address)}</div><div>${esc(t("content"))}</div><div style="white-space:pre-wrap">${esc(f.content)}</div>
      <div>${esc(t("department"))}</div><div>${esc(f.department)}</div><div>${esc(t("status"))}</div><div>${esc(t(c.status === "open" ? "open" : "closed_st"))}</div></div>
      <h2>${esc(t("timeline"))}</h2><table>${c.timeline.map(e => `<tr><td>${esc(fmtTime(e.at))}</td><td>${esc(e.kind)}</td><td>${esc(e.source)}</td></tr>`).join("")}</table>
      <h2>${esc(t("transfers"))}</h2><table>${c.transfers.map(x => `<tr><td>${esc(x.name)}</td><td>${esc(x.mode)}</td><td>${esc(x.outcome || "")}</td></tr>`).join("") || `<tr><td>${esc(t("none"))}</td></tr>`}</table>
      <h2>${esc(t("recordings"))}</h2>${(tr.recordings || []).filter(r => !r.deleted_at).map(r => `<div>${esc(r.side)} <audio controls preload="none" src="${esc(r.url)}"></audio></div>`).join("") || esc(t("none"))}
      <h2>${esc(t("transcript"))}</h2>${(tr.segments || []).map(s => `<div>${esc(s.speaker)}: ${esc(s.text)}</div>`).join("") || esc(tr.status)}`;
  } catch (e) { $("detail").textContent = e.message; }
}
document.addEventListener("DOMContentLoaded", async () => {
  await loadMe(); $("q").addEventListener("submit", search); window.addEventListener("hashchange", show);
  search(); show();
  document.addEventListener("langchange", () => { search(); show(); });
});
