"""Faults: seconds of footage lost per camera for each fault, beside how long the fault lasted.

The platform as production runs it, on this machine: two replicas each of ingest, masking and
archive (each archive with its own spool), requisition and gateway, two RTSP cameras (GstRtspServer
replaying vtest.avi as H.264, 10 fps, a keyframe a second), a NATS server of its own, moto's S3
server behind a TCP relay that can be cut, PostgreSQL ($DATABASE_URL; else SQLite). Segments of
CSU_SEGMENT_DURATION_S = 4 s.

Each fault, in turn: kill -9 of the replica holding the first camera (ingest, masking, archive;
requisition and gateway, one replica each), restarted at once as a supervisor would; a rollout of
each service (SIGTERM then a new process, replica after replica, each ready before the next); a
NATS restart (5 s down); the object store unreachable for 2 min; the database refusing
connections for 2 min; the first camera unplugged for 30 s. The outage is the time from the fault
until what was hit is back (the killed process ready again, the last replica of a rollout ready,
the server or camera answering again). The loss is, per camera, the time without recording in the
index around the fault (from 5 s before it to 10 s after its end), measured once the segments
after it are stored: the most any camera lost, and the mean.

Targets (issue 24): an archive kill or rollout loses nothing (at most one fragment, 1 s); a masking
or ingest kill at most the failover time + 2 s; a store or database outage nothing. The last
figure is `make run`'s Ctrl-C: seconds from SIGINT to the launcher's exit, everything stopped.
Indicative on a shared machine.
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import nats

from services.common import rpc
from services.common.clock import to_us
from services.common.leases import LeaseManager
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.common.timefmt import HOUR_US
from services.launcher import ServiceProcess, health_url, wait_all_ready
from tests.support.archive import TcpProxy, database_outage
from tests.support.media import testdata_dir, transcode_h264
from tests.support.platform import Platform, wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.servers import RestartableNats, S3Server, database, free_port, s3_server

CAMERAS = ("cam-a", "cam-b")
REPLICATED = ("ingest", "masking", "archive")
SINGLE = ("requisition", "gateway")
SEGMENT_S = 4
BEFORE_S, AFTER_S = 5.0, 10.0
OUTAGE_S = {"store": 120.0, "database": 120.0, "camera": 30.0, "nats": 5.0}
ROOT = Path(__file__).resolve().parent.parent


def _now_us() -> int:
    return time.time_ns() // 1000


class Site:
    """The platform's processes, replicas named `<service>-a`/`-b`, and what can fail under them."""

    def __init__(self, workdir: Path, stack: ExitStack, footage: Path) -> None:
        self.workdir = workdir
        self.nats = stack.enter_context(RestartableNats(workdir / "nats"))
        s3 = stack.enter_context(s3_server(workdir))
        self.proxy = TcpProxy("127.0.0.1", int(s3.endpoint.rsplit(":", 1)[1]))
        stack.callback(self.proxy.close)
        self.database_url = stack.enter_context(database(workdir))
        relayed = S3Server(self.proxy.endpoint, s3.access_key, s3.secret_key)
        self.platform = Platform(workdir, self.nats.url, self.database_url, relayed)
        self.platform.env |= {"CSU_SEGMENT_DURATION_S": str(SEGMENT_S), "CSU_RECONNECT_MAX_S": "2"}
        self.cameras = {name: RtspCamera(footage, loop=True, path=f"/{name}") for name in CAMERAS}
        for camera in self.cameras.values():
            camera.start()
            stack.callback(camera.stop)
        self.platform.set_cameras(
            [{"id": name, "name": name, "source": cam.url, "masks": []} for name, cam in self.cameras.items()]
        )
        self.processes: dict[str, ServiceProcess] = {}
        for service in REPLICATED:
            for replica in ("a", "b"):
                self._add(service, f"{service}-{replica}")
        for service in SINGLE:
            self._add(service, service)
        stack.callback(self.stop)

    def _add(self, service: str, name: str) -> None:
        env = dict(self.platform.env)
        if service in REPLICATED:
            env[f"CSU_{service.upper()}_REPLICA_ID"] = name
            env[f"CSU_{service.upper()}_HTTP_PORT"] = str(free_port())
            if name.endswith("-b"):
                env[f"CSU_{service.upper()}_GRPC"] = f"127.0.0.1:{free_port()}"
            if service == "archive":
                env["CSU_DATA_DIR"] = str(self.workdir / name)
        logs = self.workdir / "logs" / f"{name}.log"
        self.processes[name] = ServiceProcess(service, env, logs, health_url(service, env))

    def start(self) -> None:
        first = self.processes["ingest-a"]
        first.start()
        first.wait_ready(120)  # migrates and seeds the registry before the others read it
        others = [p for n, p in self.processes.items() if n != "ingest-a"]
        for process in others:
            process.start()
        wait_all_ready(others, 180)

    def stop(self) -> None:
        from services.launcher import stop_all

        stop_all(list(self.processes.values()))

    def replicas(self, service: str) -> list[ServiceProcess]:
        return [p for n, p in self.processes.items() if n == service or n.startswith(f"{service}-")]

    # -- what the platform says ----------------------------------------------------------------

    def holder(self, service: str, camera: str) -> str:
        async def owners() -> dict[str, str]:
            nc = await nats.connect(self.nats.url)
            try:
                reader = LeaseManager(nc.jetstream(), f"{self.platform.nats_prefix}_{service}_leases", "bench", 8)
                await reader.start()
                return await reader.owners()
            finally:
                await nc.close()

        return asyncio.run(owners()).get(camera, "")

    def _archive(self, method: str, request):  # type: ignore[no-untyped-def]
        async def call():  # type: ignore[no-untyped-def]
            async with rpc.channel(self.processes["archive-a"].env["CSU_ARCHIVE_GRPC"]) as channel:
                return await getattr(archive_pb2_grpc.ArchiveServiceStub(channel), method)(request, timeout=30)

        return asyncio.run(call())

    def stored_until(self, camera: str) -> int:
        now = _now_us()
        request = archive_pb2.ListSegmentsRequest(camera_id=camera, start_us=now - HOUR_US, end_us=now)
        segments = self._archive("ListSegments", request).segments
        return max((s.end_us for s in segments), default=0)

    def lost_s(self, camera: str, start_us: int, end_us: int) -> float:
        request = archive_pb2.TimelineRequest(camera_id=camera, start_us=start_us, end_us=end_us)
        return sum(g.end_us - g.start_us for g in self._archive("GetTimeline", request).gaps) / 1e6

    def settled(self) -> None:
        """Both cameras held by a replica of each service and recording, before the next fault."""
        for service in REPLICATED:
            wait_for(lambda s=service: all(self.holder(s, c) for c in CAMERAS), 120, f"{service} holding the cameras")
        since = _now_us()
        wait_for(lambda: all(self.stored_until(c) > since for c in CAMERAS), 180, "both cameras recording")


