// Live video: fMP4 pieces from the gateway's WebSocket appended to a Media Source buffer.
//
// The player keeps itself near the live edge (jumping when far behind, playing slightly faster when
// a little behind), reconnects after any failure with a growing delay, and says plainly what it
// is doing: connecting, live, offline since <time>, refused (with the server's reason).
// It also measures glass-to-glass latency: the init message gives the capture time of media time
// 0, so each presented frame's capture time is known (requestVideoFrameCallback's mediaTime).

const STALL_MS = 4000;       // no data this long: the camera is offline (the socket may still be open)
const RECONNECT_IDLE_MS = 15000;
const KEEP_S = 12;           // seconds of video kept behind the play position
const JUMP_BEHIND_S = 1.0;   // further behind than this: jump to the edge
const CHASE_BEHIND_S = 0.3;  // further behind than this: play a little faster
const MAX_SAMPLES = 2000;
// A sub-stream that sends nothing this long (e.g. not masked, so not published) is given up for
// the main stream: a tile always shows something.
const SUB_WAIT_MS = 5000;

export const players = new Set();
window.csuPlayers = players; // read by bench/latency.py and the browser tests

export class LivePlayer {
  constructor(video, cameraId, { stream = "main", onState = () => {} } = {}) {
    this.video = video;
    this.cameraId = cameraId;
    this.stream = stream;
    this.onState = onState;
    this.state = { kind: "idle" };
    this.latencies = [];
    this.frames = 0;
    this.bytes = 0;
    this.lastDataAt = 0;
    this.lastFrameAt = 0;
    this.failures = 0;
    this.origin = null;
    // Capture time (ms since the epoch) of the frame on screen: the tile shows it with the camera's
    // name, so the live view carries date, time and identity as the recording does.
    this.capturedMs = null;
    this.ws = null;
    this.media = null;
    this.buffer = null;
    this.queue = [];
    this.stopped = true;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    players.add(this);
    this.video.muted = true;
    this.video.playsInline = true;
    this.timer = setInterval(() => this.tick(), 400);
    this.connect();
    this.watchFrames();
  }

  stop() {
    this.stopped = true;
    players.delete(this);
    clearInterval(this.timer);
    clearTimeout(this.retry);
    clearTimeout(this.subTimer);
    this.closeSocket();
    this.releaseMedia();
    this.setState({ kind: "idle" });
  }

  setStream(stream) {
    if (stream === this.stream) return;
    this.stream = stream;
    if (!this.stopped) { this.closeSocket(); this.connect(); }
  }

  takeLatencies() {
    const out = this.latencies;
    this.latencies = [];
    return out;
  }

  setState(state) {
    this.state = state;
    this.onState(state);
  }

