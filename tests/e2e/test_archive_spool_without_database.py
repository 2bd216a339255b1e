"""An archive that cannot reach its database at start-up still applies the legal maximum to its spool.

A persistent spool outlives the archive's pod: what a store outage left in it is there when the
archive starts again, and that start can wait a long time for its database. Without the database
the cameras' retention and the holds are unknown, but no footage may pass 30 days: the archive
deletes what is past it straight away, writes the deletion proofs once the database answers, and
records the erasure in the audit trail, where the compliance report finds it.
Real processes, a refused PostgreSQL port, then the test's real database and S3 server.
"""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.archive import index
from services.archive.spool import Spool
from services.common import audit
from services.common.clock import to_us
from services.launcher import ServiceProcess, health_url
from tests.support.archive import make_engine, record
from tests.support.audit import audit_events
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e


def test_spooled_footage_past_30_days_goes_while_the_database_is_away(
    platform: Platform, database_url: str, nats_url: str
) -> None:
    spool = Spool(platform.workdir / "data" / "spool" / "archive", 1 << 30)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    expired = record(spool.root, "cam-old", to_us(hour - timedelta(days=30, hours=2)), 4)
    recent = record(spool.root, "cam-new", to_us(hour - timedelta(days=1)), 4)

    # One camera that never answers: ingest runs (the gateway needs it) and records nothing.
    silent = f"rtsp://127.0.0.1:{free_port()}/none"
    platform.set_cameras([{"id": "cam-off", "name": "cam-off", "source": silent, "masks": []}])
    platform.env["CSU_ARCHIVE_SWEEP_INTERVAL_S"] = "1"
    platform.env["CSU_ARCHIVE_ERASURE_AUDIT_INTERVAL_S"] = "1"
    env = platform.env | {"CSU_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/refused"}
    archive = ServiceProcess("archive", env, platform.workdir / "logs" / "archive.log", health_url("archive", env))
    platform.processes["archive"] = archive
    archive.start()
    wait_for(lambda: not any(seg.media_path(spool.root).exists() for seg in expired), 30, "the expired footage to go")
    assert archive.running and not archive.ready()  # still waiting for its database
    assert all(seg.media_path(spool.root).exists() for seg in recent)  # within every retention: kept
    assert sorted(seg.id for seg, _ in spool.unproved()) == sorted(seg.id for seg in expired)
    assert "its deletion proof waits for the database" in archive.log_tail(200)
    assert platform.metric("archive", "csu_archive_unproved_deletions") == len(expired)  # what ops alert on

    assert archive.stop(), "the archive waiting for its database ignored SIGTERM"
    archive.env["CSU_DATABASE_URL"] = database_url
    archive.start()
    archive.wait_ready(60)
    engine = make_engine(database_url)
    try:
        wait_for(lambda: not spool.unproved(), 30, "the owed deletion proofs to be written")
        proved = {sha for proof in index.proofs(engine, "cam-old") for sha in proof.sha256s.split()}
        assert proved == {seg.sha256 for seg in expired}
        wait_for(lambda: platform.metric("archive", "csu_archive_unproved_deletions") == 0, 10, "no proof owed")

        def erasures() -> list[dict]:
            events = asyncio.run(audit_events(nats_url, platform.nats_prefix))
            return [
                proof
                for e in events
                if e.action == audit.RECORDING_ERASE and e.actor == "system"
                for proof in json.loads(e.details_json)["proofs"]
            ]

        # The erasure is in the audit trail too, as its proof stands, and the auditors' compliance
        # report finds it there.
        (audited,) = wait_for(erasures, 30, "the erasure in the audit trail")
        (proof,) = index.proofs(engine, "cam-old")
        assert (audited["camera_id"], audited["count"], audited["digest"]) == ("cam-old", len(expired), proof.digest)
        platform.start(["ingest", "gateway"])
        with platform.client("auditor") as auditor:

            def deletion_section() -> dict | None:
                section = auditor.get("/api/v1/compliance/report").json()["deletion_proofs"]
                return section if section["erasures_audited"] == 1 else None

            section = wait_for(deletion_section, 30, "the compliance report to find the erasure in the trail")
        assert section["proofs"] == 1 and section["erasures_not_audited"] == []
        wait_for(
            lambda: len(index.overlapping(engine, "cam-new", "main", 0, 2**62)) == len(recent),
            60,
            "the recent segments to be stored",
        )
    finally:
        engine.dispose()
