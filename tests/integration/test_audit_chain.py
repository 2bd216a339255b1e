"""The audit chain on the real database: append, checkpoints, retention purges, tampering."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from services.common import audit, db
from services.common.clock import ManualClock, to_us
from services.common.pb.csu.v1 import archive_pb2
from services.common.pb.csu.v1.audit_pb2 import AuditEvent
from services.common.settings import Settings
from services.common.signing import Signer
from services.gateway.identity import audit_log
from services.gateway.operations import compliance

START = datetime(2023, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    db.migrate("gateway", engine)
    yield engine
    engine.dispose()


@pytest.fixture
def signer(tmp_path) -> Signer:  # type: ignore[no-untyped-def]
    Signer.generate(tmp_path / "key.pem")
    return Signer.from_file(tmp_path / "key.pem")


def event(n: int, clock: ManualClock, action: str = "live.start", **details: object) -> AuditEvent:
    return AuditEvent(
        id=f"{n:032x}",
        time_us=to_us(clock.now()),
        actor=f"user{n % 3}",
        role="operator",
        action=action,
        target="camera:cam-1",
        outcome="ok",
        details_json=json.dumps(details),
    )


def test_chain_checkpoints_and_redelivery(engine, signer: Signer) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(START)
    events = [event(n, clock) for n in range(1, 251)]
    assert audit_log.append(engine, events[:150], signer, clock) == 150
    assert audit_log.append(engine, events[100:], signer, clock) == 100  # 50 redelivered: recorded once
    verdict = audit_log.verify_chain(engine, signer.public_pem())
    assert verdict.ok and verdict.entries == 250
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gateway_audit_checkpoints")).scalar() == 2  # at 100 and 200
    # A checkpoint signed by another key is refused when the deployment's key is trusted.
    assert audit_log.checkpoint_now(engine, signer, clock) is not None
    other = Signer.from_file(_other_key(signer))
    assert not audit_log.verify_chain(engine, other.public_pem()).ok


def _other_key(signer: Signer):  # type: ignore[no-untyped-def]
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "other.pem"
    Signer.generate(path)
    return path


def test_retention_purge_is_recorded_and_unrecorded_deletions_show(engine, signer: Signer) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(START)
    for n in range(1, 41):
        audit_log.append(engine, [event(n, clock)], signer, clock)
        clock.advance(timedelta(days=30))  # 40 entries over more than three years
    purged = audit_log.purge_expired(engine, clock, retention_days=1095)
    assert purged is not None
    count, through = purged
    assert count == through and 0 < count < 40
    # Without the purge's own record, the missing head is tampering.
    verdict = audit_log.verify_chain(engine, signer.public_pem())
    assert not verdict.ok and "no purge of them is recorded" in verdict.problem
    audit_log.append(engine, [event(1000, clock, action=audit_log.PURGE_ACTION, through_seq=through)], signer, clock)
    verdict = audit_log.verify_chain(engine, signer.public_pem())
    assert verdict.ok, verdict
    with engine.connect() as conn:
        oldest = conn.execute(text("SELECT min(time_us) FROM gateway_audit")).scalar()
    assert oldest >= to_us(clock.now() - timedelta(days=1095))
    # Deleting a kept entry, or rewriting one, is found.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM gateway_audit WHERE seq = :s"), {"s": through + 3})
    verdict = audit_log.verify_chain(engine, signer.public_pem())
    assert not verdict.ok and verdict.first_bad_seq == through + 3


def test_a_nul_character_does_not_stall_the_trail(engine, signer: Signer) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(START)
    probing = event(1, clock, action="request.invalid")
    probing.target = "/api/v1/cameras/demo\x00-1/segments"
    probing.actor = "(request)\x00"
    assert audit_log.append(engine, [probing, event(2, clock)], signer, clock) == 2
    [first, second] = audit_log.search(engine)
    assert first.target == "/api/v1/cameras/demo\\x00-1/segments" and first.actor == "(request)\\x00"
    assert second.seq == 2 and audit_log.verify_chain(engine).ok


def test_the_compliance_report_finds_erasures_the_trail_does_not_show(engine) -> None:  # type: ignore[no-untyped-def]
    """Each deletion proof, as it stands, must be named by an erasure record once it is due; a proof
    that grew since its record, or was never recorded, is a finding; one not due yet, or older than
    the trail's retention, is not."""
    clock = ManualClock(START + timedelta(days=400))
    now_us = to_us(clock.now())
    hour_us = 3_600_000_000

    def proof(camera_id: str, digest: str, swept_us: int) -> archive_pb2.DeletionProof:
        hour_us_start = swept_us - swept_us % hour_us
        return archive_pb2.DeletionProof(
            camera_id=camera_id, stream="main", hour_start_us=hour_us_start, digest=digest, swept_us=swept_us
        )

    recorded = proof("cam-a", "a" * 64, now_us - 3 * hour_us)
    grown = proof("cam-b", "b" * 64, now_us - 3 * hour_us)
    unrecorded = proof("cam-c", "c" * 64, now_us - 5 * hour_us)
    recent = proof("cam-d", "d" * 64, now_us - 600_000_000)
    forgotten = proof("cam-e", "e" * 64, now_us - 4 * 365 * 24 * hour_us)
    erase = event(1, clock, action=audit.RECORDING_ERASE, proofs=[{"digest": "a" * 64}, {"digest": "f" * 64}])
    audit_log.append(engine, [erase, event(2, clock, proofs=[{"digest": "c" * 64}])], None, clock)

    findings: list[str] = []
    kept_us, due_us = now_us - 1095 * 24 * hour_us, now_us - 2 * hour_us
    proofs = [recorded, grown, unrecorded, recent, forgotten]
    result = compliance._erasures_in_trail(engine, proofs, kept_us, due_us, findings)
    assert result["erasures_audited"] == 1
    assert [p["camera_id"] for p in result["erasures_not_audited"]] == ["cam-b", "cam-c"]
    (finding,) = findings
    assert finding.startswith("deletion proofs: 2 not in the audit trail") and "cam-c" in finding  # the oldest
