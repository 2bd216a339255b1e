// The mask editor: draw polygons on a masked snapshot of the camera (or of a PTZ preset), preview
// the masked result of the draft, submit it for a second mask administrator's approval. PTZ cameras
// are calibrated here first: landmarks clicked on snapshots taken at two positions or more and two
// zooms or more; the fit (the camera's optics) is computed by the platform and shown with each
// point's residual before it is saved. Masks drawn afterwards are drawn under that calibration.
import { api, enc, qs } from "./api.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { session } from "./session.js";
import { listCameras } from "./cameras.js";
import { screenHeader, section, table, errorLine, toast, validate } from "./ui.js";

const CLOSE_PX = 10;

export async function mount(root, { params }) {
  const cameras = await listCameras(true);
  const cameraSelect = h("select", { id: "mask-camera", "aria-label": t("masks.camera") },
    cameras.map((c) => h("option", { value: c.id, text: `${c.name} (${c.id})`, selected: c.id === params[0] })));
  const presetInput = h("input", { id: "mask-preset", list: "mask-presets", maxLength: 100, placeholder: t("masks.presetHint") });
  const presetList = h("datalist", { id: "mask-presets" });
  const image = h("img", { id: "mask-image", alt: t("masks.snapshot") });
  const canvas = h("canvas", { class: "draw", id: "mask-canvas" });
  const editor = h("div", { class: "editor", hidden: true }, image, canvas);
  const previewImage = h("img", { id: "mask-preview", alt: t("masks.preview"), hidden: true });
  const shotInfo = h("p", { class: "muted", id: "mask-shot-info" });
  const polygonList = h("ol", { id: "mask-polygons" });
  const comment = h("textarea", { id: "mask-comment", maxLength: 2000, rows: 2 });
  const versions = h("div", { id: "mask-versions" });
  const error = errorLine();
  let polygons = [];   // [{points: [[x, y]...], label}] in normalised image coordinates
  let current = [];    // the polygon being drawn
  let drawnAt = null;  // PTZ position of the snapshot
  let objectUrls = [];
  let approvedVersion = 0;
  // The calibration step: reference points {landmark, pan, tilt, zoom, x, y} and the last fit shown.
  const calibration = { on: false, points: [], fit: null };

  const cameraId = () => cameraSelect.value;
  const isPtz = () => Boolean(cameras.find((c) => c.id === cameraId())?.ptz_driver);

  function blobUrl(blob) { const url = URL.createObjectURL(blob); objectUrls.push(url); return url; }

  async function snapshot() {
    error.show("");
    try {
      // A PTZ camera's approved set is shown through its own calibration, or through the defaults when
      // it has none (its frames are masked whole then): the administrator must see to calibrate.
      const version = isPtz() && approvedVersion ? approvedVersion : "current";
      const response = await api(`/api/v1/cameras/${enc(cameraId())}/masks-preview${qs({ version, preset: isPtz() ? presetInput.value.trim() : "", max_width: 1280 })}`, { raw: true });
      const ptz = response.headers.get("X-Ptz-Position");
      drawnAt = ptz ? (([pan, tilt, zoom]) => ({ pan, tilt, zoom }))(ptz.split(",").map(Number)) : null;
      image.src = blobUrl(await response.blob());
      await image.decode();
      editor.hidden = false;
      shotInfo.textContent = t("masks.shotInfo", { time: fmt(response.headers.get("X-Capture-Time")), version: response.headers.get("X-Mask-Version") || "—" })
        + (response.headers.get("X-Fully-Masked") === "true" ? ` — ${t("masks.fullyMasked", { reason: response.headers.get("X-Fully-Masked-Reason") || "" })}` : "");
      draw();
    } catch (err) { error.show(err.message); }
  }

  function draw() {
    const w = image.clientWidth, hgt = image.clientHeight;
    canvas.width = w; canvas.height = hgt;
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, w, hgt);
    const path = (points, closed) => { g.beginPath(); points.forEach(([x, y], i) => (i ? g.lineTo(x * w, y * hgt) : g.moveTo(x * w, y * hgt))); if (closed) g.closePath(); };
    for (const poly of polygons) { path(poly.points, true); g.fillStyle = "rgba(255, 200, 0, .35)"; g.fill(); g.strokeStyle = "#ffc800"; g.lineWidth = 2; g.stroke(); }
    if (current.length) {
      path(current, false); g.strokeStyle = "#4da3ff"; g.lineWidth = 2; g.stroke();
      for (const [x, y] of current) { g.fillStyle = "#4da3ff"; g.fillRect(x * w - 3, y * hgt - 3, 6, 6); }
    }
    // Reference points clicked on this very view: a cross and the landmark's name.
    for (const p of calibration.points.filter((p) => drawnAt && samePosition(p, drawnAt))) {
      g.strokeStyle = "#ff4df0"; g.lineWidth = 2; g.beginPath();
      g.moveTo(p.x * w - 7, p.y * hgt); g.lineTo(p.x * w + 7, p.y * hgt); g.moveTo(p.x * w, p.y * hgt - 7); g.lineTo(p.x * w, p.y * hgt + 7); g.stroke();
      g.fillStyle = "#ff4df0"; g.font = "12px sans-serif"; g.fillText(p.landmark, p.x * w + 9, p.y * hgt - 9);
    }
    clear(polygonList, polygons.map((poly, i) => h("li", {},
      h("input", { value: poly.label, maxLength: 200, placeholder: t("masks.label"), "aria-label": t("masks.label"), oninput: (e) => { poly.label = e.target.value; } }),
      ` ${poly.points.length} ${t("masks.points")} `,
      h("button", { type: "button", class: "small", text: t("common.delete"), onclick: () => { polygons.splice(i, 1); draw(); } }))));
  }

  function finishPolygon() {
    if (current.length < 3) { toast(t("masks.tooFewPoints"), "error"); return; }
    polygons.push({ points: current, label: "" });
    current = [];
    draw();
  }

  canvas.addEventListener("click", (event) => {
    const rect = canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) / rect.width;
    const y = (event.clientY - rect.top) / rect.height;
    if (calibration.on) { addReferencePoint(Math.min(1, Math.max(0, x)), Math.min(1, Math.max(0, y))); return; }
    if (current.length >= 3) {
      const [fx, fy] = current[0];
      if (Math.hypot((fx - x) * rect.width, (fy - y) * rect.height) < CLOSE_PX) { finishPolygon(); return; }
    }
    current.push([Math.min(1, Math.max(0, x)), Math.min(1, Math.max(0, y))]);
    draw();
  });
  canvas.addEventListener("dblclick", (event) => { event.preventDefault(); current.pop(); finishPolygon(); });
  const onKey = (event) => {
    if (editor.hidden) return;
    if (event.key === "Escape") { current = []; draw(); }
    if (event.key === "Enter" && current.length) { event.preventDefault(); finishPolygon(); }
    if (event.key === "Backspace" && current.length && document.activeElement === document.body) { current.pop(); draw(); }
  };
  document.addEventListener("keydown", onKey);
  const onResize = () => draw();
  window.addEventListener("resize", onResize);

  // -- PTZ calibration -----------------------------------------------------------------------

  function samePosition(a, b) { return Math.abs(a.pan - b.pan) < 1e-4 && Math.abs(a.tilt - b.tilt) < 1e-4 && Math.abs(a.zoom - b.zoom) < 1e-4; }

  function addReferencePoint(x, y) {
    const landmark = landmarkInput.value.trim();
    if (!drawnAt) { error.show(t("masks.noPosition")); return; }
    if (!landmark) { error.show(t("calib.nameLandmark")); landmarkInput.focus(); return; }
    error.show("");
    calibration.points = calibration.points.filter((p) => !(p.landmark === landmark && samePosition(p, drawnAt)));
    calibration.points.push({ landmark, pan: drawnAt.pan, tilt: drawnAt.tilt, zoom: drawnAt.zoom, x, y });
    calibration.fit = null;
    renderCalibration(); draw();
  }

  function renderCalibration() {
    const fitted = calibration.fit;
    clear(calibPoints, calibration.points.length ? table([
      { label: t("calib.landmark"), key: "landmark" },
      { label: t("calib.position"), render: (p) => `P${p.pan.toFixed(3)} T${p.tilt.toFixed(3)} Z${p.zoom.toFixed(2)}` },
      { label: t("calib.point"), render: (p) => `${(p.x * 100).toFixed(1)} %, ${(p.y * 100).toFixed(1)} %` },
      { label: t("calib.residual"), render: (p) => fitted ? `${fitted.points[calibration.points.indexOf(p)].residual_px.toFixed(1)} px` : "" },
      { label: "", render: (p) => h("button", { type: "button", class: "small", text: t("common.delete"), onclick: () => { calibration.points.splice(calibration.points.indexOf(p), 1); calibration.fit = null; renderCalibration(); draw(); } }) },
    ], calibration.points) : h("p", { class: "muted", text: t("calib.noPoints") }));
    calibResult.textContent = fitted ? `${t("calib.fit", describeOptics(fitted))}${fitted.problem ? ` — ${fitted.problem}` : ""}` : "";
    calibResult.className = fitted && fitted.problem ? "warn-text" : "";
    saveCalibration.disabled = !fitted || Boolean(fitted.problem);
  }

  function describeOptics(c) {
    const o = c.optics;
    return { rms: c.rms_px.toFixed(2), max: c.max_px.toFixed(2), wide: o.hfov_wide_deg.toFixed(1), tele: o.hfov_tele_deg.toFixed(2),
      exponent: o.zoom_exponent.toFixed(2), tilt: o.tilt_offset_deg.toFixed(1), pan: o.pan_direction > 0 ? "+" : "−", tiltDir: o.tilt_direction > 0 ? "+" : "−" };
  }

  async function fitCalibration(save) {
    try {
      const answer = await api(`/api/v1/cameras/${enc(cameraId())}/ptz-calibration`, { method: "POST", body: { points: calibration.points, save } });
      calibration.fit = answer;
      renderCalibration();
      if (save) { toast(t("calib.saved", { version: answer.version })); refreshCalibration(); }
    } catch (err) { error.show(err.message); }
  }

  async function refreshCalibration() {
    calibSection.hidden = !isPtz();
    if (!isPtz()) return;
    try {
      const c = await api(`/api/v1/cameras/${enc(cameraId())}/ptz-calibration`);
      calibStatus.textContent = c.calibrated ? t("calib.current", { version: c.version, who: c.author, when: fmt(c.created), ...describeOptics(c) }) : t("calib.none");
      calibStatus.className = c.calibrated ? "ok" : "warn-text";
    } catch (err) { calibStatus.textContent = err.message; }
  }

  async function startFromApproved() {
    try {
      const set = await api(`/api/v1/cameras/${enc(cameraId())}/masks/current`);
      if (set.space !== "image") { toast(t("masks.ptzSpace"), "info"); return; }
      polygons = set.polygons.map((p) => ({ points: p.points.map(([x, y]) => [x, y]), label: p.label }));
      draw();
    } catch (err) { error.show(err.message); }
  }

  async function preview(version) {
    try {
      const response = await api(`/api/v1/cameras/${enc(cameraId())}/masks-preview${qs({ version, preset: isPtz() ? presetInput.value.trim() : "", max_width: 1280 })}`, { raw: true });
      previewImage.src = blobUrl(await response.blob());
      previewImage.hidden = false;
      previewImage.dataset.version = String(version);
    } catch (err) { error.show(err.message); }
  }

  async function submit() {
    const form = submitButton.form;
    if (current.length >= 3) finishPolygon();
    if (!validate(form, [[comment, (v) => v.length <= 2000, t("masks.commentTooLong")]])) return;
    if (!polygons.length) { error.show(t("masks.noPolygon")); return; }
    if (isPtz() && !drawnAt) { error.show(t("masks.noPosition")); return; }
    const body = { polygons: polygons.map((p) => ({ points: p.points, label: p.label.trim() })), space: isPtz() ? "" : "image", comment: comment.value.trim() };
    if (isPtz()) body.drawn_at = drawnAt;
    try {
      const draft = await api(`/api/v1/cameras/${enc(cameraId())}/masks`, { method: "POST", body });
      toast(t("masks.submitted", { version: draft.version }));
      await refreshVersions();
      await preview(draft.version);
    } catch (err) { error.show(err.message); }
  }

  async function act(version, what) {
    try {
      if (what === "approve") await api(`/api/v1/cameras/${enc(cameraId())}/masks/${version}/approve`, { method: "POST", body: {} });
      if (what === "discard") await api(`/api/v1/cameras/${enc(cameraId())}/masks/${version}`, { method: "DELETE" });
      toast(t("common.done"));
      refreshVersions();
    } catch (err) { toast(err.message, "error"); }
  }

  async function refreshVersions() {
    try {
      const sets = await api(`/api/v1/cameras/${enc(cameraId())}/masks`);
      clear(versions, table([
        { label: t("masks.version"), render: (s) => `v${s.version}` },
        { label: t("masks.status"), render: (s) => h("span", { class: "status-pill", text: t(`maskstatus.${s.status}`) }) },
        { label: t("masks.polygons"), render: (s) => String(s.polygons.length) },
        { label: t("masks.author"), render: (s) => `${s.author} · ${fmt(s.created)}` },
        { label: t("masks.approver"), render: (s) => s.approver ? `${s.approver} · ${fmt(s.approved)}` : "" },
        { label: t("masks.comment"), key: "comment" },
        { label: "", render: (s) => h("span", { class: "row-actions" },
          h("button", { type: "button", class: "small", text: t("masks.preview"), onclick: () => preview(s.version) }),
          s.status === "draft" && s.author !== session.me.username ? h("button", { type: "button", class: "small primary", dataset: { approve: String(s.version) }, text: t("masks.approve"), onclick: () => act(s.version, "approve") }) : null,
          s.status === "draft" && s.author === session.me.username ? h("span", { class: "muted", text: t("masks.awaitingSecond") }) : null,
          s.status === "draft" ? h("button", { type: "button", class: "small", text: t("masks.discard"), onclick: () => act(s.version, "discard") }) : null) },
      ], [...sets].sort((a, b) => b.version - a.version)));
    } catch (err) { error.show(err.message); }
  }

  async function refreshGovernance() {
    try {
      const status = await api(`/api/v1/cameras/${enc(cameraId())}/commissioning`);
      approvedVersion = status.approved_version || 0;
      governanceStatus.textContent = status.commissionable
        ? t("masks.commissionable", { how: status.approved_version ? `v${status.approved_version}` : t("masks.byStatement") })
        : t("masks.notCommissionable", { reason: status.reason });
      governanceStatus.className = status.commissionable ? "ok" : "warn-text";
    } catch (err) { governanceStatus.textContent = err.message; }
    try {
      const reports = await api(`/api/v1/cameras/${enc(cameraId())}/mask-errors`);
      clear(reportList, table([
        { label: t("masks.reported"), render: (r) => `${fmt(r.reported)} · ${r.reporter}` },
        { label: t("masks.reportText"), key: "description" }, { label: t("masks.seen"), key: "snapshot_ref" },
        { label: t("masks.version"), key: "mask_version" },
        { label: t("masks.status"), render: (r) => r.status === "open" ? h("span", { class: "row-actions" },
          h("input", { placeholder: t("masks.resolution"), maxLength: 4000, class: "resolution" }),
          h("button", { type: "button", class: "small", text: t("masks.closeReport"), onclick: async (e) => {
            const resolution = e.target.parentElement.querySelector(".resolution").value.trim();
            if (resolution.length < 3) { toast(t("masks.resolutionShort"), "error"); return; }
            try { await api(`/api/v1/cameras/${enc(cameraId())}/mask-errors/${enc(r.id)}/close`, { method: "POST", body: { resolution } }); refreshGovernance(); } catch (err) { toast(err.message, "error"); }
          } })) : `${t("masks.closedBy", { who: r.closed_by })} — ${r.resolution}` },
      ], reports));
    } catch (err) { clear(reportList, h("p", { class: "error", text: err.message })); }
  }

  async function signStatement() {
    const text = statementText.value.trim();
    if (text.length < 10) { error.show(t("masks.statementShort")); return; }
    try {
      await api(`/api/v1/cameras/${enc(cameraId())}/no-private-area-statement`, { method: "POST", body: { text } });
      toast(t("masks.statementSigned"));
      refreshGovernance();
    } catch (err) { error.show(err.message); }
  }

  async function loadPresets() {
    clear(presetList);
    presetInput.hidden = !isPtz();
    if (!isPtz() || !session.may("ptz")) return;
    try {
      const state = await api(`/api/v1/cameras/${enc(cameraId())}/ptz`);
      clear(presetList, state.presets.map((p) => h("option", { value: p.name })));
    } catch { /* presets are a convenience: the name can be typed */ }
  }

  cameraSelect.addEventListener("change", () => {
    polygons = []; current = []; drawnAt = null; editor.hidden = true; previewImage.hidden = true;
    calibration.points = []; calibration.fit = null; calibration.on = false; calibToggle.textContent = t("calib.start");
    history.replaceState(null, "", `#/masks/${encodeURIComponent(cameraId())}`);
    loadPresets(); refreshVersions(); refreshGovernance(); refreshCalibration(); renderCalibration(); draw();
  });
  const governanceStatus = h("p", { id: "mask-commissioning" });
  const reportList = h("div", { id: "mask-reports" });
  const statementText = h("textarea", { id: "mask-statement", rows: 2, maxLength: 2000, placeholder: t("masks.statementHint") });

  const landmarkInput = h("input", { id: "calib-landmark", maxLength: 64, placeholder: t("calib.landmarkHint"), "aria-label": t("calib.landmark") });
  const calibToggle = h("button", { type: "button", id: "calib-toggle", text: t("calib.start"), onclick: () => {
    calibration.on = !calibration.on;
    calibToggle.textContent = t(calibration.on ? "calib.stop" : "calib.start");
    calibToggle.classList.toggle("primary", calibration.on);
  } });
  const calibStatus = h("p", { id: "calib-status" });
  const calibPoints = h("div", { id: "calib-points" });
  const calibResult = h("p", { id: "calib-result" });
  const saveCalibration = h("button", { type: "button", class: "primary", id: "calib-save", text: t("calib.save"), disabled: true, onclick: () => fitCalibration(true) });
  const calibSection = section(t("calib.title"), h("p", { class: "muted", text: t("calib.howTo") }), calibStatus,
    h("div", { class: "toolbar" }, landmarkInput, calibToggle,
      h("button", { type: "button", id: "calib-fit", text: t("calib.fitButton"), onclick: () => fitCalibration(false) }), saveCalibration),
    calibPoints, calibResult);
  calibSection.id = "mask-calibration";
  const submitButton = h("button", { type: "button", class: "primary", id: "mask-submit", text: t("masks.submit"), onclick: submit });
  const form = h("form", { class: "form", novalidate: true, onsubmit: (e) => e.preventDefault() },
    h("label", { class: "field" }, h("span", { class: "field-label", text: t("masks.comment") }), comment), submitButton);
  clear(root, screenHeader(t("nav.masks"), cameraSelect, presetInput, presetList,
    h("button", { type: "button", id: "mask-snapshot", text: t("masks.takeSnapshot"), onclick: snapshot }),
    h("button", { type: "button", id: "mask-from-approved", text: t("masks.fromApproved"), onclick: startFromApproved })),
  error,
  h("div", { class: "columns" },
    section(t("masks.draw"), h("p", { class: "muted", text: t("masks.howTo") }), shotInfo, editor, polygonList,
      h("div", { class: "actions" }, h("button", { type: "button", text: t("masks.closePolygon"), onclick: finishPolygon }),
        h("button", { type: "button", text: t("masks.clear"), onclick: () => { polygons = []; current = []; draw(); } })), form),
    section(t("masks.previewTitle"), h("p", { class: "muted", text: t("masks.previewHelp") }), previewImage)),
  calibSection,
  section(t("masks.versions"), versions),
  h("div", { class: "columns" },
    section(t("masks.commissioning"), governanceStatus,
      session.me.role === "supervisor" ? h("div", {}, statementText, h("button", { type: "button", id: "mask-sign-statement", text: t("masks.signStatement"), onclick: signStatement })) : null),
    section(t("masks.reports"), reportList)));
  loadPresets();
  refreshVersions();
  refreshGovernance();
  refreshCalibration();
  renderCalibration();
  return () => {
    document.removeEventListener("keydown", onKey);
    window.removeEventListener("resize", onResize);
    for (const url of objectUrls) URL.revokeObjectURL(url);
  };
}
