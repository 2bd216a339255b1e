// PTZ on a tile: drag on the picture to move (speed grows with the drag), wheel or hold +/- to
// zoom, presets and guard tours, and who holds the camera (priority, time left). A refused
// command shows the server's answer, which names the holder.
import { api, enc } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { session } from "./session.js";
import { errorLine, validate } from "./ui.js";

const SEND_EVERY_MS = 200;
const POLL_MS = 1000;

export function ptzPanel(camera, container) {
  const base = `/api/v1/cameras/${enc(camera.id)}/ptz`;
  let state = null;
  let destroyed = false;
  const info = h("div", { class: "ptz-info", role: "status" });
  const message = h("div", { class: "ptz-message", role: "alert" });
  const presetSelect = h("select", { class: "ptz-presets", "aria-label": t("ptz.presets") });
  const tourSelect = h("select", { class: "ptz-tours", "aria-label": t("ptz.tours") });
  const pad = h("div", { class: "ptz-pad", title: t("ptz.dragHint") });
  const arrow = h("div", { class: "ptz-arrow", hidden: true });
  pad.append(arrow);

  function say(text, kind = "warn") { message.textContent = text || ""; message.className = `ptz-message ${kind}`; }

  async function send(path, body, method = "POST") {
    try {
      state = await api(`${base}${path}`, { method, body });
      say("");
      render();
      return true;
    } catch (err) {
      say(err.message);
      return false;
    }
  }

  const move = (body) => send("/move", body);

  function render() {
    if (!state) return;
    const s = state.session;
    let text;
    if (!s) text = t("ptz.free");
    else {
      const left = s.time_left_s === null ? t("ptz.untilStopped") : t("ptz.timeLeft", { s: Math.ceil(s.time_left_s) });
      const who = s.holder === state.you ? t("ptz.you") : s.holder;
      text = s.tour ? t("ptz.tourRunning", { tour: s.tour, who, priority: s.priority })
        : t(s.reserved ? "ptz.reservedBy" : "ptz.heldBy", { who, priority: s.priority, left });
    }
    const pos = state.position ? ` · P ${state.position.pan.toFixed(2)} T ${state.position.tilt.toFixed(2)} Z ${state.position.zoom.toFixed(2)}` : "";
    info.textContent = `${text} · ${t("ptz.yourPriority", { p: state.your_priority })}${pos}${state.moving ? ` · ${t("ptz.moving")}` : ""}`;
    info.dataset.holder = s ? s.holder : "";
    if (state.driver_problem) say(state.driver_problem);
    const keepPreset = presetSelect.value;
    clear(presetSelect, h("option", { value: "", text: t("ptz.choosePreset") }), state.presets.map((p) => h("option", { value: p.name, text: p.name, selected: p.name === keepPreset })));
    const keepTour = tourSelect.value;
    clear(tourSelect, h("option", { value: "", text: t("ptz.chooseTour") }), state.tours.map((x) => h("option", { value: x.name, text: x.name, selected: x.name === keepTour })));
  }

  async function poll() {
    if (destroyed) return;
    try { state = await api(base); render(); } catch (err) { say(err.message); }
  }

  // Drag to move: velocity from the drag vector, sent at most every SEND_EVERY_MS.
  let drag = null;
  pad.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    pad.setPointerCapture(event.pointerId);
    const rect = pad.getBoundingClientRect();
    drag = { x: event.clientX, y: event.clientY, w: rect.width, h: rect.height, sent: 0, last: null, timer: null, vector: { pan: 0, tilt: 0 } };
    arrow.hidden = false;
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = (event.clientX - drag.x) / (drag.w / 2);
    const dy = (event.clientY - drag.y) / (drag.h / 2);
    const clamp = (v) => Math.max(-1, Math.min(1, Math.round(v * 20) / 20));
    drag.vector = { pan: clamp(dx), tilt: clamp(-dy) };
    const len = Math.hypot(event.clientX - drag.x, event.clientY - drag.y);
    arrow.style.left = `${drag.x - pad.getBoundingClientRect().left}px`;
    arrow.style.top = `${drag.y - pad.getBoundingClientRect().top}px`;
    arrow.style.width = `${len}px`;
    arrow.style.transform = `rotate(${Math.atan2(event.clientY - drag.y, event.clientX - drag.x)}rad)`;
    flush();
  });
  function flush() {
    if (!drag) return;
    const now = Date.now();
    const v = drag.vector;
    if (drag.last && Math.abs(drag.last.pan - v.pan) < 0.05 && Math.abs(drag.last.tilt - v.tilt) < 0.05) return;
    if (now - drag.sent < SEND_EVERY_MS) { clearTimeout(drag.timer); drag.timer = setTimeout(flush, SEND_EVERY_MS); return; }
    drag.sent = now;
    drag.last = { ...v };
    move({ kind: "continuous", pan: v.pan, tilt: v.tilt, zoom: 0 });
  }
  const endDrag = () => {
    if (!drag) return;
    clearTimeout(drag.timer);
    const moved = drag.last !== null;
    drag = null;
    arrow.hidden = true;
    if (moved) move({ kind: "stop" });
  };
  pad.addEventListener("pointerup", endDrag);
  pad.addEventListener("pointercancel", endDrag);

  // Zoom: wheel, or hold the buttons.
  let wheelStop = null;
  pad.addEventListener("wheel", (event) => {
    event.preventDefault();
    const speed = event.deltaY < 0 ? 0.6 : -0.6;
    if (!wheelStop) move({ kind: "continuous", pan: 0, tilt: 0, zoom: speed });
    clearTimeout(wheelStop);
    wheelStop = setTimeout(() => { wheelStop = null; move({ kind: "stop" }); }, 350);
  }, { passive: false });
  const holdButton = (label, zoom, name) => {
    const b = h("button", { type: "button", class: "ptz-btn", text: label, title: t(name), dataset: { ptz: name } });
    b.addEventListener("pointerdown", () => move({ kind: "continuous", pan: 0, tilt: 0, zoom }));
    for (const ev of ["pointerup", "pointerleave"]) b.addEventListener(ev, (e) => { if (e.buttons === 0 && ev === "pointerleave") return; move({ kind: "stop" }); });
    return b;
  };

  async function savePreset() {
    const name = await dialog(t("ptz.savePreset"), (close) => {
      const input = h("input", { required: true, maxLength: 64, pattern: "[A-Za-z0-9 _-]{1,64}", id: "preset-name" });
      const form = h("form", { class: "form", novalidate: true },
        h("label", { class: "field" }, h("span", { class: "field-label", text: t("ptz.presetName") }), input),
        h("div", { class: "actions" }, h("button", { type: "button", text: t("common.cancel"), onclick: () => close(null) }), h("button", { type: "submit", class: "primary", text: t("common.save") })));
      form.addEventListener("submit", (e) => { e.preventDefault(); if (validate(form, [[input, (v) => /^[A-Za-z0-9 _-]{1,64}$/.test(v.trim()), t("ptz.presetNameInvalid")]])) close(input.value.trim()); });
      return form;
    });
    if (name) send(`/presets/${enc(name)}`, {}, "PUT");
  }

  async function editTour() {
    if (!state || state.presets.length < 1) { say(t("ptz.tourNeedsPresets")); return; }
    const tour = await dialog(t("ptz.newTour"), (close) => {
      const name = h("input", { required: true, maxLength: 64, id: "tour-name" });
      const dwell = h("input", { type: "number", min: 1, max: 3600, value: 10, required: true, id: "tour-dwell" });
      const boxes = state.presets.map((p) => h("label", { class: "check" }, h("input", { type: "checkbox", value: p.name, checked: true }), p.name));
      const error = errorLine();
      const form = h("form", { class: "form", novalidate: true },
        h("label", { class: "field" }, h("span", { class: "field-label", text: t("ptz.tourName") }), name),
        h("label", { class: "field" }, h("span", { class: "field-label", text: t("ptz.dwell") }), dwell),
        h("fieldset", {}, h("legend", { text: t("ptz.tourPresets") }), boxes), error,
        h("div", { class: "actions" }, h("button", { type: "button", text: t("common.cancel"), onclick: () => close(null) }), h("button", { type: "submit", class: "primary", text: t("common.save") })));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const chosen = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
        if (!validate(form, [[name, (v) => /^[A-Za-z0-9 _-]{1,64}$/.test(v.trim()), t("ptz.presetNameInvalid")], [dwell, (v) => Number(v) >= 1 && Number(v) <= 3600, t("ptz.dwellInvalid")]])) return;
        if (!chosen.length) { error.show(t("ptz.tourNeedsPresets")); return; }
        close({ name: name.value.trim(), steps: chosen.map((preset) => ({ preset, dwell_s: Number(dwell.value) })) });
      });
      return form;
    });
    if (tour) send(`/tours/${enc(tour.name)}`, { steps: tour.steps }, "PUT");
  }

  const controls = h("div", { class: "ptz-controls" },
    holdButton("−", -0.6, "ptz.zoomOut"), holdButton("+", 0.6, "ptz.zoomIn"),
    h("button", { type: "button", class: "ptz-btn", text: "⌂", title: t("ptz.home"), onclick: () => move({ kind: "home" }) }),
    presetSelect,
    h("button", { type: "button", class: "ptz-btn", text: t("ptz.go"), dataset: { ptz: "goto" }, onclick: () => presetSelect.value && move({ kind: "preset", preset: presetSelect.value }) }),
    h("button", { type: "button", class: "ptz-btn", text: "＋★", title: t("ptz.savePreset"), onclick: savePreset }),
    h("button", { type: "button", class: "ptz-btn", text: "✕★", title: t("ptz.deletePreset"), onclick: () => presetSelect.value && confirm(t("ptz.confirmDeletePreset", { name: presetSelect.value })) && send(`/presets/${enc(presetSelect.value)}`, undefined, "DELETE") }),
    tourSelect,
    h("button", { type: "button", class: "ptz-btn", text: "▶", title: t("ptz.startTour"), onclick: () => tourSelect.value && send(`/tours/${enc(tourSelect.value)}/start`) }),
    h("button", { type: "button", class: "ptz-btn", text: "■", title: t("ptz.stopTour"), onclick: () => send("/tours/stop") }),
    h("button", { type: "button", class: "ptz-btn", text: "＋⟳", title: t("ptz.newTour"), onclick: editTour }),
    session.me.role === "supervisor" ? h("button", { type: "button", class: "ptz-btn", text: t("ptz.reserve"), onclick: () => send("/reserve", { duration_s: 900 }) }) : null,
    h("button", { type: "button", class: "ptz-btn", text: t("ptz.release"), onclick: () => send("/release") }));
  const panel = h("div", { class: "ptz-panel" }, pad, h("div", { class: "ptz-bottom" }, info, message, controls));
  for (const el of [controls, info, message]) el.addEventListener("dblclick", (e) => e.stopPropagation());
  container.append(panel);
  poll();
  const timer = setInterval(poll, POLL_MS);
  return {
    destroy() { destroyed = true; clearInterval(timer); clearTimeout(wheelStop); panel.remove(); },
  };
}
