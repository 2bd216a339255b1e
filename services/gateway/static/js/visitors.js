// The viewing-room register: people expected in the supervision room, declared in advance to the
// prefecture (mailed at once, retried on its own until it leaves), the prefecture's answer recorded
// (validated with its reference, or refused), cancelled when the visit will not happen; nothing is
// ever deleted. Administrators keep it ("users"); auditors consult and export it.
import { api, enc, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt, isoZ, parisInputToDate, parisParts } from "./time.js";
import { session } from "./session.js";
import { buildForm } from "./forms.js";
import { screenHeader, section, table, errorLine, toast } from "./ui.js";

const ROLES = ["agent", "manager", "visitor", "police", "contractor", "other"];
const FILTERS = ["", "pending", "not_sent", "validated", "refused", "cancelled"];
const PAGE = 1000;
const base = (d) => `/api/v1/visitors/${enc(d.id)}`;

// Where a declaration stands: declared (mail not gone yet), sent, not sent (retried), then the answer.
function stage(d) {
  if (d.status !== "pending") return d.status;
  if (d.mail_status === "sent") return "sent";
  return d.mail_status === "not_sent" ? "not_sent" : "declared";
}

const pill = (d) => h("span", { class: ["status-pill", `vis-${stage(d)}`], text: t(`vstate.${stage(d)}`) });
const roleText = (role) => (ROLES.includes(role) ? t(`vrole.${role}`) : role);

function mailText(d) {
  if (d.mail_status === "sent") return t("visitors.mailSent", { time: fmt(d.mail_sent, "minute"), to: d.mail_recipient });
  if (d.mail_status === "not_sent") {
    return h("span", { class: d.status === "pending" ? "error" : "muted", text: t("visitors.mailNotSent", { error: d.mail_error || "—", n: d.mail_attempts }) });
  }
  return t("visitors.mailQueued");
}

function answerText(d) {
  const by = d.answer_recorded_by ? ` (${t("visitors.recordedBy", { who: d.answer_recorded_by })})` : "";
  const comment = d.answer_comment ? ` — ${d.answer_comment}` : "";
  if (d.status === "validated" || d.status === "refused") {
    return `${t(`vstate.${d.status}`)} ${t("visitors.answerOn", { date: fmt(d.answer, "minute") })}${d.prefecture_ref ? `, ${t("visitors.ref", { ref: d.prefecture_ref })}` : ""}${comment}${by}`;
  }
  if (d.status === "cancelled") return `${t("vstate.cancelled")}${comment}${by}`;
  return "";
}

function parisAt(dayOffset, hour) {
  const p = parisParts(Date.now() + dayOffset * 86_400_000);
  const two = (n) => String(n).padStart(2, "0");
  return parisInputToDate(`${p.year}-${two(p.month)}-${two(p.day)}T${two(hour)}:00`);
}

