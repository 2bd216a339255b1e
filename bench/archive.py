"""Archive: timeline queries on a full-scale index, clip building, retention sweeping.

- Timeline of one camera-day on an index filled to full scale (128 cameras x 15 days of 60 s
  segments, 2.76 M rows) in PostgreSQL ($DATABASE_URL; skipped with the reason when unset):
  p50/p99 of the whole query (segments, gaps, merge), target p99 <= 20 ms.
- Clip of one hour (60 segments of 60 s, 704x576 10 fps) built from an S3 server next to a plain
  byte copy of the same objects from the same server, in the same run (target <= 2x).
- Sweep: objects deleted per second (S3 multi-object deletes + index rows + deletion proofs)
  against an S3 server. The issue's figure is one day of 128 cameras (184 k objects); loading
  that many objects into the in-memory S3 test server takes longer than the sweep itself, so the
  run uses a tenth of a day (18 432 objects) and says so.
The S3 server is moto's (the tests' loopback server), started here; figures are indicative on a
shared machine.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import psycopg
from sqlalchemy import Engine, create_engine

from services.archive import index
from services.archive.clips import ClipSource, build_clip
from services.archive.keys import segment_key
from services.archive.retention import RetentionPolicy
from services.archive.segmenter import SegmentBuilder
from services.archive.sweeper import Sweeper
from services.archive.timeline import KnownGap
from services.archive.timeline import build as build_timeline
from services.common import db
from services.common.clock import ManualClock, to_us
from services.common.objectstore.s3 import S3Store
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.common.timefmt import DAY_S, DAY_US
from tests.support.ports import free_port

CAMERAS, DAYS, SEGMENT_S = 128, 15, 60
SEGMENTS_PER_DAY = DAY_S // SEGMENT_S
TIMELINE_SAMPLES = 300
SWEEP_OBJECTS = 128 * SEGMENTS_PER_DAY // 10
US = 1_000_000


# -- servers -----------------------------------------------------------------------------------


class _Moto:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._log = (workdir / "moto.log").open("wb")
        moto = Path(sys.executable).parent / "moto_server"
        self._process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def store(self, bucket: str) -> S3Store:
        store = S3Store(self.endpoint, "bench-access", "bench-secret", "us-east-1", bucket)
        store.ensure_bucket()
        return store

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._log.close()


# -- timeline on a full index ------------------------------------------------------------------


def timeline_figures() -> dict[str, float | str]:
    base = os.environ.get("DATABASE_URL")
    if not base:
        reason = "DATABASE_URL is not set: the full-scale index needs PostgreSQL"
        print(f"  timeline: skipped ({reason})")
        return {"archive_timeline": f"skipped: {reason}"}
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    name = f"csu_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin.rpartition('/')[0]}/{name}"
    engine = db.make_engine(Settings(database_url=url))  # type: ignore[call-arg]
    try:
        db.migrate("archive", engine)
        start = time.monotonic()
        rows = _fill(url)
        fill_s = time.monotonic() - start
        print(f"  index filled: {rows} rows in {fill_s:.0f} s")
        p50, p99 = _timeline_latency(engine)
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "archive_index_rows": float(rows),
        "archive_timeline_camera_day_p50_ms": p50,
        "archive_timeline_camera_day_p99_ms": p99,
    }


T_END_US = to_us(datetime(2026, 11, 25, tzinfo=UTC))
T_START_US = T_END_US - DAYS * DAY_US


def _fill(url: str) -> int:
    """COPY 128 cameras x 15 days of 60 s segments into archive_segments."""
    columns = (
        "id, camera_id, stream, start_us, end_us, object_key, bytes, sha256, frames, mask_version, "
        "fully_masked, created_us, prev_sha256"
    )
    count = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY archive_segments ({columns}) FROM STDIN") as copy:
            for cam in range(CAMERAS):
                camera_id = f"cam-{cam:03d}"
                prev = ""
                for n in range(DAYS * SEGMENTS_PER_DAY):
                    start_us = T_START_US + n * SEGMENT_S * US
                    sha = f"{cam:04x}{n:060x}"
                    copy.write_row(
                        (
                            uuid.UUID(int=(cam << 64) | n).hex,
                            camera_id,
                            "main",
                            start_us,
                            start_us + SEGMENT_S * US,
                            segment_key(camera_id, start_us),
                            4_000_000,
                            sha,
                            600,
                            "m-bench",
                            False,
                            start_us + SEGMENT_S * US,
                            prev,
                        )
                    )
                    prev = sha
                    count += 1
        cur.execute("ANALYZE archive_segments")
        conn.commit()
    return count


def _timeline_latency(engine: Engine) -> tuple[float, float]:
    """The archive's timeline query (segments + known gaps + merge) for random camera-days."""
    rng = np.random.default_rng(1)
    timings = []
    for i in range(TIMELINE_SAMPLES + 20):
        cam = f"cam-{int(rng.integers(CAMERAS)):03d}"
        day = int(rng.integers(DAYS))
        start = T_START_US + day * DAY_US
        end = start + DAY_US
        t0 = time.perf_counter()
        spans = index.spans(engine, cam, "main", start, end)
        gaps = index.gaps(engine, cam, "main", start, end)
        result = build_timeline(start, end, spans, [], [KnownGap(g.start_us, g.end_us, g.reason) for g in gaps])
        elapsed = time.perf_counter() - t0
        assert len(spans) == SEGMENTS_PER_DAY and len(result.covered) == 1
        if i >= 20:  # the first queries warm the connection pool and caches
            timings.append(elapsed * 1000)
    quantiles = statistics.quantiles(timings, n=100)
    return quantiles[49], quantiles[98]


# -- clip of one hour --------------------------------------------------------------------------


