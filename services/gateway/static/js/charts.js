// Plain SVG charts (no library): bars with labels, and a stacked bar for shares.
import { h } from "./dom.js";

// items: [{label, value, title?, kind?}]; value in [0, max].
export function barChart(items, { max = null, width = 560, barHeight = 18, format = (v) => String(v), id } = {}) {
  const top = max ?? Math.max(1, ...items.map((i) => i.value));
  const labelW = 170;
  const height = items.length * (barHeight + 6) + 6;
  const rows = items.map((item, i) => {
    const y = 4 + i * (barHeight + 6);
    const w = Math.max(0, ((width - labelW - 70) * item.value) / top);
    return h("svg:g", { class: ["bar", item.kind] },
      h("svg:text", { x: labelW - 6, y: y + barHeight - 5, class: "bar-label", "text-anchor": "end" }, item.label.length > 26 ? `${item.label.slice(0, 25)}…` : item.label),
      h("svg:rect", { x: labelW, y, width: w, height: barHeight, class: "bar-fill" }, h("svg:title", {}, item.title || `${item.label}: ${format(item.value)}`)),
      h("svg:text", { x: labelW + w + 6, y: y + barHeight - 5, class: "bar-value" }, format(item.value)));
  });
  return h("svg:svg", { class: "chart", id, viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, rows);
}

// series: [{label, values:[numbers]}] over categories (x labels): grouped columns.
export function columnChart(categories, series, { width = 640, height = 220, id } = {}) {
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const left = 34, bottom = 36, top = 10;
  const plotW = width - left - 10, plotH = height - bottom - top;
  const groupW = plotW / Math.max(1, categories.length);
  const barW = Math.max(2, (groupW - 6) / Math.max(1, series.length));
  const parts = [h("svg:line", { x1: left, x2: width - 10, y1: top + plotH, y2: top + plotH, class: "axis" })];
  for (const frac of [0, 0.5, 1]) {
    const y = top + plotH - frac * plotH;
    parts.push(h("svg:text", { x: left - 4, y: y + 4, class: "tick-label", "text-anchor": "end" }, String(Math.round(max * frac))));
  }
  categories.forEach((cat, ci) => {
    const x0 = left + ci * groupW + 3;
    series.forEach((s, si) => {
      const v = s.values[ci] || 0;
      const hgt = (v / max) * plotH;
      parts.push(h("svg:rect", { x: x0 + si * barW, y: top + plotH - hgt, width: barW - 1, height: hgt, class: `series-${si}` }, h("svg:title", {}, `${cat} — ${s.label}: ${v}`)));
    });
    parts.push(h("svg:text", { x: x0 + groupW / 2 - 3, y: height - bottom + 14, class: "tick-label", "text-anchor": "middle" }, cat));
  });
  series.forEach((s, si) => {
    parts.push(h("svg:rect", { x: left + si * 140, y: height - 14, width: 10, height: 10, class: `series-${si}` }));
    parts.push(h("svg:text", { x: left + si * 140 + 14, y: height - 5, class: "tick-label" }, s.label));
  });
  return h("svg:svg", { class: "chart", id, viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, parts);
}
