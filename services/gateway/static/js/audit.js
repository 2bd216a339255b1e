// The audit trail for auditors: search, chain verification, exports; the compliance report.
import { api, qs } from "./api.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { session } from "./session.js";
import { buildForm } from "./forms.js";
import { screenHeader, section, table, errorLine } from "./ui.js";

export async function mount(root) {
  const results = h("div", { id: "audit-results" });
  const verifyOut = h("p", { id: "audit-verify", role: "status" });
  const exports = h("p", { class: "actions" });
  let filters = {};
  const { form } = buildForm([
    { name: "actor", label: t("audit.actor"), maxLength: 160 },
    { name: "action", label: t("audit.action"), maxLength: 64, placeholder: "live, playback, ptz…" },
    { name: "target", label: t("audit.target"), maxLength: 256, placeholder: "camera:…" },
    { name: "start", label: t("audit.from"), type: "datetime" },
    { name: "end", label: t("audit.to"), type: "datetime" },
  ], {
    id: "audit-search", submitLabel: t("audit.search"),
    onSubmit: async (v) => {
      filters = Object.fromEntries(Object.entries(v).filter(([, x]) => x));
      const rows = await api(`/api/v1/audit${qs({ ...filters, limit: 500 })}`);
      clear(results, table([
        { label: "#", key: "seq" },
        { label: t("audit.time"), render: (r) => fmt(r.time) },
        { label: t("audit.actor"), render: (r) => `${r.actor}${r.role ? ` (${r.role})` : ""}` },
        { label: t("audit.action"), key: "action" },
        { label: t("audit.target"), key: "target" },
        { label: t("audit.justification"), key: "justification" },
        { label: t("audit.outcome"), key: "outcome" },
        { label: "IP", key: "origin_ip" },
      ], rows, { rowClass: (r) => r.outcome !== "ok" ? "refused" : "" }));
      clear(exports, h("a", { class: "button", href: `/api/v1/audit/export${qs({ ...filters, format: "csv" })}`, text: t("audit.exportCsv") }),
        h("a", { class: "button", href: `/api/v1/audit/export${qs({ ...filters, format: "json" })}`, text: t("audit.exportJson") }));
    },
  });
  const error = errorLine();
  async function verify() {
    try {
      const v = await api("/api/v1/audit/verify");
      verifyOut.textContent = v.ok ? t("audit.chainOk", { n: v.entries }) : t("audit.chainBroken", { seq: v.first_bad_seq, problem: v.problem });
      verifyOut.className = v.ok ? "ok" : "error";
    } catch (err) { error.show(err.message); }
  }
  clear(root, screenHeader(t("nav.audit"),
    h("button", { type: "button", id: "audit-verify-button", text: t("audit.verify"), onclick: verify }),
    session.has("compliance") ? h("a", { class: "button", href: "/api/v1/compliance/report.pdf", text: t("audit.compliancePdf") }) : null),
  error, verifyOut, section(t("audit.search"), form, exports, results));
}
