// Small shared pieces of the console's screens: messages, tables, form validation.
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";

export function toast(message, kind = "info", ms = 6000) {
  const box = document.getElementById("toasts");
  const item = h("div", { class: ["toast", kind], role: kind === "error" ? "alert" : "status", text: message });
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

// A place for a form's or a screen's error, in plain words.
export function errorLine() {
  const el = h("p", { class: "error", role: "alert" });
  el.show = (message) => { el.textContent = message || ""; el.hidden = !message; };
  el.hidden = true;
  return el;
}

// Runs an action, showing its error where the user looks; returns its value or undefined.
export async function attempt(where, action) {
  try {
    if (where?.show) where.show("");
    return await action();
  } catch (err) {
    const message = err?.message || t("error.unknown");
    if (where?.show) where.show(message);
    else toast(message, "error");
    return undefined;
  }
}

// Client-side validation: the browser's constraint checks plus custom ones; the first problem is
// reported on its field. Returns true when every field is acceptable.
export function validate(form, checks = []) {
  for (const el of form.querySelectorAll("input, select, textarea")) el.setCustomValidity("");
  for (const [el, test, message] of checks) {
    if (!el.disabled && !test(el.value, el)) el.setCustomValidity(message);
  }
  return form.reportValidity();
}

export function table(columns, rows, { empty = t("common.none"), rowClass } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { text: c.label })));
  const body = rows.length
    ? rows.map((row) => h("tr", { class: rowClass ? rowClass(row) : null },
      columns.map((c) => h("td", { class: c.class || null }, c.render ? c.render(row) : String(row[c.key] ?? "")))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "muted", text: empty }))];
  return h("table", { class: "grid-table" }, h("thead", {}, head), h("tbody", {}, body));
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", { text: title }), ...children);
}

export function screenHeader(title, ...actions) {
  return h("div", { class: "screen-header" }, h("h1", { text: title }), h("div", { class: "actions" }, actions));
}

export function setBusy(el, busy) {
  el.classList.toggle("busy", busy);
  if ("disabled" in el) el.disabled = busy;
}

export function progress(value) {
  const bar = h("progress", { max: 1, value: Math.max(0, Math.min(1, value || 0)) });
  return h("span", { class: "progress" }, bar, ` ${Math.round((value || 0) * 100)} %`);
}

export { clear };
