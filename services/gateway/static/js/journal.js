// The shift journal (main courante): what operators saw and did, written as it happens and never
// changed (a correction is a new entry that amends the earlier one); the entries of the shift or of
// a period, by camera and category; the handover summary for the next shift; the counts per
// category for the city's reports. Those who watch (operators, supervisors, managers) read and
// write; auditors get the counts only, as the API allows.
import { api, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt, isoZ, parisInputToDate, parisParts } from "./time.js";
import { session } from "./session.js";
import { listCameras } from "./cameras.js";
import { buildForm } from "./forms.js";
import { barChart } from "./charts.js";
import { roomPanel } from "./room.js";
import { screenHeader, section, table, errorLine, toast } from "./ui.js";

const CATEGORIES = ["disturbance", "traffic", "event_security", "police_assistance", "other"];
const ACTIONS = ["police_called", "municipal_police_called", "fire_brigade_called", "ambulance_called", "bollard_opened",
  "bollard_closed", "camera_followed", "requisition_expected", "none", "other"];
const LIMIT = 1000;

// Reading and writing entries need "live" (city staff: the screen is not offered to others).
const watches = () => session.may("live");
const category = (c) => (CATEGORIES.includes(c) ? t(`jcat.${c}`) : c);

export async function mount(root, { params }) {
  const view = watches() ? (params[0] || "entries") : "stats";
  if (view === "handover") return mountHandover(root);
  if (view === "stats") return mountStats(root);
  return mountEntries(root);
}

function tabs(current) {
  const views = watches() ? ["entries", "handover", "stats"] : ["stats"];
  return h("nav", { class: "tabs", "aria-label": t("journal.views") }, views.map((v) => h("a", {
    href: v === "entries" ? "#/journal" : `#/journal/${v}`, id: `journal-tab-${v}`, class: v === current ? "active" : null,
    "aria-current": v === current ? "page" : null, text: t(`journal.tab.${v}`),
  })));
}

