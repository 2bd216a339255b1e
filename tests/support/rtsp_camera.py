"""A real RTSP test camera on loopback, serving an MP4's H.264 stream without re-encoding.

Run by the *system* interpreter (Debian's python3-gi), not the project venv:

    /usr/bin/python3 tests/support/rtsp_camera.py --port 8554 --file clip.mp4 [--path /cam] [--loop]
        [--codec h264|h265] [--user NAME --password PASS [--auth basic|digest]] [--audio]
    /usr/bin/python3 tests/support/rtsp_camera.py --port 8554 --mjpeg   # a test pattern in JPEG over RTP
    /usr/bin/python3 tests/support/rtsp_camera.py --port 8554 --file clip.mp4 --masks-file masks.json
        # a camera burning privacy masks into its own image (re-encoded with OpenH264)

Prints ``READY rtsp://127.0.0.1:PORT/PATH`` once listening and exits cleanly on SIGTERM/SIGINT.
It imports nothing from the project on purpose: it must run outside the project's venv.

Design: each RTSP media (shared by all clients connected at the same time) is a *live* pipeline
``appsrc ! rtph264pay`` (or rtph265pay), fed by a private reader pipeline ``filesrc ! qtdemux !
h264parse ! appsink`` (h265parse) that plays the file in real time. Being live makes the server
behave like a real camera: clients join the running stream, nobody's PLAY seeks the shared media
back to 0, and looping (a seek in the reader) never reaches the RTP side, whose timestamps keep
increasing across loop iterations.

`--audio` adds what many CCTV cameras send along: a second track, G.711 A-law (PCMA, RFC 3551
payload type 8) at 8 kHz, a test tone, in the same SDP. The platform must never take it. It is fed
like the video, from a private pipeline into a live appsrc (a test source in the media itself would
make the media seekable, and clients' PLAY would then fail on a seek the video cannot do), through
a tee that lets it flow unlinked: a client that sets up the video alone (ingest's RTSP client) must
not break the shared media for the next one, as it does not on a real camera.

With ``--masks-file`` the camera burns privacy masks itself, as a dome whose masks were pushed over
ONVIF does: the reader decodes the file (openh264dec), a compositor lays solid rectangles over the
image, and OpenH264 encodes it again (keyframe every GOP_FRAMES), so what a client decodes really
has the masks in its pixels. The file is JSON, ``{"rects": [[x0, y0, x1, y1], ...], "colour":
[r, g, b]}`` in normalised image coordinates (a polygon's bounding box, as many cameras draw
them); it is re-read whenever it changes (the ONVIF test device writes it), so masks come and go
while the stream runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402

Gst.init(None)  # before subclassing GStreamer types below

HOST = "127.0.0.1"
# Rectangles the masking camera can draw (ONVIF MaxMasks), its keyframe spacing (frames) and bitrate.
MAX_MASKS = 8
GOP_FRAMES = 10
MASKED_BITRATE = 2_000_000
MASKS_POLL_MS = 100
PREROLL_TIMEOUT_S = 10
# Frames the live appsrc may hold while the media is blocked (between DESCRIBE and PLAY); older
# frames are dropped, as a camera would, instead of bursting a stale backlog at the first client.
APPSRC_MAX_BUFFERS = 30


def log(message: str) -> None:
    print(f"rtsp_camera: {message}", file=sys.stderr, flush=True)


class FileFeeder:
    """Plays the file in real time and pushes its H.264 access units into one media's appsrc.

    Timestamps are rewritten to the media pipeline's running time with one offset per pass over the
    file, so the file's pts/dts spacing (and B-frame order) is kept, and each new pass starts where
    the previous one ended (or now, if the rewind took longer): RTP timestamps only ever increase.
    """

    def __init__(self, path: str, appsrc: GstApp.AppSrc, loop: bool, codec: str = "h264", masks_file: str = "") -> None:
        self.appsrc = appsrc
        self.media_type = f"video/x-{codec}"
        # This GStreamer's rtph265pay takes Annex B only (MP4 files carry hvc1/hev1).
        masked = bool(masks_file)
        annexb = codec == "h265" or masked
        self.caps = self.media_type + (",stream-format=byte-stream,alignment=au" if annexb else "")
        self.loop = loop
        self.started = False
        self.offset: int | None = None  # None: the next frame starts a pass and sets the offset
        self.end = 0  # running time (media pipeline) at which the frames pushed so far end
        self.pipeline = Gst.Pipeline.new("reader")
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", path)
        demux = Gst.ElementFactory.make("qtdemux")
        parse = Gst.ElementFactory.make(f"{codec}parse")
        parse.set_property("config-interval", -1)  # SPS/PPS before every IDR: clients can join anytime
        self.sink = Gst.ElementFactory.make("appsink")
        self.sink.set_property("sync", True)  # paces the reader at the file's own frame rate
        self.sink.set_property("emit-signals", True)
        self.sink.set_property("caps", Gst.Caps.from_string(self.caps))
        for element in (src, demux, parse, self.sink):
            self.pipeline.add(element)
        src.link(demux)
        parse.link(self.sink)
        demux.connect("pad-added", self._on_pad_added, parse, self.media_type)
        self.sink.connect("new-sample", self._on_sample)
        self.masks: MaskBurner | None = None
        if masked:
            parse.unlink(self.sink)
            self.masks = MaskBurner(self.pipeline, parse, self.sink, masks_file)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)

    def preroll(self) -> Gst.Caps:
        """Bring the reader to PAUSED and return the stream caps (their codec_data feeds the SDP)."""
        self.pipeline.set_state(Gst.State.PAUSED)
        result, _, _ = self.pipeline.get_state(PREROLL_TIMEOUT_S * Gst.SECOND)
        if result not in (Gst.StateChangeReturn.SUCCESS, Gst.StateChangeReturn.NO_PREROLL):
            raise RuntimeError("reader pipeline did not preroll (is the file H.264 in MP4?)")
        caps = self.sink.get_static_pad("sink").get_current_caps()
        if caps is None:
            raise RuntimeError(f"no {self.media_type} stream found in the file")
        return caps

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.pipeline.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        if self.masks is not None:
            self.masks.stop()
        self.pipeline.set_state(Gst.State.NULL)
        self.pipeline.get_bus().remove_signal_watch()

    @staticmethod
    def _on_pad_added(_demux: Gst.Element, pad: Gst.Pad, parse: Gst.Element, wanted: str) -> None:
        sinkpad = parse.get_static_pad("sink")
        caps = pad.get_current_caps() or pad.query_caps(None)
        if not sinkpad.is_linked() and caps.get_structure(0).get_name() == wanted:
            pad.link(sinkpad)

    def _on_sample(self, sink: GstApp.AppSink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        buf, segment = sample.get_buffer(), sample.get_segment()
        clock = self.appsrc.get_clock()
        if clock is None:  # media not running yet: drop, like a camera nobody watches
            return Gst.FlowReturn.OK
        pts = segment.to_running_time(Gst.Format.TIME, buf.pts)
        dts = segment.to_running_time(Gst.Format.TIME, buf.dts)
        if self.offset is None:
            now = clock.get_time() - self.appsrc.get_base_time()
            self.offset = max(now, self.end) - pts
        out = buf.copy()
        out.pts = pts + self.offset
        out.dts = dts + self.offset if dts != Gst.CLOCK_TIME_NONE else Gst.CLOCK_TIME_NONE
        duration = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0
        self.end = max(self.end, out.pts + duration)
        self.appsrc.push_buffer(out)  # FLUSHING once the media is torn down: harmless
        return Gst.FlowReturn.OK

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.EOS and self.loop:
            # Rewinding only the reader: the flush never reaches the RTP side, and the appsink's EOS
            # came after the last frame's duration, so the next pass starts on time.
            self.offset = None
            flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT
            if not self.pipeline.seek_simple(Gst.Format.TIME, flags, 0):
                log("rewind failed")
                self.appsrc.end_of_stream()
        elif message.type == Gst.MessageType.EOS:
            self.appsrc.end_of_stream()  # clients get RTCP BYE: the stream is over
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            log(f"reader error: {error.message} ({debug})")
            self.appsrc.end_of_stream()


class ToneFeeder:
    """A 440 Hz tone in G.711 A-law, pushed into one media's audio appsrc (which timestamps it)."""

    def __init__(self, appsrc: GstApp.AppSrc) -> None:
        self.appsrc = appsrc
        self.started = False
        self.pipeline = Gst.parse_launch(
            "audiotestsrc is-live=true wave=sine freq=440 samplesperbuffer=160 "
            "! audio/x-raw,format=S16LE,rate=8000,channels=1 ! alawenc ! appsink name=sink emit-signals=true sync=false"
        )
        self.pipeline.get_by_name("sink").connect("new-sample", self._on_sample)

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.pipeline.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)

    def _on_sample(self, sink: GstApp.AppSink) -> Gst.FlowReturn:
        out = sink.emit("pull-sample").get_buffer().copy()
        out.pts = out.dts = Gst.CLOCK_TIME_NONE  # the media's appsrc stamps it with its running time
        self.appsrc.push_buffer(out)
        return Gst.FlowReturn.OK