def _kill(site: Site, service: str) -> Callable[[], float]:
    def fault() -> float:
        name = site.holder(service, CAMERAS[0]) if service in REPLICATED else service
        process = site.processes[name]
        started = time.monotonic()
        process.kill()
        process.start()  # at once, as the launcher or the kubelet restarts it
        process.wait_ready(180)
        return time.monotonic() - started

    return fault


def _rollout(site: Site, service: str) -> Callable[[], float]:
    def fault() -> float:
        started = time.monotonic()
        for process in site.replicas(service):
            process.stop()
            process.start()
            process.wait_ready(180)
            if service in REPLICATED:  # the next pod goes once this one has its share again
                wait_for(lambda: all(site.holder(service, c) for c in CAMERAS), 60, f"{service} holding the cameras")
        return time.monotonic() - started

    return fault


def _outage(down: Callable[[], object], up: Callable[[], object], seconds: float) -> float:
    """Something taken away for `seconds`, then back: how long it was away."""
    started = time.monotonic()
    down()
    time.sleep(seconds)
    up()
    return time.monotonic() - started


def _database_outage(site: Site) -> float:
    refusing = ExitStack()
    return _outage(
        lambda: refusing.enter_context(database_outage(site.database_url)), refusing.close, OUTAGE_S["database"]
    )


