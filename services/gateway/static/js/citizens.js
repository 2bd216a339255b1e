// Citizens' right of access: the clerk's intake (identity, document, place and time window), the
// one-month deadline, the operator's search and the redaction selection (a box drawn on a frame),
// the redaction job's progress, the kiosk session, and the outcome.
import { api, enc, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt, isoZ } from "./time.js";
import { session } from "./session.js";
import { listCameras } from "./cameras.js";
import { buildForm } from "./forms.js";
import { screenHeader, section, table, errorLine, toast, progress } from "./ui.js";

const base = (id) => `/api/v1/citizen-requests/${enc(id)}`;

export async function mount(root, { params }) {
  return params[0] ? mountDetail(root, params[0]) : mountList(root);
}

function deadline(c) {
  if (c.closed) return t("cit.closedOn", { date: fmt(c.closed, "date") });
  const text = t("cit.deadline", { date: fmt(c.deadline, "date"), days: c.days_left });
  return h("span", { class: c.overdue ? "error" : c.days_left <= 7 ? "warn-text" : "", text: c.overdue ? `${text} — ${t("cit.overdue")}` : text });
}

async function mountList(root) {
  const error = errorLine();
  const list = h("div", { id: "cit-list" });
  async function refresh() {
    try {
      const rows = await api("/api/v1/citizen-requests");
      clear(list, table([
        { label: t("cit.number"), render: (c) => h("a", { href: `#/citizens/${c.id}`, text: c.number }) },
        { label: t("cit.state"), render: (c) => t(`citstate.${c.state}`) },
        { label: t("cit.place"), key: "place" },
        { label: t("cit.window"), render: (c) => `${fmt(c.window_start, "minute")} → ${fmt(c.window_end, "time")}` },
        { label: t("cit.deadlineCol"), render: deadline },
      ], rows, { rowClass: (c) => c.overdue ? "alarm-open" : "" }));
      error.show("");
    } catch (err) { error.show(err.message); }
  }
  clear(root, screenHeader(t("nav.citizens"),
    session.may("citizen_requests") ? h("button", { type: "button", class: "primary", id: "cit-new", text: t("cit.new"), onclick: () => intake() }) : null),
  error, list);
  refresh();
}

async function intake() {
  let cameras = [];
  try { cameras = await listCameras(); } catch { /* clerks may see no camera: ids are typed */ }
  const file = h("input", { type: "file", id: "cit-document", accept: "application/pdf,image/jpeg,image/png", required: true });
  dialog(t("cit.new"), (close) => {
    const built = buildForm([
      { name: "full_name", label: t("cit.fullName"), required: true, maxLength: 200 },
      { name: "birth_date", label: t("cit.birthDate"), type: "date", required: true },
      { name: "id_document_kind", label: t("cit.idKind"), type: "select", options: ["carte_identite", "passeport", "titre_sejour", "permis_conduire"].map((k) => [k, t(`idkind.${k}`)]) },
      { name: "id_document_number", label: t("cit.idNumber"), required: true, maxLength: 100 },
      { name: "contact", label: t("cit.contact"), required: true, maxLength: 200 },
      { name: "place", label: t("cit.place"), required: true, maxLength: 300 },
      { name: "camera_ids", label: t("cit.cameras"), type: "list", required: true, itemPattern: "[A-Za-z0-9_-]{1,64}", itemMessage: t("cit.camerasInvalid"), hint: cameras.length ? cameras.map((c) => c.id).join(", ") : t("cit.camerasHint") },
      { name: "window_start", label: t("cit.windowStart"), type: "datetime", required: true },
      { name: "window_end", label: t("cit.windowEnd"), type: "datetime", required: true },
      { name: "description", label: t("cit.description"), type: "textarea", required: true, maxLength: 2000, hint: t("cit.descriptionHint") },
    ], {
      id: "cit-form", submitLabel: t("cit.register"), onCancel: () => close(null),
      onSubmit: async (v) => {
        const doc = file.files[0];
        if (!doc) throw new Error(t("req.documentMissing"));
        if (doc.size > 20 * 1024 * 1024) throw new Error(t("req.documentTooLarge"));
        if (!v.window_start || !v.window_end || Date.parse(v.window_end) <= Date.parse(v.window_start)) throw new Error(t("playback.endBeforeStart"));
        if (new Date(v.birth_date) >= new Date()) throw new Error(t("cit.birthDateInvalid"));
        const data = new FormData();
        for (const [k, value] of Object.entries(v)) data.append(k, Array.isArray(value) ? value.join(",") : value);
        data.append("identity_document", doc, doc.name);
        const created = await api("/api/v1/citizen-requests", { method: "POST", body: data });
        close(created);
        location.hash = `#/citizens/${created.id}`;
      },
    });
    built.form.querySelector(".form-fields").append(h("label", { class: "field" }, h("span", { class: "field-label", text: `${t("cit.idDocument")} *` }), file));
    return built.form;
  });
}

