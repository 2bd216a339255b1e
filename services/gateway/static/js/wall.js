// The video wall: layouts of 1, 4, 9 or 16 tiles per screen, a second-screen window that follows
// this one (BroadcastChannel), cameras dragged from the tree, saved personal and shared layouts.
import { api, del, enc } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { session } from "./session.js";
import { listCameras, cachedCamera } from "./cameras.js";
import { cameraTree, CAMERA_MIME } from "./tree.js";
import { Tile } from "./tile.js";
import { toast, errorLine, validate } from "./ui.js";

const GRIDS = [1, 4, 9, 16];
const storeKey = () => `csu.wall.${session.me.username}`;
const channelName = () => `csu-wall-${session.me.username}`;

function emptyScreen(grid = 4) { return { grid, tiles: Array(grid).fill(null) }; }

function loadState(cameras = []) {
  try {
    const state = JSON.parse(localStorage.getItem(storeKey()));
    if (state && Array.isArray(state.screens) && state.screens.length === 2) return state;
  } catch { /* start afresh */ }
  return { screens: [firstScreen(cameras), emptyScreen(4)], layoutId: null };
}

// A wall never arranged before (no saved state for this user) opens on the first cameras the user
// may see, in service, rather than on empty tiles: the first thing an operator sees is video.
function firstScreen(cameras) {
  const ids = cameras.filter((c) => !c.state || c.state === "in_service").slice(0, 4).map((c) => c.id);
  return fit({ tiles: ids }, 4);
}

function fit(screen, grid) {
  const tiles = (screen.tiles || []).slice(0, grid);
  while (tiles.length < grid) tiles.push(null);
  return { grid, tiles };
}

// A grid of tiles showing one screen's cameras.
class Grid {
  constructor(el, { editable, onChange }) {
    this.el = el;
    this.tiles = [];
    this.editable = editable;
    this.onChange = onChange;
    this.selected = 0;
    this.maxTile = null;
  }

  render(screen) {
    const grid = screen.grid;
    if (this.tiles.length !== grid) {
      for (const tile of this.tiles.slice(grid)) tile.destroy();
      this.tiles = this.tiles.slice(0, grid);
      for (let i = this.tiles.length; i < grid; i++) {
        this.tiles.push(new Tile(i, {
          canEdit: this.editable,
          onSelect: (tile) => this.select(tile.index),
          onMaximise: (tile) => this.toggleMax(tile),
          onDropCamera: (tile, id) => this.onChange({ type: "set", index: tile.index, camera: id }),
          onDropTile: (tile, from) => this.onChange({ type: "swap", a: from, b: tile.index }),
          onClear: this.editable ? (tile) => this.onChange({ type: "set", index: tile.index, camera: null }) : undefined,
        }));
      }
      clear(this.el, this.tiles.map((tile) => tile.el));
      this.el.dataset.grid = String(grid);
      if (this.maxTile && this.maxTile.index >= grid) this.maxTile = null;
    }
    this.tiles.forEach((tile, i) => {
      tile.single = grid === 1;
      const id = screen.tiles[i];
      const camera = id ? (cachedCamera(id) || { id, name: id, groups: [], status: "unknown" }) : null;
      if ((tile.camera?.id || null) !== (id || null)) tile.setCamera(camera);
      else if (camera && tile.camera) tile.camera = Object.assign(tile.camera, camera);
    });
    this.select(Math.min(this.selected, grid - 1));
  }

  select(index) {
    this.selected = index;
    this.tiles.forEach((tile, i) => tile.el.classList.toggle("selected", i === index));
  }

  toggleMax(tile) {
    const on = this.maxTile !== tile;
    if (this.maxTile) this.maxTile.setMaximised(false);
    this.maxTile = on ? tile : null;
    this.el.classList.toggle("has-max", on);
    // Other tiles pause while one fills the screen: the CPU goes to the picture being watched.
    for (const other of this.tiles) {
      if (other === tile) continue;
      if (on) other.player?.stop(); else if (other.player) other.player.start();
    }
    if (on) tile.setMaximised(true);
  }

  destroy() {
    for (const tile of this.tiles) tile.destroy();
    this.tiles = [];
  }
}

