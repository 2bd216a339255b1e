"""The audit trail against someone who can write its database (issue 23, item 5), on the real
database and S3 server: checkpoints at their cadence, heads published to an object-locked bucket,
and the rewrites and truncations they expose; the export checked offline."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from services.common import db
from services.common.anchoring import AnchorStore, Cadence
from services.common.clock import ManualClock, to_us
from services.common.objectstore.s3 import S3Store
from services.common.pb.csu.v1.audit_pb2 import AuditEvent
from services.common.settings import Settings
from services.common.signing import Keyring, Signer
from services.gateway.identity import audit_export, audit_log
from tests.support.servers import S3Server, unique
from tests.support.tampering import rewrite_audit_from, rewrite_export, truncate_audit

START = datetime(2026, 3, 1, tzinfo=UTC)
CADENCE = Cadence(10, 300)  # every 10 entries, and 5 minutes after the previous checkpoint


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    db.migrate("gateway", engine)
    yield engine
    engine.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    Signer.generate(tmp_path / "key.pem")
    return Signer.from_file(tmp_path / "key.pem")


@pytest.fixture
def anchors(s3: S3Server) -> AnchorStore:
    clock = ManualClock(datetime.now(UTC))
    store = AnchorStore(S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", unique("anc-")), 30, clock)
    store.ensure()
    return store


class Trail:
    """The gateway's writing and anchoring, driven by hand with a ManualClock."""

    def __init__(self, engine: Engine, signer: Signer, anchors: AnchorStore) -> None:
        self.engine, self.signer, self.anchors = engine, signer, anchors
        self.clock = ManualClock(START)
        self.n = 0

    def add(self, count: int, every_s: float = 20) -> None:
        for _ in range(count):
            self.n += 1
            event = AuditEvent(
                id=f"{self.n:032x}",
                time_us=to_us(self.clock.now()),
                actor=f"operator-{self.n % 3}",
                role="operator",
                action="live.start",
                target="camera:cam-1",
                outcome="ok",
                details_json=json.dumps({"n": self.n, "note": "café"}),
            )
            audit_log.append(self.engine, [event], self.signer, self.clock, CADENCE)
            self.clock.advance(timedelta(seconds=every_s))

    def anchor(self) -> None:
        """What the gateway's anchoring loop does every few minutes."""
        audit_log.checkpoint_now(self.engine, self.signer, self.clock, CADENCE)
        newest = audit_log.newest_checkpoint(self.engine)
        assert newest is not None
        self.anchors.publish(newest)

    def verify(self, with_anchors: bool = True):  # type: ignore[no-untyped-def]
        keyring = self.signer.keyring()
        if with_anchors:
            return audit_log.verify_anchored(self.engine, keyring, self.anchors, CADENCE)
        return audit_log.verify_chain(self.engine, keyring, cadence=CADENCE)

    def checkpoints(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(text("SELECT seq FROM gateway_audit_checkpoints ORDER BY seq")).scalars())

    def head(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT seq FROM gateway_audit_head WHERE id = 1")).scalar_one()


@pytest.fixture
def trail(engine: Engine, signer: Signer, anchors: AnchorStore) -> Trail:
    return Trail(engine, signer, anchors)


def test_checkpoints_fall_at_their_cadence_and_each_missing_one_fails(trail: Trail) -> None:
    trail.add(25, every_s=1)  # 25 entries within a minute: the count rule only
    assert trail.checkpoints() == [10, 20]
    trail.anchor()  # the periodic signing of the head adds one anywhere
    assert trail.checkpoints() == [10, 20, 25]
    trail.add(3, every_s=400)  # slower than the time rule: an entry 5 minutes after the last one gets one
    assert trail.checkpoints() == [10, 20, 25, 27, 28]
    verdict = trail.verify()
    assert verdict.ok and verdict.entries == 28 and verdict.signed_through == 28, verdict
    assert verdict.anchored_through == 25

    # A checkpoint of the time rule deleted, nothing else touched.
    with trail.engine.begin() as conn:
        conn.execute(text("DELETE FROM gateway_audit_checkpoints WHERE seq = 27"))
    verdict = trail.verify()
    assert not verdict.ok and verdict.first_bad_seq == 26, verdict
    assert "the checkpoint due at entry 27 (5 min after the previous checkpoint) is missing" in verdict.problem
    # One of the count rule.
    with trail.engine.begin() as conn:
        conn.execute(text("DELETE FROM gateway_audit_checkpoints WHERE seq = 20"))
    verdict = trail.verify()
    assert not verdict.ok and verdict.first_bad_seq == 11, verdict
    assert "the checkpoint due at entry 20 (every 10 entries) is missing" in verdict.problem


def test_the_probes_rewrite_is_reported_at_the_first_entry_no_longer_vouched_for(trail: Trail) -> None:
    trail.add(45)
    trail.anchor()
    trail.add(8)  # the unsigned tail: 53 entries, signed through 45
    assert trail.verify().ok
    rewrite_audit_from(trail.engine, 31, "someone-else")
    # From the database alone: the checkpoint due at 40 is gone.
    verdict = trail.verify(with_anchors=False)
    assert not verdict.ok and verdict.first_bad_seq == 31, verdict
    assert "checkpoint due at entry 40" in verdict.problem
    # Whoever rewrote it re-signs the missing checkpoints with a key of their own: refused.
    verdict = trail.verify()
    assert not verdict.ok and verdict.first_bad_seq == 31, verdict


def test_a_key_holder_rewriting_the_database_is_contradicted_by_the_published_head(trail: Trail) -> None:
    trail.add(30)
    trail.anchor()  # head 30 published (and locked)
    trail.add(12)
    rewrite_audit_from(trail.engine, 26, "someone-else")
    # With the deployment's key (a compromised gateway), every checkpoint is signed again.
    with trail.engine.begin() as conn:
        conn.execute(text("DELETE FROM gateway_audit_checkpoints WHERE seq > 20"))
    for seq in (30, 40, 42):
        entry = audit_log.search(trail.engine, after_seq=seq - 1, limit=1)[0]
        with trail.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO gateway_audit_checkpoints (seq, entry_hash, signed_us, signature, public_key,"
                    " every_entries, every_s) VALUES (:s, :h, :t, :g, :k, :n, :m)"
                ),
                audit_row(trail.signer, seq, entry.entry_hash, to_us(trail.clock.now())),
            )
    assert trail.verify(with_anchors=False).ok  # the database alone cannot tell any more
    verdict = trail.verify()
    assert not verdict.ok and verdict.first_bad_seq == 21, verdict
    assert "published outside the database" in verdict.problem and "entry 30" in verdict.problem


