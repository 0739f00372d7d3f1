// The case's 工单流转 panel (the case page and the agent console share it): state, 红黄灯 and
// time limits, the classification picker (诉求类型 and the 事项 tree), the dispatch form with
// the suggested department preselected and 协办 departments, review, 回访, closing and
// reopening, extension decisions, the dispatches and the loop's timeline. Which forms show
// follows the case's state and the user's role; the server decides (cases/loop/states.py)
// and its refusal is shown as it says.
import { html, nothing, render as paint } from "./vendor/lit-html/lit-html.js";
import { api, changeKey, currentUser } from "./app.js";
import { suggestionPanel } from "./case_suggestion.js";
import { fmtTime, t, tEnum } from "./i18n.js";

const HOTLINE = ["agent", "supervisor", "admin"];
const SUPERVISORS = ["supervisor", "admin"];
const SATISFACTION = ["satisfied", "basic", "unsatisfied"];
const SEP = " \u203a ";

// The taxonomy and the directory, loaded once per page.
let TAX = null, NAMES = {}, LEAVES = [];

export async function loadDirectory() {
  if (TAX) return TAX;
  const [tax, deps] = await Promise.all([api("GET", "/api/taxonomy"), api("GET", "/api/departments")]);
  NAMES = Object.fromEntries(deps.departments.map(d => [d.id, d.name]));
  LEAVES = leaves(tax.matters, []);
  TAX = tax;
  return TAX;
}

// The tree's leaves with their paths of names, grouped under their top level for the picker.
function leaves(nodes, path) {
  const out = [];
  for (const n of nodes) {
    const names = [...path, n.name];
    if (n.children.length) out.push(...leaves(n.children, names));
    else out.push({ code: n.code, top: names[0], rest: names.slice(1).join(SEP) || names[0] });
  }
  return out;
}

export function deptName(id) { return id ? (NAMES[id] || id) : ""; }

// 红黄灯 with the time limit (a date and time in the page's language).
export function lightBadge(light, due) {
  const l = light || "none";
  return html`<span class="badge light-${l}" data-light=${l}>${tEnum("light", l)}</span>${due
    ? html` <span class="due">${t("loop.due", { at: fmtTime(due) })}</span>` : nothing}`;
}

export class LoopPanel {
  // onChange(view): after a change; address(): the case form's address, to start the
  // classification's address from.
  constructor(el, onChange, address) {
    this.el = el; this.onChange = onChange || (() => {}); this.address = address || (() => "");
    this.number = null; this.view = null; this.suggestion = null; this.cityDepts = [];
    this.msg = null; this.busy = false;
  }

  async show(number) {
    if (number !== this.number) { this.number = number; this.view = null; this.msg = null; this.suggestion = null; }
    await this.load();
  }

  async load() {
    if (!this.number) return;
    try {
      await loadDirectory();
      const n = encodeURIComponent(this.number);
      this.view = await api("GET", `/api/cases/${n}/loop`);
      if (this.canDispatch()) {
        const [sug, depts] = await Promise.all([
          api("GET", `/api/cases/${n}/loop/suggestion`),
          api("GET", "/api/departments" + (this.view.city ? "?city=" + encodeURIComponent(this.view.city) : ""))]);
        this.suggestion = sug; this.cityDepts = depts.departments;
      }
    } catch (e) { this.msg = { text: e.message }; }
    this.render();
  }

  role() { return (currentUser() || {}).role; }
  hotline() { return HOTLINE.includes(this.role()); }
  supervisor() { return SUPERVISORS.includes(this.role()); }
  open() { const s = this.view && this.view.state; return s === "accepted" || s === "returned"; }
  canDispatch() { return this.hotline() && this.open() && !!(this.view.appeal_type && this.view.matter); }

  // One action of the loop: its own Idempotency-Key, one request at a time.
  async act(action, body, done = { key: "loop.done" }) {
    if (this.busy) return;
    this.busy = true; this.msg = null; this.render();
    try {
      this.view = await api("POST", `/api/cases/${encodeURIComponent(this.number)}/loop/${action}`, body,
                            { "Idempotency-Key": changeKey() });
      this.msg = { ...done, ok: true };
      this.busy = false;
      await this.load();
      this.onChange(this.view);
      return;
    } catch (e) { this.msg = { text: e.message }; }
    this.busy = false;
    this.render();
  }

