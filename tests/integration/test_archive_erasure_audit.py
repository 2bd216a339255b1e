"""Retention's erasures reach the audit trail: the S3 server, the test database and NATS, time moved
with a ManualClock. Each record names the deletion proofs as they stand; a proof that grows is
audited again, one already audited is not, and a trail that cannot be reached loses nothing."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from services.archive import erasure_audit, index
from services.archive.sweeper import Sweeper
from services.common import audit
from services.common.pb.csu.v1.audit_pb2 import AuditEvent
from tests.support.archive import CAMERAS_15_AND_90, T0_US, ArchiveHarness, running_archive
from tests.support.audit import audit_events
from tests.support.servers import S3Server, nats_prefix


def erased(events: list[AuditEvent]) -> list[list[tuple[str, int, int, str]]]:
    """Per erasure record: (camera, hour, count, digest) of each proof it names."""
    records = [e for e in events if e.action == audit.RECORDING_ERASE]
    assert all((e.actor, e.target, e.outcome) == ("system", "archive", "ok") for e in records)
    return [
        [(p["camera_id"], p["hour_start_us"], p["count"], p["digest"]) for p in json.loads(e.details_json)["proofs"]]
        for e in records
    ]


def as_audited(h: ArchiveHarness, camera_id: str) -> list[tuple[str, int, int, str]]:
    return [(p.camera_id, p.hour_start_us, p.count, p.digest) for p in index.proofs(h.engine, camera_id)]


async def test_erasures_are_audited_once_each_as_their_proofs_grow(
    tmp_path: Path, database_url: str, s3: S3Server, nats_url: str, events_stream: tuple[JetStreamContext, str]
) -> None:
    js, prefix = events_stream
    async with running_archive(tmp_path, database_url, s3, CAMERAS_15_AND_90) as h:
        first = await h.record("cam-15", T0_US, 3)
        second = await h.record("cam-15", T0_US + 1_800_000_000, 3)  # the same hour, half an hour later
        kept = await h.record("cam-90", T0_US, 3)
        sweeper = Sweeper(h.engine, h.store, h.clock, h.retention, batch=100)
        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 0  # nothing erased yet

        h.clock.advance(timedelta(days=15, minutes=-45))  # the first recording is past 15 days, the second not
        assert sweeper.sweep().deleted == len(first)
        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 1
        assert erased(await audit_events(nats_url, prefix)) == [as_audited(h, "cam-15")]
        assert as_audited(h, "cam-15")[0][2] == len(first)

        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 0  # already in the trail

        h.clock.advance(timedelta(minutes=30))  # the second recording goes too: the hour's proof grows
        assert sweeper.sweep().deleted == len(second)
        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 1
        records = erased(await audit_events(nats_url, prefix))
        assert len(records) == 2 and records[1] == as_audited(h, "cam-15")
        assert records[1][0][2] == len(first) + len(second)
        assert index.proofs(h.engine, "cam-90") == [] and kept  # within its 30 days: neither erased nor audited


async def test_an_unreachable_trail_delays_the_record_never_loses_it(
    tmp_path: Path, database_url: str, s3: S3Server, nats_url: str, events_stream: tuple[JetStreamContext, str]
) -> None:
    js, prefix = events_stream
    async with running_archive(tmp_path, database_url, s3, CAMERAS_15_AND_90) as h:
        segments = await h.record("cam-15", T0_US, 3)
        h.clock.advance(timedelta(days=15))
        assert Sweeper(h.engine, h.store, h.clock, h.retention, batch=100).sweep().deleted == len(segments)

        with pytest.raises(audit.AuditUnavailable):  # no events stream under this prefix: JetStream refuses
            await erasure_audit.record_erasures(h.engine, js, nats_prefix(), h.clock)
        assert len(index.unaudited_proofs(h.engine, 10)) == 1  # the deletion happened; its record is due

        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 1
        assert erased(await audit_events(nats_url, prefix)) == [as_audited(h, "cam-15")]
        assert index.unaudited_proofs(h.engine, 10) == []


async def test_a_backlog_is_audited_in_bounded_records(
    tmp_path: Path,
    database_url: str,
    s3: S3Server,
    nats_url: str,
    events_stream: tuple[JetStreamContext, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    js, prefix = events_stream
    monkeypatch.setattr(erasure_audit, "PROOFS_PER_RECORD", 1)
    monkeypatch.setattr(erasure_audit, "RECORDS_PER_CALL", 2)
    async with running_archive(tmp_path, database_url, s3) as h:
        for camera in ("cam-a", "cam-b", "cam-c"):
            await h.record(camera, T0_US, 3)
        h.clock.advance(timedelta(days=15))
        Sweeper(h.engine, h.store, h.clock, h.retention, batch=100).sweep()
        assert len(index.unaudited_proofs(h.engine, 10)) == 3

        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 2  # the most a call does
        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 1
        assert await erasure_audit.record_erasures(h.engine, js, prefix, h.clock) == 0
        records = erased(await audit_events(nats_url, prefix))
        assert [len(r) for r in records] == [1, 1, 1]
        assert sorted(r[0][0] for r in records) == ["cam-a", "cam-b", "cam-c"]
