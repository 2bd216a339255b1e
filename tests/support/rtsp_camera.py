"""A real RTSP test camera on loopback, serving an MP4's H.264 stream without re-encoding.

Run by the *system* interpreter (Debian's python3-gi), not the project venv:

    /usr/bin/python3 tests/support/rtsp_camera.py --port 8554 --file clip.mp4 [--path /cam] [--loop]

Prints ``READY rtsp://127.0.0.1:PORT/PATH`` once listening and exits cleanly on SIGTERM/SIGINT.
It imports nothing from the project on purpose: it must run outside the project's venv.

Design: each RTSP media (shared by all clients connected at the same time) is a *live* pipeline
``appsrc ! rtph264pay``, fed by a private reader pipeline ``filesrc ! qtdemux ! h264parse ! appsink``
that plays the file in real time. Being live makes the server behave like a real camera: clients join
the running stream, nobody's PLAY seeks the shared media back to 0, and looping (a seek in the
reader) never reaches the RTP side, whose timestamps keep increasing across loop iterations.
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
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402

Gst.init(None)  # before subclassing GStreamer types below

HOST = "127.0.0.1"
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

    def __init__(self, path: str, appsrc: GstApp.AppSrc, loop: bool) -> None:
        self.appsrc = appsrc
        self.loop = loop
        self.started = False
        self.offset: int | None = None  # None: the next frame starts a pass and sets the offset
        self.end = 0  # running time (media pipeline) at which the frames pushed so far end
        self.pipeline = Gst.Pipeline.new("reader")
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", path)
        demux = Gst.ElementFactory.make("qtdemux")
        parse = Gst.ElementFactory.make("h264parse")
        parse.set_property("config-interval", -1)  # SPS/PPS before every IDR: clients can join anytime
        self.sink = Gst.ElementFactory.make("appsink")
        self.sink.set_property("sync", True)  # paces the reader at the file's own frame rate
        self.sink.set_property("emit-signals", True)
        self.sink.set_property("caps", Gst.Caps.from_string("video/x-h264"))
        for element in (src, demux, parse, self.sink):
            self.pipeline.add(element)
        src.link(demux)
        parse.link(self.sink)
        demux.connect("pad-added", self._on_pad_added, parse)
        self.sink.connect("new-sample", self._on_sample)
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
            raise RuntimeError("no H.264 stream found in the file")
        return caps

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.pipeline.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)
        self.pipeline.get_bus().remove_signal_watch()

    @staticmethod
    def _on_pad_added(_demux: Gst.Element, pad: Gst.Pad, parse: Gst.Element) -> None:
        sinkpad = parse.get_static_pad("sink")
        caps = pad.get_current_caps() or pad.query_caps(None)
        if not sinkpad.is_linked() and caps.get_structure(0).get_name() == "video/x-h264":
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


class CameraFactory(GstRtspServer.RTSPMediaFactory):
    """Shared media factory: all concurrent clients see the same live stream, like one camera."""

    def __init__(self, path: str, loop: bool) -> None:
        super().__init__()
        self.path = path
        self.loop = loop
        self.feeders: set[FileFeeder] = set()
        self.set_shared(True)
        self.set_launch(
            f"( appsrc name=src is-live=true format=time max-buffers={APPSRC_MAX_BUFFERS} "
            "leaky-type=downstream ! rtph264pay name=pay0 pt=96 )"
        )
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = FileFeeder(self.path, appsrc, self.loop)
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

    def _retire(self, feeder: FileFeeder, handler: int) -> None:
        if feeder in self.feeders:
            self.feeders.discard(feeder)
            feeder.appsrc.disconnect(handler)
            feeder.stop()

    def stop_all(self) -> None:
        for feeder in list(self.feeders):
            feeder.stop()
        self.feeders.clear()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="RTSP test camera serving an MP4's H.264 stream.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True, help="MP4 file holding an H.264 video stream")
    parser.add_argument("--path", default="/cam", help="mount point (default: /cam)")
    parser.add_argument("--loop", action="store_true", help="play the file in a loop forever")
    args = parser.parse_args(argv)
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    if not os.path.isfile(args.file):
        parser.error(f"no such file: {args.file}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = os.path.abspath(args.file)
    try:  # fail before READY, with a readable reason, rather than on the first client
        checker = FileFeeder(path, Gst.ElementFactory.make("appsrc"), loop=False)
        checker.preroll()
        checker.stop()
    except RuntimeError as exc:
        log(f"{args.file}: {exc}")
        return 2
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    factory = CameraFactory(path, args.loop)
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
