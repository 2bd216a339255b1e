// Judicial requisitions: the whole workflow (request, extraction into the buffer, the signed
// requisition, the manager's approval, the export package with its verification, the handover
// and receipt), and the statistics.
import { api, enc, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt, isoZ, parisInputToDate, dateToParisInput, duration } from "./time.js";
import { session } from "./session.js";
import { listCameras } from "./cameras.js";
import { buildForm } from "./forms.js";
import { columnChart, barChart } from "./charts.js";
import { verifyPackage } from "./verifier.js";
import { screenHeader, section, table, errorLine, toast } from "./ui.js";

const STEPS = ["requested", "extracted", "requisition_received", "approved", "delivered", "closed"];
const FINAL = ["expired", "refused", "cancelled"];
const base = (id) => `/api/v1/requisitions/${enc(id)}`;

export async function mount(root, { params }) {
  if (params[0] === "stats") return mountStats(root);
  if (params[0]) return mountDetail(root, params[0]);
  return mountList(root);
}

function stateLabel(state) { return h("span", { class: ["status-pill", `req-${state}`], text: t(`reqstate.${state}`) }); }

async function mountList(root) {
  const stateSelect = h("select", { id: "req-state" }, h("option", { value: "", text: t("req.allStates") }),
    [...STEPS, ...FINAL].map((s) => h("option", { value: s, text: t(`reqstate.${s}`) })));
  const list = h("div", { id: "req-list" });
  const error = errorLine();
  async function refresh() {
    try {
      const rows = await api(`/api/v1/requisitions${qs({ state: stateSelect.value, limit: 200 })}`);
      clear(list, table([
        { label: t("req.number"), render: (r) => h("a", { href: `#/requisitions/${r.id}`, text: r.number }) },
        { label: t("req.state"), render: (r) => stateLabel(r.state) },
        { label: t("req.service"), key: "requesting_service" },
        { label: t("req.case"), key: "case_reference" },
        { label: t("req.cameras"), render: (r) => [...new Set(r.ranges.map((x) => x.camera_name || x.camera_id))].join(", ") },
        { label: t("req.created"), render: (r) => fmt(r.created) },
        { label: t("req.deadline"), render: (r) => r.legal_hold ? t("req.legalHold") : fmt(r.buffer_deadline) },
      ], rows));
      error.show("");
    } catch (err) { error.show(err.message); }
  }
  stateSelect.addEventListener("change", refresh);
  const canCreate = session.may("export") || session.may("playback");
  clear(root, screenHeader(t("nav.requisitions"), stateSelect,
    session.may("register") ? h("a", { class: "button", href: "#/requisitions/stats", id: "req-stats", text: t("req.statistics") }) : null,
    canCreate ? h("button", { type: "button", class: "primary", id: "req-new", text: t("req.new"), onclick: () => create(refresh) }) : null),
  error, list);
  refresh();
}

async function create(refresh) {
  const cameras = await listCameras();
  dialog(t("req.new"), (close) => {
    const rangesBox = h("div", { class: "ranges", id: "req-ranges" });
    const addRange = () => {
      const now = Date.now();
      const row = h("div", { class: "range-row toolbar" },
        h("select", { class: "range-camera", "aria-label": t("req.camera") }, cameras.map((c) => h("option", { value: c.id, text: c.name }))),
        h("input", { type: "datetime-local", step: 1, class: "range-start", required: true, value: dateToParisInput(now - 3600_000), "aria-label": t("playback.from") }),
        h("input", { type: "datetime-local", step: 1, class: "range-end", required: true, value: dateToParisInput(now - 3000_000), "aria-label": t("playback.to") }),
        h("button", { type: "button", class: "small", text: "✕", onclick: () => row.remove() }));
      rangesBox.append(row);
    };
    addRange();
    const built = buildForm([
      { name: "requesting_service", label: t("req.service"), required: true, maxLength: 200 },
      { name: "officer", label: t("req.officer"), required: true, maxLength: 200 },
      { name: "officer_contact", label: t("req.officerContact"), maxLength: 200 },
      { name: "case_reference", label: t("req.case"), required: true, maxLength: 200 },
      { name: "channel", label: t("req.channel"), type: "select", options: ["phone", "email", "mail", "in_person"].map((c) => [c, t(`channel.${c}`)]) },
      { name: "reason", label: t("req.reason"), type: "textarea", required: true, maxLength: 2000 },
    ], {
      id: "req-form", submitLabel: t("req.record"), onCancel: () => close(null),
      onSubmit: async (v) => {
        const ranges = [...rangesBox.querySelectorAll(".range-row")].map((row) => {
          const start = parisInputToDate(row.querySelector(".range-start").value);
          const end = parisInputToDate(row.querySelector(".range-end").value);
          if (!start || !end) throw new Error(t("playback.badTime"));
          if (end <= start) throw new Error(t("playback.endBeforeStart"));
          return { camera_id: row.querySelector(".range-camera").value, start: isoZ(start), end: isoZ(end) };
        });
        if (!ranges.length) throw new Error(t("req.noRange"));
        const created = await api("/api/v1/requisitions", { method: "POST", body: { ...v, ranges } });
        close(created);
        location.hash = `#/requisitions/${created.id}`;
      },
    });
    built.form.querySelector(".form-fields").after(h("fieldset", {}, h("legend", { text: t("req.ranges") }), rangesBox,
      h("button", { type: "button", class: "small", text: t("req.addRange"), onclick: addRange })));
    return built.form;
  });
}

