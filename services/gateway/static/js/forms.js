// Forms from a list of field descriptions: the browser's checks plus our own, values read back typed.
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { errorLine, validate } from "./ui.js";
import { dateToParisInput, parisInputToDate, isoZ } from "./time.js";

// field: {name, label, type: text|password|number|select|checkbox|textarea|datetime|date|list,
//         required, min, max, step, pattern, maxLength, options:[[value,label]], hint, check:[fn,msg], value}
export function buildForm(fields, { submitLabel = t("common.save"), onSubmit, onCancel, id } = {}) {
  const inputs = {};
  const error = errorLine();
  const rows = fields.map((f) => {
    let input;
    const common = { name: f.name, id: id ? `${id}-${f.name}` : null, required: Boolean(f.required), disabled: Boolean(f.disabled) };
    if (f.type === "select") {
      input = h("select", common, f.options.map(([v, label]) => h("option", { value: v, text: label, selected: String(f.value ?? "") === String(v) })));
    } else if (f.type === "checkbox") {
      input = h("input", { ...common, type: "checkbox", checked: Boolean(f.value) });
    } else if (f.type === "textarea") {
      input = h("textarea", { ...common, rows: f.rows || 3, maxLength: f.maxLength || 4000, value: f.value ?? "" });
    } else {
      const type = { datetime: "datetime-local", list: "text" }[f.type] || f.type || "text";
      let value = f.value ?? "";
      if (f.type === "datetime" && value) value = dateToParisInput(value);
      if (f.type === "list" && Array.isArray(value)) value = value.join(", ");
      input = h("input", { ...common, type, value: String(value), min: f.min, max: f.max, step: f.step ?? (f.type === "datetime" ? 1 : undefined), pattern: f.pattern, maxLength: f.maxLength, placeholder: f.placeholder, autocomplete: f.autocomplete || "off" });
    }
    inputs[f.name] = input;
    if (f.type === "checkbox") return h("label", { class: "check" }, input, f.label);
    return h("label", { class: "field" }, h("span", { class: "field-label", text: f.label + (f.required ? " *" : "") }), input, f.hint ? h("small", { class: "hint", text: f.hint }) : null);
  });
  const form = h("form", { class: "form", novalidate: true, id },
    h("div", { class: "form-fields" }, rows), error,
    h("div", { class: "actions" },
      onCancel ? h("button", { type: "button", text: t("common.cancel"), onclick: onCancel }) : null,
      h("button", { type: "submit", class: "primary", text: submitLabel })));

  function read() {
    const values = {};
    for (const f of fields) {
      const input = inputs[f.name];
      if (f.disabled) continue;
      if (f.type === "checkbox") values[f.name] = input.checked;
      else if (f.type === "number") values[f.name] = input.value === "" ? null : Number(input.value);
      else if (f.type === "datetime") { const d = parisInputToDate(input.value); values[f.name] = d ? isoZ(d) : null; }
      else if (f.type === "list") values[f.name] = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      else values[f.name] = input.value.trim();
    }
    return values;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const checks = [];
    for (const f of fields) {
      const input = inputs[f.name];
      if (f.type === "datetime") checks.push([input, (v) => (!v && !f.required) || parisInputToDate(v) !== null, t("form.badDate")]);
      if (f.type === "list" && f.itemPattern) checks.push([input, (v) => v.split(",").map((s) => s.trim()).filter(Boolean).every((s) => new RegExp(`^(?:${f.itemPattern})$`).test(s)), f.itemMessage || t("form.badList")]);
      if (f.check) checks.push([input, (v) => f.check[0](v, input), f.check[1]]);
    }
    if (!validate(form, checks)) return;
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    error.show("");
    try { await onSubmit(read()); } catch (err) { error.show(err.message); } finally { submit.disabled = false; }
  });
  return { form, inputs, read, error };
}