export async function mount(root) {
  let cameras = await listCameras(true);
  let state = loadState(cameras);
  let layouts = [];
  let follower = { seen: 0 };
  const channel = new BroadcastChannel(channelName());
  const gridEl = h("div", { class: "wall-grid", id: "wall-grid" });
  const grid = new Grid(gridEl, { editable: true, onChange: (change) => apply(0, change) });
  const layoutSelect = h("select", { id: "layout-select", "aria-label": t("wall.layouts") });
  const targetSelect = h("select", { id: "layout-target", "aria-label": t("wall.loadOn") },
    h("option", { value: "0", text: t("wall.screen1") }), h("option", { value: "1", text: t("wall.screen2") }));
  const screen2Status = h("span", { class: "muted", id: "screen2-status" });
  const screen2Map = h("div", { class: "screen2-map", id: "screen2-map" });

  const save = () => {
    localStorage.setItem(storeKey(), JSON.stringify(state));
    channel.postMessage({ type: "state", screen: state.screens[1] });
  };

  function apply(screenIndex, change) {
    const screen = state.screens[screenIndex];
    if (change.type === "set") screen.tiles[change.index] = change.camera;
    if (change.type === "swap") [screen.tiles[change.a], screen.tiles[change.b]] = [screen.tiles[change.b], screen.tiles[change.a]];
    if (change.type === "grid") state.screens[screenIndex] = fit(screen, change.grid);
    if (change.type === "load") state.screens[screenIndex] = fit({ tiles: change.tiles }, change.grid);
    save();
    renderAll();
  }

  function place(camera) {
    const screen = state.screens[0];
    let index = screen.tiles.findIndex((id) => !id);
    if (index < 0) index = grid.selected;
    apply(0, { type: "set", index, camera: camera.id });
    grid.select(Math.min(index + 1, screen.grid - 1));
  }

  function renderScreen2Map() {
    const screen = state.screens[1];
    clear(screen2Map, screen.tiles.map((id, index) => {
      const cell = h("div", { class: ["map-cell", id && "filled"], dataset: { index: String(index) }, title: id || t("wall.dropHere") },
        h("span", { text: id ? (cachedCamera(id)?.name || id) : "·" }),
        id ? h("button", { type: "button", class: "link", text: "✕", title: t("wall.clearTile"), onclick: () => apply(1, { type: "set", index, camera: null }) }) : null);
      cell.addEventListener("dragover", (e) => { if (e.dataTransfer.types.includes(CAMERA_MIME)) e.preventDefault(); });
      cell.addEventListener("drop", (e) => { e.preventDefault(); const id2 = e.dataTransfer.getData(CAMERA_MIME); if (id2) apply(1, { type: "set", index, camera: id2 }); });
      return cell;
    }));
    screen2Map.dataset.grid = String(screen.grid);
  }

  function renderLayouts() {
    const mine = layouts.filter((l) => l.mine);
    const shared = layouts.filter((l) => !l.mine);
    clear(layoutSelect, h("option", { value: "", text: t("wall.chooseLayout") }),
      mine.length ? h("optgroup", { label: t("wall.personal") }, mine.map((l) => h("option", { value: l.id, selected: l.id === state.layoutId, text: `${l.name}${l.shared ? ` (${t("wall.shared")})` : ""}` }))) : null,
      shared.length ? h("optgroup", { label: t("wall.sharedLayouts") }, shared.map((l) => h("option", { value: l.id, selected: l.id === state.layoutId, text: `${l.name} — ${l.owner}` }))) : null);
  }

  function renderAll() {
    grid.render(state.screens[0]);
    renderScreen2Map();
    for (const b of root.querySelectorAll("[data-grid-button]")) b.classList.toggle("on", Number(b.dataset.gridButton) === state.screens[Number(b.dataset.screen)].grid);
  }

  async function refreshLayouts() {
    try { layouts = await api("/api/v1/console/layouts"); } catch (err) { toast(err.message, "error"); layouts = []; }
    renderLayouts();
  }

  async function saveAs() {
    const canShare = ["supervisor", "manager"].includes(session.me.role);
    const result = await dialog(t("wall.saveAs"), (close) => {
      const name = h("input", { name: "name", required: true, maxLength: 80, id: "layout-name" });
      const shared = h("input", { type: "checkbox", name: "shared", id: "layout-shared" });
      const error = errorLine();
      const form = h("form", { class: "form", novalidate: true },
        h("label", { class: "field" }, h("span", { class: "field-label", text: t("wall.layoutName") }), name),
        canShare ? h("label", { class: "check" }, shared, t("wall.shareLayout")) : null,
        error,
        h("div", { class: "actions" }, h("button", { type: "button", text: t("common.cancel"), onclick: () => close(null) }),
          h("button", { type: "submit", class: "primary", text: t("common.save") })));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!validate(form, [[name, (v) => v.trim().length > 0 && v.trim().length <= 80, t("wall.layoutNameInvalid")]])) return;
        const screen = state.screens[Number(targetSelect.value)];
        try {
          const created = await api("/api/v1/console/layouts", { method: "POST", body: { name: name.value.trim(), shared: shared.checked, grid: screen.grid, tiles: screen.tiles } });
          close(created);
        } catch (err) { error.show(err.message); }
      });
      return form;
    });
    if (result) { state.layoutId = result.id; save(); await refreshLayouts(); toast(t("wall.saved", { name: result.name })); }
  }

  async function saveCurrent() {
    const layout = layouts.find((l) => l.id === layoutSelect.value);
    if (!layout || !layout.mine) { await saveAs(); return; }
    const screen = state.screens[Number(targetSelect.value)];
    try {
      await api(`/api/v1/console/layouts/${enc(layout.id)}`, { method: "PUT", body: { name: layout.name, shared: layout.shared, grid: screen.grid, tiles: screen.tiles } });
      toast(t("wall.saved", { name: layout.name }));
      await refreshLayouts();
    } catch (err) { toast(err.message, "error"); }
  }

  async function deleteLayout() {
    const layout = layouts.find((l) => l.id === layoutSelect.value);
    if (!layout) return;
    if (!layout.mine) { toast(t("wall.notYours", { owner: layout.owner }), "error"); return; }
    if (!confirm(t("wall.confirmDelete", { name: layout.name }))) return;
    try { await del(`/api/v1/console/layouts/${enc(layout.id)}`); state.layoutId = null; save(); await refreshLayouts(); } catch (err) { toast(err.message, "error"); }
  }

  layoutSelect.addEventListener("change", () => {
    const layout = layouts.find((l) => l.id === layoutSelect.value);
    if (!layout) return;
    state.layoutId = layout.id;
    apply(Number(targetSelect.value), { type: "load", grid: layout.grid, tiles: layout.tiles });
    if (layout.hidden) toast(t("wall.hiddenCameras", { count: layout.hidden }), "info");
  });

  const gridButtons = (screenIndex) => GRIDS.map((n) => h("button", {
    type: "button", class: "grid-button", text: String(n), title: t("wall.gridOf", { n }),
    dataset: { gridButton: String(n), screen: String(screenIndex) }, id: `grid-${screenIndex}-${n}`,
    onclick: () => apply(screenIndex, { type: "grid", grid: n }),
  }));

  channel.onmessage = (event) => {
    if (event.data?.type === "hello" || event.data?.type === "alive") {
      follower.seen = Date.now();
      screen2Status.textContent = t("wall.screen2Open");
      if (event.data.type === "hello") channel.postMessage({ type: "state", screen: state.screens[1] });
    }
  };
  const followerWatch = setInterval(() => {
    if (follower.seen && Date.now() - follower.seen > 12000) { follower.seen = 0; screen2Status.textContent = t("wall.screen2Closed"); }
  }, 3000);
  const cameraRefresh = setInterval(async () => {
    try { cameras = await listCameras(true); grid.render(state.screens[0]); } catch { /* next time */ }
  }, 15000);

  const tree = cameraTree(cameras, { onPick: place });
  clear(root, h("div", { class: "wall-screen" },
    h("aside", { class: "sidebar" },
      h("h2", { text: t("wall.cameras") }), tree,
      h("h2", { text: t("wall.screen2") }),
      h("div", { class: "toolbar small" }, gridButtons(1)),
      screen2Map,
      h("div", { class: "toolbar small" },
        h("button", { type: "button", id: "open-screen2", text: t("wall.openScreen2"), onclick: () => window.open("/#/screen2", `csu-screen2-${session.me.username}`, "popup,width=1280,height=800") }),
        screen2Status)),
    h("section", { class: "wall-area" },
      h("div", { class: "toolbar" },
        h("span", { class: "label", text: t("wall.grid") }), gridButtons(0),
        h("span", { class: "sep" }),
        layoutSelect, h("span", { class: "label", text: t("wall.loadOn") }), targetSelect,
        h("button", { type: "button", id: "layout-save", text: t("common.save"), onclick: saveCurrent }),
        h("button", { type: "button", id: "layout-save-as", text: t("wall.saveAs"), onclick: saveAs }),
        h("button", { type: "button", id: "layout-delete", text: t("common.delete"), onclick: deleteLayout })),
      gridEl)));
  renderAll();
  refreshLayouts();
  save();
  return () => {
    clearInterval(followerWatch);
    clearInterval(cameraRefresh);
    channel.close();
    grid.destroy();
  };
}

// The second screen: shows what the first window assigns to it, nothing to edit.
export async function mountFollower(root) {
  await listCameras(true);
  const channel = new BroadcastChannel(channelName());
  const gridEl = h("div", { class: "wall-grid follower-grid", id: "wall-grid" });
  const grid = new Grid(gridEl, { editable: false, onChange: () => {} });
  const note = h("p", { class: "follower-note muted", text: t("wall.followerWaiting") });
  let screen = loadState().screens[1];
  clear(root, h("div", { class: "follower-screen" }, note, gridEl));
  grid.render(screen);
  channel.onmessage = (event) => {
    if (event.data?.type === "state") { screen = event.data.screen; note.hidden = true; grid.render(screen); }
  };
  channel.postMessage({ type: "hello" });
  const alive = setInterval(() => channel.postMessage({ type: "alive" }), 5000);
  return () => { clearInterval(alive); channel.close(); grid.destroy(); };
}
