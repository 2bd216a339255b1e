// Pop-ups for intercom calls and alarms (visual cues only, never a sound), from the gateway's
// notifications WebSocket; the alarm badge in the top bar counts the open alarms.
import { api, enc, qs } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { LivePlayer } from "./player.js";
import { errorLine, validate, toast } from "./ui.js";

let ws = null;
let stopped = true;
let retry = null;
let failures = 0;
let me = null;
const popups = new Map();

export function startNotifications(user) {
  me = user;
  if (!me.features.includes("notifications")) return;
  if (!me.actions.includes("live") && !me.actions.includes("camera_health")) return;
  stopped = false;
  connect();
  refreshBadge();
}

export function stopNotifications() {
  stopped = true;
  clearTimeout(retry);
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
}

function connect() {
  if (stopped) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/api/v1/notifications`);
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    failures = 0;
    handle(message);
  };
  ws.onclose = (event) => {
    ws = null;
    if (stopped) return;
    if (event.code === 4401) { window.dispatchEvent(new CustomEvent("csu:unauthenticated")); return; }
    if (event.code === 4403) return;
    failures += 1;
    retry = setTimeout(() => { connect(); refreshBadge(); }, Math.min(30000, 1000 * 2 ** Math.min(failures, 5)));
  };
}

async function refreshBadge() {
  const badge = document.getElementById("alarm-badge");
  if (!me.actions.includes("camera_health") || !me.features.includes("alarms")) return;
  try {
    const open = await api(`/api/v1/alarms${qs({ state: "open", limit: 1000 })}`);
    badge.hidden = open.length === 0;
    clear(badge, h("a", { href: "#/alarms", id: "alarm-count", text: t("alarms.badge", { count: open.length }) }));
    badge.classList.toggle("pulse", open.length > 0);
  } catch { /* the badge waits for the next event */ }
}

function handle(message) {
  if (message.type === "bollard.call") showCall(message);
  else if (message.type === "alarm.raised") { showAlarm(message); refreshBadge(); }
  else if (message.type === "alarm.acknowledged") { closePopup(`alarm-${message.alarm_id}`); refreshBadge(); }
  window.dispatchEvent(new CustomEvent("csu:notification", { detail: message }));
}

function closePopup(key) {
  const popup = popups.get(key);
  if (!popup) return;
  popups.delete(key);
  if (popup.player) popup.player.stop();
  popup.el.remove();
}

function popup(key, kind, title, ...body) {
  closePopup(key);
  const el = h("div", { class: ["popup", kind, "pulse"], role: "alertdialog", dataset: { key } },
    h("div", { class: "popup-head" }, h("strong", { text: title }),
      h("button", { type: "button", class: "link", text: "✕", title: t("common.close"), onclick: () => closePopup(key) })),
    ...body);
  const entry = { el };
  popups.set(key, entry);
  document.getElementById("popups").prepend(el);
  // The pulse stops after a while; the card stays until handled or dismissed.
  setTimeout(() => el.classList.remove("pulse"), 20000);
  return entry;
}

function askReason(title) {
  return dialog(title, (close) => {
    const reason = h("input", { required: true, minLength: 3, maxLength: 500, id: "bollard-reason" });
    const plate = h("input", { maxLength: 16, id: "bollard-plate", pattern: "[A-Za-z0-9][A-Za-z0-9 -]{0,14}[A-Za-z0-9]" });
    const form = h("form", { class: "form", novalidate: true },
      h("label", { class: "field" }, h("span", { class: "field-label", text: t("bollards.reason") }), reason),
      h("label", { class: "field" }, h("span", { class: "field-label", text: t("bollards.plate") }), plate),
      h("div", { class: "actions" }, h("button", { type: "button", text: t("common.cancel"), onclick: () => close(null) }), h("button", { type: "submit", class: "primary", text: t("common.confirm") })));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!validate(form, [[reason, (v) => v.trim().length >= 3, t("bollards.reasonInvalid")], [plate, (v) => !v || /^[A-Za-z0-9][A-Za-z0-9 -]{0,14}[A-Za-z0-9]$/.test(v.trim()), t("bollards.plateInvalid")]])) return;
      close({ reason: reason.value.trim(), plate: plate.value.trim() || null });
    });
    return form;
  });
}

export async function commandBollard(bollardId, command) {
  const answer = await askReason(t(command === "open" ? "bollards.open" : "bollards.close"));
  if (!answer) return null;
  try {
    const result = await api(`/api/v1/bollards/${enc(bollardId)}/${command}`, { method: "POST", body: answer });
    toast(t("bollards.done", { outcome: result.outcome, state: t(`bollardstate.${result.state}`) }), result.outcome === "ok" ? "info" : "error");
    return result;
  } catch (err) { toast(err.message, "error"); return null; }
}

function showCall(m) {
  const video = h("video", { class: "popup-video", muted: true, autoplay: true, playsInline: true });
  const error = errorLine();
  const key = `call-${m.call_id}`;
  const entry = popup(key, "call", t("notify.call", { name: m.bollard_name }),
    h("p", { text: `${m.location || ""} · ${fmt(m.time, "time")}` }),
    me.actions.includes("live") ? video : null,
    error,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", text: t("notify.answer"), onclick: async () => {
        try {
          await api(`/api/v1/bollards/calls/${enc(m.call_id)}/answer`, { method: "POST", body: {} });
          entry.el.classList.remove("pulse");
          error.show("");
          entry.el.querySelector("p").textContent += ` — ${t("notify.taken")}`;
        } catch (err) { error.show(err.message); }
      } }),
      h("button", { type: "button", text: t("bollards.open"), onclick: () => commandBollard(m.bollard_id, "open") }),
      h("button", { type: "button", text: t("bollards.close"), onclick: () => commandBollard(m.bollard_id, "close") }),
      h("a", { href: `#/wall`, text: t("notify.toWall") })));
  if (me.actions.includes("live") && m.camera_id) {
    entry.player = new LivePlayer(video, m.camera_id, { stream: "sub" });
    entry.player.start();
  }
}

function showAlarm(m) {
  const error = errorLine();
  const key = `alarm-${m.alarm_id}`;
  popup(key, "alarm", t("notify.alarm", { kind: m.kind }),
    h("p", { text: m.message }),
    h("p", { class: "muted", text: `${m.camera_id ? `${m.camera_id} · ` : ""}${t("alarms.count", { count: m.count || 1 })}` }),
    error,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", text: t("alarms.ack"), onclick: async () => {
        try { await api(`/api/v1/alarms/${enc(m.alarm_id)}/ack`, { method: "POST", body: { comment: "" } }); closePopup(key); refreshBadge(); } catch (err) { error.show(err.message); }
      } }),
      h("a", { href: "#/alarms", text: t("notify.toAlarms") })));
}
