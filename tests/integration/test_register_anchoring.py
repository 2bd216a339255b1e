"""The register of extractions against someone who can write its database (issue 23, item 5), on
the real database and S3 server: every entry is signed, but a register cut short, a deleted
checkpoint, or a rewrite by someone holding the key are only found by the checkpoints at their
cadence and the heads published outside the database (services/common/anchoring.py)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from services.common import db
from services.common.anchoring import AnchorStore, Cadence, Checkpoint
from services.common.clock import ManualClock, to_us
from services.common.hashchain import link_hash
from services.common.objectstore.s3 import S3Store
from services.common.settings import Settings
from services.common.signing import Signer
from services.requisition import register
from services.requisition.models import RegisterCheckpoint, RegisterEntry
from tests.support.servers import S3Server, unique
from tests.support.tampering import cut_register

CADENCE = Cadence(10, 300)


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    db.migrate("requisition", engine)
    yield engine
    engine.dispose()


class Register:
    def __init__(self, engine: Engine, signer: Signer, anchors: AnchorStore) -> None:
        self.engine, self.signer, self.anchors = engine, signer, anchors
        self.clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
        self.n = 0

    def add(self, count: int, every_s: float = 60) -> None:
        for _ in range(count):
            self.n += 1
            with Session(self.engine) as s:
                register.append(
                    s,
                    self.signer,
                    time_us=to_us(self.clock.now()),
                    kind="extraction",
                    request_id=f"r{self.n}",
                    request_number=f"2026-{self.n:04d}",
                    actor="operator-1",
                    payload={"camera_id": "cam-1", "n": self.n},
                    cadence=CADENCE,
                )
                s.commit()
            self.clock.advance(timedelta(seconds=every_s))

    def anchor(self) -> None:
        """What the requisition service's anchoring loop does every few minutes."""
        register.checkpoint_now(self.engine, self.signer, to_us(self.clock.now()), CADENCE)
        newest = register.newest_checkpoint(self.engine)
        assert newest is not None
        self.anchors.publish(newest)

    def verify(self, with_anchors: bool = True):  # type: ignore[no-untyped-def]
        if with_anchors:
            return register.verify_anchored(self.engine, self.signer.keyring(), self.anchors, CADENCE)
        return register.verify_chain(self.engine, self.signer.keyring(), cadence=CADENCE)


@pytest.fixture
def book(engine: Engine, tmp_path: Path, s3: S3Server) -> Register:
    Signer.generate(tmp_path / "key.pem")
    store = S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", unique("anc-"))
    anchors = AnchorStore(store, 30, ManualClock(datetime.now(UTC)))
    anchors.ensure()
    return Register(engine, Signer.from_file(tmp_path / "key.pem"), anchors)


def test_checkpoints_at_their_cadence_and_a_missing_one(book: Register) -> None:
    book.add(12, every_s=10)
    book.add(2, every_s=600)  # the time rule: 5 minutes after the last checkpoint
    with book.engine.connect() as conn:
        seqs = list(conn.execute(text("SELECT seq FROM requisition_register_checkpoints ORDER BY seq")).scalars())
    assert seqs == [10, 14]
    assert book.verify().ok
    with book.engine.begin() as conn:
        conn.execute(text("DELETE FROM requisition_register_checkpoints WHERE seq = 10"))
    verdict = book.verify()
    assert not verdict.ok and verdict.first_bad_seq == 1 and "checkpoint due at entry 10" in verdict.problem


def test_a_register_cut_short_is_found_against_the_published_head(book: Register) -> None:
    book.add(15)
    book.anchor()  # 15 published
    book.add(3)
    cut_register(book.engine, 12)
    assert book.verify(with_anchors=False).ok  # every remaining entry is signed and linked
    verdict = book.verify()
    assert not verdict.ok and verdict.first_bad_seq == 13 and "entries 13-15 were removed" in verdict.problem


def test_a_key_holder_rewriting_the_register_is_contradicted_by_the_published_head(book: Register) -> None:
    book.add(14)
    book.anchor()  # 14 published and locked
    # Someone with the key and the database: entry 12 rewritten, every later entry re-signed and
    # re-linked, the checkpoints signed again.
    with Session(book.engine) as s:
        entries = list(s.exec(register_entries(11)))
        prev = entries[0].prev_hash
        for entry in entries:
            if entry.seq == 12:
                entry.actor = "someone-else"
            entry.prev_hash = prev
            entry.entry_hash = link_hash(prev, register.hashed_fields(entry))
            entry.signature = book.signer.sign(register.signed_bytes(entry))
            prev = entry.entry_hash
            s.add(entry)
        head = s.get(register.RegisterHead, 1)
        assert head is not None
        head.entry_hash = prev
        s.add(head)
        for checkpoint in s.exec(register_checkpoints(11)):
            s.delete(checkpoint)
        s.flush()
        resigned = Checkpoint.sign(book.signer, "register", 14, prev, to_us(book.clock.now()), CADENCE)
        s.add(RegisterCheckpoint.of(resigned))
        s.commit()
    assert book.verify(with_anchors=False).ok  # the database alone cannot tell
    verdict = book.verify()
    assert not verdict.ok and verdict.first_bad_seq == 11, verdict
    assert "published outside the database" in verdict.problem


def register_entries(after: int):  # type: ignore[no-untyped-def]
    from sqlmodel import select

    return select(RegisterEntry).where(RegisterEntry.seq > after).order_by(RegisterEntry.seq)


def register_checkpoints(after: int):  # type: ignore[no-untyped-def]
    from sqlmodel import select

    return select(RegisterCheckpoint).where(RegisterCheckpoint.seq > after)