function parisDay(ms) {
  const p = parisParts(ms);
  return `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
}

const dayText = (day) => fmt(`${day}T12:00:00Z`, "date");

// Entries as a table, oldest or newest first as given; amendments say which entry they correct.
function entryTable(rows, { onAmend, id } = {}) {
  const amendedBy = new Map();
  for (const e of rows) if (e.amends) amendedBy.set(e.amends, [...(amendedBy.get(e.amends) || []), e.id]);
  const columns = [
    { label: t("journal.number"), render: (e) => String(e.id) },
    { label: t("journal.occurred"), class: "nowrap", render: (e) => [fmt(e.occurred),
      Math.abs(Date.parse(e.written) - Date.parse(e.occurred)) > 60_000 ? h("small", { class: "muted block", text: t("journal.writtenAt", { time: fmt(e.written, "daytime") }) }) : null] },
    { label: t("journal.category"), render: (e) => category(e.category) },
    { label: t("journal.cameras"), render: (e) => e.camera_ids.join(", ") },
    { label: t("journal.description"), class: "entry-text", render: (e) => [
      e.amends ? h("small", { class: "muted block", text: t("journal.amends", { id: e.amends }) }) : null,
      e.description,
      amendedBy.has(e.id) ? h("small", { class: "warn-text block", text: t("journal.amendedBy", { ids: amendedBy.get(e.id).join(", ") }) }) : null] },
    { label: t("journal.actions"), render: (e) => [e.actions.map((a) => (ACTIONS.includes(a) ? t(`jaction.${a}`) : a)).join(", "), e.actions_note].filter(Boolean).join(" — ") },
    { label: t("journal.bookmarks"), render: (e) => e.bookmarks.map((b) => h("span", { class: "block", text: `${b.camera_id} · ${fmt(b.at, "time")}${b.label ? ` · ${b.label}` : ""}` })) },
    { label: t("journal.author"), key: "author" },
  ];
  if (onAmend) {
    columns.push({ label: "", render: (e) => h("button", { type: "button", class: "small", "data-amend": e.id, text: t("journal.amend"),
      "aria-label": t("journal.amendTitle", { id: e.id }), onclick: () => onAmend(e) }) });
  }
  const grid = table(columns, rows, { empty: t("journal.empty") });
  if (id) grid.id = id;
  return grid;
}

function checkList(legend, id, items) {
  return h("fieldset", { class: "check-list wide", id }, h("legend", { text: legend }),
    items.length
      ? h("div", { class: "check-grid" }, items.map(([value, label, on]) => h("label", { class: "check" }, h("input", { type: "checkbox", value, checked: on }), label)))
      : h("p", { class: "muted", text: t("journal.noCamera") }));
}

const checked = (box) => [...box.querySelectorAll("input:checked")].map((i) => i.value);

// A new entry, or (with `entry`) the correction of one: the same fields, the category and cameras prefilled.
function entryForm(cameras, { id, entry = null, onDone, onCancel }) {
  const actions = checkList(t("journal.actions"), `${id}-actions`, ACTIONS.map((a) => [a, t(`jaction.${a}`), Boolean(entry?.actions.includes(a))]));
  const cameraBox = checkList(t("journal.cameras"), `${id}-cameras`, cameras.map((c) => [c.id, c.name === c.id ? c.id : `${c.name} (${c.id})`, Boolean(entry?.camera_ids.includes(c.id))]));
  const built = buildForm([
    { name: "category", label: t("journal.category"), type: "select", required: true, value: entry?.category ?? "",
      options: [["", t("journal.chooseCategory")], ...CATEGORIES.map((c) => [c, t(`jcat.${c}`)])] },
    { name: "occurred_at", label: t("journal.occurredAt"), type: "datetime", hint: t("journal.occurredHint") },
    { name: "description", label: entry ? t("journal.correction") : t("journal.description"), type: "textarea", required: true, maxLength: 4000, rows: 4 },
    { name: "actions_note", label: t("journal.actionsNote"), maxLength: 1000, hint: t("journal.actionsNoteHint") },
  ], {
    id, onCancel, submitLabel: entry ? t("journal.writeAmendment") : t("journal.write"),
    onSubmit: async (v) => {
      const body = { category: v.category, description: v.description, actions: checked(actions), actions_note: v.actions_note, camera_ids: checked(cameraBox) };
      if (v.occurred_at) body.occurred_at = v.occurred_at;
      if (entry) body.amends = entry.id;
      onDone(await api("/api/v1/journal", { method: "POST", body }));
    },
  });
  built.inputs.description.closest("label").classList.add("wide");
  built.inputs.actions_note.closest("label").before(actions);
  built.form.querySelector(".form-fields").append(cameraBox);
  return built;
}

async function mountEntries(root) {
  const error = errorLine();
  const list = h("div", { id: "journal-list" });
  const scope = h("p", { class: "muted", id: "journal-scope", role: "status" });
  let cameras = [];
  try { cameras = await listCameras(); } catch (err) { error.show(err.message); }

  const cameraFilter = h("select", { id: "journal-camera" }, h("option", { value: "", text: t("journal.allCameras") }),
    cameras.map((c) => h("option", { value: c.id, text: c.name })));
  const categoryFilter = h("select", { id: "journal-category" }, h("option", { value: "", text: t("journal.allCategories") }),
    CATEGORIES.map((c) => h("option", { value: c, text: t(`jcat.${c}`) })));
  const from = h("input", { type: "datetime-local", step: 1, id: "journal-from" });
  const to = h("input", { type: "datetime-local", step: 1, id: "journal-to" });

  async function refresh() {
    const params = { camera_id: cameraFilter.value, category: categoryFilter.value, limit: LIMIT };
    for (const [name, input] of [["start", from], ["end", to]]) {
      if (!input.value) continue;
      const date = parisInputToDate(input.value);
      if (!date) { error.show(t("form.badDate")); return; }
      params[name] = isoZ(date);
    }
    try {
      const rows = await api(`/api/v1/journal${qs(params)}`);
      error.show("");
      const period = params.start || params.end
        ? t("journal.scopeRange", { from: params.start ? fmt(params.start, "minute") : "…", to: params.end ? fmt(params.end, "minute") : t("journal.now") })
        : t("journal.scopeShift");
      scope.textContent = `${period} — ${t("journal.count", { n: rows.length })}${rows.length >= LIMIT ? ` ${t("journal.truncated", { n: LIMIT })}` : ""}`;
      clear(list, entryTable(rows.slice().reverse(), { onAmend: amend, id: "journal-table" }));
    } catch (err) { error.show(err.message); }
  }

  const written = (entry) => { toast(t("journal.written", { id: entry.id })); refresh(); };
  function amend(entry) {
    dialog(t("journal.amendTitle", { id: entry.id }), (close) => entryForm(cameras, {
      id: "journal-amend", entry, onCancel: () => close(null), onDone: (saved) => { close(saved); written(saved); },
    }).form);
  }

  const fresh = entryForm(cameras, {
    id: "journal-form",
    onDone: (saved) => { fresh.form.reset(); written(saved); fresh.inputs.category.focus(); },
  });
  const filters = h("form", { class: "toolbar", id: "journal-filters", role: "search", onsubmit: (e) => { e.preventDefault(); refresh(); } },
    h("label", { class: "inline" }, t("journal.camera"), cameraFilter),
    h("label", { class: "inline" }, t("journal.category"), categoryFilter),
    h("label", { class: "inline" }, t("journal.from"), from),
    h("label", { class: "inline" }, t("journal.to"), to),
    h("button", { type: "submit", id: "journal-search", text: t("journal.show") }),
    h("button", { type: "button", id: "journal-current", text: t("journal.currentShift"), onclick: () => { from.value = ""; to.value = ""; refresh(); } }));
  cameraFilter.addEventListener("change", refresh);
  categoryFilter.addEventListener("change", refresh);

  clear(root, screenHeader(t("nav.journal"), tabs("entries")), error,
    section(t("journal.new"), fresh.form),
    section(t("journal.entries"), filters, scope, list));
  refresh();
  const timer = setInterval(refresh, 30_000);
  return () => clearInterval(timer);
}

async function mountHandover(root) {
  const error = errorLine();
  const body = h("div", { id: "handover" });
  let at = null; // an instant of the shift shown; null: the current one
  let current = null;
  const prev = h("button", { type: "button", id: "handover-prev", text: t("handover.previous"),
    onclick: () => { at = isoZ(Date.parse(current.shift_start) - 1000); load(); } });
  const next = h("button", { type: "button", id: "handover-next", text: t("handover.next"),
    onclick: () => { at = current.shift_end; load(); } });
  const now = h("button", { type: "button", id: "handover-now", text: t("journal.currentShift"), onclick: () => { at = null; load(); } });
  const print = h("button", { type: "button", id: "handover-print", text: t("handover.print"), onclick: () => window.print() });

  async function load() {
    try { current = await api(`/api/v1/journal/handover${qs({ at })}`); error.show(""); render(); } catch (err) { error.show(err.message); }
  }

  function render() {
    const c = current;
    prev.disabled = !c;
    next.disabled = Date.parse(c.shift_end) > Date.now();
    const facts = [
      ["handover.entryCount", String(c.entries.length)],
      ...CATEGORIES.map((cat) => [`jcat.${cat}`, String(c.by_category[cat] || 0)]),
    ];
    if (session.has("bollards")) {
      facts.push(["handover.unansweredCalls", String(c.unanswered_calls)]);
      facts.push(["handover.bollardCommands", t("handover.commands", c.bollard_commands)]);
    }
    const alarms = session.may("camera_health")
      ? table([
        { label: t("alarms.kind"), key: "kind" },
        { label: t("alarms.camera"), key: "camera_id" },
        { label: t("alarms.message"), key: "message" },
        { label: t("alarms.last"), render: (a) => fmt(a.last_raised) },
        { label: t("alarms.countCol"), key: "count" },
      ], c.open_alarms, { empty: t("handover.noAlarm"), rowClass: () => "alarm-open" })
      : h("p", { class: "muted", text: t("handover.alarmsNotShown") });
    clear(body,
      h("h2", { class: "handover-title", id: "handover-shift", text: t("handover.shift", { start: fmt(c.shift_start, "minute"), end: fmt(c.shift_end, "minute") }) }),
      h("div", { class: "columns" },
        section(t("handover.summary"), h("dl", { class: "facts", id: "handover-summary" }, facts.flatMap(([k, v]) => [h("dt", { text: t(k) }), h("dd", { text: v })]))),
        section(t("handover.openAlarms"), h("div", { id: "handover-alarms" }, alarms))),
      section(t("handover.entries"), entryTable(c.entries, { id: "handover-entries" })));
  }

  clear(root, screenHeader(t("nav.journal"), tabs("handover")), roomPanel(), h("div", { class: "toolbar no-print" }, prev, now, next, print), error, body);
  await load();
}

async function mountStats(root) {
  const error = errorLine();
  const out = h("div", { id: "journal-stats" });
  const from = h("input", { type: "date", id: "stats-from", required: true, value: parisDay(Date.now() - 29 * 86_400_000) });
  const to = h("input", { type: "date", id: "stats-to", required: true, value: parisDay(Date.now()) });

  async function load() {
    if (!from.value || !to.value) { error.show(t("journal.statsDates")); return; }
    try {
      const s = await api(`/api/v1/journal/stats${qs({ start: from.value, end: to.value })}`);
      error.show("");
      const names = [...CATEGORIES, ...Object.keys(s.by_category).filter((c) => !CATEGORIES.includes(c))];
      const chart = barChart(names.map((c) => ({ label: category(c), value: s.by_category[c] || 0 })), { id: "stats-chart" });
      chart.setAttribute("aria-label", t("journal.statsChart"));
      const days = Object.keys(s.by_day);
      clear(out,
        h("p", { id: "stats-total", role: "status", text: t("journal.statsTotal", { n: s.total, from: dayText(s.first_day), to: dayText(s.last_day) }) }),
        chart,
        h("h3", { text: t("journal.statsPerDay") }),
        table([
          { label: t("journal.day"), render: (d) => dayText(d) },
          ...names.map((c) => ({ label: category(c), render: (d) => String(s.by_day[d][c] || 0) })),
          { label: t("journal.total"), render: (d) => String(Object.values(s.by_day[d]).reduce((a, b) => a + b, 0)) },
        ], days, { empty: t("journal.statsNone") }));
    } catch (err) { error.show(err.message); }
  }

  const form = h("form", { class: "toolbar", id: "stats-form", onsubmit: (e) => { e.preventDefault(); load(); } },
    h("label", { class: "inline" }, t("journal.fromDay"), from),
    h("label", { class: "inline" }, t("journal.toDay"), to),
    h("button", { type: "submit", id: "stats-show", text: t("journal.show") }));
  clear(root, screenHeader(t("nav.journal"), tabs("stats")),
    watches() ? null : h("p", { class: "muted", id: "journal-counts-only", text: t("journal.countsOnly") }),
    error, section(t("journal.statsTitle"), form, out));
  await load();
}