// Draw the requester's box on a paused frame of the recorded window; each box is [time, x, y, w, h].
function boxSelector(c, cameraId, onChange) {
  const video = h("video", { class: "pb-video", muted: true, playsInline: true, controls: true, id: "cit-video", disablePictureInPicture: true });
  video.setAttribute("controlslist", "nodownload");
  const canvas = h("canvas", { class: "draw", id: "cit-canvas" });
  const holder = h("div", { class: "editor" }, video, canvas);
  const boxes = [];
  let clipStart = null;
  let drag = null;
  const status = h("p", { class: "muted", id: "cit-clip-status" });
  const draw = () => {
    canvas.width = video.clientWidth; canvas.height = video.clientHeight;
    const g = canvas.getContext("2d");
    const now = clipStart + video.currentTime * 1000;
    for (const b of boxes) {
      g.strokeStyle = Math.abs(Date.parse(b.time) - now) < 150 ? "#3fb950" : "rgba(63, 185, 80, .35)";
      g.lineWidth = 2;
      g.strokeRect(b.x * canvas.width, b.y * canvas.height, b.width * canvas.width, b.height * canvas.height);
    }
    if (drag?.current) { g.strokeStyle = "#4da3ff"; const r = drag.current; g.strokeRect(r.x * canvas.width, r.y * canvas.height, r.width * canvas.width, r.height * canvas.height); }
  };
  const point = (e) => { const r = canvas.getBoundingClientRect(); return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))]; };
  canvas.addEventListener("pointerdown", (e) => { if (clipStart === null) return; video.pause(); canvas.setPointerCapture(e.pointerId); drag = { from: point(e) }; });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const [x2, y2] = point(e); const [x1, y1] = drag.from;
    drag.current = { x: Math.min(x1, x2), y: Math.min(y1, y2), width: Math.abs(x2 - x1), height: Math.abs(y2 - y1) };
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    const r = drag?.current;
    drag = null;
    if (!r || r.width < 0.01 || r.height < 0.01) { draw(); return; }
    boxes.push({ time: isoZ(clipStart + video.currentTime * 1000), ...r });
    onChange(boxes);
    draw();
  });
  video.addEventListener("seeked", draw);
  video.addEventListener("pause", draw);
  async function load() {
    status.textContent = t("playback.preparing");
    const url = `/api/v1/cameras/${enc(cameraId)}/clip${qs({ start: c.window_start, end: c.window_end, justification: t("cit.justification", { number: c.number }) })}`;
    try {
      const head = await api(url, { raw: true, headers: { Range: "bytes=0-0" } });
      clipStart = Date.parse(head.headers.get("X-Clip-Start")) || Date.parse(c.window_start);
      video.src = url;
      await new Promise((resolve) => video.addEventListener("loadedmetadata", resolve, { once: true }));
      status.textContent = t("cit.drawHelp");
      draw();
    } catch (err) { status.textContent = err.message; status.className = "error"; }
  }
  return { el: h("div", {}, status, holder), load, boxes, clear: () => { boxes.length = 0; onChange(boxes); draw(); } };
}

