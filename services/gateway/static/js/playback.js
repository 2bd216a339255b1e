// Playback: one camera or several in sync (e.g. the wall's layout), a justification asked before
// anything is shown (it goes into the audit trail with each clip), a zoomable timeline with the
// recorded intervals and the gaps, speeds, frame steps and jumping to a time.
import { api, enc, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { session } from "./session.js";
import { listCameras, cachedCamera, cameraDetails } from "./cameras.js";
import { cameraTree } from "./tree.js";
import { Timeline } from "./timeline.js";
import { fmt, isoZ, dateToParisInput, parisInputToDate } from "./time.js";
import { errorLine, validate, toast } from "./ui.js";

const MAX_CLIP_MS = 24 * 3600_000;
const MAX_CAMERAS = 16;
const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];

export function askJustification(previous = "") {
  return dialog(t("playback.justificationTitle"), (close) => {
    const text = h("textarea", { id: "justification", required: true, minLength: 5, maxLength: 500, rows: 3, value: previous });
    const form = h("form", { class: "form", novalidate: true },
      h("p", { class: "muted", text: t("playback.justificationHelp") }),
      h("label", { class: "field" }, h("span", { class: "field-label", text: t("playback.justification") }), text),
      h("div", { class: "actions" }, h("button", { type: "button", text: t("common.cancel"), onclick: () => close(null) }),
        h("button", { type: "submit", class: "primary", id: "justification-ok", text: t("playback.view") })));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (validate(form, [[text, (v) => v.trim().length >= 5 && v.trim().length <= 500, t("playback.justificationInvalid")]])) close(text.value.trim());
    });
    return form;
  });
}

class Lane {
  constructor(camera) {
    this.camera = camera;
    this.fps = 10;
    this.clipStart = null;
    this.video = h("video", { class: "pb-video", muted: true, playsInline: true, preload: "auto", disablePictureInPicture: true });
    this.video.setAttribute("controlslist", "nodownload");
    this.video.addEventListener("contextmenu", (e) => e.preventDefault());
    this.status = h("div", { class: "pb-status" });
    this.el = h("div", { class: "pb-lane", dataset: { camera: camera.id } }, this.video, h("div", { class: "tile-bar" }, h("span", { class: "tile-name", text: camera.name })), this.status);
    cameraDetails(camera.id).then((d) => { if (d.profile?.fps) this.fps = d.profile.fps; }).catch(() => {});
  }

  say(text, kind = "") { this.status.textContent = text; this.status.className = `pb-status ${kind}`; this.status.hidden = !text; }

  async load(start, end, justification) {
    this.say(t("playback.preparing"), "busy");
    this.clipStart = null;
    this.video.removeAttribute("src");
    const url = `/api/v1/cameras/${enc(this.camera.id)}/clip${qs({ start: isoZ(start), end: isoZ(end), justification })}`;
    try {
      // A one-byte request builds the clip (and records the consultation) and tells where it starts.
      const head = await api(url, { raw: true, headers: { Range: "bytes=0-0" } });
      this.clipStart = Date.parse(head.headers.get("X-Clip-Start")) || start;
      this.video.src = url;
      await new Promise((resolve, reject) => {
        this.video.addEventListener("loadedmetadata", resolve, { once: true });
        this.video.addEventListener("error", () => reject(new Error(t("playback.cannotPlay"))), { once: true });
      });
      this.clipEnd = this.clipStart + this.video.duration * 1000;
      this.say("");
      return true;
    } catch (err) {
      this.say(err.message, "error");
      return false;
    }
  }

  covers(ms) { return this.clipStart !== null && ms >= this.clipStart && ms <= this.clipEnd; }

  position() { return this.clipStart === null ? null : this.clipStart + this.video.currentTime * 1000; }

  seek(ms) {
    if (!this.covers(ms)) { if (this.clipStart !== null) this.say(t("playback.noRecordingHere"), "muted"); this.video.pause(); return false; }
    if (this.status.classList.contains("muted")) this.say("");
    this.video.currentTime = (ms - this.clipStart) / 1000;
    return true;
  }
}

