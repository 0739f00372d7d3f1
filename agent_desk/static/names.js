// Names instead of ids (the configuration's display names, GET /api/names): cities, skills,
// queues ("南京 · 综合咨询"), agents; and a case's route reasons, which the router stores as
// terse English ("city=nanjing (trunk nanjing), skill=general (dialed 12345), ..."), said in
// the page's language with those names.
import { api } from "./app.js";
import { t } from "./i18n.js";

let N = { province: "", cities: {}, skills: {}, agents: {} };

export async function loadNames() {
  try { N = await api("GET", "/api/names"); } catch { /* ids are shown */ }
  return N;
}
export function cityName(id) {
  if (!id) return "";
  if (id === "province") return N.province ? t("names.province", { name: N.province }) : id;
  return N.cities[id] || id;
}
export function skillName(id) { return (id && N.skills[id]) || id || ""; }
export function agentName(id) { return id && N.agents[id] ? `${N.agents[id]} (${id})` : (id || ""); }
export function queueName(q) {
  if (!q) return "";
  const i = q.indexOf("-");
  return i < 0 ? q : `${cityName(q.slice(0, i))} · ${skillName(q.slice(i + 1))}`;
}

const REASONS = [
  [/^city=province pool \(unknown origin\)$/, () => t("route.city_unknown")],
  [/^city=(\S+) \(trunk (.+)\)$/, m => t("route.city_trunk", { city: cityName(m[1]), trunk: cityName(m[2]) })],
  [/^city=(\S+) \(dialed (.+)\)$/, m => t("route.city_dialed", { city: cityName(m[1]), number: m[2] })],
  [/^city=(\S+) \(area code (.+)\)$/, m => t("route.city_area", { city: cityName(m[1]), code: m[2] })],
  [/^skill=(\S+) \(dialed (.+)\)$/, m => t("route.skill_dialed", { skill: skillName(m[1]), number: m[2] })],
  [/^skill=(\S+) \(unknown number (.+)\)$/, m => t("route.skill_unknown", { skill: skillName(m[1]), number: m[2] })],
  [/^skill=(\S+) \(key (.+)\)$/, m => t("route.skill_key", { skill: skillName(m[1]), key: m[2] })],
  [/^key (\S+) not used for (.+)$/, m => t("route.key_unused", { key: m[1], number: m[2] })],
  [/^key (.+) ignored$/, m => t("route.key_ignored", { key: m[1] })],
  [/^priority=normal$/, () => t("route.priority_normal")],
  [/^priority=handover \(line (.+)\)$/, m => t("route.priority_handover", { line: m[1] })],
  [/^priority=(elderly|disabled)$/, m => t("route.priority_green", { who: t("route.green_" + m[1]) })],
  [/^priority=repeat caller$/, () => t("route.priority_repeat")],
  [/^repeat caller \(case (\d+), agent (\S+) first\)$/, m => t("route.repeat_agent", { case: m[1], agent: agentName(m[2]) })],
  [/^repeat caller \(case (\d+)\)$/, m => t("route.repeat", { case: m[1] })],
];

export function routeReasons(text) {
  if (!text) return "";
  const parts = text.replace(/^route:\s*/, "").split(/,\s(?![^()]*\))/);
  return parts.map(p => {
    for (const [re, say] of REASONS) { const m = p.match(re); if (m) return say(m); }
    return p;
  }).join(t("route.sep"));
}
