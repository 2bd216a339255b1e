// Alarms: open ones first, acknowledge with a comment; the list follows the notifications.
import { api, enc, qs } from "./api.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { screenHeader, table, errorLine, toast } from "./ui.js";

export async function mount(root) {
  const stateSelect = h("select", { id: "alarm-state" }, ["open", "acknowledged", "all"].map((s) => h("option", { value: s, text: t(`alarms.state.${s}`) })));
  const error = errorLine();
  const list = h("div", { id: "alarm-list" });
  async function refresh() {
    try {
      const rows = await api(`/api/v1/alarms${qs({ state: stateSelect.value, limit: 500 })}`);
      error.show("");
      clear(list, table([
        { label: t("alarms.kind"), key: "kind" },
        { label: t("alarms.camera"), key: "camera_id" },
        { label: t("alarms.message"), key: "message" },
        { label: t("alarms.last"), render: (r) => fmt(r.last_raised) },
        { label: t("alarms.countCol"), key: "count" },
        { label: t("alarms.stateCol"), render: (r) => r.state === "open" ? t("alarms.state.open") : `${t("alarms.ackedBy", { who: r.acked_by })} ${fmt(r.acked)}${r.ack_comment ? ` — ${r.ack_comment}` : ""}` },
        { label: "", render: (r) => r.state === "open" ? ackForm(r) : "" },
      ], rows, { rowClass: (r) => r.state === "open" ? "alarm-open" : "" }));
    } catch (err) { error.show(err.message); }
  }
  function ackForm(row) {
    const comment = h("input", { maxLength: 1000, placeholder: t("alarms.comment"), "aria-label": t("alarms.comment") });
    return h("span", { class: "inline-form" }, comment, h("button", { type: "button", text: t("alarms.ack"), onclick: async () => {
      try { await api(`/api/v1/alarms/${enc(row.id)}/ack`, { method: "POST", body: { comment: comment.value.trim() } }); refresh(); } catch (err) { toast(err.message, "error"); }
    } }));
  }
  stateSelect.addEventListener("change", refresh);
  const onEvent = () => refresh();
  window.addEventListener("csu:notification", onEvent);
  clear(root, screenHeader(t("nav.alarms"), stateSelect), error, list);
  refresh();
  const timer = setInterval(refresh, 30000);
  return () => { clearInterval(timer); window.removeEventListener("csu:notification", onEvent); };
}