export async function mount(root, { params }) {
  const cameras = await listCameras(true);
  const selected = new Set((params[0] || "").split(",").filter((id) => cameras.some((c) => c.id === id)));
  let lanes = [];
  let justification = "";
  let playing = false;
  let speed = 1;
  let position = null;
  const now = Date.now();
  const from = h("input", { type: "datetime-local", step: 1, id: "pb-from", required: true, value: dateToParisInput(now - 10 * 60_000) });
  const to = h("input", { type: "datetime-local", step: 1, id: "pb-to", required: true, value: dateToParisInput(now - 5_000) });
  const jump = h("input", { type: "datetime-local", step: 1, id: "pb-jump" });
  const clock = h("span", { class: "pb-clock", id: "pb-clock", text: "—" });
  const error = errorLine();
  const lanesEl = h("div", { class: "pb-grid", id: "pb-grid" });
  const playButton = h("button", { type: "button", id: "pb-play", text: "▶", title: t("playback.play"), onclick: () => setPlaying(!playing) });
  const speedSelect = h("select", { id: "pb-speed", "aria-label": t("playback.speed"), onchange: () => { speed = Number(speedSelect.value); for (const l of lanes) l.video.playbackRate = speed; } },
    SPEEDS.map((s) => h("option", { value: String(s), selected: s === 1, text: `×${s}` })));
  const timeline = new Timeline({ onSeek: (ms) => seekTo(ms, true), onView: () => refreshTimeline() });
  const form = h("form", { class: "toolbar", novalidate: true },
    h("label", { class: "inline" }, t("playback.from"), from), h("label", { class: "inline" }, t("playback.to"), to),
    h("button", { type: "submit", class: "primary", id: "pb-load", text: t("playback.load") }),
    h("button", { type: "button", class: "link", text: t("playback.changeReason"), onclick: async () => { const j = await askJustification(justification); if (j) justification = j; } }));

  const master = () => lanes.find((l) => l.covers(position ?? -1)) || lanes.find((l) => l.clipStart !== null);

  function setPlaying(on) {
    playing = on;
    playButton.textContent = on ? "❚❚" : "▶";
    for (const lane of lanes) {
      lane.video.playbackRate = speed;
      if (on && lane.covers(position ?? lane.clipStart)) lane.video.play().catch(() => {});
      else lane.video.pause();
    }
  }

  function seekTo(ms, reloadOutside = false) {
    const inside = lanes.some((l) => l.covers(ms));
    if (!inside && reloadOutside) {
      // Outside the loaded clip: load the same width around that time (same justification).
      const width = Math.min(MAX_CLIP_MS, Math.max(60_000, parisInputToDate(to.value) - parisInputToDate(from.value)));
      const end = Math.min(Date.now() - 2000, ms + width / 2);
      from.value = dateToParisInput(end - width);
      to.value = dateToParisInput(end);
      load().then(() => seekTo(ms));
      return;
    }
    position = ms;
    for (const lane of lanes) lane.seek(ms);
    if (playing) setPlaying(true);
    showPosition();
  }

  function showPosition() {
    clock.textContent = position === null ? "—" : fmt(position, "datetime");
    timeline.setCursor(position);
  }

  // Keep every lane on the master's time (within a quarter second).
  const sync = setInterval(() => {
    const m = master();
    if (!m || m.clipStart === null) return;
    if (!m.video.paused || !playing) position = m.position();
    for (const lane of lanes) {
      if (lane === m) continue;
      if (!lane.covers(position)) { if (!lane.video.paused) lane.video.pause(); continue; }
      const want = (position - lane.clipStart) / 1000;
      if (Math.abs(lane.video.currentTime - want) > 0.25) lane.video.currentTime = want;
      if (playing && lane.video.paused) lane.video.play().catch(() => {});
    }
    showPosition();
  }, 200);

  function step(direction) {
    setPlaying(false);
    const m = master();
    if (!m) return;
    const ms = (m.position() ?? position) + (direction * 1000) / (m.fps || 10);
    seekTo(ms);
  }

  async function refreshTimeline() {
    const [s, e] = timeline.view;
    const rows = await Promise.all(lanes.map(async (lane) => {
      try {
        const data = await api(`/api/v1/cameras/${enc(lane.camera.id)}/timeline${qs({ start: isoZ(s), end: isoZ(Math.min(e, Date.now())) })}`);
        return {
          label: lane.camera.name,
          covered: data.covered.map((c) => [Date.parse(c.start), Date.parse(c.end), c.recording]),
          gaps: data.gaps.map((g) => [Date.parse(g.start), Date.parse(g.end), g.reason || g.detail]),
          marks: (data.marks || []).map((m) => [Date.parse(m.start), Date.parse(m.end), m.detail || m.reason]),
        };
      } catch (err) {
        return { label: lane.camera.name, error: err.message };
      }
    }));
    timeline.setRows(rows);
  }

  function renderLanes() {
    for (const lane of lanes) lane.video.removeAttribute("src");
    lanes = [...selected].slice(0, MAX_CAMERAS).map((id) => new Lane(cachedCamera(id) || { id, name: id }));
    lanesEl.dataset.count = String(lanes.length);
    clear(lanesEl, lanes.length ? lanes.map((l) => l.el) : h("p", { class: "muted", text: t("playback.pickCameras") }));
    history.replaceState(null, "", `#/playback/${[...selected].map(encodeURIComponent).join(",")}`);
    refreshTimeline();
  }

  async function load() {
    const start = parisInputToDate(from.value);
    const end = parisInputToDate(to.value);
    const ok = validate(form, [
      [from, () => start !== null, t("playback.badTime")],
      [to, () => end !== null, t("playback.badTime")],
      [to, () => !start || !end || end > start, t("playback.endBeforeStart")],
      [to, () => !start || !end || end - start <= MAX_CLIP_MS, t("playback.rangeTooLong")],
      [to, () => !end || end <= Date.now() + 60_000, t("playback.future")],
    ]);
    if (!ok) return;
    if (!lanes.length) { error.show(t("playback.pickCameras")); return; }
    if (!justification) {
      justification = await askJustification();
      if (!justification) return;
    }
    error.show("");
    setPlaying(false);
    timeline.setClip([start.getTime(), end.getTime()]);
    const span = end - start;
    timeline.setView(start.getTime() - span * 0.25, end.getTime() + span * 0.25);
    const results = await Promise.all(lanes.map((lane) => lane.load(start.getTime(), end.getTime(), justification)));
    if (!results.some(Boolean)) return;
    seekTo(Math.max(start.getTime(), Math.min(...lanes.filter((l) => l.clipStart !== null).map((l) => l.clipStart))));
    setPlaying(true);
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });

  const tree = cameraTree(cameras.filter((c) => session.may("playback")), {
    draggable: false, selectable: true, selected,
    onSelect: (camera, on) => { if (on) selected.add(camera.id); else selected.delete(camera.id); renderLanes(); },
    onPick: () => {},
  });
  const fromWall = () => {
    try {
      const wall = JSON.parse(localStorage.getItem(`csu.wall.${session.me.username}`));
      const ids = wall.screens[0].tiles.filter((id) => id && cameras.some((c) => c.id === id));
      location.hash = `#/playback/${ids.map(encodeURIComponent).join(",")}`;
    } catch { toast(t("playback.noWall"), "error"); }
  };
  const zoomButtons = [["15 j", 15 * 86400e3], ["1 j", 86400e3], ["1 h", 3600e3], ["10 min", 600e3], ["1 min", 60e3], ["10 s", 10e3]].map(([label, span]) =>
    h("button", { type: "button", class: "small", text: label, onclick: () => { const c = position ?? (timeline.view[0] + timeline.view[1]) / 2; timeline.setView(c - span / 2, c + span / 2); } }));

  clear(root, h("div", { class: "playback-screen" },
    h("aside", { class: "sidebar" }, h("h2", { text: t("playback.cameras") }),
      h("button", { type: "button", id: "pb-from-wall", text: t("playback.fromWall"), onclick: fromWall }), tree),
    h("section", { class: "playback-area" },
      form, error, lanesEl,
      h("div", { class: "toolbar transport" },
        h("button", { type: "button", id: "pb-step-back", text: "◀ 1", title: t("playback.stepBack"), onclick: () => step(-1) }),
        playButton,
        h("button", { type: "button", id: "pb-step", text: "1 ▶", title: t("playback.stepForward"), onclick: () => step(1) }),
        speedSelect, clock,
        h("span", { class: "sep" }),
        h("label", { class: "inline" }, t("playback.jumpTo"), jump),
        h("button", { type: "button", id: "pb-jump-go", text: t("playback.go"), onclick: () => { const d = parisInputToDate(jump.value); if (d) seekTo(d.getTime(), true); else toast(t("playback.badTime"), "error"); } }),
        h("span", { class: "sep" }),
        h("button", { type: "button", class: "small", text: "−", title: t("playback.zoomOut"), onclick: () => timeline.zoom(2) }),
        h("button", { type: "button", class: "small", text: "+", title: t("playback.zoomIn"), onclick: () => timeline.zoom(0.5) }),
        zoomButtons),
      timeline.el,
      h("p", { class: "legend muted" }, h("span", { class: "swatch covered" }), t("playback.recorded"), " ", h("span", { class: "swatch recording" }), t("playback.recordingNow"), " ", h("span", { class: "swatch gap" }), t("playback.gap"), " ", h("span", { class: "swatch non-compliant" }), t("playback.nonCompliant")))));
  renderLanes();
  return () => { clearInterval(sync); for (const lane of lanes) { lane.video.pause(); lane.video.removeAttribute("src"); lane.video.load(); } };
}
