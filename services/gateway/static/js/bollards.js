// Pedestrian-zone bollards: operators open and close them (with a reason), see the intercom calls;
// administrators register them; daily statistics as a chart.
import { api, enc, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt, parisParts } from "./time.js";
import { session } from "./session.js";
import { buildForm } from "./forms.js";
import { columnChart } from "./charts.js";
import { commandBollard } from "./notify.js";
import { screenHeader, section, table, errorLine, toast } from "./ui.js";

function day(ms) {
  const p = parisParts(ms);
  return `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
}

export async function mount(root) {
  const error = errorLine();
  const list = h("div", { id: "bollards-table" });
  const calls = h("div", { id: "calls-table" });
  const stats = h("div", { id: "bollard-stats" });
  const admin = session.may("config");
  const operator = session.may("live");

  async function refresh() {
    try {
      const rows = await api("/api/v1/bollards");
      clear(list, table([
        { label: t("bollards.id"), key: "id" },
        { label: t("bollards.name"), key: "name" },
        { label: t("bollards.location"), key: "location" },
        { label: t("bollards.camera"), key: "camera_id" },
        { label: t("bollards.state"), render: (b) => `${t(`bollardstate.${b.state}`)} · ${fmt(b.state_since)}` },
        { label: "", render: (b) => h("span", { class: "row-actions" },
          operator && b.active ? h("button", { type: "button", class: "small", text: t("bollards.open"), onclick: async () => { await commandBollard(b.id, "open"); refresh(); } }) : null,
          operator && b.active ? h("button", { type: "button", class: "small", text: t("bollards.close"), onclick: async () => { await commandBollard(b.id, "close"); refresh(); } }) : null,
          admin ? h("button", { type: "button", class: "small", text: b.active ? t("users.deactivate") : t("users.activate"), onclick: () => patch(b, { active: !b.active }) }) : null) },
      ], rows));
      const recent = await api(`/api/v1/bollards/calls${qs({ limit: 50 })}`);
      clear(calls, table([
        { label: t("bollards.time"), render: (c) => fmt(c.time) },
        { label: t("bollards.id"), key: "bollard_id" },
        { label: t("bollards.camera"), key: "camera_id" },
        { label: t("bollards.answered"), render: (c) => c.answered_by ? `${c.answered_by} · ${fmt(c.answered, "time")}` : t("bollards.unanswered") },
      ], recent));
      const end = Date.now();
      const data = await api(`/api/v1/bollards/stats${qs({ start: day(end - 13 * 86_400_000), end: day(end) })}`);
      const days = [...new Set(data.days.map((d) => d.day))].sort();
      const sum = (d, key) => data.days.filter((x) => x.day === d).reduce((s, x) => s + x[key], 0);
      clear(stats, columnChart(days.map((d) => d.slice(5)), [
        { label: t("bollards.opens"), values: days.map((d) => sum(d, "opens")) },
        { label: t("bollards.calls"), values: days.map((d) => sum(d, "calls")) },
        { label: t("bollards.failed"), values: days.map((d) => sum(d, "failed")) },
      ], { id: "bollard-chart" }));
      error.show("");
    } catch (err) { error.show(err.message); }
  }

  async function patch(b, body) {
    try { await api(`/api/v1/bollards/${enc(b.id)}`, { method: "PATCH", body }); refresh(); } catch (err) { toast(err.message, "error"); }
  }

  function create() {
    dialog(t("bollards.create"), (close) => buildForm([
      { name: "id", label: t("bollards.id"), required: true, pattern: "[a-z0-9][a-z0-9_-]{0,63}", maxLength: 64 },
      { name: "name", label: t("bollards.name"), required: true, maxLength: 128 },
      { name: "location", label: t("bollards.location"), maxLength: 256 },
      { name: "camera_id", label: t("bollards.camera"), required: true, pattern: "[A-Za-z0-9_-]{1,64}" },
      { name: "driver", label: t("bollards.driver"), type: "select", options: [["simulated", t("cameras.simulated")], ["http", "HTTP"]] },
      { name: "open_url", label: t("bollards.openUrl"), type: "url", maxLength: 2000 },
      { name: "close_url", label: t("bollards.closeUrl"), type: "url", maxLength: 2000 },
    ], {
      id: "bollard-create", onCancel: () => close(null),
      onSubmit: async (v) => {
        const body = { id: v.id, name: v.name, location: v.location, camera_id: v.camera_id, driver: v.driver };
        if (v.driver === "http") {
          if (!v.open_url || !v.close_url) throw new Error(t("bollards.urlsNeeded"));
          body.http = { open_url: v.open_url, close_url: v.close_url, method: "POST" };
        }
        const created = await api("/api/v1/bollards", { method: "POST", body });
        close(true);
        await dialog(t("bollards.token"), (ok) => h("div", {}, h("p", { text: t("bollards.tokenOnce") }), h("code", { class: "secret", text: created.intercom_token }),
          h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: t("common.close"), onclick: () => ok(true) }))));
        refresh();
      },
    }).form);
  }

  clear(root, screenHeader(t("nav.bollards"), admin ? h("button", { type: "button", class: "primary", id: "bollard-new", text: t("bollards.create"), onclick: create }) : null),
    error, section(t("bollards.list"), list),
    h("div", { class: "columns" }, section(t("bollards.recentCalls"), calls), section(t("bollards.stats14"), stats)));
  refresh();
  const timer = setInterval(refresh, 20000);
  return () => clearInterval(timer);
}
