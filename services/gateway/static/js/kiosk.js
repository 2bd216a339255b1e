// The viewing-room kiosk: shows the citizen's redacted clip and nothing else, with the request
// number and the time burned into every picture, and offers nothing to keep. The page holds no
// <video>, no link and no blob: URL: the clip is fetched by POST (the API serves it to this
// kiosk session only), fed to a Media Source living in a worker, decoded by a video element that
// is never attached to the page, and painted frame by frame onto a canvas.
//
// window.kioskState tells tests (and a supervisor's console) what happens: frames painted, the
// request number, whether the clip ended, and the last error in words.
import { t, translatePage } from "./i18n.js";
import { fmt } from "./time.js";

const $ = (id) => document.getElementById(id);
const canvas = $("screen");
const paint = canvas.getContext("2d");
const state = { frames: 0, requestNumber: "", ended: false, error: "", expires: "", bytes: 0, readyState: 0, status: "" };
window.kioskState = state;
let video = null;
let worker = null;
let lastTime = -1;

for (const type of ["contextmenu", "dragstart", "copy", "cut", "selectstart"]) document.addEventListener(type, (e) => e.preventDefault());
document.addEventListener("keydown", (e) => { if ((e.ctrlKey || e.metaKey) && ["s", "p", "u"].includes(e.key.toLowerCase())) e.preventDefault(); });

async function json(path, init = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(typeof body.detail === "string" ? body.detail : t("error.http", { status: response.status })), { status: response.status });
  return body;
}

function showPairing(message = "") {
  $("kiosk-viewer").hidden = true;
  $("kiosk-pair").hidden = false;
  $("kiosk-error").textContent = message;
  $("code").value = "";
  $("code").focus();
}

function say(text) { $("kiosk-status").textContent = text; state.status = text; }

function fail(message) {
  state.error = message || t("error.unknown");
  say(state.error);
}

function draw() {
  requestAnimationFrame(draw);
  state.readyState = video ? video.readyState : 0;
  // A clip whose timestamps do not start at 0 would wait forever at 0: start where its data is.
  if (video && video.buffered.length && video.currentTime < video.buffered.start(0)) video.currentTime = video.buffered.start(0);
  if (!video || video.readyState < 2 || !video.videoWidth) return;
  if (video.currentTime === lastTime && state.frames > 0) return;
  lastTime = video.currentTime;
  if (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight) {
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
  }
  paint.drawImage(video, 0, 0, canvas.width, canvas.height);
  // The watermark is part of the picture: a photo of the screen names the request and the time.
  const size = Math.max(14, Math.round(canvas.height / 24));
  paint.font = `600 ${size}px ui-monospace, Consolas, monospace`;
  paint.textAlign = "right";
  paint.lineWidth = 3;
  paint.strokeStyle = "rgba(0, 0, 0, .7)";
  paint.fillStyle = "rgba(255, 255, 255, .75)";
  const text = `${state.requestNumber} · ${fmt(Date.now(), "datetime")}`;
  paint.strokeText(text, canvas.width - 12, canvas.height - 12);
  paint.fillText(text, canvas.width - 12, canvas.height - 12);
  state.frames += 1;
}
requestAnimationFrame(draw);

function stop() {
  if (worker) { worker.terminate(); worker = null; }
  if (video) { video.pause(); video.srcObject = null; video.removeAttribute("src"); video = null; }
}

function play(clip) {
  stop();
  state.ended = false;
  state.error = "";
  lastTime = -1;
  say(t("kiosk.loading"));
  video = document.createElement("video"); // never attached to the page
  video.muted = true;
  video.playsInline = true;
  video.addEventListener("playing", () => say(""));
  video.addEventListener("ended", () => { state.ended = true; say(t("kiosk.clipEnded")); });
  video.addEventListener("error", () => fail(t("kiosk.cannotPlay")));
  if (typeof MediaSource !== "undefined" && MediaSource.canConstructInDedicatedWorker === true) {
    worker = new Worker("/static/js/kiosk-worker.js", { type: "module" });
    const mine = video;
    worker.onmessage = (event) => {
      const m = event.data;
      if (m.type === "handle" && mine === video) { video.srcObject = m.handle; video.play().catch(() => {}); }
      else if (m.type === "progress") state.bytes = m.bytes;
      else if (m.type === "error") onError(m.status, m.message);
    };
    worker.postMessage({ clip });
  } else {
    playHere(clip, video);
  }
}

