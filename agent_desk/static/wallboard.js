// The supervisor's wallboard: a full snapshot on connect, then numbered updates over the
// WebSocket (a gap in seq means something was missed: reconnect for a fresh snapshot).
// Tables are lit-html templates with keyed rows: an update patches the cells that changed,
// so a half-typed skills input keeps its text and focus while the figures move.
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { repeat } from "./vendor/lit-html/directives/repeat.js";
import { $, api, loadMe, openSocket, say, startPage } from "./app.js";
import { DASH, fmtSecs, pct, secs, t, tEnum } from "./i18n.js";
import { showHotTopics, startHotTopics } from "./hot_topics.js";
import { startFigures } from "./figures.js";

const BOARD = { seq: 0, queues: {}, cities: {}, agents: {}, monitoring: {}, skew: 0 };
// 监听、耳语、强插: the supervisor's desk phone (from /api/monitoring) and the policy.
let MONITOR = { phone: null, agent_sees: false };
const MODES = ["listen", "whisper", "barge"];
let AGENT_SKILLS = {}, WS = null, SURGE = null, PROPOSAL = null, MSG = null;
// Today's 一键评价 figures, from the case records (not the live feed): read every 30 s.
let SAT = { cities: {}, queues: {} };

function apply(msg) {
  if (msg.type === "snapshot") { Object.assign(BOARD, { seq: msg.seq, queues: msg.queues, cities: msg.cities, agents: msg.agents, monitoring: msg.monitoring || {} }); }
  else if (msg.type === "update") {
    if (msg.seq !== BOARD.seq + 1 && !msg.full) {
      setMsg({ key: "common.missed_update", vars: { seq: BOARD.seq + 1 } });
      if (WS) WS.close();
      return;
    }
    BOARD.seq = msg.seq;
    for (const k of ["queues", "cities", "agents"]) Object.assign(BOARD[k], msg[k] || {});
    for (const [sid, m] of Object.entries(msg.monitoring || {})) {
      if (m.state === "ended") delete BOARD.monitoring[sid]; else BOARD.monitoring[sid] = m;
    }
  } else return;
  if (msg.hot_topics) showHotTopics(msg.hot_topics);
  if (msg.now) BOARD.skew = Date.now() / 1000 - msg.now;
  render();
}
// The line under the header: a catalogue key for our own messages (re-said in the other
// language after a switch), the server's text for an error.
function setMsg(m) { MSG = m; renderMsg(); }
function renderMsg() { say("msg", !MSG ? "" : MSG.key ? t(MSG.key, MSG.vars) : MSG.text, !!(MSG && MSG.ok)); }

function now() { return Date.now() / 1000 - BOARD.skew; }
function longest(v) { return v.longest_since ? fmtSecs(now() - v.longest_since) : DASH; }
function cityName(city) { return BOARD.cities[city]?.name || city; }
function skillsText(agent) { return Object.entries(AGENT_SKILLS[agent] || {}).map(([k, v]) => k + "=" + v).join(","); }
const byKey = ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0);

function satCells(s) {
  return html`<td class="num satisfaction">${s ? pct(s.satisfaction_rate) : DASH}</td><td class="num">${s ? s.rated : 0}</td>`;
}
async function loadSatisfaction() {
  try { SAT = await api("GET", "/api/wallboard/satisfaction"); render(); } catch { /* the next read tries again */ }
}

