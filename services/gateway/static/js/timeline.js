// A zoomable timeline (15 days down to 10 seconds): recorded intervals, gaps and non-compliant spans per camera, the
// loaded clip, the play position. Wheel or buttons zoom around a point, drag pans, click seeks.
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt, parisParts } from "./time.js";

export const MIN_SPAN = 10_000;
export const MAX_SPAN = 15 * 86_400_000;
const STEPS = [1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3, 172800e3];
const ROW_H = 18;
const AXIS_H = 22;
const LABEL_W = 120;

function parisOffset(ms) {
  const p = parisParts(ms);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}

export class Timeline {
  constructor({ onSeek, onView }) {
    this.onSeek = onSeek;
    this.onView = onView;
    this.rows = [];
    this.cursor = null;
    this.clip = null;
    const now = Date.now();
    this.view = [now - 3600_000, now];
    this.svg = h("svg:svg", { class: "timeline-svg", role: "img", "aria-label": t("playback.timeline") });
    this.el = h("div", { class: "timeline", id: "timeline" }, this.svg);
    this.width = 800;
    new ResizeObserver(() => { this.width = Math.max(300, this.el.clientWidth); this.render(); }).observe(this.el);
    this.bind();
  }

  get span() { return this.view[1] - this.view[0]; }

  x(ms) { return LABEL_W + ((ms - this.view[0]) / this.span) * (this.width - LABEL_W); }
  at(px) { return this.view[0] + ((px - LABEL_W) / (this.width - LABEL_W)) * this.span; }

