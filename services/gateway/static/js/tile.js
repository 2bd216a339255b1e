// One tile of the video wall: a camera's live view with its name, state and tools.
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { LivePlayer } from "./player.js";
import { cameraDetails } from "./cameras.js";
import { session } from "./session.js";
import { CAMERA_MIME } from "./tree.js";

export const TILE_MIME = "application/x-csu-tile";

// An operator who sees a window left uncovered says so; the report names what was on screen.
async function reportMaskError(camera) {
  const { api, enc } = await import("./api.js");
  const { dialog } = await import("./dom.js");
  const { buildForm } = await import("./forms.js");
  const { toast } = await import("./ui.js");
  const seen = new Date().toISOString();
  dialog(t("wall.reportMask"), (close) => buildForm([
    { name: "description", label: t("wall.maskProblem"), type: "textarea", required: true, maxLength: 4000,
      check: [(v) => v.trim().length >= 3, t("wall.maskProblemShort")] },
  ], {
    id: "mask-error", submitLabel: t("wall.send"), onCancel: () => close(null),
    onSubmit: async (v) => {
      await api(`/api/v1/cameras/${enc(camera.id)}/mask-errors`, { method: "POST", body: { description: v.description, snapshot_ref: `live ${seen}` } });
      close(true);
      toast(t("wall.maskReported"));
    },
  }).form);
}

export class Tile {
  constructor(index, { onDropCamera, onDropTile, onSelect, onMaximise, onClear, canEdit = true } = {}) {
    this.index = index;
    this.camera = null;
    this.maximised = false;
    this.handlers = { onDropCamera, onDropTile, onSelect, onMaximise, onClear };
    this.video = h("video", { class: "tile-video", muted: true, autoplay: true, playsInline: true, disablePictureInPicture: true });
    this.video.setAttribute("muted", "");
    this.name = h("span", { class: "tile-name" });
    this.stateText = h("span", { class: "tile-state-text" });
    // The capture date and time of the frame on screen (Europe/Paris), from the stream itself.
    this.clock = h("span", { class: "tile-clock" });
    this.tools = h("span", { class: "tile-tools" });
    this.bar = h("div", { class: "tile-bar", draggable: canEdit }, this.name, this.clock, this.stateText, this.tools);
    this.clockTimer = setInterval(() => {
      const captured = this.player && this.player.capturedMs;
      this.clock.textContent = captured ? fmt(captured) : "";
    }, 500);
    this.overlay = h("div", { class: "tile-overlay" });
    this.extra = h("div", { class: "tile-extra" });
    this.el = h("div", { class: "tile empty", tabIndex: 0, dataset: { index: String(index) } }, this.video, this.overlay, this.extra, this.bar);
    this.el.addEventListener("click", () => onSelect && onSelect(this));
    this.el.addEventListener("dblclick", (event) => { if (!event.target.closest(".ptz-pad, button, select, input")) onMaximise && onMaximise(this); });
    if (canEdit) {
      this.el.addEventListener("dragover", (event) => {
        const types = event.dataTransfer.types;
        if (types.includes(CAMERA_MIME) || types.includes(TILE_MIME)) { event.preventDefault(); this.el.classList.add("drop"); }
      });
      this.el.addEventListener("dragleave", () => this.el.classList.remove("drop"));
      this.el.addEventListener("drop", (event) => {
        event.preventDefault();
        this.el.classList.remove("drop");
        const camera = event.dataTransfer.getData(CAMERA_MIME);
        const tile = event.dataTransfer.getData(TILE_MIME);
        if (camera && onDropCamera) onDropCamera(this, camera);
        else if (tile !== "" && onDropTile) onDropTile(this, Number(tile));
      });
      this.bar.addEventListener("dragstart", (event) => {
        if (!this.camera) { event.preventDefault(); return; }
        event.dataTransfer.setData(TILE_MIME, String(this.index));
        event.dataTransfer.effectAllowed = "move";
      });
    }
    this.renderEmpty();
  }

  renderEmpty() {
    this.name.textContent = "";
    this.stateText.textContent = "";
    clear(this.tools);
    clear(this.overlay, h("span", { class: "hint", text: t("wall.dropHere") }));
    this.el.classList.add("empty");
    this.el.classList.remove("offline", "refused", "live");
  }