class MaskBurner:
    """parse ! openh264dec ! compositor (image + MAX_MASKS solid boxes) ! openh264enc ! h264parse ! sink."""

    def __init__(self, pipeline: Gst.Pipeline, parse: Gst.Element, sink: Gst.Element, masks_file: str) -> None:
        self.masks_file = masks_file
        self.stamp: float | None = None
        self.size: tuple[int, int] | None = None
        self.rects: list[list[float]] = []
        self.colour = (128, 128, 128)
        make = Gst.ElementFactory.make
        decode, convert, self.mix = make("openh264dec"), make("videoconvert"), make("compositor")
        out_convert, encode, reparse = make("videoconvert"), make("openh264enc"), make("h264parse")
        encode.set_property("gop-size", GOP_FRAMES)
        encode.set_property("bitrate", MASKED_BITRATE)
        reparse.set_property("config-interval", -1)
        raw = Gst.ElementFactory.make("capsfilter")
        raw.set_property("caps", Gst.Caps.from_string("video/x-raw,format=I420"))
        for element in (decode, convert, self.mix, out_convert, raw, encode, reparse):
            pipeline.add(element)
        parse.link(decode)
        decode.link(convert)
        convert.link(self.mix)
        self.mix.link(out_convert)
        out_convert.link(raw)
        raw.link(encode)
        encode.link(reparse)
        reparse.link(sink)
        self.boxes: list[tuple[Gst.Element, Gst.Pad]] = []
        for _ in range(MAX_MASKS):
            box = make("videotestsrc")
            box.set_property("pattern", "solid-color")
            caps = make("capsfilter")
            caps.set_property("caps", Gst.Caps.from_string("video/x-raw,format=I420,width=16,height=16"))
            pipeline.add(box)
            pipeline.add(caps)
            box.link(caps)
            pad = self.mix.request_pad_simple("sink_%u")
            caps.get_static_pad("src").link(pad)
            pad.set_property("alpha", 0.0)
            pad.set_property("zorder", 10)
            self.boxes.append((box, pad))
        self.timer = GLib.timeout_add(MASKS_POLL_MS, self.poll)
        self.poll()

    def stop(self) -> None:
        if self.timer:
            GLib.source_remove(self.timer)
            self.timer = 0

    def poll(self) -> bool:
        try:
            stamp = os.stat(self.masks_file).st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self.stamp or self.size is None:
            self.stamp = stamp
            self.load()
            self.apply()
        return GLib.SOURCE_CONTINUE

    def load(self) -> None:
        import json

        try:
            with open(self.masks_file) as f:
                content = json.load(f)
        except (OSError, ValueError):
            content = {}
        self.rects = [list(map(float, r)) for r in content.get("rects", [])][:MAX_MASKS]
        r, g, b = content.get("colour", [128, 128, 128])
        self.colour = (int(r), int(g), int(b))

    def apply(self) -> None:
        caps = self.mix.get_static_pad("src").get_current_caps()
        if caps is None:
            return  # not negotiated yet: the next poll applies them
        structure = caps.get_structure(0)
        width, height = structure.get_value("width"), structure.get_value("height")
        self.size = (width, height)
        argb = 0xFF000000 | self.colour[0] << 16 | self.colour[1] << 8 | self.colour[2]
        for n, (box, pad) in enumerate(self.boxes):
            if n < len(self.rects):
                x0, y0, x1, y1 = self.rects[n]
                box.set_property("foreground-color", argb)
                pad.set_property("xpos", int(x0 * width))
                pad.set_property("ypos", int(y0 * height))
                pad.set_property("width", max(1, round((x1 - x0) * width)))
                pad.set_property("height", max(1, round((y1 - y0) * height)))
                pad.set_property("alpha", 1.0)
            else:
                pad.set_property("alpha", 0.0)


