"""Retention's erasures in the audit trail (DESIGN §7: the trail records erasure as well as
consultation and communication).

The deletion proofs (archive_deletion_proofs) are the detailed register: one row per camera and
UTC hour, grown by every sweep and by every spooled segment deleted unstored. The audit trail gets
a summary of them at the archive's first sweep, then hourly (CSU_ARCHIVE_ERASURE_AUDIT_INTERVAL_S)
rather than per sweep: sweeping to the minute touches every camera's proof every minute, which
would bury the people's actions under the system's. Each record names the proofs as they stand
(camera, stream, hour, count, bytes, times, digest), so an auditor can match it with the proof
the gateway serves.

What went into the trail is remembered in the proof itself (`audited_digest`), only after
JetStream has stored the record: a proof that grew since is due again, a crash in between audits
a proof twice rather than never, and a trail that cannot be reached delays the record, never the
deletion (retention is a legal maximum). The gateway's compliance report checks the converse:
every proof swept before the last round is named, as it stands, by some record.
"""

import asyncio

from nats.js import JetStreamContext
from sqlalchemy import Engine

from services.archive import index
from services.archive.models import DeletionProof
from services.common import audit
from services.common.clock import Clock

# Proofs per audit record, and records per call: a backlog (the trail long away) is caught up in
# bounded records, a few at a time between sweeps.
PROOFS_PER_RECORD = 200
RECORDS_PER_CALL = 10


async def record_erasures(engine: Engine, js: JetStreamContext, prefix: str, clock: Clock) -> int:
    """Audit the erasures not in the trail yet, up to RECORDS_PER_CALL records; the number of
    proofs recorded (PROOFS_PER_RECORD * RECORDS_PER_CALL: more are due).

    Raises `audit.AuditUnavailable` when the trail cannot be reached (what was recorded before
    stays recorded; the rest is due next time)."""
    done = 0
    for _ in range(RECORDS_PER_CALL):
        proofs = await asyncio.to_thread(index.unaudited_proofs, engine, PROOFS_PER_RECORD)
        if not proofs:
            break
        await audit.record(
            js,
            prefix,
            clock,
            actor="system",
            role="",
            action=audit.RECORDING_ERASE,
            target="archive",
            justification="retention",
            details={"proofs": [_summary(p) for p in proofs]},
        )
        await asyncio.to_thread(index.mark_audited, engine, proofs)
        done += len(proofs)
        if len(proofs) < PROOFS_PER_RECORD:
            break
    return done


def _summary(proof: DeletionProof) -> dict[str, object]:
    return {
        "camera_id": proof.camera_id,
        "stream": proof.stream,
        "hour_start_us": proof.hour_start_us,
        "count": proof.count,
        "bytes": proof.bytes,
        "first_us": proof.first_us,
        "last_us": proof.last_us,
        "retention_days": proof.retention_days,
        "digest": proof.digest,
    }
