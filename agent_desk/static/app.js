// Shared by the pages: language (zh-CN default, English available), API calls with the
// CSRF token, the WebSocket, small helpers. No framework, no inline scripts (CSP).
"use strict";
const I18N = {
  zh: {
    title_console: "12345 坐席工作台", title_wallboard: "12345 班长监控大屏", title_cases: "工单查询",
    title_login: "12345 热线登录", username: "用户名", password: "密码", login: "登录", logout: "退出",
    lang: "English", signin: "签入", signout: "签出", ready: "示闲", pause: "示忙", wrapup: "事后处理",
    answer: "接听", hold: "保持", unhold: "取回", hangup: "挂断", state: "状态", timer: "通话计时",
    ringing: "来电振铃", caller: "来电号码", city: "城市", dialed: "被叫号码", queue: "队列",
    route_reasons: "路由原因", priority: "优先级", earlier: "历史工单", case_no: "工单号",
    case_form: "工单", category: "诉求类别", subject: "诉求分类", address: "地址", content: "诉求内容",
    department: "承办部门", save: "保存", close_case: "办结", saved: "已保存", closed: "已办结",
    transfer: "转接", consult: "咨询转接", three_way: "三方通话", leave: "退出通话", cancel: "取消转接",
    emergency: "紧急转接", transcript: "实时转写", callbacks: "漏接电话回拨", call_back: "回拨",
    outcome: "结果", attempts: "次数", status: "状态", none: "无", screen_pop: "来电信息",
    reason_rest: "休息", reason_training: "培训", reason_after_call_work: "事后处理", reason_meeting: "会议",
    reason_supervisor: "班长置忙",
    cat_consultation: "咨询", cat_help: "求助", cat_complaint: "投诉", cat_report: "举报", cat_suggestion: "建议",
    st_ready: "空闲", st_on_call: "通话中", st_ringing: "振铃", st_paused: "示忙", st_wrapup: "事后处理",
    st_signed_out: "未签入", st_unavailable: "离线", st_unknown: "未知", st_busy: "忙", st_on_hold: "保持",
    waiting: "排队数", longest: "最长等待", service_level: "15秒接通率", abandon_rate: "放弃率", asa: "平均应答",
    answered: "已接", abandoned: "放弃", agents: "坐席", borrowed: "借调", in_state: "状态时长",
    cities: "各城市", queues: "各队列", agent: "坐席", skills: "技能", set_skills: "改技能", unpause: "恢复",
    search: "查询", from: "起始日期", to: "截止日期", number: "号码", timeline: "通话时间线",
    transfers: "转接记录", recordings: "录音", open: "在办", closed_st: "已办结", all: "全部",
    reached: "已联系", no_answer: "无人接", busy: "忙", wrong_number: "号码错误", cancelled: "取消",
    pending: "待回拨", calling: "回拨中", done: "完成", failed: "失败", cases: "工单查询",
    wallboard: "监控大屏", console: "工作台", speaker_agent: "坐席", speaker_caller: "市民", ended: "通话结束", talking: "通话中", held: "已保持",
    surge: "多援一（跨城支援）", arrivals: "来话/分钟", needed: "需坐席", present: "在岗", forecast: "预测接通率",
    propose: "生成方案", apply: "执行借调", return_home: "归还", in_surge: "话务激增", normal: "正常",
    from_city: "来自", before: "借调前", after: "借调后", no_agents: "无可借调坐席", proposal: "借调方案", lent: "借出",
  },
  en: {
    title_console: "12345 agent console", title_wallboard: "12345 supervisor wallboard", title_cases: "Cases",
    title_login: "12345 hotline sign-in", username: "Username", password: "Password", login: "Sign in", logout: "Sign out",
    lang: "中文", signin: "Sign in to queues", signout: "Sign out of queues", ready: "Ready", pause: "Pause", wrapup: "Wrap-up",
    answer: "Answer", hold: "Hold", unhold: "Unhold", hangup: "Hang up", state: "State", timer: "Call time",
    ringing: "Incoming call", caller: "Caller", city: "City", dialed: "Dialed", queue: "Queue",
    route_reasons: "Route reasons", priority: "Priority", earlier: "Earlier cases", case_no: "Case",
    case_form: "Case", category: "Category", subject: "Subject", address: "Address", content: "Content",
    department: "Department", save: "Save", close_case: "Close case", saved: "Saved", closed: "Closed",
    transfer: "Transfer", consult: "Consult", three_way: "Three-way", leave: "Leave", cancel: "Cancel",
    emergency: "Emergency", transcript: "Live transcript", callbacks: "Missed-call callbacks", call_back: "Call back",
    outcome: "Outcome", attempts: "Attempts", status: "Status", none: "none", screen_pop: "Caller",
    reason_rest: "Rest", reason_training: "Training", reason_after_call_work: "After-call work", reason_meeting: "Meeting",
    reason_supervisor: "Supervisor",
    cat_consultation: "Consultation", cat_help: "Help", cat_complaint: "Complaint", cat_report: "Report", cat_suggestion: "Suggestion",
    st_ready: "Ready", st_on_call: "On call", st_ringing: "Ringing", st_paused: "Paused", st_wrapup: "Wrap-up",
    st_signed_out: "Signed out", st_unavailable: "Offline", st_unknown: "Unknown", st_busy: "Busy", st_on_hold: "On hold",
    waiting: "Waiting", longest: "Longest wait", service_level: "Answered ≤15 s", abandon_rate: "Abandon rate", asa: "ASA",
    answered: "Answered", abandoned: "Abandoned", agents: "Agents", borrowed: "Borrowed", in_state: "Time in state",
    cities: "Cities", queues: "Queues", agent: "Agent", skills: "Skills", set_skills: "Set skills", unpause: "Unpause",
    search: "Search", from: "From", to: "To", number: "Number", timeline: "Timeline",
    transfers: "Transfers", recordings: "Recordings", open: "Open", closed_st: "Closed", all: "All",
    reached: "Reached", no_answer: "No answer", busy: "Busy", wrong_number: "Wrong number", cancelled: "Cancelled",
    pending: "Pending", calling: "Calling", done: "Done", failed: "Failed", cases: "Cases",
    wallboard: "Wallboard", console: "Console", speaker_agent: "Agent", speaker_caller: "Caller", ended: "Call ended", talking: "Talking", held: "On hold",
    surge: "Surge support across cities", arrivals: "Calls/min", needed: "Agents needed", present: "Present", forecast: "Forecast SL",
    propose: "Propose", apply: "Lend agents", return_home: "Return", in_surge: "Surge", normal: "Normal",
    from_city: "From", before: "Before", after: "After", no_agents: "No agent can be lent", proposal: "Proposal", lent: "Lent out",
  },
};
let LANG = localStorage.getItem("hotline-lang") || "zh";
function t(key) { return (I18N[LANG] && I18N[LANG][key]) || I18N.zh[key] || key; }
function applyLang() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-opt]").forEach(el => { el.textContent = t(el.dataset.i18nOpt); });
  if (document.body.dataset.title) document.title = t(document.body.dataset.title);
  document.dispatchEvent(new Event("langchange"));
}
function toggleLang() { LANG = LANG === "zh" ? "en" : "zh"; localStorage.setItem("hotline-lang", LANG); applyLang(); }