  val(id) { const el = this.el.querySelector("#" + id); return el ? el.value : ""; }

  classify() {
    const body = { appeal_type: this.val("lp-appeal"), matter: this.val("lp-matter"), district: this.val("lp-district") };
    const address = this.val("lp-address").trim();
    if (address) body.address = address;
    if (!body.appeal_type || !body.matter) { this.msg = { key: "loop.pick_class" }; this.render(); return; }
    this.act("classify", body, { key: "loop.classified" });
  }

  dispatch() {
    const lead = this.val("lp-lead");
    const assist = [...this.el.querySelector("#lp-assist").selectedOptions].map(o => o.value).filter(x => x && x !== lead);
    if (!lead) { this.msg = { key: "loop.pick_lead" }; this.render(); return; }
    this.act("dispatch", { lead, assist, reason: this.val("lp-instructions") }, { key: "loop.dispatched" });
  }

  followUp() {
    const reached = this.val("lp-reached") === "yes";
    const body = { reached, reason: this.val("lp-fu-note") };
    if (reached) {
      body.resolved = this.val("lp-resolved") === "yes";
      body.satisfaction = this.val("lp-satisfaction");
    }
    this.act("follow_up", body, { key: "loop.followed_up" });
  }

  render() {
    if (!this.el) return;
    const v = this.view;
    const m = this.msg;
    const line = html`<p class=${m && m.ok ? "msg ok" : "msg"} id="lp-msg">${!m ? "" : m.key ? t(m.key) : m.text}</p>`;
    if (!v) { paint(html`<h2>${t("loop.title")}</h2>${line}`, this.el); return; }
    paint(html`<h2>${t("loop.title")}</h2>
      ${this.summary(v)}
      ${line}
      ${this.hotline() ? this.forms(v) : nothing}
      ${this.dispatches(v)}
      ${this.timeline(v)}`, this.el);
    this.suggest();
  }

  // The suggested 事项 (agent_desk/insight: from the saved form and the transcript) beside
  // the classification picker; taking it selects the 事项, classifying confirms it.
  suggest() {
    const el = this.el.querySelector("#lp-suggestion");
    if (!el) return;
    if (this.sugEl !== el || this.sugFor !== this.number) {
      this.sugEl = el; this.sugFor = this.number;
      this.sugPanel = suggestionPanel(el, { number: this.number, onAccept: s => {
        const matter = this.el.querySelector("#lp-matter");
        if (matter) matter.value = s.matter;
      } });
      this.sugPanel.refresh();
    }
  }

  summary(v) {
    const fu = v.followup || {};
    return html`<div class="kv loop-kv">
      <div>${t("loop.state")}</div><div><span class="badge loop-${v.state}" id="lp-state" data-state=${v.state}>${tEnum("loop_state", v.state)}</span>
        ${v.supervised ? html`<span class="badge light-red">${t("loop.supervised")}</span>` : nothing}</div>
      <div>${t("loop.light")}</div><div id="lp-light">${lightBadge(v.light, v.due_at)}</div>
      ${v.state === "dispatched" && v.sign_due_at ? html`<div>${t("loop.sign_due")}</div><div>${fmtTime(v.sign_due_at)}</div>` : nothing}
      <div>${t("loop.appeal_type")}</div><div id="lp-appeal-name">${v.appeal_type_name || t("loop.unclassified")}</div>
      <div>${t("loop.matter")}</div><div id="lp-matter-name">${v.matter_name || t("loop.unclassified")}</div>
      ${v.district ? html`<div>${t("loop.district")}</div><div id="lp-district-name">${v.district_name || v.district}</div>` : nothing}
      <div>${t("loop.lead")}</div><div id="lp-lead-name">${v.lead_department_name || deptName(v.lead_department) || t("common.none")}</div>
      <div>${t("loop.round")}</div><div>${t("loop.round_counts", { round: v.round, reopened: v.reopen_count, returned: v.return_count })}</div>
      ${fu.at ? html`<div>${t("loop.follow_up")}</div><div>${fu.satisfaction ? tEnum("satisfaction", fu.satisfaction) : t("loop.not_reached")}
        ${fu.resolved == null ? nothing : fu.resolved ? t("loop.resolved_yes") : t("loop.resolved_no")}</div>` : nothing}
      ${v.closed_how ? html`<div>${t("loop.closed_how")}</div><div>${tEnum("closed_how", v.closed_how)} ${fmtTime(v.closed_at)}</div>` : nothing}
    </div>`;
  }