  // camera: an entry of /api/v1/cameras, or null.
  async setCamera(camera, { stream } = {}) {
    if (this.camera && camera && this.camera.id === camera.id) { if (stream) this.setStream(stream); return; }
    this.release();
    this.camera = camera;
    this.el.dataset.camera = camera ? camera.id : "";
    if (!camera) { this.renderEmpty(); return; }
    this.el.classList.remove("empty");
    this.name.textContent = camera.name;
    this.name.title = camera.id;
    clear(this.overlay);
    this.renderTools();
    this.player = new LivePlayer(this.video, camera.id, { stream: stream || "main", onState: (s) => this.showState(s) });
    this.player.start();
    if (!stream) {
      // Sub-stream on the grid when the camera has one (details say so); the main one maximised.
      try {
        const details = await cameraDetails(camera.id);
        this.hasSub = details.has_sub_stream;
        if (this.camera?.id === camera.id) this.setStream(this.wantedStream());
      } catch { /* details unavailable: stay on the main stream */ }
    }
  }

  wantedStream() {
    return this.hasSub && !this.maximised && !this.single ? "sub" : "main";
  }

  setStream(stream) {
    if (this.player) this.player.setStream(stream);
  }

  setMaximised(on) {
    this.maximised = on;
    this.el.classList.toggle("maximised", on);
    this.setStream(this.wantedStream());
    this.renderTools();
  }

  renderTools() {
    const camera = this.camera;
    if (!camera) return;
    const tools = [];
    if (camera.ptz_driver && session.may("ptz") && session.has("ptz")) {
      tools.push(h("button", { type: "button", class: ["tool", this.ptzOn && "on"], title: t("wall.ptz"), text: "PTZ", dataset: { tool: "ptz" },
        onclick: (e) => { e.stopPropagation(); this.togglePtz(); } }));
    }
    if (session.may("playback") && session.has("playback")) {
      tools.push(h("a", { class: "tool", href: `#/playback/${encodeURIComponent(camera.id)}`, title: t("wall.playback"), text: "◀◀", dataset: { tool: "playback" } }));
    }
    if (session.has("masks")) {
      tools.push(h("button", { type: "button", class: "tool", title: t("wall.reportMask"), text: "⚠", dataset: { tool: "mask-error" },
        onclick: (e) => { e.stopPropagation(); reportMaskError(camera); } }));
    }
    tools.push(h("button", { type: "button", class: "tool", title: t(this.maximised ? "wall.restore" : "wall.maximise"), text: this.maximised ? "▭" : "▣", dataset: { tool: "maximise" },
      onclick: (e) => { e.stopPropagation(); this.handlers.onMaximise && this.handlers.onMaximise(this); } }));
    if (this.handlers.onClear) {
      tools.push(h("button", { type: "button", class: "tool", title: t("wall.clearTile"), text: "✕", dataset: { tool: "clear" },
        onclick: (e) => { e.stopPropagation(); this.handlers.onClear(this); } }));
    }
    clear(this.tools, tools);
  }

  async togglePtz() {
    if (this.ptz) { this.ptz.destroy(); this.ptz = null; this.ptzOn = false; this.renderTools(); return; }
    const { ptzPanel } = await import("./ptz.js");
    this.ptz = ptzPanel(this.camera, this.extra);
    this.ptzOn = true;
    this.renderTools();
  }

  showState(state) {
    this.el.classList.toggle("live", state.kind === "live");
    this.el.classList.toggle("offline", state.kind === "offline");
    this.el.classList.toggle("refused", state.kind === "refused");
    let text = "";
    let big = "";
    if (state.kind === "live") text = t("player.live");
    else if (state.kind === "connecting") { text = t("player.connecting"); }
    else if (state.kind === "offline") {
      let since = state.since;
      if (this.camera?.status && this.camera.status !== "online" && this.camera.status_since) since = Math.min(since, Date.parse(this.camera.status_since));
      text = big = t("player.offlineSince", { time: fmt(since, "datetime") });
    } else if (state.kind === "refused") text = big = t("player.refused", { reason: state.reason });
    this.stateText.textContent = text;
    clear(this.overlay, big ? h("span", { class: "tile-alert", role: "status", text: big }) : null);
  }

  release() {
    if (this.ptz) { this.ptz.destroy(); this.ptz = null; this.ptzOn = false; }
    if (this.player) { this.player.stop(); this.player = null; }
    this.clock.textContent = "";
    this.hasSub = false;
  }

  destroy() {
    clearInterval(this.clockTimer);
    this.release();
    this.el.remove();
  }
}
