// Cameras and their prefectoral authorisations (administrators): registry, lifecycle, CSV.
import { api, enc, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { listCameras } from "./cameras.js";
import { buildForm } from "./forms.js";
import { screenHeader, section, table, errorLine, toast } from "./ui.js";

const STATES = ["commissioning", "in_service", "maintenance", "decommissioned"];
const ID = "[A-Za-z0-9_-]{1,64}";

function cameraFields(c = {}, creating = false) {
  return [
    creating ? { name: "id", label: t("cameras.id"), required: true, pattern: ID, maxLength: 64 } : null,
    { name: "name", label: t("cameras.name"), required: true, maxLength: 128, value: c.name },
    { name: "main_url", label: t("cameras.mainUrl"), required: creating, maxLength: 2000, hint: t(creating ? "cameras.urlHint" : "cameras.urlKeep"), placeholder: c.main_source || "" },
    { name: "sub_url", label: t("cameras.subUrl"), maxLength: 2000, placeholder: c.sub_source || "" },
    { name: "transport", label: t("cameras.transport"), type: "select", options: [["tcp", "TCP"], ["udp", "UDP"]], value: c.transport || "tcp" },
    { name: "model", label: t("cameras.model"), maxLength: 128, value: c.model },
    { name: "generation", label: t("cameras.generation"), maxLength: 64, value: c.generation },
    { name: "ptz_driver", label: t("cameras.ptzDriver"), type: "select", options: [["", t("cameras.fixed")], ["onvif", "ONVIF"], ["simulated", t("cameras.simulated")]], value: c.ptz_driver || "" },
    { name: "ptz_url", label: t("cameras.ptzUrl"), maxLength: 2000 },
    { name: "lat", label: t("cameras.lat"), type: "number", step: "any", min: -90, max: 90, required: true, value: c.position?.lat ?? "" },
    { name: "lon", label: t("cameras.lon"), type: "number", step: "any", min: -180, max: 180, required: true, value: c.position?.lon ?? "" },
    { name: "view_direction_deg", label: t("cameras.direction"), type: "number", min: 0, max: 359.9, step: "any", value: c.position?.view_direction_deg ?? 0 },
    { name: "groups", label: t("cameras.groups"), type: "list", value: c.groups || ["default"], itemPattern: "[a-z0-9][a-z0-9_-]{0,63}", itemMessage: t("users.groupsInvalid") },
    { name: "width", label: t("cameras.width"), type: "number", min: 1, required: true, value: c.profile?.width ?? 1920 },
    { name: "height", label: t("cameras.height"), type: "number", min: 1, required: true, value: c.profile?.height ?? 1080 },
    { name: "fps", label: t("cameras.fps"), type: "number", min: 0.1, step: "any", required: true, value: c.profile?.fps ?? 25 },
    { name: "close_up", label: t("cameras.closeUp"), type: "checkbox", value: c.profile?.close_up },
    { name: "retention_days", label: t("cameras.retention"), type: "number", min: 1, max: 30, required: true, value: c.retention_days ?? 15 },
    { name: "authorisation_ref", label: t("cameras.authorisation"), maxLength: 128, value: c.authorisation_ref },
  ].filter(Boolean);
}

function cameraBody(v) {
  const body = {
    name: v.name, main_url: v.main_url, sub_url: v.sub_url, transport: v.transport, model: v.model, generation: v.generation,
    ptz_driver: v.ptz_driver, ptz_url: v.ptz_url, groups: v.groups,
    position: { lat: v.lat, lon: v.lon, view_direction_deg: v.view_direction_deg ?? 0 },
    profile: { width: v.width, height: v.height, fps: v.fps, close_up: v.close_up },
    retention_days: v.retention_days, authorisation_ref: v.authorisation_ref,
  };
  if (v.id) body.id = v.id;
  return body;
}

export async function mount(root) {
  const error = errorLine();
  const cameraList = h("div", { id: "cameras-table" });
  const authList = h("div", { id: "authorisations-table" });

  async function refresh() {
    try {
      const cameras = await listCameras(true);
      clear(cameraList, table([
        { label: t("cameras.id"), key: "id" },
        { label: t("cameras.name"), key: "name" },
        { label: t("cameras.state"), render: (c) => t(`state.${c.state}`) },
        { label: t("health.status"), render: (c) => h("span", {}, h("span", { class: `dot status-${c.status}` }), ` ${t(`status.${c.status}`)}`) },
        { label: t("cameras.groups"), render: (c) => c.groups.join(", ") },
        { label: "PTZ", render: (c) => c.ptz_driver || "—" },
        { label: "", render: (c) => h("span", { class: "row-actions" },
          h("button", { type: "button", class: "small", text: t("common.edit"), onclick: () => edit(c.id) }),
          h("select", { class: "small", "aria-label": t("cameras.state"), onchange: (e) => setState(c, e.target.value) },
            h("option", { value: "", text: t("cameras.changeState") }), STATES.filter((s) => s !== c.state).map((s) => h("option", { value: s, text: t(`state.${s}`) })))) },
      ], cameras));
      const auths = await api("/api/v1/authorisations");
      clear(authList, table([
        { label: t("auth.reference"), key: "reference" },
        { label: t("auth.decision"), render: (a) => fmt(a.decision, "date") },
        { label: t("auth.expiry"), render: (a) => fmt(a.expiry, "date") },
        { label: t("auth.status"), render: (a) => t(`authstatus.${a.status}`) },
        { label: t("auth.retention"), render: (a) => `${a.max_retention_days} j` },
        { label: t("auth.cameras"), render: (a) => a.camera_ids.join(", ") },
        { label: "", render: (a) => h("button", { type: "button", class: "small", text: t("common.edit"), onclick: () => editAuth(a) }) },
      ], auths, { rowClass: (a) => `auth-${a.status}` }));
      error.show("");
    } catch (err) { error.show(err.message); }
  }

  async function setState(camera, state) {
    if (!state) return;
    try { await api(`/api/v1/cameras/${enc(camera.id)}/state`, { method: "POST", body: { state } }); toast(t("common.saved")); } catch (err) { toast(err.message, "error"); }
    refresh();
  }

  async function edit(id) {
    let camera;
    try { camera = await api(`/api/v1/cameras/${enc(id)}`); } catch (err) { toast(err.message, "error"); return; }
    dialog(t("cameras.edit", { id }), (close) => buildForm(cameraFields(camera), {
      id: "camera-edit", onCancel: () => close(null),
      onSubmit: async (v) => { await api(`/api/v1/cameras/${enc(id)}`, { method: "PUT", body: cameraBody(v) }); close(true); toast(t("common.saved")); refresh(); },
    }).form);
  }

  function create() {
    dialog(t("cameras.create"), (close) => buildForm([...cameraFields({}, true),
      { name: "state", label: t("cameras.state"), type: "select", options: STATES.slice(0, 3).map((s) => [s, t(`state.${s}`)]), value: "commissioning" }], {
      id: "camera-create", onCancel: () => close(null),
      onSubmit: async (v) => { await api("/api/v1/cameras", { method: "POST", body: { ...cameraBody(v), state: v.state } }); close(true); toast(t("common.saved")); refresh(); },
    }).form);
  }

  function editAuth(a = {}) {
    dialog(a.reference ? t("auth.edit", { ref: a.reference }) : t("auth.create"), (close) => buildForm([
      a.reference ? null : { name: "reference", label: t("auth.reference"), required: true, maxLength: 128, pattern: "[A-Za-z0-9._/-]{1,128}" },
      { name: "decision_date", label: t("auth.decision"), type: "date", required: true, value: a.decision ? a.decision.slice(0, 10) : "" },
      { name: "expiry_date", label: t("auth.expiry"), type: "date", required: true, value: a.expiry ? a.expiry.slice(0, 10) : "", hint: t("auth.expiryHint") },
      { name: "purposes", label: t("auth.purposes"), type: "list", required: true, value: a.purposes || [] },
      { name: "max_retention_days", label: t("auth.retention"), type: "number", min: 1, max: 30, required: true, value: a.max_retention_days ?? 15 },
      { name: "recipients", label: t("auth.recipients"), type: "list", value: a.recipients || [] },
      { name: "perimeter", label: t("auth.perimeter"), type: "textarea", required: true, rows: 5, value: a.perimeter ? JSON.stringify(a.perimeter) : "",
        check: [(v) => { try { const g = JSON.parse(v); return g && ["Polygon", "MultiPolygon"].includes(g.type); } catch { return false; } }, t("auth.perimeterInvalid")] },
    ].filter(Boolean), {
      id: "authorisation-form", onCancel: () => close(null),
      onSubmit: async (v) => {
        const ref = a.reference || v.reference;
        const body = { decision_date: v.decision_date, expiry_date: v.expiry_date, purposes: v.purposes, max_retention_days: v.max_retention_days, recipients: v.recipients, perimeter: JSON.parse(v.perimeter) };
        await api(`/api/v1/authorisations/${enc(ref)}`, { method: "PUT", body });
        close(true); toast(t("common.saved")); refresh();
      },
    }).form);
  }

  const csvInput = h("input", { type: "file", accept: ".csv,text/csv", hidden: true, onchange: async () => {
    const file = csvInput.files[0];
    if (!file) return;
    const text = await file.text();
    try {
      const dry = await api(`/api/v1/cameras.csv${qs({ dry_run: true })}`, { method: "POST", body: text, headers: { "Content-Type": "text/csv" } });
      if (!confirm(t("cameras.importConfirm", { created: dry.created, updated: dry.updated }))) return;
      const done = await api("/api/v1/cameras.csv", { method: "POST", body: text, headers: { "Content-Type": "text/csv" } });
      toast(t("cameras.imported", { created: done.created, updated: done.updated }));
      refresh();
    } catch (err) { toast(err.message, "error", 15000); } finally { csvInput.value = ""; }
  } });

  clear(root, screenHeader(t("nav.cameras"),
    h("button", { type: "button", class: "primary", id: "camera-new", text: t("cameras.create"), onclick: create }),
    h("a", { class: "button", href: "/api/v1/cameras.csv", text: t("cameras.exportCsv") }),
    h("button", { type: "button", text: t("cameras.importCsv"), onclick: () => csvInput.click() }), csvInput),
  error, section(t("cameras.list"), cameraList),
  section(t("auth.title"), h("div", { class: "actions" }, h("button", { type: "button", id: "auth-new", text: t("auth.create"), onclick: () => editAuth() })), authList));
  refresh();
}