async function mountDetail(root, id) {
  const error = errorLine();
  const body = h("div", { id: "cit-detail" });
  let current = null;
  let poll = null;
  const post = (path, payload) => api(`${base(id)}${path}`, { method: "POST", body: payload ?? {} });

  async function refresh() {
    try { current = await api(base(id)); render(); error.show(""); } catch (err) { error.show(err.message); }
  }

  function operatorPanel() {
    const c = current;
    if (!session.may("playback") || c.closed) return null;
    const cameraSelect = h("select", { id: "cit-camera" }, c.camera_ids.map((cam) => h("option", { value: cam, text: cam })));
    const boxesText = h("span", { class: "muted", id: "cit-boxes", text: t("cit.boxes", { n: 0 }) });
    let selector = boxSelector(c, cameraSelect.value, (boxes) => { boxesText.textContent = t("cit.boxes", { n: boxes.length }); });
    const holder = h("div", {}, selector.el);
    cameraSelect.addEventListener("change", () => { selector = boxSelector(c, cameraSelect.value, (boxes) => { boxesText.textContent = t("cit.boxes", { n: boxes.length }); }); clear(holder, selector.el); });
    const note = h("input", { id: "cit-note", maxLength: 2000, placeholder: t("cit.searchNote") });
    const mode = h("select", { id: "cit-mode" }, h("option", { value: "scene", text: t("cit.modeScene") }), h("option", { value: "persons", text: t("cit.modePersons") }));
    return section(t("cit.searchTitle"),
      h("p", { class: "muted", text: c.description }),
      h("div", { class: "toolbar" }, cameraSelect, h("button", { type: "button", id: "cit-load", text: t("cit.loadFootage"), onclick: () => selector.load() })),
      holder,
      h("div", { class: "toolbar" }, note,
        h("button", { type: "button", id: "cit-found", text: t("cit.found"), onclick: async () => { try { current = await post("/search", { found: true, note: note.value.trim(), cameras: [] }); render(); } catch (err) { error.show(err.message); } } }),
        h("button", { type: "button", id: "cit-not-found", text: t("cit.notFound"), onclick: async () => { try { current = await post("/search", { found: false, note: note.value.trim(), cameras: [] }); render(); } catch (err) { error.show(err.message); } } })),
      h("div", { class: "toolbar" }, boxesText, mode,
        h("button", { type: "button", class: "small", text: t("masks.clear"), onclick: () => selector.clear() }),
        h("button", { type: "button", class: "primary", id: "cit-redact", text: t("cit.redact"), onclick: async () => {
          if (!selector.boxes.length) { error.show(t("cit.noBox")); return; }
          try {
            current = await post("/redactions", { camera_id: cameraSelect.value, start: c.window_start, end: c.window_end, selection: selector.boxes, mode: mode.value, effect: "pixelate" });
            render(); toast(t("cit.redactionStarted"));
          } catch (err) { error.show(err.message); }
        } })));
  }

  function clerkPanel() {
    const c = current;
    if (!session.may("citizen_requests") || c.closed) return null;
    const code = h("p", { class: "pairing", id: "cit-pairing" });
    const built = buildForm([
      { name: "outcome", label: t("cit.outcome"), type: "select", options: ["viewed", "refused", "not_found"].map((o) => [o, t(`outcome.${o}`)]) },
      { name: "reason", label: t("cit.outcomeReason"), type: "textarea", maxLength: 2000, hint: t("cit.outcomeReasonHint") },
    ], {
      id: "cit-outcome", submitLabel: t("cit.recordOutcome"),
      onSubmit: async (v) => {
        if (v.outcome === "refused" && v.reason.length < 3) throw new Error(t("cit.reasonNeeded"));
        current = await post("/outcome", v); render();
      },
    });
    return section(t("cit.viewingTitle"),
      h("div", { class: "toolbar" }, h("button", { type: "button", id: "cit-kiosk", text: t("cit.openKiosk"), onclick: async () => {
        try {
          const s = await post("/kiosk-sessions");
          clear(code, t("cit.pairingCode"), " ", h("strong", { class: "secret", id: "cit-code", text: s.pairing_code }), ` — ${t("cit.pairingUntil", { time: fmt(s.pairing_expires, "time"), clips: s.clips })}`);
        } catch (err) { error.show(err.message); }
      } })),
      code, built.form);
  }

  function render() {
    const c = current;
    const jobs = c.redactions || [];
    clear(body,
      h("div", { class: "columns" },
        section(t("cit.request"), h("dl", { class: "facts" }, ...[
          ["cit.number", c.number], ["cit.state", t(`citstate.${c.state}`)], ["cit.place", c.place], ["cit.cameras", c.camera_ids.join(", ")],
          ["cit.window", `${fmt(c.window_start)} → ${fmt(c.window_end)}`], ["cit.deadlineCol", deadline(c)],
          ["cit.fullName", c.full_name], ["cit.birthDate", c.birth_date], ["cit.idKind", c.id_document_kind ? t(`idkind.${c.id_document_kind}`) : null],
          ["cit.contact", c.contact], ["cit.searchNote", c.search_note ? `${c.search_note} (${c.searched_by || ""})` : null],
          ["cit.outcome", c.outcome ? `${t(`outcome.${c.outcome}`)}${c.outcome_reason ? ` — ${c.outcome_reason}` : ""}` : null],
        ].filter(([, v]) => v !== undefined && v !== null && v !== "").flatMap(([k, v]) => [h("dt", { text: t(k) }), h("dd", {}, v)])),
        c.identity_document_kept && session.may("citizen_requests") ? h("a", { href: `${base(id)}/identity-document`, target: "_blank", rel: "noopener", text: t("cit.idDocumentView") }) : null),
        section(t("cit.redactions"), table([
          { label: t("req.camera"), key: "camera_id" }, { label: t("cit.status"), render: (j) => t(`jobstatus.${j.status}`) },
          { label: t("cit.progress"), render: (j) => progress(j.progress) }, { label: "", render: (j) => j.error || "" },
        ], jobs, { rowClass: () => "job" }))),
      operatorPanel(), clerkPanel(),
      section(t("req.history"), table([{ label: t("req.when"), render: (x) => fmt(x.at) }, { label: t("req.transition"), render: (x) => `${x.from ? t(`citstate.${x.from}`) : "—"} → ${t(`citstate.${x.to}`)}` }, { label: t("req.by"), key: "by" }, { label: t("req.reason"), key: "reason" }], c.transitions)));
    clearInterval(poll);
    if (jobs.some((j) => ["queued", "running"].includes(j.status))) poll = setInterval(async () => {
      try { const fresh = await api(base(id)); if (JSON.stringify(fresh.redactions) !== JSON.stringify(current.redactions)) { current = fresh; render(); } } catch { /* next time */ }
    }, 2000);
  }

  clear(root, screenHeader(t("nav.citizens"), h("a", { href: "#/citizens", text: t("req.backToList") })), error, body);
  await refresh();
  return () => clearInterval(poll);
}