def _segment(workdir: Path) -> Path:
    """One 60 s segment cut by the archive's own segmenter from a camera-like H.264 stream."""
    width, height, fps = 704, 576, 10
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, fps), Fraction(fps)
    encoder.gop_size, encoder.max_b_frames = fps, 0
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "26"}
    rng = np.random.default_rng(3)
    base = cv2.resize(rng.integers(40, 200, (height // 8, width // 8, 3), dtype=np.uint8), (width, height))
    builder = SegmentBuilder("bench", "main", workdir, SEGMENT_S + 1, 3.0)
    t0 = T_END_US
    for i in range(SEGMENT_S * fps):
        img = base.copy()
        cv2.rectangle(img, ((i * 9) % width, 300), ((i * 9) % width + 80, 460), (30, 200, 90), -1)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = i
        for p in encoder.encode(frame):
            builder.add(
                FramePacket(
                    camera_id="bench",
                    stream="main",
                    keyframe=p.is_keyframe,
                    capture_time_us=t0 + p.pts * US // fps,
                    source_session="s",
                    frame_rate=fps,
                    data=bytes(p),
                )
            )
    closed = builder.close()
    assert closed is not None
    return closed.media_path(workdir)


def clip_figures(moto: _Moto, workdir: Path) -> dict[str, float | str]:
    media = _segment(workdir)
    store = moto.store(f"bench-clip-{uuid.uuid4().hex[:6]}")
    starts = [T_END_US + n * SEGMENT_S * US for n in range(60)]
    keys = [segment_key("bench", s) for s in starts]
    for key in keys:
        store.put_file(key, media, {}, "video/mp4")
    size = media.stat().st_size
    print(f"  one hour: 60 segments of {size / 1e6:.1f} MB in the S3 server")

    copy_dir = workdir / "copy"
    copy_dir.mkdir()
    t0 = time.perf_counter()
    for n, key in enumerate(keys):
        with (copy_dir / f"{n}.mp4").open("wb") as f:
            for chunk in store.iter_chunks(key):
                f.write(chunk)
    copy_s = time.perf_counter() - t0

    clip_dir = workdir / "clip"
    clip_dir.mkdir()

    def opener(n: int, key: str):  # type: ignore[no-untyped-def]
        def open_():  # type: ignore[no-untyped-def]
            path = clip_dir / f"{n}.mp4"
            if not path.exists():
                with path.open("wb") as f:
                    for chunk in store.iter_chunks(key):
                        f.write(chunk)
            return path.open("rb")

        return open_

    sources = [ClipSource(str(n), s, opener(n, k)) for n, (s, k) in enumerate(zip(starts, keys, strict=True))]
    t0 = time.perf_counter()
    result = build_clip(sources, starts[0], starts[0] + 3600 * US, "bench", "Bench", clip_dir / "clip.mp4")
    clip_s = time.perf_counter() - t0
    assert result.frames == 36_000, result
    store.delete_many(keys)
    return {
        "archive_clip_1h_build_s": clip_s,
        "archive_clip_1h_byte_copy_s": copy_s,
        "archive_clip_vs_copy_ratio": clip_s / copy_s,
        "archive_clip_1h_mb": result.size / 1e6,
    }


# -- sweep -------------------------------------------------------------------------------------


def sweep_figures(moto: _Moto, workdir: Path) -> dict[str, float | str]:
    store = moto.store(f"bench-sweep-{uuid.uuid4().hex[:6]}")
    engine = create_engine(f"sqlite:///{workdir / 'sweep.db'}")
    db.migrate("archive", engine)
    per_camera = SWEEP_OBJECTS // CAMERAS
    rows = []
    for cam in range(CAMERAS):
        for n in range(per_camera):
            start_us = T_START_US + n * SEGMENT_S * US
            camera_id = f"cam-{cam:03d}"
            rows.append(
                {
                    "id": uuid.uuid4().hex,
                    "camera_id": camera_id,
                    "stream": "main",
                    "start_us": start_us,
                    "end_us": start_us + SEGMENT_S * US,
                    "object_key": segment_key(camera_id, start_us),
                    "bytes": 1024,
                    "sha256": f"{cam:04x}{n:060x}",
                    "frames": 600,
                    "mask_version": "m",
                    "fully_masked": False,
                    "created_us": start_us,
                    "prev_sha256": "",
                }
            )
    payload = b"\0" * 1024
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda r: store.put(r["object_key"], payload), rows))
    print(f"  sweep: {len(rows)} objects loaded in {time.perf_counter() - t0:.0f} s (a tenth of a day of 128 cameras)")
    with engine.begin() as conn:
        conn.execute(index.Segment.__table__.insert(), rows)  # type: ignore[attr-defined]
    clock = ManualClock(datetime.fromtimestamp(T_START_US / US, UTC) + timedelta(days=16))
    sweeper = Sweeper(engine, store, clock, RetentionPolicy(15), batch=1000)
    t0 = time.perf_counter()
    result = sweeper.sweep()
    sweep_s = time.perf_counter() - t0
    assert result.deleted == len(rows), result.deleted
    assert not list(store.list("cam/"))
    engine.dispose()
    return {"archive_sweep_objects": float(len(rows)), "archive_sweep_objects_per_s": len(rows) / sweep_s}


def run() -> dict[str, float | str]:
    figures: dict[str, float | str] = {}
    figures |= timeline_figures()
    with tempfile.TemporaryDirectory(prefix="csu-bench-archive-") as tmp:
        workdir = Path(tmp)
        moto = _Moto(workdir)
        try:
            figures |= clip_figures(moto, workdir)
            figures |= sweep_figures(moto, workdir)
        finally:
            moto.stop()
    return figures