function stepper(state) {
  const index = STEPS.indexOf(state);
  return h("ol", { class: "stepper", id: "req-stepper" }, STEPS.map((s, i) =>
    h("li", { class: [i < index && "done", i === index && "current"], text: t(`reqstate.${s}`) })),
  FINAL.includes(state) ? h("li", { class: "current final", text: t(`reqstate.${state}`) }) : null);
}

async function longAction(panel, label, action, progress = null) {
  // Extraction and packaging take a while: say so, with the time elapsed and, when the service
  // reports it (`progress` resolves to 0..1 or null), how far it has got.
  const started = Date.now();
  const bar = h("progress", { max: "100" });
  const percent = h("span", { class: "percent", id: "req-progress-percent" });
  const note = h("p", { class: "busy", role: "status", id: "req-progress" }, bar, ` ${label} `, percent, " ");
  const clock = h("span", { text: "0 s" });
  note.append(clock);
  panel.prepend(note);
  const timer = setInterval(() => { clock.textContent = duration((Date.now() - started) / 1000); }, 500);
  let asking = false;
  const poll = progress && setInterval(async () => {
    if (asking) return;
    asking = true;
    try {
      const fraction = await progress();
      if (typeof fraction === "number") {
        bar.value = Math.round(fraction * 100);
        percent.textContent = `${Math.round(fraction * 100)} %`;
      }
    } catch { /* the action's own answer says what went wrong */ } finally { asking = false; }
  }, 1000);
  try { return await action(); } finally { clearInterval(timer); clearInterval(poll); note.remove(); }
}

