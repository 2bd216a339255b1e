// The register of extractions (cahier des extractions): read, verify its chain and signatures,
// print (PDF) and export (CSV, JSON) for the CNIL or the prefect.
import { api, qs } from "./api.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { screenHeader, section, table, errorLine } from "./ui.js";

export async function mount(root) {
  const error = errorLine();
  const list = h("div", { id: "register-table" });
  const verdict = h("p", { id: "register-verdict", role: "status" });
  const key = h("p", { class: "muted", id: "register-key" });
  async function verify() {
    try {
      const v = await api("/api/v1/register/verify");
      verdict.textContent = v.ok ? t("register.ok", { n: v.entries }) : t("register.broken", { seq: v.first_bad_seq, problem: v.problem });
      verdict.className = v.ok ? "ok" : "error";
      key.textContent = t("verify.published", { fp: v.public_key_fingerprint });
    } catch (err) { error.show(err.message); }
  }
  try {
    const rows = await api(`/api/v1/register${qs({ limit: 500 })}`);
    clear(list, table([
      { label: "#", key: "seq" },
      { label: t("register.time"), render: (e) => fmt(e.time) },
      { label: t("register.kind"), render: (e) => e.kind },
      { label: t("register.request"), render: (e) => e.request_number ? h("a", { href: `#/requisitions/${e.request_id}`, text: e.request_number }) : "" },
      { label: t("register.by"), key: "actor" },
      { label: t("register.details"), render: (e) => Object.entries(e.details || {}).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k}: ${v}`).join(" · ") },
      { label: t("register.hash"), render: (e) => h("code", { text: (e.entry_hash || "").slice(0, 16) }) },
    ], rows));
  } catch (err) { error.show(err.message); }
  clear(root, screenHeader(t("nav.register"),
    h("button", { type: "button", id: "register-verify", text: t("register.verify"), onclick: verify }),
    h("a", { class: "button", id: "register-pdf", href: "/api/v1/register/export?format=pdf", target: "_blank", rel: "noopener", text: t("register.print") }),
    h("a", { class: "button", href: "/api/v1/register/export?format=csv", text: "CSV" }),
    h("a", { class: "button", href: "/api/v1/register/export?format=json", text: "JSON" })),
  error, verdict, key, section(t("register.entries"), list));
}
