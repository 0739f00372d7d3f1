"use strict";
// The supervisor's wallboard: a full snapshot on connect, then numbered updates over the
// WebSocket (a gap in seq means something was missed: reconnect for a fresh snapshot).
const BOARD = { seq: 0, queues: {}, cities: {}, agents: {}, skew: 0 };
let SKILLS = {}, AGENT_SKILLS = {}, WS = null;

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
  openSocket(apply, ws => { WS = ws; });
  document.addEventListener("langchange", render);
  setInterval(render, 1000);
});
