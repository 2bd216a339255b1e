// Who is in the viewing room now (shown with the shift handover): agents record the start and end
// of their own shift, and check declared visitors in and out at the door. The API refuses a visitor
// whose declaration the prefecture has not validated; its message is shown as it comes.
import { api, enc } from "./api.js";
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { session } from "./session.js";
import { section, table, errorLine, toast } from "./ui.js";

export function roomPanel() {
  const error = errorLine();
  const list = h("div", { id: "room-now" });
  const declaration = h("input", { type: "number", min: "1", id: "room-declaration", "aria-label": t("room.declaration"), placeholder: t("room.declaration") });

  async function act(path, body, done) {
    try { await api(path, { method: "POST", body }); error.show(""); toast(done); await load(); } catch (err) { error.show(err.message); }
  }

  async function load() {
    let rows;
    try { rows = await api("/api/v1/room/now"); } catch (err) { error.show(err.message); return; }
    const mine = rows.some((p) => p.kind === "agent" && p.username === session.me?.username);
    clear(list,
      h("div", { class: "toolbar no-print" },
        h("button", { type: "button", id: mine ? "room-shift-end" : "room-shift-start", text: t(mine ? "room.endShift" : "room.startShift"),
          onclick: () => act(`/api/v1/room/shift/${mine ? "end" : "start"}`, undefined, t(mine ? "room.shiftEnded" : "room.shiftStarted")) }),
        declaration,
        h("button", { type: "button", id: "room-check-in", text: t("room.checkIn"),
          onclick: () => act("/api/v1/room/visitors", { declaration_id: Number(declaration.value) }, t("room.checkedIn")) })),
      table([
        { label: t("room.who"), render: (p) => [p.name, p.organisation ? h("small", { class: "muted block", text: p.organisation }) : null] },
        { label: t("room.kind"), render: (p) => t(`room.kind.${p.kind}`) },
        { label: t("room.declarationCol"), key: "declaration" },
        { label: t("room.since"), render: (p) => fmt(p.entered, "minute") },
        { label: "", render: (p) => (p.kind === "visitor" ? h("button", { type: "button", class: "room-check-out", text: t("room.checkOut"),
          onclick: () => act(`/api/v1/room/presences/${enc(p.id)}/exit`, undefined, t("room.checkedOut")) }) : null) },
      ], rows, { empty: t("room.empty") }));
  }

  const panel = section(t("room.title"), error, list);
  load();
  return panel;
}
