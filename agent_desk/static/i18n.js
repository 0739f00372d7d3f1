// Language for the pages: JSON catalogues under /static/i18n/ (Simplified Chinese by default,
// English available), the chosen one remembered in localStorage. Static labels carry
// data-i18n / data-i18n-opt / data-i18n-placeholder; scripts call t() and re-render on
// "langchange".
export const LANGS = ["zh-CN", "en"];
const STORED = "hotline-lang";
let lang = LANGS.includes(localStorage.getItem(STORED)) ? localStorage.getItem(STORED) : "zh-CN";
let catalogue = {};

export function currentLang() { return lang; }

export async function loadLang(next) {
  const resp = await fetch(`/static/i18n/${next}.json`, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`catalogue ${next}: ${resp.status}`);
  catalogue = await resp.json();
  lang = next;
  localStorage.setItem(STORED, next);
  DATE_TIME = new Intl.DateTimeFormat(next, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  applyLang();
}

// A missing key shows itself (the catalogue test keeps that from shipping).
export function t(key, vars) {
  const text = catalogue[key] ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (m, name) => String(vars[name] ?? m)) : text;
}

// A value the server sends (an agent state, a fact kind...) in the family's words; a value
// the catalogue does not know yet is shown as sent rather than as a raw key.
export function tEnum(family, value) {
  if (value == null || value === "") return "";
  return catalogue[`${family}.${value}`] ?? String(value);
}

export function applyLang() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-opt]")) el.textContent = t(el.dataset.i18nOpt);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  if (document.body.dataset.title) document.title = t(document.body.dataset.title);
  document.dispatchEvent(new Event("langchange"));
}

export function toggleLang() { return loadLang(lang === "zh-CN" ? "en" : "zh-CN"); }

// -- formats ------------------------------------------------------------------------------
let DATE_TIME = new Intl.DateTimeFormat("zh-CN");
export const DASH = "–";
export function fmtTime(iso) { return iso ? DATE_TIME.format(new Date(iso)) : ""; }
export function fmtSecs(s) {
  if (s == null || isNaN(s)) return DASH;
  s = Math.max(0, Math.floor(s));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}
export function pct(x) { return x == null ? DASH : (x * 100).toFixed(1) + "%"; }
export function secs(n) { return n == null ? DASH : t("common.seconds", { n }); }
