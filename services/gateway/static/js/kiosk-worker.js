// The kiosk's Media Source, inside a worker: the page gets a MediaSourceHandle (video.srcObject),
// never a URL, so nothing in the page's DOM points at the clip's bytes.
self.onmessage = async (event) => {
  const { clip } = event.data;
  try {
    const response = await fetch(`/api/v1/kiosk/clips/${clip}`, { method: "POST", credentials: "same-origin", headers: { "X-CSU-Kiosk": "1" } });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      self.postMessage({ type: "error", status: response.status, message: typeof body.detail === "string" ? body.detail : "" });
      return;
    }
    const media = new MediaSource();
    const handle = media.handle;
    self.postMessage({ type: "handle", handle }, [handle]);
    await new Promise((resolve) => media.addEventListener("sourceopen", resolve, { once: true }));
    const buffer = media.addSourceBuffer(`video/mp4; codecs="${response.headers.get("X-Codec")}"`);
    const reader = response.body.getReader();
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer.appendBuffer(value);
      await new Promise((resolve) => buffer.addEventListener("updateend", resolve, { once: true }));
      received += value.byteLength;
      self.postMessage({ type: "progress", bytes: received });
    }
    media.endOfStream();
    self.postMessage({ type: "playing" });
  } catch (err) {
    self.postMessage({ type: "error", status: 0, message: String(err && err.message || err) });
  }
};