class CameraFactory(GstRtspServer.RTSPMediaFactory):
    """Shared media factory: all concurrent clients see the same live stream, like one camera."""

    def __init__(self, path: str, loop: bool, codec: str, audio: bool = False, masks_file: str = "") -> None:
        super().__init__()
        self.path = path
        self.masks_file = masks_file
        self.loop = loop
        self.codec = codec
        self.audio = audio
        self.feeders: set[FileFeeder | ToneFeeder] = set()
        self.set_shared(True)
        if codec == "mjpeg":  # an old camera: a test pattern in JPEG over RTP (RFC 2435), no file
            self.set_launch(
                "( videotestsrc is-live=true pattern=ball "
                "! video/x-raw,format=I420,width=352,height=288,framerate=10/1 ! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
            )
            return
        sound = (
            " appsrc name=audio is-live=true format=time do-timestamp=true max-buffers=50 leaky-type=downstream "
            "caps=audio/x-alaw,rate=8000,channels=1 ! tee allow-not-linked=true ! rtppcmapay name=pay1 pt=8"
            if audio
            else ""
        )
        self.set_launch(
            f"( appsrc name=src is-live=true format=time max-buffers={APPSRC_MAX_BUFFERS} "
            f"leaky-type=downstream ! rtp{codec}pay name=pay0 pt=96{sound} )"
        )
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = FileFeeder(self.path, appsrc, self.loop, self.codec, self.masks_file)
        try:
            appsrc.set_caps(feeder.preroll())
        except RuntimeError as exc:
            log(str(exc))
            feeder.stop()
            return
        self.feeders.add(feeder)
        # Start reading when the media pipeline starts pulling, so the file starts from its beginning.
        handler = appsrc.connect("need-data", lambda *_: feeder.start())
        media.connect("unprepared", lambda *_: self._retire(feeder, handler))
        if self.audio:
            tone_src = media.get_element().get_by_name("audio")
            tone = ToneFeeder(tone_src)
            self.feeders.add(tone)
            tone_handler = tone_src.connect("need-data", lambda *_: tone.start())
            media.connect("unprepared", lambda *_: self._retire(tone, tone_handler))

    def _retire(self, feeder: FileFeeder | ToneFeeder, handler: int) -> None:
        if feeder in self.feeders:
            self.feeders.discard(feeder)
            feeder.appsrc.disconnect(handler)
            feeder.stop()

    def stop_all(self) -> None:
        for feeder in list(self.feeders):
            feeder.stop()
        self.feeders.clear()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="RTSP test camera serving an MP4's H.264 or H.265 stream.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", help="MP4 file holding the video stream")
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264", help="the file's video codec")
    parser.add_argument("--mjpeg", action="store_true", help="serve a JPEG test pattern instead of a file")
    parser.add_argument("--path", default="/cam", help="mount point (default: /cam)")
    parser.add_argument("--loop", action="store_true", help="play the file in a loop forever")
    parser.add_argument("--user", help="require this user name (with --password)")
    parser.add_argument("--password", help="the user's password")
    parser.add_argument("--auth", choices=("basic", "digest"), default="digest", help="authentication scheme")
    parser.add_argument("--audio", action="store_true", help="add a G.711 A-law audio track (a test tone)")
    parser.add_argument("--masks-file", default="", help="burn the privacy masks this JSON file lists (H.264)")
    args = parser.parse_args(argv)
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    if args.mjpeg:
        args.codec = "mjpeg"
    elif not args.file or not os.path.isfile(args.file):
        parser.error(f"no such file: {args.file}")
    if bool(args.user) != bool(args.password):
        parser.error("--user and --password go together")
    return args