  setView(start, end, notify = true) {
    let span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, end - start));
    const latest = Date.now() + 60_000;
    let s = (start + end) / 2 - span / 2;
    if (s + span > latest) s = latest - span;
    const earliest = Date.now() - 31 * 86_400_000;
    if (s < earliest) { s = earliest; span = Math.min(span, latest - earliest); }
    this.view = [s, s + span];
    this.render();
    if (notify && this.onView) this.onView(this.view);
  }

  zoom(factor, aroundMs = (this.view[0] + this.view[1]) / 2) {
    const span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, this.span * factor));
    const ratio = (aroundMs - this.view[0]) / this.span;
    const start = aroundMs - ratio * span;
    this.setView(start, start + span);
  }

  setRows(rows) { this.rows = rows; this.render(); }
  setCursor(ms) { this.cursor = ms; this.renderCursor(); }
  setClip(range) { this.clip = range; this.render(); }

  bind() {
    let drag = null;
    this.svg.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = this.svg.getBoundingClientRect();
      this.zoom(event.deltaY < 0 ? 1 / 1.3 : 1.3, this.at(event.clientX - rect.left));
    }, { passive: false });
    this.svg.addEventListener("pointerdown", (event) => {
      this.svg.setPointerCapture(event.pointerId);
      drag = { x: event.clientX, view: [...this.view], moved: false };
    });
    this.svg.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (!drag.moved) return;
      const shift = (dx / (this.width - LABEL_W)) * (drag.view[1] - drag.view[0]);
      this.view = [drag.view[0] - shift, drag.view[1] - shift];
      this.render();
    });
    this.svg.addEventListener("pointerup", (event) => {
      if (!drag) return;
      const moved = drag.moved;
      drag = null;
      if (moved) { this.setView(this.view[0], this.view[1]); return; }
      const rect = this.svg.getBoundingClientRect();
      const px = event.clientX - rect.left;
      if (px >= LABEL_W && this.onSeek) this.onSeek(this.at(px));
    });
  }

  ticks() {
    const target = this.span / Math.max(4, (this.width - LABEL_W) / 110);
    const step = STEPS.find((s) => s >= target) || STEPS[STEPS.length - 1];
    const off = step >= 3600e3 ? parisOffset(this.view[0]) : 0;
    const out = [];
    for (let ms = Math.ceil((this.view[0] + off) / step) * step - off; ms <= this.view[1]; ms += step) out.push(ms);
    const style = step >= 86400e3 ? "daymonth" : step >= 60e3 ? (this.span > 86400e3 ? "daytime" : "hm") : "time";
    return { out, style };
  }

  render() {
    const height = AXIS_H + Math.max(1, this.rows.length) * (ROW_H + 4) + 4;
    this.svg.setAttribute("viewBox", `0 0 ${this.width} ${height}`);
    this.svg.setAttribute("height", String(height));
    const parts = [];
    const { out, style } = this.ticks();
    for (const ms of out) {
      const x = this.x(ms);
      parts.push(h("svg:line", { x1: x, x2: x, y1: AXIS_H - 6, y2: height, class: "tick" }));
      parts.push(h("svg:text", { x: x + 3, y: AXIS_H - 9, class: "tick-label" }, fmt(ms, style)));
    }
    if (this.clip) {
      const x1 = Math.max(LABEL_W, this.x(this.clip[0]));
      const x2 = Math.min(this.width, this.x(this.clip[1]));
      if (x2 > x1) parts.push(h("svg:rect", { x: x1, y: AXIS_H - 4, width: x2 - x1, height: height - AXIS_H + 4, class: "clip-range" }));
    }
    this.rows.forEach((row, i) => {
      const y = AXIS_H + i * (ROW_H + 4);
      parts.push(h("svg:text", { x: 4, y: y + ROW_H - 5, class: "row-label" }, row.label.length > 16 ? `${row.label.slice(0, 15)}…` : row.label));
      parts.push(h("svg:rect", { x: LABEL_W, y, width: this.width - LABEL_W, height: ROW_H, class: "row-bg" }));
      for (const [s, e, reason] of row.gaps || []) {
        const x1 = Math.max(LABEL_W, this.x(s)); const x2 = Math.min(this.width, this.x(e));
        if (x2 > x1) parts.push(h("svg:rect", { x: x1, y, width: Math.max(1, x2 - x1), height: ROW_H, class: "gap" },
          h("svg:title", {}, `${t("playback.gap")} ${fmt(s)} → ${fmt(e)}${reason ? ` — ${reason}` : ""}`)));
      }
      for (const [s, e, recording] of row.covered || []) {
        const x1 = Math.max(LABEL_W, this.x(s)); const x2 = Math.min(this.width, this.x(e));
        if (x2 > x1) parts.push(h("svg:rect", { x: x1, y: y + 2, width: Math.max(1, x2 - x1), height: ROW_H - 4, class: recording ? "covered recording" : "covered" },
          h("svg:title", {}, `${t("playback.recorded")} ${fmt(s)} → ${fmt(e)}`)));
      }
      // Recorded, but the stream was measured below its profile or the norms: a band under the row.
      for (const [s, e, detail] of row.marks || []) {
        const x1 = Math.max(LABEL_W, this.x(s)); const x2 = Math.min(this.width, this.x(e));
        if (x2 > x1) parts.push(h("svg:rect", { x: x1, y: y + ROW_H - 4, width: Math.max(1, x2 - x1), height: 4, class: "non-compliant" },
          h("svg:title", {}, `${t("playback.nonCompliant")} ${fmt(s)} → ${fmt(e)}${detail ? ` — ${detail}` : ""}`)));
      }
      if (row.error) parts.push(h("svg:text", { x: LABEL_W + 6, y: y + ROW_H - 5, class: "row-error" }, row.error));
    });
    this.cursorLine = h("svg:line", { y1: AXIS_H - 6, y2: height, class: "cursor" });
    parts.push(this.cursorLine);
    clear(this.svg, parts);
    this.renderCursor();
  }

  renderCursor() {
    if (!this.cursorLine) return;
    const visible = this.cursor !== null && this.cursor >= this.view[0] && this.cursor <= this.view[1];
    this.cursorLine.setAttribute("visibility", visible ? "visible" : "hidden");
    if (visible) { const x = this.x(this.cursor); this.cursorLine.setAttribute("x1", x); this.cursorLine.setAttribute("x2", x); }
  }
}