  forms(v) {
    const s = v.state, busy = this.busy;
    const parts = [];
    if (this.open()) parts.push(this.classifyForm(v));
    if (this.canDispatch()) parts.push(this.dispatchForm(v));
    if (s === "accepted" && v.appeal_type && v.matter) {
      parts.push(html`<div class="loop-form"><h3>${t("loop.finish_direct")}</h3>
        <input id="lp-finish-reason" maxlength="2000" placeholder=${t("loop.finish_placeholder")}>
        <button id="lp-finish" ?disabled=${busy} @click=${() => this.act("finish_direct", { reason: this.val("lp-finish-reason") }, { key: "loop.finished" })}>${t("loop.finish_direct")}</button></div>`);
    }
    if (this.open()) {
      parts.push(html`<div class="loop-form"><h3>${t("loop.merge")}</h3><div class="row">
        <input id="lp-merge-into" maxlength="32" style="width:180px" placeholder=${t("loop.merge_placeholder")}>
        <button id="lp-merge" ?disabled=${busy} @click=${() => this.act("merge", { merge_into: this.val("lp-merge-into").trim() }, { key: "loop.merged" })}>${t("loop.merge")}</button></div></div>`);
    }
    if (s === "replied") parts.push(this.reviewForm(v));
    if (s === "follow_up") parts.push(this.followUpForm());
    const asked = v.dispatches.filter(d => d.round === v.round && d.extension && d.extension.state === "requested");
    if (this.supervisor() && asked.length) {
      parts.push(html`<div class="loop-form"><h3>${t("loop.extension")}</h3>
        ${asked.map(d => html`<div>${t("loop.extension_asked", { department: d.department_name || deptName(d.department), days: d.extension.days })}
          <span class="pre">${d.extension.reason}</span></div>`)}
        <input id="lp-ext-reason" maxlength="2000" placeholder=${t("loop.reason_placeholder")}>
        <div class="row"><button class="primary" id="lp-ext-approve" ?disabled=${busy} @click=${() => this.act("decide_extension", { accept: true, reason: this.val("lp-ext-reason") })}>${t("loop.approve")}</button>
        <button id="lp-ext-refuse" ?disabled=${busy} @click=${() => this.act("decide_extension", { accept: false, reason: this.val("lp-ext-reason") })}>${t("loop.refuse")}</button></div></div>`);
    }
    if (this.supervisor() && (s === "closed" || s === "follow_up") && v.lead_department) {
      parts.push(html`<div class="loop-form"><h3>${t("loop.reopen")}</h3>
        <input id="lp-reopen-reason" maxlength="2000" placeholder=${t("loop.reopen_placeholder")}>
        <button class="danger" id="lp-reopen" ?disabled=${busy} @click=${() => this.act("reopen", { reason: this.val("lp-reopen-reason") }, { key: "loop.reopened" })}>${t("loop.reopen")}</button></div>`);
    }
    return parts;
  }

  classifyForm(v) {
    const groups = [...new Set(LEAVES.map(l => l.top))];
    return html`<div class="loop-form"><h3>${t("loop.classify")}</h3>
      <div id="lp-suggestion"></div>
      <label for="lp-appeal">${t("loop.appeal_type")}</label>
      <select id="lp-appeal"><option value=""></option>
        ${TAX.appeal_types.map(a => html`<option value=${a.code} ?selected=${a.code === v.appeal_type}>${a.name}</option>`)}</select>
      <label for="lp-matter">${t("loop.matter")}</label>
      <select id="lp-matter"><option value=""></option>
        ${groups.map(g => html`<optgroup label=${g}>${LEAVES.filter(l => l.top === g).map(l => html`<option value=${l.code}
          ?selected=${l.code === v.matter}>${l.rest}</option>`)}</optgroup>`)}</select>
      <div class="row"><label for="lp-district">${t("loop.district")}</label>${(v.districts || []).length
        ? html`<select id="lp-district" style="width:auto"><option value=""></option>
            ${v.districts.map(d => html`<option value=${d.id} ?selected=${d.id === v.district}>${d.name}</option>`)}</select>`
        : html`<input id="lp-district" maxlength="32" style="width:140px" .value=${v.district || ""}>`}
      <label for="lp-address">${t("loop.address")}</label><input id="lp-address" maxlength="256" style="width:260px" .value=${this.address() || ""}
        placeholder=${t("loop.address_placeholder")}></div>
      <button class="primary" id="lp-classify" ?disabled=${this.busy} @click=${() => this.classify()}>${t("loop.classify_save")}</button></div>`;
  }

