// What every page shares: API calls with the session's CSRF token, the WebSocket, the page
// chrome (language button, sign-out). No framework and no inline scripts (CSP: script-src 'self').
import { loadLang, currentLang, toggleLang } from "./i18n.js";

let me = null;
export function currentUser() { return me; }

export async function api(method, path, body, headers) {
  const opts = { method, headers: { ...(headers || {}) }, credentials: "same-origin" };
  if (method !== "GET" && me) opts.headers["X-CSRF-Token"] = me.csrf;
  if (body instanceof Blob) {  // sent as it is (a piece of a recording)
    opts.headers["Content-Type"] = body.type.split(";")[0] || "application/octet-stream"; opts.body = body;
  } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let doc = {};
  try { doc = await resp.json(); } catch { doc = {}; }
  if (resp.status === 401 && path !== "/api/login") location.href = "/login";
  if (!resp.ok) {
    const err = new Error(doc.message || resp.statusText);
    err.code = doc.error; err.status = resp.status;
    throw err;
  }
  return doc;
}

// Requests of one view answered out of order (a change of period, then of date; a language
// switch while the 30-second refresh is in flight): only the newest request's answer is shown.
// `const current = turn(); const doc = await api(...); if (!current()) return;`
export function newestWins() {
  let n = 0;
  return () => { const mine = ++n; return () => mine === n; };
}

// A key for one change (the Idempotency-Key header): a retry of it is applied once.
export function changeKey() {
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
}

// The page's script has set its fields and put its listeners on: whoever drives the page (a
// test) waits for body[data-ready], or its first input can be overwritten or go unheard.
export function pageReady() { document.body.dataset.ready = "yes"; }

export async function loadMe() { me = await api("GET", "/api/me"); return me; }
// Today (YYYY-MM-DD) in the hotline's time zone: its days are the reports' and case numbers'.
export function hotlineToday() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: me?.timezone || undefined, year: "numeric",
    month: "2-digit", day: "2-digit" }).format(new Date());
}
export function $(id) { return document.getElementById(id); }

// A line under the toolbar: red for an error, green (ok) for a success.
export function say(id, text, ok) {
  const el = $(id); if (!el) return;
  el.textContent = text || ""; el.className = ok ? "msg ok" : "msg";
}

export function openSocket(onMessage, onOpen) {
  let delay = 500;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/ws");
    ws.onopen = () => { delay = 500; if (onOpen) onOpen(ws); };
    ws.onmessage = ev => {
      try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); }
    };
    ws.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 10000); };
  }
  connect();
}

// Loads the catalogue and wires the header's buttons; pages await it before their first render.
export async function startPage() {
  await loadLang(currentLang());
  const lb = $("lang"); if (lb) lb.addEventListener("click", toggleLang);
  const lo = $("logout");
  if (lo) lo.addEventListener("click", async () => { await api("POST", "/api/logout"); location.href = "/login"; });
}
