"""Pytest-side control of the RTSP test camera (``rtsp_camera.py``), a real GstRtspServer on loopback.

The camera runs under the *system* interpreter, which has Debian's GStreamer bindings (python3-gi);
the project's venv does not. Standard library only, so it imports anywhere.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.support.ports import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
CAMERA_SCRIPT = Path(__file__).with_name("rtsp_camera.py")
DEBIAN_PACKAGES = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
)
HOST = "127.0.0.1"

# Run by the system python: GStreamer typelibs plus the elements the camera's pipelines use.
_PROBE = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import Gst, GstApp, GstRtsp, GstRtspServer
Gst.init(None)
missing = [e for e in ("filesrc", "qtdemux", "h264parse", "h265parse", "appsink", "appsrc", "rtph264pay",
                       "rtph265pay", "rtpbin", "udpsink", "videotestsrc", "jpegenc", "rtpjpegpay", "audiotestsrc",
                       "alawenc", "rtppcmapay", "openh264dec", "openh264enc", "compositor", "videoconvert")
           if Gst.ElementFactory.find(e) is None]
print(" ".join(missing))
"""


class RtspCameraError(RuntimeError):
    """The test camera could not be started (message carries its stderr)."""


@functools.cache
def rtsp_server_available() -> str | None:
    """None if the system python can run the camera, else what is missing (for a clear test failure)."""
    hint = f"install the Debian packages: apt-get install -y {' '.join(DEBIAN_PACKAGES)}"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found; {hint}"
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return f"{SYSTEM_PYTHON} timed out importing GStreamer"
    if probe.returncode != 0:
        last = probe.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"{SYSTEM_PYTHON} cannot load GStreamer RTSP server bindings ({last[0]}); {hint}"
    if missing := probe.stdout.split():
        return f"GStreamer elements missing: {', '.join(missing)}; {hint}"
    return None


class RtspCamera:
    """One RTSP test camera process serving ``file`` at ``url``; a context manager that stops it.

    ``loop=True`` replays the file forever (a camera that never stops); without it the stream ends
    (RTCP BYE) after one pass. ``audio=True`` adds a G.711 audio track (a tone), as cameras with a
    microphone send. ``codec`` is the file's ("h264" or "h265"); ``file=None`` with
    ``codec="mjpeg"`` serves a JPEG test pattern (an old camera). ``credentials`` (user, password)
    make the camera ask for them, by ``auth`` ("digest" or "basic"). ``masks_file``
    makes it burn the privacy masks the file lists (re-read when it changes). ``kill()`` is a camera dying:
    its sockets close, so clients see EOF at once. ``freeze()`` is a camera hanging or a cut cable:
    nothing closes, clients must time out.
    """

    def __init__(
        self,
        file: str | os.PathLike[str] | None,
        *,
        port: int | None = None,
        path: str = "/cam",
        loop: bool = False,
        codec: str = "h264",
        credentials: tuple[str, str] | None = None,
        auth: str = "digest",
        audio: bool = False,
        masks_file: str | os.PathLike[str] | None = None,
        ready_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.file = Path(file) if file is not None else None
        self.codec = codec
        self.credentials = credentials
        self.auth = auth
        self.audio = audio
        # The camera burns the masks this JSON file lists into its own image (see rtsp_camera.py).
        self.masks_file = Path(masks_file) if masks_file is not None else None
        self.port = port if port is not None else free_port()
        self.path = path if path.startswith("/") else "/" + path
        self.loop = loop
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._stderr_text = ""

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RtspCamera:
        """Launch the camera and wait until it listens; raises RtspCameraError with its stderr if not."""
        if self.running:
            raise RtspCameraError(f"camera already running at {self.url}")
        command = [SYSTEM_PYTHON, "-I", str(CAMERA_SCRIPT), "--port", str(self.port), "--path", self.path]
        if self.codec == "mjpeg":
            command.append("--mjpeg")
        else:
            if self.file is None or not self.file.is_file():
                raise RtspCameraError(f"camera source file not found: {self.file}")
            command += ["--file", str(self.file), "--codec", self.codec] + (["--loop"] if self.loop else [])
        if self.masks_file is not None:
            command += ["--masks-file", str(self.masks_file)]
        if self.credentials is not None:
            command += ["--user", self.credentials[0], "--password", self.credentials[1], "--auth", self.auth]
        if self.audio:
            command.append("--audio")
        # stderr goes to a file, not a pipe: nobody drains it, and a full pipe would stall the server.
        self._stderr, self._stderr_text = tempfile.TemporaryFile(), ""
        self._proc = proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        ready = threading.Event()
        threading.Thread(target=self._read_stdout, args=(proc, ready), daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.05):
            if proc.poll() is not None:
                reason = f"exited with code {proc.returncode}"
            elif time.monotonic() > deadline:
                reason = f"not ready after {self.ready_timeout:g} s"
            else:
                continue
            self.kill()
            raise RtspCameraError(f"RTSP test camera {reason} ({self.url}); stderr:\n{self.stderr()}")
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; returns the exit code (None if never started)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGCONT)  # a frozen camera must still get to handle SIGTERM
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: the camera dies without RTCP BYE; the OS closes its sockets, so clients see EOF."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._close()

    def freeze(self) -> None:
        """SIGSTOP: the camera hangs with its sockets open, so clients only notice through timeouts."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: undo ``freeze()``."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def stderr(self) -> str:
        """What the camera process wrote to stderr (for failure messages); kept after it stops."""
        if self._stderr is not None:
            self._stderr.seek(0)
            self._stderr_text = self._stderr.read().decode(errors="replace")
        return self._stderr_text

    def __enter__(self) -> RtspCamera:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _close(self) -> None:
        if self._stderr is not None:
            self.stderr()
            self._stderr.close()
            self._stderr = None

    @staticmethod
    def _read_stdout(proc: subprocess.Popen[str], ready: threading.Event) -> None:
        # Keeps draining stdout after READY so the camera never blocks on a full pipe.
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                if line.startswith("READY "):
                    ready.set()