  dispatchForm(v) {
    const sug = this.suggestion || {};
    const depts = this.cityDepts;
    const repeats = sug.repeats || [];
    return html`<div class="loop-form"><h3>${v.state === "returned" ? t("loop.redispatch") : t("loop.dispatch")}</h3>
      ${sug.department ? html`<p class="hint" id="lp-suggested">${t("loop.suggested_is", { department: sug.department_name || deptName(sug.department) })}</p>` : nothing}
      ${repeats.length ? html`<p class="hint" id="lp-repeats">${t("loop.repeats")}
        ${repeats.map(r => html`<a href="/cases#${r.case}">${r.case}</a> (${tEnum("link_reason", r.reason)}) `)}</p>` : nothing}
      <label for="lp-lead">${t("loop.lead")}</label>
      <select id="lp-lead"><option value=""></option>
        ${depts.map(d => html`<option value=${d.id} ?selected=${d.id === sug.department}>${d.name}${d.id === sug.department ? t("loop.suggested_mark") : ""}</option>`)}</select>
      <label for="lp-assist">${t("loop.assist")}</label>
      <select id="lp-assist" multiple size="4">${depts.map(d => html`<option value=${d.id}>${d.name}</option>`)}</select>
      <label for="lp-instructions">${t("loop.instructions")}</label>
      <textarea id="lp-instructions" maxlength="2000" style="min-height:50px"></textarea>
      <button class="primary" id="lp-dispatch" ?disabled=${this.busy} @click=${() => this.dispatch()}>${v.state === "returned" ? t("loop.redispatch") : t("loop.dispatch")}</button></div>`;
  }

  reviewForm(v) {
    const lead = v.dispatches.find(d => d.round === v.round && d.role === "lead") || {};
    return html`<div class="loop-form"><h3>${t("loop.review")}</h3>
      <div class="kv"><div>${t("loop.replied_by")}</div><div>${lead.department_name || deptName(lead.department)} ${fmtTime(lead.replied_at)}</div>
      <div>${t("loop.reply")}</div><div class="pre" id="lp-reply">${lead.reply || ""}</div>
      <div>${t("loop.contacted")}</div><div>${lead.contacted_caller == null ? "" : lead.contacted_caller ? t("common.yes") : t("common.no")}</div></div>
      <input id="lp-review-reason" maxlength="2000" placeholder=${t("loop.review_placeholder")}>
      <div class="row"><button class="primary" id="lp-accept" ?disabled=${this.busy} @click=${() => this.act("review", { accept: true, reason: this.val("lp-review-reason") }, { key: "loop.reviewed" })}>${t("loop.accept")}</button>
      <button id="lp-reject" ?disabled=${this.busy} @click=${() => this.act("review", { accept: false, reason: this.val("lp-review-reason") }, { key: "loop.sent_back" })}>${t("loop.reject")}</button></div></div>`;
  }

  followUpForm() {
    return html`<div class="loop-form"><h3>${t("loop.follow_up")}</h3>
      <div class="row"><label for="lp-reached">${t("loop.reached")}</label><select id="lp-reached" style="width:auto">
        <option value="yes">${t("loop.reached_yes")}</option><option value="no">${t("loop.reached_no")}</option></select>
      <label for="lp-resolved">${t("loop.resolved")}</label><select id="lp-resolved" style="width:auto">
        <option value="yes">${t("loop.resolved_yes")}</option><option value="no">${t("loop.resolved_no")}</option></select>
      <label for="lp-satisfaction">${t("loop.satisfaction")}</label><select id="lp-satisfaction" style="width:auto">
        ${SATISFACTION.map(x => html`<option value=${x}>${tEnum("satisfaction", x)}</option>`)}</select></div>
      <input id="lp-fu-note" maxlength="2000" placeholder=${t("loop.follow_up_placeholder")}>
      <div class="row"><button class="primary" id="lp-follow-up" ?disabled=${this.busy} @click=${() => this.followUp()}>${t("loop.follow_up_save")}</button>
      ${this.supervisor() ? html`<button id="lp-close" ?disabled=${this.busy} @click=${() => this.act("close", { reason: this.val("lp-fu-note") }, { key: "loop.closed" })}>${t("loop.close")}</button>` : nothing}</div></div>`;
  }