def require_credentials(server: GstRtspServer.RTSPServer, factory: CameraFactory, args: argparse.Namespace) -> None:
    """Only the given user may DESCRIBE and PLAY, as on a real camera (Basic or Digest)."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    if args.auth == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(args.user, args.password, token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    for permission in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
        permissions.add_permission_for_role("viewer", permission, True)
    factory.set_permissions(permissions)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = os.path.abspath(args.file) if args.file else ""
    if not args.mjpeg:
        try:  # fail before READY, with a readable reason, rather than on the first client
            checker = FileFeeder(path, Gst.ElementFactory.make("appsrc"), loop=False, codec=args.codec)
            checker.preroll()
            checker.stop()
        except RuntimeError as exc:
            log(f"{args.file}: {exc}")
            return 2
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    factory = CameraFactory(path, args.loop, args.codec, args.audio, args.masks_file)
    if args.user:
        require_credentials(server, factory, args)
    server.get_mount_points().add_factory(args.path, factory)

    main_loop = GLib.MainLoop()

    def quit_loop() -> bool:
        main_loop.quit()
        return GLib.SOURCE_REMOVE

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, quit_loop)
    try:
        source_id = server.attach(None)  # binds and listens; 0 when it cannot
    except GLib.Error as exc:
        log(f"cannot listen on {HOST}:{args.port}: {exc.message}")
        return 1
    if source_id == 0:
        log(f"cannot listen on {HOST}:{args.port}")
        return 1
    print(f"READY rtsp://{HOST}:{args.port}{args.path}", flush=True)
    main_loop.run()
    factory.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