async function mountDetail(root, id) {
  const error = errorLine();
  const body = h("div", { id: "req-detail" });
  let current = null;
  let verified = null;

  async function refresh() {
    try { current = await api(base(id)); render(); error.show(""); } catch (err) { error.show(err.message); }
  }

  async function run(label, action, long = false, progress = null) {
    error.show("");
    try {
      const result = long ? await longAction(body, label, action, progress) : await action();
      if (result && result.id === id) { current = result; render(); } else await refresh();
      return true;
    } catch (err) { error.show(err.message); return false; }
  }

  const post = (path, payload) => api(`${base(id)}${path}`, { method: "POST", body: payload ?? {} });
  const progressOf = (work) => async () => (await api(`${base(id)}/progress`))[work];

  function actions() {
    const r = current;
    const out = [];
    const staff = !session.me.partner;
    if (r.state === "requested" && session.may("export") && staff) {
      out.push(h("button", { type: "button", class: "primary", id: "req-extract", text: t("req.extract"), onclick: () => run(t("req.extracting"), () => post("/extract"), true, progressOf("extraction_progress")) }));
    }
    if (r.state === "extracted" && session.may("export")) out.push(uploadForm());
    if (r.state === "requisition_received" && session.may("sign")) out.push(approveForm());
    if (r.state === "approved" && session.may("export") && staff) {
      const password = h("input", { type: "password", id: "req-package-password", maxLength: 256, autocomplete: "new-password", placeholder: t("req.zipPassword") });
      out.push(h("div", { class: "toolbar" }, password,
        h("button", { type: "button", class: "primary", id: "req-package", text: r.package ? t("req.rebuildPackage") : t("req.buildPackage"), onclick: () => {
          if (password.value && password.value.length < 12) { error.show(t("req.passwordShort")); return; }
          run(t("req.packaging"), () => post("/package", { password: password.value }), true, progressOf("package_progress"));
        } })));
      if (r.package?.available) out.push(packagePanel(), deliveryForm());
    }
    if (r.state === "delivered") {
      out.push(h("a", { class: "button", id: "req-receipt", href: `${base(id)}/receipt`, target: "_blank", rel: "noopener", text: t("req.receipt") }));
      if (session.may("export")) {
        out.push(h("button", { type: "button", id: "req-close", text: t("req.close"), onclick: () => run("", () => post("/close", { reason: "" })) }));
      }
    }
    if (["delivered", "closed"].includes(r.state) && !r.feedback) out.push(feedbackForm());
    if (["requested", "extracted", "requisition_received"].includes(r.state) && (session.may("export") || session.may("playback"))) {
      out.push(h("button", { type: "button", id: "req-cancel", text: t("req.cancel"), onclick: () => reasonDialog(t("req.cancel"), (reason) => post("/cancel", { reason })) }));
    }
    return out;
  }

  function reasonDialog(title, send) {
    dialog(title, (close) => buildForm([{ name: "reason", label: t("req.reason"), type: "textarea", required: true, maxLength: 2000 }], {
      id: "req-reason", onCancel: () => close(null),
      onSubmit: async (v) => { const res = await send(v.reason); close(res); current = res; render(); },
    }).form);
  }

  function uploadForm() {
    const file = h("input", { type: "file", id: "req-document", name: "document", accept: "application/pdf,image/jpeg,image/png", required: true });
    const built = buildForm([
      { name: "number", label: t("req.requisitionNumber"), required: true, maxLength: 200 },
      { name: "authority", label: t("req.authority"), required: true, maxLength: 200 },
      { name: "authority_kind", label: t("req.authorityKind"), type: "select", options: [["magistrate", t("req.magistrate")], ["opj", t("req.opj")]] },
      { name: "issued_on", label: t("req.issuedOn"), type: "date", required: true },
    ], {
      id: "req-upload", submitLabel: t("req.upload"),
      onSubmit: async (v) => {
        const doc = file.files[0];
        if (!doc) throw new Error(t("req.documentMissing"));
        if (doc.size > 20 * 1024 * 1024) throw new Error(t("req.documentTooLarge"));
        if (!/\.(pdf|jpe?g|png)$/i.test(doc.name)) throw new Error(t("req.documentType"));
        const data = new FormData();
        for (const [k, value] of Object.entries(v)) data.append(k, value);
        data.append("document", doc, doc.name);
        const res = await api(`${base(id)}/requisition`, { method: "POST", body: data });
        current = res; render();
      },
    });
    built.form.querySelector(".form-fields").append(h("label", { class: "field" }, h("span", { class: "field-label", text: `${t("req.signedDocument")} *` }), file));
    return section(t("req.receiveTitle"), built.form);
  }

  function approveForm() {
    const r = current;
    const built = buildForm([
      { name: "password", label: t("req.yourPassword"), type: "password", required: true, maxLength: 256, autocomplete: "current-password" },
      { name: "totp", label: t("login.totp"), required: true, pattern: "[0-9]{6}", maxLength: 6, autocomplete: "one-time-code" },
      { name: "comment", label: t("req.comment"), type: "textarea", maxLength: 2000 },
    ], {
      id: "req-approve", submitLabel: t("req.approve"),
      onSubmit: async (v) => { const res = await post("/approve", v); current = res; render(); toast(t("req.approved")); },
    });
    return section(t("req.approveTitle"),
      r.requisition ? h("p", {}, h("a", { href: `${base(id)}/documents/${enc(r.requisition.document_id)}`, target: "_blank", rel: "noopener", id: "req-document-link", text: t("req.viewDocument", { name: r.requisition.filename }) })) : null,
      built.form,
      h("button", { type: "button", id: "req-refuse", text: t("req.refuse"), onclick: () => reasonDialog(t("req.refuse"), (reason) => post("/refuse", { reason })) }));
  }

  function packagePanel() {
    const p = current.package;
    const result = h("div", { id: "req-verify-result", role: "status" });
    const showResult = (report) => {
      clear(result,
        h("p", { class: report.ok ? "ok" : "error", id: "req-verify-verdict", text: report.ok ? t("verify.ok", { files: report.filesChecked }) : t("verify.failed") }),
        h("p", { class: "muted", text: t("verify.fingerprint", { fp: report.fingerprint || "—" }) }),
        report.problems.length ? h("ul", { class: "error" }, report.problems.map((x) => h("li", { text: x }))) : null,
        report.notes.length ? h("ul", { class: "muted" }, report.notes.map((x) => h("li", { text: x }))) : null);
    };
    return section(t("req.packageTitle"),
      table([{ label: t("req.file"), key: "path" }, { label: "SHA-256", render: (f) => h("code", { text: f.sha256 }) }, { label: t("req.bytes"), key: "bytes" }], p.files),
      h("p", {}, t("req.packageHash"), " ", h("code", { id: "req-package-sha", text: p.sha256 })),
      h("p", { class: "muted", text: t("verify.published", { fp: p.public_key_fingerprint }) }),
      h("div", { class: "toolbar" },
        h("a", { class: "button", id: "req-download", href: `${base(id)}/package`, text: t("req.download") }),
        p.encrypted ? h("span", { class: "muted", text: t("verify.encrypted") }) : h("button", { type: "button", id: "req-verify", text: t("verify.run"), onclick: async () => {
          clear(result, h("p", { class: "busy", text: t("verify.running") }));
          try {
            const response = await api(`${base(id)}/package`, { raw: true });
            const bytes = new Uint8Array(await response.arrayBuffer());
            verified = await verifyPackage(bytes, { expectedSha256: p.sha256, publishedFingerprint: p.public_key_fingerprint });
            showResult(verified);
            const sha = document.getElementById("req-delivery-sha256");
            if (sha && verified.zipSha256) sha.value = verified.zipSha256;
          } catch (err) { clear(result, h("p", { class: "error", text: err.message })); }
        } })),
      result);
  }

  function deliveryForm() {
    const built = buildForm([
      { name: "medium", label: t("req.medium"), type: "select", options: [["usb", t("req.usb")], ["download", t("req.downloadMedium")]] },
      { name: "package_sha256", label: t("req.heldSha256"), required: true, pattern: "[0-9a-fA-F]{64}", maxLength: 64, hint: t("req.heldSha256Hint") },
      { name: "recipient_name", label: t("req.recipientName"), maxLength: 200 },
      { name: "recipient_service", label: t("req.recipientService"), maxLength: 200 },
      { name: "recipient_id", label: t("req.recipientId"), maxLength: 200 },
    ], {
      id: "req-delivery", submitLabel: t("req.deliver"),
      onSubmit: async (v) => {
        if (v.medium === "usb" && (!v.recipient_name || !v.recipient_service)) throw new Error(t("req.recipientNeeded"));
        const res = await post("/delivery", v); current = res; render(); toast(t("req.delivered"));
      },
    });
    built.inputs.package_sha256.id = "req-delivery-sha256";
    return section(t("req.deliveryTitle"), built.form);
  }

  function feedbackForm() {
    if (!session.me.partner && !session.may("export")) return null;
    const built = buildForm([
      { name: "useful", label: t("req.useful"), type: "select", options: [["true", t("common.yes")], ["false", t("common.no")]] },
      { name: "comment", label: t("req.comment"), type: "textarea", maxLength: 2000 },
    ], { id: "req-feedback", submitLabel: t("common.save"), onSubmit: async (v) => { const res = await post("/feedback", { useful: v.useful === "true", comment: v.comment }); current = res; render(); } });
    return section(t("req.feedbackTitle"), built.form);
  }

  function render() {
    const r = current;
    clear(body,
      stepper(r.state),
      h("div", { class: "columns" },
        section(t("req.request"),
          h("dl", { class: "facts" },
            ...[["req.number", r.number], ["req.state", t(`reqstate.${r.state}`)], ["req.service", r.requesting_service], ["req.officer", `${r.officer} ${r.officer_contact || ""}`],
              ["req.case", r.case_reference], ["req.reason", r.reason], ["req.channel", t(`channel.${r.channel}`)], ["req.requestedBy", r.requested_by],
              ["req.deadline", r.legal_hold ? t("req.legalHold") : fmt(r.buffer_deadline)], ["req.extractedBy", r.extracted_by ? `${r.extracted_by} · ${fmt(r.extracted)}` : "—"],
              ["req.requisition", r.requisition ? `${r.requisition.number} — ${r.requisition.authority} (${r.requisition.issued_on})` : "—"],
              ["req.approval", r.approval ? `${r.approval.manager_name || r.approval.manager} · ${fmt(r.approval.approved)} · ${t("req.registerEntry", { seq: r.approval.register_seq })}` : "—"],
              ["req.delivery", r.delivery ? `${r.delivery.recipient_name || r.delivery.recipient_partner || ""} (${r.delivery.medium}) · ${fmt(r.delivery.delivered)}` : "—"],
              ["req.purged", r.purged ? `${fmt(r.purged)} — ${r.purge_reason || ""}` : "—"],
            ].flatMap(([k, v]) => [h("dt", { text: t(k) }), h("dd", { text: v })]))),
        section(t("req.ranges"),
          table([{ label: t("req.camera"), render: (x) => x.camera_name || x.camera_id }, { label: t("playback.from"), render: (x) => fmt(x.start) }, { label: t("playback.to"), render: (x) => fmt(x.end) }], r.ranges),
          r.parts.length ? table([{ label: t("req.camera"), render: (p) => p.camera_name || p.camera_id }, { label: t("req.extract"), render: (p) => p.empty ? t("req.noFootage") : `${p.frames} img · ${(p.clip_bytes / 1e6).toFixed(1)} Mo` }, { label: "SHA-256", render: (p) => h("code", { text: (p.clip_sha256 || "").slice(0, 16) }) }], r.parts) : null)),
      h("div", { class: "actions req-actions" }, actions()),
      section(t("req.history"), table([
        { label: t("req.when"), render: (x) => fmt(x.at) }, { label: t("req.transition"), render: (x) => `${x.from ? t(`reqstate.${x.from}`) : "—"} → ${t(`reqstate.${x.to}`)}` },
        { label: t("req.by"), render: (x) => `${x.by} (${x.role || ""})` }, { label: t("req.reason"), key: "reason" }], r.transitions)));
  }

  clear(root, screenHeader(t("nav.requisitions"), h("a", { href: "#/requisitions", text: t("req.backToList") })), error, body);
  await refresh();
}

