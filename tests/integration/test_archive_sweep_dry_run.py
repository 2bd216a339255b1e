"""The retention sweep's dry run against the test database and S3, time moved with ManualClock:
`csuctl segments sweep --dry-run` through ArchiveService says, per camera, what the sweeper then
really deletes (count, bytes, oldest), holds included, and deletes nothing itself. Also the day-by-day
`segments verify` over a range, which must find what the one-request walk finds."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.archive import index
from services.archive.holds import HoldBook
from services.archive.keys import segment_key
from services.archive.sweeper import Sweeper
from services.common.clock import from_us, to_us
from services.csuctl.app import app
from services.csuctl.segments import day_windows
from tests.support.archive import CAMERAS_15_AND_90, T0_US, ArchiveHarness, running_archive
from tests.support.servers import S3Server

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000


@pytest.fixture
async def archive(tmp_path: Path, database_url: str, s3: S3Server) -> AsyncIterator[ArchiveHarness]:
    async with running_archive(tmp_path, database_url, s3, CAMERAS_15_AND_90) as h:
        yield h


def _iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")


async def test_dry_run_says_what_the_sweep_deletes(archive: ArchiveHarness) -> None:
    h = archive
    first = await h.record("cam-15", T0_US, 4)
    second = await h.record("cam-15", T0_US + 1800 * 1_000_000, 4)
    other = await h.record("cam-90", T0_US, 4)
    h.clock.advance(timedelta(days=1))
    later = await h.record("cam-15", T0_US + DAY_US, 4)

    code, plan = await h.cli("sweep", "--dry-run")
    assert code == 0 and plan["dry_run"] is True and plan["total"] == {"count": 0, "bytes": 0}
    assert [(c["camera_id"], c["stream"], c["retention_days"]) for c in plan["cameras"]] == [
        ("cam-15", "main", 15),
        ("cam-90", "main", 30),
    ]

    # 15 days and a few minutes after the first day: its cam-15 recordings are due, nothing else.
    h.clock.advance(timedelta(days=14, minutes=5))
    now_us = to_us(h.clock.now())
    due = first + second
    code, plan = await h.cli("sweep", "--dry-run")
    assert code == 0 and plan["now"] == _iso(now_us)
    cam15, cam90 = plan["cameras"]
    assert cam15 == {
        "camera_id": "cam-15", "stream": "main", "retention_days": 15, "cutoff": _iso(now_us - 15 * DAY_US),
        "count": len(due), "bytes": sum(s.bytes for s in due), "oldest": _iso(due[0].start_us),
        "newest": _iso(due[-1].start_us), "held": 0,
    }  # fmt: skip
    assert cam90["count"] == 0 and cam90["oldest"] is None
    assert plan["total"] == {"count": len(due), "bytes": cam15["bytes"]}
    code, only = await h.cli("sweep", "--dry-run", "--camera", "cam-90")
    assert code == 0 and [c["camera_id"] for c in only["cameras"]] == ["cam-90"]
    # The dry run deleted nothing.
    assert index.count(h.engine) == len(first + second + other + later)

    # A hold on the second recording (a citizen's access request): it stays, and the dry run says so.
    holds = HoldBook(h.engine, h.clock)
    end_us = second[-1].end_us
    holds.place("cr-1", "cam-15", second[0].start_us, end_us, now_us + 20 * DAY_US, "access request", "clerk-1")
    sweeper = Sweeper(h.engine, h.store, h.clock, h.retention, batch=2, holds=holds)
    pending = {p.camera_id: p for p in sweeper.dry_run()}
    assert (pending["cam-15"].count, pending["cam-15"].held) == (len(first), len(second))
    assert pending["cam-15"].bytes == sum(s.bytes for s in first)

    result = sweeper.sweep()
    assert (result.deleted, result.bytes) == (pending["cam-15"].count, pending["cam-15"].bytes)
    after = {p.camera_id: p for p in sweeper.dry_run()}
    assert (after["cam-15"].count, after["cam-15"].held, after["cam-90"].count) == (0, len(second), 0)

    # Past 30 days the legal maximum wins over the hold, and over cam-90's 90 days.
    h.clock.advance(timedelta(days=16))
    pending = {p.camera_id: p for p in sweeper.dry_run()}
    assert (pending["cam-15"].count, pending["cam-15"].held) == (len(second + later), 0)
    assert pending["cam-90"].count == len(other) and pending["cam-90"].retention_days == 30
    result = sweeper.sweep()
    assert result.deleted == len(second + later + other) and index.count(h.engine) == 0


async def test_dry_run_bad_input_and_friendly_output(archive: ArchiveHarness) -> None:
    h = archive
    await h.record("cam-15", T0_US, 4)
    h.clock.advance(timedelta(days=16))
    runner = CliRunner()
    env = {"CSU_ARCHIVE_GRPC": h.target}

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["segments", *args], env=env)

    friendly = await asyncio.to_thread(run, "sweep", "--dry-run")
    assert friendly.exit_code == 0, friendly.output
    assert "would delete 2 segment(s)" in friendly.stdout and "nothing was deleted" in friendly.stdout
    assert "cam-15" in friendly.stdout
    # Only the dry run: the archive sweeps by itself.
    refused = await asyncio.to_thread(run, "sweep")
    assert refused.exit_code == 2 and "add --dry-run" in refused.stderr
    bad = await asyncio.to_thread(run, "sweep", "--dry-run", "--camera", "../etc")
    assert bad.exit_code == 2 and "INVALID_ARGUMENT" in bad.stderr
    assert index.count(h.engine) == 2
    unreachable = await asyncio.to_thread(
        runner.invoke, app, ["segments", "sweep", "--dry-run"], env={"CSU_ARCHIVE_GRPC": "127.0.0.1:1"}
    )
    assert unreachable.exit_code == 2 and "UNAVAILABLE" in unreachable.stderr


async def test_verify_a_range_day_by_day(archive: ArchiveHarness) -> None:
    h = archive
    days = []
    for n in range(3):
        days.append(await h.record("cam-15", T0_US + n * DAY_US + 600 * 1_000_000, 6))
        h.clock.advance(timedelta(days=1))
    start, end = _iso(T0_US - HOUR_US), _iso(T0_US + 3 * DAY_US)
    assert len(day_windows(T0_US - HOUR_US, T0_US + 3 * DAY_US)) == 4
    code, report = await h.cli("verify", "cam-15", "--start", start, "--end", end)
    every = [s for day in days for s in day]
    assert code == 0 and report["ok"] and report["segments_checked"] == len(every) == report["objects_checked"]

    # An object altered on the second day and one injected on the third are found, once each,
    # and the links across the day boundaries still hold.
    altered = days[1][1]
    key = segment_key("cam-15", altered.start_us)
    data = bytearray(h.store.get(key))
    data[len(data) // 2] ^= 0xFF
    meta = h.store.stat(key).metadata
    h.store.put(key, bytes(data), meta, "video/mp4")
    injected = segment_key("cam-15", days[2][0].start_us + 1_000_000)
    h.store.put(injected, bytes(data), meta, "video/mp4")
    code, report = await h.cli("verify", "cam-15", "--start", start, "--end", end)
    assert code == 1 and not report["ok"]
    assert sorted((p["kind"], p["segment_id"] or p["object_key"]) for p in report["problems"]) == [
        ("altered", altered.id),
        ("unexpected", injected),
    ]
    code, whole = await h.cli("verify", "cam-15")
    assert code == 1 and sorted(p["kind"] for p in whole["problems"]) == ["altered", "unexpected"]
    reversed_range = CliRunner().invoke(app, ["segments", "verify", "cam-15", "--start", end, "--end", start])
    assert reversed_range.exit_code == 2 and "before --end" in reversed_range.output
