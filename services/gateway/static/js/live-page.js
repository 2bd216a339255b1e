// The one-camera live page (/api/v1/cameras/{id}/live): the console's player, full window.
import { LivePlayer } from "./player.js";
import { t, translatePage } from "./i18n.js";
import { fmt } from "./time.js";

translatePage();
const cameraId = JSON.parse(document.body.dataset.camera);
const stateEl = document.getElementById("state");
const player = new LivePlayer(document.getElementById("video"), cameraId, {
  onState(state) {
    const down = state.kind === "offline" || state.kind === "refused";
    stateEl.classList.toggle("down", down);
    if (state.kind === "live") stateEl.textContent = t("player.live");
    else if (state.kind === "offline") stateEl.textContent = t("player.offlineSince", { time: fmt(state.since, "datetime") });
    else if (state.kind === "refused") stateEl.textContent = t("player.refused", { reason: state.reason });
    else stateEl.textContent = t("player.connecting");
  },
});
player.start();