def audit_row(signer: Signer, seq: int, entry_hash: str, signed_us: int) -> dict[str, object]:
    from services.common.anchoring import Checkpoint

    checkpoint = Checkpoint.sign(signer, "audit", seq, entry_hash, signed_us, CADENCE)
    return {
        "s": seq,
        "h": entry_hash,
        "t": signed_us,
        "g": checkpoint.signature,
        "k": signer.public_pem(),
        "n": CADENCE.every_entries,
        "m": CADENCE.every_s,
    }


def test_truncation_is_found_against_the_published_head(trail: Trail) -> None:
    trail.add(37)
    trail.anchor()  # 37 published
    truncate_audit(trail.engine, 33)
    assert trail.verify(with_anchors=False).ok  # nothing in the database says so
    verdict = trail.verify()
    assert not verdict.ok and verdict.first_bad_seq == 34, verdict
    assert "entries 34-37 were removed" in verdict.problem
    # Hiding the published head in the bucket (a delete, an overwrite) does not remove it.
    [key] = [k for k in trail.anchors.store.retained_keys("audit/") if "00000000000000000037" in k]
    trail.anchors.store.delete(key)
    trail.anchors.store.put(key, b"{}")
    assert not trail.verify().ok


def test_something_planted_among_the_published_heads_is_reported(trail: Trail) -> None:
    trail.add(12)
    trail.anchor()
    forged = {"chain": "audit", "seq": 12, "entry_hash": "0" * 64, "signed_us": 1, "every_entries": 10,
              "every_s": 300, "signature": "AAAA", "key_fingerprint": ""}  # fmt: skip
    key = f"audit/{12:020d}-{'0' * 64}.json"
    trail.anchors.store.put_retained(key, json.dumps(forged).encode(), datetime.now(UTC) + timedelta(days=1))
    verdict = trail.verify()
    assert not verdict.ok and verdict.first_bad_seq is None and key in verdict.problem, verdict