async function mountStats(root) {
  const error = errorLine();
  const box = h("div", { id: "req-stats-charts" });
  clear(root, screenHeader(t("req.statistics"), h("a", { href: "#/requisitions", text: t("req.backToList") })), error, box);
  try {
    const s = await api("/api/v1/requisitions/statistics");
    const months = [...new Set(s.per_month.map((c) => c.period))].sort();
    const services = [...new Set(s.per_month.map((c) => c.requesting_service))].sort();
    clear(box,
      section(t("stats.perMonth"), months.length ? columnChart(months, services.slice(0, 4).map((svc) => ({ label: svc, values: months.map((m) => s.per_month.filter((c) => c.period === m && c.requesting_service === svc).reduce((a, c) => a + c.count, 0)) })), { id: "chart-per-month" }) : h("p", { class: "muted", text: t("common.none") })),
      h("div", { class: "columns" },
        section(t("stats.leadTimes"), barChart(s.lead_times.map((l) => ({ label: l.step.split("->").map((x) => t(`reqstate.${x}`)).join(" → "), value: l.median_hours })), { format: (v) => `${v.toFixed(1)} h`, id: "chart-lead-times" })),
        section(t("stats.outcomes"), barChart([
          { label: t("stats.delivered"), value: s.delivered }, { label: t("stats.expired"), value: s.expired },
          { label: t("stats.useful"), value: s.useful_to_investigation.yes }, { label: t("stats.notUseful"), value: s.useful_to_investigation.no },
          { label: t("stats.citizenRequests"), value: s.citizen_requests }, { label: t("stats.citizenOverdue"), value: s.citizen_overdue },
        ], { id: "chart-outcomes" }))));
  } catch (err) { error.show(err.message); }
}