  closeSocket() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch { /* closing anyway */ }
    }
  }

  releaseMedia() {
    this.buffer = null;
    this.queue = [];
    if (this.media) {
      try { if (this.media.readyState === "open") this.media.endOfStream(); } catch { /* already ended */ }
      this.media = null;
    }
    if (this.objectUrl) { URL.revokeObjectURL(this.objectUrl); this.objectUrl = null; }
    this.video.removeAttribute("src");
    try { this.video.load(); } catch { /* nothing loaded */ }
  }

  connect() {
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const sub = this.stream === "sub" && !this.subUnavailable;
    const query = sub ? "?stream=sub" : "";
    clearTimeout(this.subTimer);
    this.gotInit = false;
    if (sub) {
      this.subTimer = setTimeout(() => {
        if (this.gotInit || this.stopped) return;
        this.subUnavailable = true;
        this.closeSocket();
        this.connect();
      }, SUB_WAIT_MS);
    }
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/cameras/${encodeURIComponent(this.cameraId)}/live/stream${query}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.connectedAt = Date.now();
    if (this.state.kind !== "offline") this.setState({ kind: "connecting" });
    ws.onmessage = (event) => {
      if (typeof event.data === "string") { this.onInit(JSON.parse(event.data)); return; }
      this.lastDataAt = Date.now();
      this.bytes += event.data.byteLength;
      this.queue.push(event.data);
      this.pump();
    };
    ws.onclose = (event) => { if (this.ws === ws) this.onClose(event); };
  }

  onInit(init) {
    this.gotInit = true;
    this.releaseMedia();
    this.origin = typeof init.capture_origin_us === "number" ? init.capture_origin_us : null;
    this.codec = init.codec;
    this.activeStream = init.stream || "main";
    const media = new MediaSource();
    this.media = media;
    this.objectUrl = URL.createObjectURL(media);
    this.video.src = this.objectUrl;
    media.addEventListener("sourceopen", () => {
      if (this.media !== media) return;
      try {
        this.buffer = media.addSourceBuffer(`video/mp4; codecs="${init.codec}"`);
      } catch {
        this.setState({ kind: "refused", reason: `codec ${init.codec}` });
        return;
      }
      this.buffer.addEventListener("updateend", () => this.pump());
      this.pump();
    }, { once: true });
  }

  pump() {
    const buffer = this.buffer;
    if (!buffer || buffer.updating || this.queue.length === 0) return;
    try {
      buffer.appendBuffer(this.queue.shift());
    } catch (err) {
      if (err.name === "QuotaExceededError") { this.trim(true); return; }
      this.closeSocket();
      this.scheduleReconnect();
    }
  }

  onClose(event) {
    this.ws = null;
    if (this.stopped) return;
    if (event.code === 4401) {
      this.setState({ kind: "refused", reason: event.reason, expired: true });
      window.dispatchEvent(new CustomEvent("csu:unauthenticated"));
      return;
    }
    if (event.code >= 4400 && event.code < 4500) {
      // Refused (not allowed, unknown camera): said once, retried rarely (rights can be granted).
      this.setState({ kind: "refused", reason: event.reason || String(event.code - 4000) });
      this.retry = setTimeout(() => this.connect(), 30000);
      return;
    }
    this.goOffline(event.reason);
    this.scheduleReconnect();
  }

  goOffline(reason) {
    if (this.state.kind === "offline") return;
    this.setState({ kind: "offline", since: this.lastFrameAt || this.connectedAt || Date.now(), reason: reason || "" });
  }

  scheduleReconnect() {
    clearTimeout(this.retry);
    this.failures += 1;
    const delay = Math.min(10000, 500 * 2 ** Math.min(this.failures, 5)) * (0.8 + Math.random() * 0.4);
    this.retry = setTimeout(() => { this.closeSocket(); this.connect(); }, delay);
  }

  watchFrames() {
    const video = this.video;
    if (!("requestVideoFrameCallback" in video)) {
      video.addEventListener("timeupdate", () => { if (!this.stopped) this.onFrame(); });
      return;
    }
    const step = (now, meta) => {
      if (this.stopped) return;
      this.onFrame(meta);
      video.requestVideoFrameCallback(step);
    };
    video.requestVideoFrameCallback(step);
  }

  onFrame(meta) {
    this.frames += 1;
    this.lastFrameAt = Date.now();
    this.failures = 0;
    if (this.state.kind !== "live") this.setState({ kind: "live" });
    if (meta && this.origin !== null) {
      const shownMs = performance.timeOrigin + meta.expectedDisplayTime;
      const capturedMs = this.origin / 1000 + meta.mediaTime * 1000;
      this.capturedMs = capturedMs;
      this.latencies.push(shownMs - capturedMs);
      if (this.latencies.length > MAX_SAMPLES) this.latencies.shift();
    }
  }

  tick() {
    if (this.stopped) return;
    const now = Date.now();
    const lastSign = Math.max(this.lastDataAt, this.connectedAt || 0);
    if (this.ws && now - lastSign > STALL_MS) this.goOffline("");
    if (this.ws && now - lastSign > RECONNECT_IDLE_MS) { this.closeSocket(); this.connect(); return; }
    this.keepLive();
    this.trim(false);
  }

  keepLive() {
    const video = this.video;
    const ranges = video.buffered;
    if (!this.buffer || ranges.length === 0) return;
    const last = ranges.length - 1;
    const end = ranges.end(last);
    const behind = end - video.currentTime;
    if (video.currentTime < ranges.start(last) || behind > JUMP_BEHIND_S) {
      video.currentTime = Math.max(ranges.start(last), end - 0.15);
      video.playbackRate = 1;
    } else {
      video.playbackRate = behind > CHASE_BEHIND_S ? 1.12 : 1;
    }
    if (video.paused) video.play().catch(() => {});
  }

  trim(force) {
    const buffer = this.buffer;
    const ranges = this.video.buffered;
    if (!buffer || buffer.updating || ranges.length === 0) return;
    const start = ranges.start(0);
    const keepFrom = this.video.currentTime - (force ? 2 : KEEP_S);
    if (keepFrom - start > (force ? 0.5 : KEEP_S)) {
      try { buffer.remove(start, keepFrom); } catch { /* next tick */ }
    }
  }
}