export async function mount(root) {
  const admin = session.may("users");
  const error = errorLine();
  const list = h("div", { id: "visitors-table" });
  const count = h("p", { class: "muted", id: "visitors-count", role: "status" });
  const filter = h("select", { id: "visitors-filter" }, FILTERS.map((f) => h("option", { value: f, text: t(`visitors.filter.${f || "all"}`) })));
  const upcoming = h("input", { type: "checkbox", id: "visitors-upcoming" });

  async function fetchAll() {
    const params = filter.value === "not_sent" ? { status: "pending", mail_status: "not_sent" } : { status: filter.value };
    if (upcoming.checked) params.start = isoZ(new Date());
    let rows = [];
    let after = 0;
    for (let page = 0; page < 20; page += 1) {
      const got = await api(`/api/v1/visitors${qs({ ...params, after, limit: PAGE })}`);
      rows = rows.concat(got);
      if (got.length < PAGE) break;
      after = got[got.length - 1].id;
    }
    return rows.reverse(); // the latest declarations first
  }

  async function refresh() {
    try {
      const rows = await fetchAll();
      error.show("");
      count.textContent = t("visitors.count", { n: rows.length });
      const columns = [
        { label: t("visitors.reference"), class: "nowrap", key: "reference" },
        { label: t("visitors.person"), render: (d) => [h("strong", { class: "block", text: d.name }), h("span", { class: "block", text: d.organisation }),
          h("small", { class: "muted", text: [roleText(d.role), d.quality].filter(Boolean).join(" — ") })] },
        { label: t("visitors.purpose"), class: "entry-text", key: "purpose" },
        { label: t("visitors.expected"), class: "nowrap", render: (d) => [h("span", { class: "block", text: fmt(d.expected_start, "minute") }), `→ ${fmt(d.expected_end, "minute")}`] },
        { label: t("visitors.declared"), render: (d) => `${d.declared_by} · ${fmt(d.declared, "minute")}` },
        { label: t("visitors.status"), render: pill },
        { label: t("visitors.mail"), render: mailText },
        { label: t("visitors.answer"), render: answerText },
      ];
      if (admin) columns.push({ label: "", render: (d) => actions(d) });
      clear(list, table(columns, rows, { empty: t("visitors.none"), rowClass: (d) => `vis-row-${stage(d)}` }));
    } catch (err) { error.show(err.message); }
  }

  function actions(d) {
    const named = (key) => `${t(key)} — ${d.reference} (${d.name})`;
    return h("span", { class: "row-actions" },
      d.status === "pending" ? h("button", { type: "button", class: "small", "data-answer": d.id, text: t("visitors.recordAnswer"), "aria-label": named("visitors.recordAnswer"), onclick: () => answer(d) }) : null,
      d.status === "pending" && d.mail_status !== "sent" ? h("button", { type: "button", class: "small", "data-resend": d.id, text: t("visitors.resend"), "aria-label": named("visitors.resend"), onclick: () => resend(d) }) : null,
      d.status !== "cancelled" && d.status !== "refused" ? h("button", { type: "button", class: "small", "data-cancel": d.id, text: t("visitors.cancel"), "aria-label": named("visitors.cancel"), onclick: () => cancel(d) }) : null);
  }

  function declare() {
    dialog(t("visitors.declare"), (close) => buildForm([
      { name: "name", label: t("visitors.name"), required: true, maxLength: 128, autocomplete: "off" },
      { name: "organisation", label: t("visitors.organisation"), required: true, maxLength: 128 },
      { name: "role", label: t("visitors.role"), type: "select", value: "visitor", options: ROLES.map((r) => [r, t(`vrole.${r}`)]) },
      { name: "quality", label: t("visitors.quality"), maxLength: 128, hint: t("visitors.qualityHint") },
      { name: "purpose", label: t("visitors.purpose"), type: "textarea", required: true, maxLength: 1000 },
      { name: "expected_start", label: t("visitors.expectedStart"), type: "datetime", required: true, value: parisAt(1, 9) },
      { name: "expected_end", label: t("visitors.expectedEnd"), type: "datetime", required: true, value: parisAt(1, 12), hint: t("visitors.expectedHint") },
    ], {
      id: "visitor-form", submitLabel: t("visitors.declareAndSend"), onCancel: () => close(null),
      onSubmit: async (v) => {
        if (Date.parse(v.expected_end) <= Date.parse(v.expected_start)) throw new Error(t("visitors.endBeforeStart"));
        const d = await api("/api/v1/visitors", { method: "POST", body: v });
        close(d);
        if (d.mail_status === "sent") toast(t("visitors.sentToast", { ref: d.reference }));
        else toast(t("visitors.notSentToast", { ref: d.reference, error: d.mail_error || "—" }), "error", 15_000);
        refresh();
      },
    }).form);
  }

  function answer(d) {
    dialog(t("visitors.answerTitle", { ref: d.reference, name: d.name }), (close) => buildForm([
      { name: "decision", label: t("visitors.decision"), type: "select", value: "validated", options: [["validated", t("vstate.validated")], ["refused", t("vstate.refused")]] },
      { name: "prefecture_ref", label: t("visitors.prefectureRef"), maxLength: 128, hint: t("visitors.prefectureRefHint") },
      { name: "answered_at", label: t("visitors.answeredAt"), type: "datetime", required: true, value: new Date() },
      { name: "comment", label: t("visitors.comment"), type: "textarea", maxLength: 1000 },
    ], {
      id: "visitor-answer", submitLabel: t("visitors.recordAnswer"), onCancel: () => close(null),
      onSubmit: async (v) => {
        const done = await api(`${base(d)}/answer`, { method: "POST", body: v });
        close(done);
        toast(t("visitors.answered", { ref: done.reference, status: t(`vstate.${done.status}`) }));
        refresh();
      },
    }).form);
  }

  function cancel(d) {
    dialog(t("visitors.cancelTitle", { ref: d.reference, name: d.name }), (close) => buildForm([
      { name: "comment", label: t("visitors.cancelReason"), type: "textarea", required: true, maxLength: 1000 },
    ], {
      id: "visitor-cancel", submitLabel: t("visitors.cancel"), onCancel: () => close(null),
      onSubmit: async (v) => {
        const done = await api(`${base(d)}/cancel`, { method: "POST", body: v });
        close(done);
        toast(t("visitors.cancelled", { ref: done.reference }));
        refresh();
      },
    }).form);
  }

  async function resend(d) {
    try {
      const done = await api(`${base(d)}/resend`, { method: "POST", body: {} });
      if (done.mail_status === "sent") toast(t("visitors.sentToast", { ref: done.reference }));
      else toast(t("visitors.notSentToast", { ref: done.reference, error: done.mail_error || "—" }), "error", 15_000);
    } catch (err) { toast(err.message, "error"); }
    refresh();
  }

  filter.addEventListener("change", refresh);
  upcoming.addEventListener("change", refresh);
  clear(root, screenHeader(t("nav.visitors"),
    h("label", { class: "inline" }, t("visitors.show"), filter),
    h("label", { class: "inline" }, upcoming, t("visitors.upcoming")),
    h("a", { class: "button", id: "visitors-export", href: "/api/v1/visitors/export", text: t("visitors.export") }),
    admin ? h("button", { type: "button", class: "primary", id: "visitor-new", text: t("visitors.declare"), onclick: declare }) : null),
  h("p", { class: "muted", text: admin ? t("visitors.intro") : t("visitors.introReadOnly") }),
  error, section(t("visitors.register"), count, list));
  await refresh();
}