async function playHere(clip, mine) {
  // Browsers without Media Source in workers (Firefox): the same, on this thread. The object URL
  // goes to the detached video only, and is revoked as soon as the media is attached.
  try {
    const response = await fetch(`/api/v1/kiosk/clips/${clip}`, { method: "POST", credentials: "same-origin", headers: { "X-CSU-Kiosk": "1" } });
    if (!response.ok) { const body = await response.json().catch(() => ({})); onError(response.status, body.detail); return; }
    const media = new MediaSource();
    const url = URL.createObjectURL(media);
    mine.src = url;
    await new Promise((resolve) => media.addEventListener("sourceopen", resolve, { once: true }));
    URL.revokeObjectURL(url);
    const buffer = media.addSourceBuffer(`video/mp4; codecs="${response.headers.get("X-Codec")}"`);
    const reader = response.body.getReader();
    mine.play().catch(() => {});
    for (;;) {
      const { done, value } = await reader.read();
      if (done || mine !== video) break;
      buffer.appendBuffer(value);
      await new Promise((resolve) => buffer.addEventListener("updateend", resolve, { once: true }));
    }
    if (mine === video) media.endOfStream();
  } catch (err) { fail(err.message); }
}

function onError(status, message) {
  if (status === 401) { end(message || t("kiosk.expired")); return; }
  fail(message);
}

async function end(message) {
  stop();
  state.requestNumber = "";
  try { await fetch("/api/v1/kiosk/end", { method: "POST", credentials: "same-origin" }); } catch { /* the cookie expires anyway */ }
  paint.clearRect(0, 0, canvas.width, canvas.height);
  showPairing(message || "");
}

function showViewer(info, clips) {
  state.requestNumber = info.request_number;
  state.expires = info.expires;
  $("kiosk-pair").hidden = true;
  $("kiosk-viewer").hidden = false;
  $("kiosk-expiry").textContent = t("kiosk.until", { time: fmt(state.expires, "time") });
  $("kiosk-clip").replaceChildren(...Array.from({ length: Math.max(1, clips) }, (_, i) =>
    Object.assign(document.createElement("option"), { value: String(i), textContent: t("kiosk.clip", { n: i + 1 }) })));
  play(0);
}

// The server decides when the session ends (the kiosk's own clock may be off): ask it now and then.
setInterval(async () => {
  if (!state.requestNumber) return;
  $("kiosk-expiry").textContent = t("kiosk.until", { time: fmt(state.expires, "time") });
  try { await json("/api/v1/kiosk/session"); } catch (err) { if (err.status === 401) end(t("kiosk.expired")); }
}, 15000);

$("kiosk-pair").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = $("code").value.replace(/[^A-Za-z0-9]/g, "");
  if (code.length !== 10) { $("kiosk-error").textContent = t("kiosk.codeFormat"); return; }
  try {
    const paired = await json("/api/v1/kiosk/pair", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }) });
    showViewer(paired, paired.clips || 1);
  } catch (err) { $("kiosk-error").textContent = err.message; }
});
$("kiosk-play").addEventListener("click", () => video && video.play().catch(() => {}));
$("kiosk-pause").addEventListener("click", () => video && video.pause());
$("kiosk-restart").addEventListener("click", () => play(Number($("kiosk-clip").value)));
$("kiosk-clip").addEventListener("change", (e) => play(Number(e.target.value)));
$("kiosk-end").addEventListener("click", () => end(t("kiosk.ended")));

translatePage();
(async () => {
  try { showViewer(await json("/api/v1/kiosk/session"), 1); } catch { showPairing(); }
})();