def _measure(site: Site, name: str, fault: Callable[[], float], figures: dict[str, float | str]) -> None:
    site.settled()
    start_us = _now_us()
    outage_s = fault()
    end_us = start_us + int(outage_s * 1e6)
    window = (start_us - int(BEFORE_S * 1e6), end_us + int(AFTER_S * 1e6))
    wait_for(lambda: all(site.stored_until(c) > window[1] for c in CAMERAS), 300, f"recording stored after {name}")
    lost = [site.lost_s(c, *window) for c in CAMERAS]
    figures[f"fault_{name}_outage_s"] = outage_s
    figures[f"fault_{name}_lost_s_max"] = max(lost)
    figures[f"fault_{name}_lost_s_mean"] = sum(lost) / len(lost)
    print(f"  {name:<28} outage {outage_s:6.1f} s   lost per camera {lost}", flush=True)


def _ctrl_c(workdir: Path) -> float:
    """`make run` up, then SIGINT to its process group as a terminal does: seconds until it exited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSU_") and k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"CSU_DATA_DIR": str(workdir / "make-run"), "CSU_GATEWAY_PORT": str(free_port())}
    env |= {f"CSU_{n}_HTTP_PORT": str(free_port()) for n in ("INGEST", "MASKING", "ARCHIVE", "REQUISITION")}
    env |= {f"CSU_{n}_GRPC": f"127.0.0.1:{free_port()}" for n in ("INGEST", "MASKING", "ARCHIVE", "REQUISITION")}
    log = workdir / "make-run.log"
    with log.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "services.launcher"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "CSU console:" in log.read_text(), 240, "make run up")
        time.sleep(10)  # recording
        started = time.monotonic()
        os.killpg(launcher.pid, signal.SIGINT)
        launcher.wait(120)
        return time.monotonic() - started
    finally:
        if launcher.poll() is None:
            launcher.kill()


def run() -> dict[str, float | str]:
    problem = rtsp_server_available()
    folder = testdata_dir()
    if problem or folder is None:
        return {"fault_bench": f"skipped: {problem or 'vtest.avi not found (CSU_TESTDATA_DIR)'}"}
    figures: dict[str, float | str] = {"fault_segment_s": float(SEGMENT_S)}
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        footage = transcode_h264(folder / "vtest.avi", workdir / "vtest_h264.mp4")
        site = Site(workdir, stack, footage)
        site.start()
        for service in (*REPLICATED, *SINGLE):
            _measure(site, f"kill_{service}", _kill(site, service), figures)
        for service in (*REPLICATED, *SINGLE):
            _measure(site, f"rollout_{service}", _rollout(site, service), figures)
        camera = site.cameras[CAMERAS[0]]
        _measure(site, "nats_restart", lambda: _outage(site.nats.stop, site.nats.start, OUTAGE_S["nats"]), figures)
        _measure(site, "store_outage", lambda: _outage(site.proxy.cut, site.proxy.restore, OUTAGE_S["store"]), figures)
        _measure(site, "database_outage", lambda: _database_outage(site), figures)
        _measure(site, "camera_unplugged", lambda: _outage(camera.kill, camera.start, OUTAGE_S["camera"]), figures)
        site.stop()
        figures["make_run_ctrl_c_s"] = _ctrl_c(workdir)
    return figures


def table(figures: dict[str, float | str]) -> str:
    """The README's reliability table from the figures (markdown)."""
    rows = ["| fault | outage (s) | lost per camera, max (s) | mean (s) |", "|---|---|---|---|"]
    for key in figures:
        match = re.fullmatch(r"fault_(.+)_outage_s", key)
        if match:
            name = match.group(1)
            rows.append(
                f"| {name.replace('_', ' ')} | {figures[key]:.1f} | {figures[f'fault_{name}_lost_s_max']:.1f} "
                f"| {figures[f'fault_{name}_lost_s_mean']:.1f} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    measured = run()
    for key, value in measured.items():
        print(f"{key:<52} {value:>12.3f}" if isinstance(value, float) else f"{key:<52} {value:>12}")
    print(table(measured))
    print(f"date {datetime.now(UTC).isoformat(timespec='seconds')}, now_us {to_us(datetime.now(UTC))}")