def test_old_checkpoints_verify_with_their_key_after_a_rotation(trail: Trail, tmp_path: Path) -> None:
    from services.common.signing import rotate

    trail.add(14)
    trail.anchor()
    key_file = trail.signer.path
    assert key_file is not None
    rotate(key_file)
    trail.signer = Signer.from_file(key_file)
    trail.add(14)
    trail.anchor()
    verdict = trail.verify()
    assert verdict.ok and verdict.signed_through == 28, verdict
    # The new key alone calls the old checkpoints untrusted.
    only_new = audit_log.verify_anchored(trail.engine, Keyring([trail.signer.public_pem()]), trail.anchors, CADENCE)
    assert not only_new.ok and only_new.first_bad_seq == 10 and "does not trust" in only_new.problem


def export(trail: Trail, fmt: str, path: Path, **window: int | None) -> Path:
    """The export as the route streams it."""
    anchors = trail.anchors.read("audit")
    plan = audit_export.plan(
        trail.engine,
        trail.signer,
        trail.clock,
        CADENCE,
        start_us=window.get("start_us"),
        end_us=window.get("end_us"),
        listing={"actor": window.get("actor")},  # type: ignore[dict-item]
    )
    writer = audit_export.CsvWriter() if fmt == "csv" else audit_export.JsonWriter()
    keep = audit_export.newest_claim(anchors, plan)
    search = {"actor": window.get("actor"), "start_us": window.get("start_us"), "end_us": window.get("end_us")}
    chunks = [writer.header()]
    after, before = 0, plan.before
    while rows := audit_export.page(trail.engine, plan, after, search, anchors, keep):
        chunks.append(writer.rows(rows, before))
        after, before = rows[-1].entry.seq, None
    chunks.append(writer.end(plan, audit_export.past_end(anchors, plan) if window.get("end_us") is None else []))
    path.write_text("".join(chunks), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_verifies_offline_and_a_tampered_one_does_not(trail: Trail, tmp_path: Path, fmt: str) -> None:
    trail.add(33)
    trail.anchor()
    trail.add(4)
    keyring = Keyring([trail.signer.public_pem()])
    whole = audit_export.verify(audit_export.read(export(trail, fmt, tmp_path / f"a.{fmt}")), keyring)
    # The export closes on a checkpoint signed as it starts: its last entries are vouched for too.
    assert whole.verdict.ok and (whole.first_seq, whole.last_seq) == (1, 37), whole
    assert whole.verdict.signed_through == 37 and whole.published_heads == 1
    # A time range runs on to the next checkpoint, and starts with the one before it.
    ranged = export(trail, fmt, tmp_path / f"r.{fmt}", start_us=to_us(START) + 12 * 20_000_000,
                    end_us=to_us(START) + 15 * 20_000_000)  # fmt: skip
    result = audit_export.verify(audit_export.read(ranged), keyring)
    assert result.verdict.ok and (result.first_seq, result.last_seq) == (13, 20), result
    # A listing is not a chain.
    listing = audit_export.verify(
        audit_export.read(export(trail, fmt, tmp_path / f"l.{fmt}", actor="operator-1")), keyring
    )  # type: ignore[arg-type]
    assert not listing.checkable and "listing" in listing.verdict.problem

    # The probe's rewrite, done on the file: one actor changed, the links recomputed, the
    # checkpoints after it dropped.
    forged = tmp_path / f"forged.{fmt}"
    rewrite_export(tmp_path / f"a.{fmt}", forged, fmt, seq=22)
    result = audit_export.verify(audit_export.read(forged), keyring)
    assert not result.verdict.ok and result.verdict.first_bad_seq == 21, result
    # A row edited without recomputing anything: named exactly.
    edited = (tmp_path / f"a.{fmt}").read_text(encoding="utf-8").replace("operator-2", "operator-9", 1)
    (tmp_path / f"e.{fmt}").write_text(edited, encoding="utf-8")
    result = audit_export.verify(audit_export.read(tmp_path / f"e.{fmt}"), keyring)
    assert not result.verdict.ok and result.verdict.first_bad_seq == 2, result
    # The last rows cut off, the closing checkpoint with them.
    cut = audit_export.read(tmp_path / f"a.{fmt}")
    cut.entries = cut.entries[:-3]
    cut.checkpoints = {s: c for s, c in cut.checkpoints.items() if s <= 34}
    result = audit_export.verify(cut, keyring)
    assert not result.verdict.ok and result.verdict.first_bad_seq == 34 and "cut" in result.verdict.problem, result
    # Another deployment's key vouches for nothing.
    other = tmp_path / "other.pem"
    Signer.generate(other)
    result = audit_export.verify(
        audit_export.read(tmp_path / f"a.{fmt}"), Keyring([Signer.from_file(other).public_pem()])
    )
    assert not result.verdict.ok and "does not trust" in result.verdict.problem