let ME = null;
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET" && ME) opts.headers["X-CSRF-Token"] = ME.csrf;
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const resp = await fetch(path, opts);
  let doc = {};
  try { doc = await resp.json(); } catch (e) { doc = {}; }
  if (resp.status === 401 && path !== "/api/login") { location.href = "/login"; }
  if (!resp.ok) { const err = new Error(doc.message || resp.statusText); err.code = doc.error; err.status = resp.status; throw err; }
  return doc;
}
async function loadMe() { ME = await api("GET", "/api/me"); return ME; }
function $(id) { return document.getElementById(id); }
function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }
function fmtSecs(s) { if (s == null || isNaN(s)) return "–"; s = Math.max(0, Math.floor(s)); const m = Math.floor(s / 60); return `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`; }
function fmtTime(iso) { return iso ? new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : ""; }
function pct(x) { return x == null ? "–" : (x * 100).toFixed(1) + "%"; }
function say(id, text, ok) { const el = $(id); if (!el) return; el.textContent = text || ""; el.className = ok ? "msg ok" : "msg"; }
function openSocket(onMessage, onOpen) {
  let delay = 500;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/ws");
    ws.onopen = () => { delay = 500; if (onOpen) onOpen(ws); };
    ws.onmessage = ev => { try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
    ws.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 10000); };
  }
  connect();
}
document.addEventListener("DOMContentLoaded", () => {
  const lb = $("lang"); if (lb) lb.addEventListener("click", toggleLang);
  const lo = $("logout"); if (lo) lo.addEventListener("click", async () => { await api("POST", "/api/logout"); location.href = "/login"; });
  applyLang();
});