  dispatches(v) {
    if (!v.dispatches.length) return nothing;
    return html`<h3>${t("loop.dispatches")}</h3><table id="lp-dispatches"><thead><tr><th>${t("loop.round")}</th><th>${t("loop.department")}</th>
      <th>${t("loop.role")}</th><th>${t("loop.state")}</th><th>${t("loop.sign_due")}</th><th>${t("loop.handle_due")}</th><th>${t("loop.note")}</th></tr></thead>
      <tbody>${v.dispatches.map(d => html`<tr data-department=${d.department}><td>${d.round}</td><td>${d.department_name || deptName(d.department)}</td>
        <td>${tEnum("dispatch_role", d.role)}</td><td>${tEnum("dispatch_state", d.state)}${d.extension && d.extension.state
          ? html` · ${tEnum("extension_state", d.extension.state)}` : nothing}</td>
        <td>${fmtTime(d.sign_due_at)}</td><td>${fmtTime(d.due_at)}</td><td class="pre">${d.reply || d.return_reason || ""}</td></tr>`)}</tbody></table>`;
  }

  timeline(v) {
    return html`<h3>${t("loop.timeline")}</h3><table id="lp-timeline"><thead><tr><th>${t("loop.when")}</th><th>${t("loop.action")}</th>
      <th>${t("loop.who")}</th><th>${t("loop.change")}</th><th>${t("loop.why")}</th></tr></thead>
      <tbody>${v.timeline.length ? v.timeline.map(f => html`<tr data-kind=${f.kind}><td>${fmtTime(f.at)}</td>
        <td>${tEnum("loop_action", f.kind.replace(/^loop\./, ""))}</td>
        <td>${this.who(f)}</td>
        <td>${f.from && f.to && f.from !== f.to ? `${tEnum("loop_state", f.from)} \u2192 ${tEnum("loop_state", f.to)}` : ""}</td>
        <td class="pre">${this.why(f)}</td></tr>`) : html`<tr><td colspan="5">${t("common.none")}</td></tr>`}</tbody></table>`;
  }

  // Who: a person (with their department), or the service itself (the 红黄灯 sweep).
  who(f) {
    if (f.by === "system") return t("loop.by_system");
    return f.department ? t("loop.by_department", { user: f.by || "", department: deptName(f.department) }) : f.by || "";
  }

  // What a fact says beyond who and when, in words.
  why(f) {
    const out = [];
    if (f.lead) out.push(t("loop.fact_dispatch", { lead: deptName(f.lead), assist: (f.assist || []).map(deptName).join(t("loop.list_sep")) || t("common.none") }));
    if (f.kind === "loop.classify" && f.matter) {
      const leaf = LEAVES.find(l => l.code === f.matter);
      out.push([TAX && TAX.appeal_types.find(a => a.code === f.appeal_type)?.name, leaf ? `${leaf.top}${SEP}${leaf.rest}` : f.matter].filter(Boolean).join(" / "));
    }
    if (f.repeats && f.repeats.length) out.push(t("loop.fact_repeats", { cases: f.repeats.join(t("loop.list_sep")) }));
    if (f.accept != null) out.push(f.accept ? t("loop.accepted") : t("loop.not_accepted"));
    if (f.days) out.push(t("loop.fact_days", { days: f.days }));
    if (f.satisfaction) out.push(tEnum("satisfaction", f.satisfaction));
    if (f.reached === false) out.push(t("loop.not_reached"));
    if (f.merged_into) out.push(t("loop.fact_merged", { case: f.merged_into }));
    for (const o of f.orders || []) out.push(t("loop.fact_order", { department: deptName(o.department), kind: tEnum("order_kind", o.kind) }));
    if (f.reason) out.push(f.reason);
    return out.join("\n");
  }
}
