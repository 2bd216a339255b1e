// The camera tree, by group: filter, status at a glance, drag a camera onto a tile (or click it).
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { groupsOf } from "./cameras.js";

export const CAMERA_MIME = "application/x-csu-camera";

export function cameraTree(cameras, { onPick, draggable = true, selectable = false, selected = new Set(), onSelect } = {}) {
  const filter = h("input", { type: "search", class: "tree-filter", placeholder: t("tree.filter"), "aria-label": t("tree.filter") });
  const body = h("div", { class: "tree-body" });
  const render = () => {
    const needle = filter.value.trim().toLowerCase();
    const shown = cameras.filter((c) => !needle || c.name.toLowerCase().includes(needle) || c.id.toLowerCase().includes(needle));
    clear(body, groupsOf(shown).map(([group, members]) => h("details", { class: "tree-group", open: true },
      h("summary", {}, group, h("span", { class: "count", text: ` (${members.length})` })),
      h("ul", {}, members.map((camera) => {
        const item = h("li", {
          class: ["tree-camera", `status-${camera.status}`], draggable, tabIndex: 0,
          dataset: { camera: camera.id }, title: `${camera.name} — ${t(`status.${camera.status}`)}${camera.status_reason ? ` (${camera.status_reason})` : ""}`,
          ondragstart: (event) => { event.dataTransfer.setData(CAMERA_MIME, camera.id); event.dataTransfer.setData("text/plain", camera.id); event.dataTransfer.effectAllowed = "copy"; },
          onclick: () => onPick && onPick(camera),
          onkeydown: (event) => { if (event.key === "Enter" && onPick) onPick(camera); },
        },
        selectable ? h("input", { type: "checkbox", checked: selected.has(camera.id), onclick: (e) => e.stopPropagation(), onchange: (e) => onSelect && onSelect(camera, e.target.checked) }) : null,
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "name", text: camera.name }),
        camera.ptz_driver ? h("span", { class: "badge", text: "PTZ" }) : null);
        return item;
      })))));
    if (!shown.length) body.append(h("p", { class: "muted", text: t("tree.empty") }));
  };
  filter.addEventListener("input", render);
  render();
  return h("div", { class: "tree" }, filter, body);
}
