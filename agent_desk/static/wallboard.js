"use strict";
// The supervisor's wallboard: a full snapshot on connect, then numbered updates over the
// WebSocket (a gap in seq means something was missed: reconnect for a fresh snapshot).
const BOARD = { seq: 0, queues: {}, cities: {}, agents: {}, skew: 0 };
let SKILLS = {}, AGENT_SKILLS = {}, WS = null, SURGE = null, PROPOSAL = null;

function apply(msg) {
  if (msg.type === "snapshot") { Object.assign(BOARD, { seq: msg.seq, queues: msg.queues, cities: msg.cities, agents: msg.agents }); }
  else if (msg.type === "update") {
    if (msg.seq !== BOARD.seq + 1 && !msg.full) { say("msg", `update ${BOARD.seq + 1} missed; reloading`); if (WS) WS.close(); return; }
    BOARD.seq = msg.seq;
    for (const k of ["queues", "cities", "agents"]) Object.assign(BOARD[k], msg[k] || {});
  } else return;
  if (msg.now) BOARD.skew = Date.now() / 1000 - msg.now;
  render();
}
function now() { return Date.now() / 1000 - BOARD.skew; }
function longest(v) { return v.longest_since ? fmtSecs(now() - v.longest_since) : "–"; }
function render() {
  $("seq").textContent = "#" + BOARD.seq;
  $("cities").tBodies[0].innerHTML = Object.entries(BOARD.cities).map(([c, v]) => `<tr data-city="${esc(c)}"><td>${esc(v.name || c)}</td>
    <td class="num waiting">${v.waiting}</td><td class="num">${longest(v)}</td><td class="num">${pct(v.service_level)}</td>
    <td class="num">${pct(v.abandon_rate)}</td><td class="num">${v.asa == null ? "–" : v.asa + " s"}</td><td class="num answered">${v.answered}</td>
    <td class="num">${v.abandoned}</td><td class="num">${v.agents.ready}</td><td class="num">${v.agents.on_call + v.agents.ringing}</td>
    <td class="num">${v.agents.wrapup}</td><td class="num">${v.agents.paused}</td><td class="num">${v.agents.borrowed}</td></tr>`).join("");
  $("queues").tBodies[0].innerHTML = Object.entries(BOARD.queues).filter(([q, v]) => v.waiting || v.answered || v.abandoned)
    .map(([q, v]) => `<tr data-queue="${esc(q)}"><td>${esc(q)}</td><td class="num waiting">${v.waiting}</td><td class="num">${longest(v)}</td>
    <td class="num">${pct(v.service_level)}</td><td class="num">${pct(v.abandon_rate)}</td><td class="num">${v.asa == null ? "–" : v.asa + " s"}</td>
    <td class="num answered">${v.answered}</td><td class="num">${v.abandoned}</td></tr>`).join("");
  $("agents").tBodies[0].innerHTML = Object.values(BOARD.agents).map(a => `<tr data-agent="${esc(a.agent)}"><td>${esc(a.agent)} ${esc(a.name)}</td>
    <td>${esc(a.city)}${a.borrowed_by ? " (" + esc(t("borrowed")) + " ← " + esc(a.home_city) + ")" : ""}</td>
    <td><span class="badge st-${esc(a.state)}">${esc(t("st_" + a.state))}</span> ${a.reason && a.state !== "ready" ? esc(t("reason_" + a.reason)) : ""}</td>
    <td class="num">${a.since ? fmtSecs(now() - a.since) : "–"}</td>
    <td><input data-skills="${esc(a.agent)}" style="width:220px" value="${esc(Object.entries(AGENT_SKILLS[a.agent] || {}).map(([k, v]) => k + "=" + v).join(","))}"></td>
    <td><button data-pause="${esc(a.agent)}">${esc(t("pause"))}</button><button data-unpause="${esc(a.agent)}">${esc(t("unpause"))}</button>
    <button data-setskills="${esc(a.agent)}">${esc(t("set_skills"))}</button></td></tr>`).join("");
}
// 多援一: each watched queue's figures (Erlang C forecast against agents present), a proposal
// naming agents from cities with slack, applied with one action; lent agents can be returned.
async function loadSurge() {
  try { SURGE = await api("GET", "/api/surge"); } catch (e) { SURGE = null; }
  renderSurge();
}
function renderSurge() {
  const panel = $("surge-panel");
  if (!SURGE) { panel.hidden = true; return; }
  panel.hidden = false;
  const rows = [];
  for (const c of SURGE.cities) for (const q of c.queues) rows.push(`<tr data-surge-queue="${esc(q.queue)}">
    <td>${esc(c.name || c.city)} · ${esc(q.skill)}</td><td><span class="badge ${q.state === "surge" ? "st-paused" : "st-ready"}">${esc(t(q.state === "surge" ? "in_surge" : "normal"))}</span></td>
    <td class="num">${q.arrivals_per_min.toFixed(1)}</td><td class="num">${q.waiting}</td><td class="num">${fmtSecs(q.longest_wait_s)}</td>
    <td class="num">${pct(q.service_level)}</td><td class="num">${pct(q.forecast_sl)}</td><td class="num">${q.agents_needed}</td>
    <td class="num">${q.agents_present}</td><td>${q.borrowed_in.map(a => `${esc(a)} <button data-return="${esc(a)}">${esc(t("return_home"))}</button>`).join(" ")}</td>
    <td>${esc(q.lent_out.join(", "))}</td><td><button data-propose="${esc(q.queue)}">${esc(t("propose"))}</button></td></tr>`);
  $("surge").tBodies[0].innerHTML = rows.join("");
  const p = PROPOSAL;
  $("proposal").innerHTML = !p ? "" : `<h3>${esc(t("proposal"))} · ${esc(p.queue)}</h3><p>${esc(p.reason)}</p>
    <p>${esc(t("before"))}: ${esc(t("present"))} ${p.before.agents_present}, ${esc(t("forecast"))} ${pct(p.before.forecast_sl)} →
       ${esc(t("after"))}: ${esc(t("present"))} ${p.after.agents_present ?? "–"}, ${esc(t("forecast"))} ${pct(p.after.forecast_sl)}</p>
    <ul>${p.agents.length ? p.agents.map(a => `<li data-proposed="${esc(a.agent)}">${esc(a.agent)} ${esc(a.name)} · ${esc(t("from_city"))} ${esc(a.from_city)} · ${esc(t("st_" + a.state))}</li>`).join("") : `<li>${esc(t("no_agents"))}</li>`}</ul>
    ${p.notes.map(n => `<p class="msg">${esc(n)}</p>`).join("")}
    ${p.agents.length ? `<button id="apply-proposal" data-apply="${esc(p.id)}">${esc(t("apply"))}</button>` : ""}`;
}
async function loadAgents() {
  const r = await api("GET", "/api/agents"); SKILLS = r.skills;
  for (const a of r.agents) AGENT_SKILLS[a.agent] = a.skills;
  render();
}
document.addEventListener("DOMContentLoaded", async () => {
  await loadMe(); $("who").textContent = ME.user;
  await loadAgents();
  $("agents").addEventListener("click", async ev => {
    const d = ev.target.dataset; say("msg", "");
    try {
      if (d.pause) await api("POST", `/api/agents/${d.pause}/pause`, { paused: true, reason: "supervisor" });
      if (d.unpause) await api("POST", `/api/agents/${d.unpause}/pause`, { paused: false });
      if (d.setskills) {
        const raw = document.querySelector(`[data-skills="${d.setskills}"]`).value;
        const skills = {};
        for (const part of raw.split(",").map(s => s.trim()).filter(Boolean)) { const [k, v] = part.split("="); skills[k.trim()] = parseInt(v, 10); }
        await api("PUT", `/api/agents/${d.setskills}/skills`, { skills }); await loadAgents();
        say("msg", "✓", true);
      }
    } catch (e) { say("msg", e.message); }
  });
  $("surge-panel").addEventListener("click", async ev => {
    const d = ev.target.dataset; say("msg", "");
    try {
      if (d.propose) { PROPOSAL = await api("POST", "/api/surge/proposal", { target: d.propose }); await loadSurge(); }
      if (d.apply) { const r = await api("POST", "/api/surge/apply", { proposal_id: d.apply }); PROPOSAL = null; say("msg", "✓ " + r.moved.map(m => m.agent).join(", "), true); await loadSurge(); }
      if (d.return) { await api("POST", "/api/surge/return", { agent_ids: [d.return] }); say("msg", "✓", true); await loadSurge(); }
    } catch (e) { say("msg", e.message); }
  });
  await loadSurge();
  setInterval(loadSurge, 5000);
  openSocket(apply, ws => { WS = ws; });
  document.addEventListener("langchange", () => { render(); renderSurge(); });
  setInterval(render, 1000);
});
