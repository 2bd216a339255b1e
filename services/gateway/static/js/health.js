// Camera health: status, since when and why, stream metrics; availability over the last 24 hours
// (from the recordings' timeline, for those who may see it) and the fleet's status as charts.
import { api, enc, qs } from "./api.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt, isoZ } from "./time.js";
import { session } from "./session.js";
import { listCameras, cameraDetails } from "./cameras.js";
import { barChart } from "./charts.js";
import { screenHeader, section, table, errorLine } from "./ui.js";

async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(...await Promise.all(items.slice(i, i + size).map(fn)));
  return out;
}

export async function mount(root) {
  const error = errorLine();
  const summary = h("div", { id: "health-summary" });
  const list = h("div", { id: "health-table" });
  const availability = h("div", { id: "availability" });
  async function refresh() {
    let cameras;
    try { cameras = await listCameras(true); error.show(""); } catch (err) { error.show(err.message); return; }
    const details = await inBatches(cameras, 8, async (c) => { try { return await cameraDetails(c.id); } catch { return null; } });
    const counts = {};
    for (const c of cameras) counts[c.status] = (counts[c.status] || 0) + 1;
    clear(summary, barChart(["online", "degraded", "non_compliant", "connecting", "offline"].filter((s) => counts[s] || s !== "connecting").map((s) => ({ label: t(`status.${s}`), value: counts[s] || 0, kind: `status-${s}` })), { id: "status-chart", width: 520 }));
    clear(list, table([
      { label: t("health.camera"), render: (c) => h("span", {}, h("span", { class: `dot status-${c.status}` }), ` ${c.name}`) },
      { label: t("health.status"), render: (c) => t(`status.${c.status}`) },
      { label: t("health.since"), render: (c) => fmt(c.status_since) },
      { label: t("health.reason"), render: (c) => c.status_reason || "" },
      { label: "fps", render: (c, i) => { const d = details[cameras.indexOf(c)]; return d ? d.metrics.fps.toFixed(1) : "—"; } },
      { label: t("health.bitrate"), render: (c) => { const d = details[cameras.indexOf(c)]; return d ? `${(d.metrics.bitrate_bps / 1e6).toFixed(2)} Mbit/s` : "—"; } },
      { label: t("health.reconnects"), render: (c) => details[cameras.indexOf(c)]?.metrics.reconnects ?? "—" },
      { label: t("health.lastPacket"), render: (c) => { const d = details[cameras.indexOf(c)]; return d ? `${d.metrics.last_packet_age_s.toFixed(1)} s` : "—"; } },
      { label: t("health.recording"), render: (c) => { const d = details[cameras.indexOf(c)]; return !d ? "—" : d.recording_allowed ? t("common.yes") : `${t("common.no")} — ${d.recording_refusal}`; } },
    ], cameras, { rowClass: (c) => `status-${c.status}` }));
    if (session.may("playback") && session.has("playback")) {
      const end = Date.now();
      const start = end - 86_400_000;
      const rows = await inBatches(cameras, 6, async (c) => {
        try {
          const data = await api(`/api/v1/cameras/${enc(c.id)}/timeline${qs({ start: isoZ(start), end: isoZ(end) })}`);
          const covered = data.covered.reduce((sum, x) => sum + (Date.parse(x.end) - Date.parse(x.start)), 0);
          return { label: c.name, value: Math.min(100, (100 * covered) / (end - start)) };
        } catch { return null; }
      });
      const known = rows.filter(Boolean);
      clear(availability, known.length ? barChart(known, { max: 100, format: (v) => `${v.toFixed(1)} %`, id: "availability-chart" })
        : h("p", { class: "muted", text: t("health.noRecordings") }));
    } else {
      clear(availability, h("p", { class: "muted", text: t("health.noAvailability") }));
    }
  }
  clear(root, screenHeader(t("nav.health")), error,
    h("div", { class: "columns" }, section(t("health.fleet"), summary), section(t("health.availability24h"), availability)),
    section(t("health.cameras"), list));
  refresh();
  const timer = setInterval(refresh, 30000);
  return () => clearInterval(timer);
}