function render() {
  $("seq").textContent = "#" + BOARD.seq;
  paint(repeat(Object.entries(BOARD.cities), ([c]) => c, ([c, v]) => html`<tr data-city=${c}><td>${v.name || c}</td>
    <td class="num waiting">${v.waiting}</td><td class="num">${longest(v)}</td><td class="num">${pct(v.service_level)}</td>
    <td class="num">${pct(v.abandon_rate)}</td><td class="num">${secs(v.asa)}</td><td class="num answered">${v.answered}</td>
    <td class="num">${v.abandoned}</td><td class="num">${v.agents.ready}</td><td class="num">${v.agents.on_call + v.agents.ringing}</td>
    <td class="num">${v.agents.wrapup}</td><td class="num">${v.agents.paused}</td><td class="num">${v.agents.borrowed}</td>
    ${satCells(SAT.cities[c])}</tr>`),
  $("cities").tBodies[0]);
  const queues = Object.entries(BOARD.queues).filter(([, v]) => v.waiting || v.answered || v.abandoned).sort(byKey);
  paint(repeat(queues, ([q]) => q, ([q, v]) => html`<tr data-queue=${q}><td>${q}</td><td class="num waiting">${v.waiting}</td>
    <td class="num">${longest(v)}</td><td class="num">${pct(v.service_level)}</td><td class="num">${pct(v.abandon_rate)}</td>
    <td class="num">${secs(v.asa)}</td><td class="num answered">${v.answered}</td><td class="num">${v.abandoned}</td>
    ${satCells(SAT.queues[q])}</tr>`),
  $("queues").tBodies[0]);
  // Rows in a fixed order (by agent id): moving a row would take the focus from its input.
  const agents = Object.values(BOARD.agents).sort((a, b) => byKey([a.agent], [b.agent]));
  paint(repeat(agents, a => a.agent, a => html`<tr data-agent=${a.agent}><td>${a.agent} ${a.name}</td>
    <td>${cityName(a.city)}${a.borrowed_by ? ` (${t("board.borrowed")} ← ${cityName(a.home_city)})` : nothing}</td>
    <td><span class="badge st-${a.state}">${tEnum("state", a.state)}</span>
      ${a.reason && a.state !== "ready" ? tEnum("reason", a.reason) : nothing}</td>
    <td class="num">${a.since ? fmtSecs(now() - a.since) : DASH}</td>
    <td><input data-skills=${a.agent} style="width:220px" .value=${skillsText(a.agent)}
      placeholder=${t("board.skills_placeholder")}></td>
    <td><button data-pause=${a.agent}>${t("board.pause")}</button><button data-unpause=${a.agent}>${t("board.unpause")}</button>
      <button data-setskills=${a.agent}>${t("board.set_skills")}</button>
      ${a.state === "on_call" && me.role === "supervisor" ? MODES.map(m => html`<button class="monitor" data-monitor=${a.agent}
        data-mode=${m}>${tEnum("monitor_mode", m)}</button>`) : nothing}</td></tr>`),
  $("agents").tBodies[0]);
  renderMonitoring();
}
// 监听、耳语、强插 in progress: the supervisor's own sessions can change mode or hang up.
function renderMonitoring() {
  $("monitor-phone").textContent = MONITOR.phone ? t("monitor.phone", { phone: MONITOR.phone }) : t("monitor.no_phone");
  $("monitor-phone").textContent += " · " + t(MONITOR.agent_sees ? "monitor.agent_sees" : "monitor.agent_unaware");
  const rows = Object.values(BOARD.monitoring).sort((a, b) => a.started_at - b.started_at);
  paint(repeat(rows, m => m.session_id, m => html`<tr data-session=${m.session_id}><td>${m.agent} ${BOARD.agents[m.agent]?.name || ""}</td>
    <td>${m.case || DASH}</td><td>${m.supervisor} (${m.phone})</td>
    <td><span class="badge mode-${m.mode}">${tEnum("monitor_mode", m.mode)}</span></td>
    <td>${tEnum("monitor_state", m.state)}</td><td class="num">${fmtSecs(now() - (m.answered_at || m.started_at))}</td>
    <td>${m.supervisor === me.user ? html`${MODES.filter(x => x !== m.mode).map(x => html`<button data-switch=${m.session_id}
      data-mode=${x}>${tEnum("monitor_mode", x)}</button>`)}<button data-leave=${m.session_id}>${t("monitor.leave")}</button>` : nothing}</td></tr>`),
  $("monitoring").tBodies[0]);
}
async function loadMonitoring() {
  try { MONITOR = await api("GET", "/api/monitoring"); render(); } catch { /* shown on the next read */ }
}
// 多援一: each watched queue's figures (Erlang C forecast against agents present), a proposal
// naming agents from cities with slack, applied with one action; lent agents can be returned.
async function loadSurge() {
  try { SURGE = await api("GET", "/api/surge"); } catch { SURGE = null; }
  renderSurge();
}
function renderSurge() {
  const panel = $("surge-panel");
  if (!SURGE) { panel.hidden = true; return; }
  panel.hidden = false;
  const rows = SURGE.cities.flatMap(c => c.queues.map(q => ({ c, q })));
  paint(repeat(rows, ({ q }) => q.queue, ({ c, q }) => html`<tr data-surge-queue=${q.queue}>
    <td>${c.name || c.city} · ${q.skill}</td>
    <td><span class="badge ${q.state === "surge" ? "st-paused" : "st-ready"}">${tEnum("surge_state", q.state === "surge" ? "surge" : "normal")}</span></td>
    <td class="num">${q.arrivals_per_min.toFixed(1)}</td><td class="num">${q.waiting}</td><td class="num">${fmtSecs(q.longest_wait_s)}</td>
    <td class="num">${pct(q.service_level)}</td><td class="num">${pct(q.forecast_sl)}</td><td class="num">${q.agents_needed}</td>
    <td class="num">${q.agents_present}</td>
    <td>${q.borrowed_in.map(a => html`${a} <button data-return=${a}>${t("surge.return_home")}</button> `)}</td>
    <td>${q.lent_out.join(", ")}</td><td><button data-propose=${q.queue}>${t("surge.propose")}</button></td></tr>`),
  $("surge").tBodies[0]);
  paint(PROPOSAL ? proposalTemplate(PROPOSAL) : nothing, $("proposal"));
}
function proposalTemplate(p) {
  const b = p.before;
  return html`<h3>${t("surge.proposal")} · ${p.queue}</h3>
    <p>${t("surge.reason", { queue: p.queue, waiting: b.waiting, longest: fmtSecs(b.longest_wait_s),
      sl: pct(b.service_level), arrivals: b.arrivals_per_min.toFixed(1), needed: b.agents_needed, present: b.agents_present })}</p>
    <p>${t("surge.compare", { before_present: b.agents_present, before_sl: pct(b.forecast_sl),
      after_present: p.after.agents_present ?? DASH, after_sl: pct(p.after.forecast_sl) })}</p>
    <ul>${p.agents.length ? p.agents.map(a => html`<li data-proposed=${a.agent}>${a.agent} ${a.name} ·
      ${t("surge.from_city")} ${a.from_city} · ${tEnum("state", a.state)}</li>`) : html`<li>${t("surge.no_agents")}</li>`}</ul>
    ${p.notes.map(n => html`<p class="msg">${n}</p>`)}
    ${p.agents.length ? html`<button id="apply-proposal" data-apply=${p.id}>${t("surge.apply")}</button>` : nothing}`;
}
async function loadAgents() {
  const r = await api("GET", "/api/agents");
  for (const a of r.agents) AGENT_SKILLS[a.agent] = a.skills;
  render();
}
function parseSkills(raw) {
  const skills = {};
  for (const part of raw.split(",").map(s => s.trim()).filter(Boolean)) {
    const [k, v] = part.split("="); skills[k.trim()] = parseInt(v, 10);
  }
  return skills;
}

await startPage();
const me = await loadMe();
$("who").textContent = me.user;
await loadAgents();
await loadMonitoring();
$("agents").addEventListener("click", async ev => {
  const d = ev.target.dataset; if (!d.pause && !d.unpause && !d.setskills && !d.monitor) return;
  setMsg(null);
  try {
    if (d.monitor) {
      await api("POST", "/api/monitoring", { agent: d.monitor, mode: d.mode });
      setMsg({ key: "monitor.ringing", vars: { phone: MONITOR.phone }, ok: true });
    }
    if (d.pause) await api("POST", `/api/agents/${d.pause}/pause`, { paused: true, reason: "supervisor" });
    if (d.unpause) await api("POST", `/api/agents/${d.unpause}/pause`, { paused: false });
    if (d.setskills) {
      const raw = document.querySelector(`[data-skills="${d.setskills}"]`).value;
      await api("PUT", `/api/agents/${d.setskills}/skills`, { skills: parseSkills(raw) }); await loadAgents();
      setMsg({ key: "common.ok", ok: true });
    }
  } catch (e) { setMsg({ text: e.message }); }
});
$("monitoring").addEventListener("click", async ev => {
  const d = ev.target.dataset; if (!d.switch && !d.leave) return;
  setMsg(null);
  try {
    if (d.switch) await api("POST", `/api/monitoring/${d.switch}/mode`, { mode: d.mode });
    if (d.leave) await api("POST", `/api/monitoring/${d.leave}/stop`);
  } catch (e) { setMsg({ text: e.message }); }
});
$("surge-panel").addEventListener("click", async ev => {
  const d = ev.target.dataset; if (!d.propose && !d.apply && !d.return) return;
  setMsg(null);
  try {
    if (d.propose) { PROPOSAL = await api("POST", "/api/surge/proposal", { target: d.propose }); await loadSurge(); }
    if (d.apply) {
      const r = await api("POST", "/api/surge/apply", { proposal_id: d.apply }); PROPOSAL = null;
      setMsg({ key: "common.ok_moved", vars: { agents: r.moved.map(m => m.agent).join(", ") }, ok: true }); await loadSurge();
    }
    if (d.return) { await api("POST", "/api/surge/return", { agent_ids: [d.return] }); setMsg({ key: "common.ok", ok: true }); await loadSurge(); }
  } catch (e) { setMsg({ text: e.message }); }
});
await loadSurge();
setInterval(loadSurge, 5000);
await loadSatisfaction();
setInterval(loadSatisfaction, 30000);
await startHotTopics();
// Today's agent figures and the staffing forecast, from the facts: read every 30 s.
await startFigures({ every: 30000 });
openSocket(apply, ws => { WS = ws; });
document.addEventListener("langchange", () => { render(); renderSurge(); renderMsg(); });
setInterval(render, 1000);
