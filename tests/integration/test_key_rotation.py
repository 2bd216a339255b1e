"""Rotating the signing key on the real database and NATS: register entries, audit checkpoints and
no-private-area statements signed before and after `csuctl keys rotate` all verify through the
platform's own verification paths; a signature by a key outside the keyring is still refused, and
the rotation is audited before it happens (nothing rotates when the trail is away). A key replaced
the Kubernetes way (new Secret, restart) is recorded by the gateway's start."""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from services.common import bus, db
from services.common.clock import ManualClock, to_us
from services.common.commissioning import statement_verifies
from services.common.hashchain import link_hash
from services.common.pb.csu.v1 import masking_pb2
from services.common.pb.csu.v1.audit_pb2 import AuditEvent
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.common.signing import Signer
from services.csuctl.app import app
from services.gateway.backends import Backends
from services.gateway.identity import audit_log, signing_key_audit
from services.requisition import register
from services.requisition.models import RegisterEntry, RegisterHead
from tests.support.audit import audit_events
from tests.support.platform import until
from tests.support.servers import free_port, nats_prefix

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    db.migrate("gateway", engine)
    db.migrate("requisition", engine)
    yield engine
    engine.dispose()


@pytest.fixture
def env(tmp_path: Path, database_url: str, nats_url: str) -> dict[str, str]:
    Signer.generate(tmp_path / "keys" / "signing.pem")
    SecretBox.generate(tmp_path / "keys" / "secrets.key")
    prefix = nats_prefix()

    async def stream() -> None:
        nc = await nats.connect(nats_url)
        await bus.ensure_events_stream(nc.jetstream(), prefix)
        await nc.close()

    asyncio.run(stream())
    return {
        "CSU_DATABASE_URL": database_url,
        "CSU_NATS_URL": nats_url,
        "CSU_NATS_PREFIX": prefix,
        "CSU_SIGNING_KEY_FILE": str(tmp_path / "keys" / "signing.pem"),
        "CSU_SECRETS_KEY_FILE": str(tmp_path / "keys" / "secrets.key"),
        "CSU_INGEST_GRPC": f"127.0.0.1:{free_port()}",
        "CSU_ARCHIVE_GRPC": f"127.0.0.1:{free_port()}",
    }


def csuctl(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def document(stdout: str) -> dict:
    """The command's JSON document (in-process, the NATS client's log lines come first)."""
    lines = stdout.splitlines(keepends=True)
    return json.loads("".join(lines[next(i for i, line in enumerate(lines) if line.startswith("{")) :]))


def add_entries(engine: Engine, signer: Signer, count: int, clock: ManualClock) -> None:
    with Session(engine) as s:
        for n in range(count):
            register.append(
                s,
                signer,
                time_us=to_us(clock.now()),
                kind="extraction",
                request_id=f"r{n}",
                request_number=f"2026-{n:04d}",
                actor="manager-1",
                payload={"camera_id": "cam-1", "n": n},
            )
        s.commit()


def event(n: int, clock: ManualClock) -> AuditEvent:
    return AuditEvent(
        id=f"{n:032x}", time_us=to_us(clock.now()), actor="operator-1", role="operator", action="live.start",
        target="camera:cam-1", outcome="ok", details_json="{}",
    )  # fmt: skip


def statement(signer: Signer, camera_id: str) -> masking_pb2.NoPrivateAreaStatement:
    data = json.dumps({"camera_id": camera_id, "text": "no private area"}, sort_keys=True).encode()
    return masking_pb2.NoPrivateAreaStatement(
        camera_id=camera_id, statement=data, signature=signer.sign(data), public_key_pem=signer.public_pem()
    )


def test_everything_signed_before_and_after_a_rotation_verifies(
    engine: Engine, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(START)
    key_file = Path(env["CSU_SIGNING_KEY_FILE"])
    old = Signer.from_file(key_file)
    add_entries(engine, old, 3, clock)
    audit_log.append(engine, [event(n, clock) for n in range(1, 101)], old, clock)  # checkpoint at 100
    old_statement = statement(old, "cam-1")

    # Nothing rotates while the audit trail cannot be written.
    away = env | {"CSU_NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    code, _, err = csuctl(away, "keys", "rotate", "--yes")
    assert code == 2 and "audit trail is unavailable" in err and "nothing was done" in err
    assert Signer.from_file(key_file).fingerprint == old.fingerprint

    code, out, err = csuctl(env, "keys", "rotate", "--yes", "--json")
    assert code == 0, err
    rotation = document(out)
    new = Signer.from_file(key_file)
    assert rotation["old_fingerprint"] == old.fingerprint and rotation["new_fingerprint"] == new.fingerprint
    assert Path(rotation["retired_public_key"]).read_text() == old.public_pem()
    published = asyncio.run(audit_events(env["CSU_NATS_URL"], env["CSU_NATS_PREFIX"]))
    rotate_events = [e for e in published if e.action == "keys.rotate"]
    assert len(rotate_events) == 1 and rotate_events[0].actor.startswith("csuctl:")
    assert json.loads(rotate_events[0].details_json)["new_fingerprint"] == new.fingerprint

    add_entries(engine, new, 2, clock)
    audit_log.append(engine, [event(n, clock) for n in range(101, 201)], new, clock)  # checkpoint at 200
    assert audit_log.checkpoint_now(engine, new, clock) is None  # 200 is the head, already signed
    new_statement = statement(new, "cam-2")
    with engine.connect() as conn:
        keys = set(conn.execute(text("SELECT public_key FROM gateway_audit_checkpoints")).scalars())
    assert keys == {old.public_pem(), new.public_pem()}

    # The platform's verification paths, given the keyring as the services give it.
    keyring = new.keyring()
    verdict = register.verify_chain(engine, keyring)
    assert verdict.ok and verdict.entries == 5, verdict
    verdict = audit_log.verify_chain(engine, keyring)
    assert verdict.ok and verdict.entries == 200, verdict
    # The new key alone would call everything before the rotation forged: the keyring is needed.
    assert register.verify_chain(engine, new.public_pem()).first_bad_seq == 1
    assert audit_log.verify_chain(engine, new.public_pem()).first_bad_seq == 100
    # csuctl audit verify reads the same keyring from CSU_SIGNING_KEY_FILE.
    code, out, err = csuctl(env, "audit", "verify", "--json")
    assert code == 0, err
    assert document(out) | {"trusted_keys": None} == {
        "ok": True, "entries": 200, "first_bad_seq": None, "problem": None, "trusted_keys": None
    }  # fmt: skip
    assert sorted(document(out)["trusted_keys"]) == sorted([old.fingerprint, new.fingerprint])

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()

    async def statements_verified() -> list[bool]:
        b = Backends(settings)  # the gateway's backends, as its routes get them
        try:
            forger_statement = statement(forger, "cam-3")
            stolen_key = masking_pb2.NoPrivateAreaStatement()
            stolen_key.CopyFrom(forger_statement)
            stolen_key.public_key_pem = new.public_pem()  # claims the deployment's key
            keyring, statements = b.signer.keyring(), (old_statement, new_statement, forger_statement, stolen_key)
            return [statement_verifies(s, keyring) for s in statements]
        finally:
            await b.close()

    Signer.generate(tmp_path / "forger.pem")
    forger = Signer.from_file(tmp_path / "forger.pem")
    assert asyncio.run(statements_verified()) == [True, True, False, False]

    # A register entry signed by a key outside the keyring is refused, with its key named as such.
    with Session(engine) as s:
        head = s.get(RegisterHead, 1)
        assert head is not None
        entry = RegisterEntry(
            seq=head.seq + 1, time_us=to_us(clock.now()), kind="purge", request_id="r9", request_number="2026-0009",
            actor="intruder", payload_json="{}", prev_hash=head.entry_hash, entry_hash="", signature="",
            key_fingerprint=forger.fingerprint,
        )  # fmt: skip
        entry.entry_hash = link_hash(head.entry_hash, register.hashed_fields(entry))
        entry.signature = forger.sign(register.signed_bytes(entry))
        head.seq, head.entry_hash = entry.seq, entry.entry_hash
        s.add(entry)
        s.add(head)
        s.commit()
    verdict = register.verify_chain(engine, keyring)
    assert not verdict.ok and verdict.first_bad_seq == 6 and "retired" in (verdict.problem or ""), verdict

    # A checkpoint re-signed by another key (a rewritten chain) is refused by the API's and the CLI's checks.
    signed = b"100:" + audit_log.search(engine, after_seq=99, limit=1)[0].entry_hash.encode()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE gateway_audit_checkpoints SET signature = :s, public_key = :k WHERE seq = 100"),
            {"s": forger.sign(signed), "k": forger.public_pem()},
        )
    verdict = audit_log.verify_chain(engine, keyring)
    assert not verdict.ok and verdict.first_bad_seq == 100 and "does not trust" in (verdict.problem or "")
    code, out, _ = csuctl(env, "audit", "verify")
    assert code == 1 and "BROKEN at entry 100" in out


def key_entries(engine: Engine) -> list[tuple[str, dict[str, str]]]:
    return [(e.action, json.loads(e.details_json)) for e in audit_log.search(engine, action="keys")]


def test_a_key_replaced_outside_csuctl_is_recorded_when_the_gateway_starts(engine: Engine, env: dict[str, str]) -> None:
    key_file = Path(env["CSU_SIGNING_KEY_FILE"])
    prefix = env["CSU_NATS_PREFIX"]
    clock = ManualClock(START)

    async def scenario() -> None:
        nc = await nats.connect(env["CSU_NATS_URL"])
        js = nc.jetstream()
        writer = asyncio.create_task(audit_log.AuditWriter(js, prefix, engine, None, clock).run())
        try:
            first = Signer.from_file(key_file)
            assert await signing_key_audit.record_key_in_use(js, prefix, engine, first, clock)
            expected = [("keys.in_use", {"fingerprint": first.fingerprint, "previous_fingerprint": ""})]
            await until(lambda: key_entries(engine) == expected, 10, "the first key")
            # Restarted with the same key: the trail already names it.
            assert not await signing_key_audit.record_key_in_use(js, prefix, engine, first, clock)

            # Kubernetes: the Secret holds a new key, the gateway restarts.
            key_file.unlink()
            Signer.generate(key_file)
            second = Signer.from_file(key_file)
            assert await signing_key_audit.record_key_in_use(js, prefix, engine, second, clock)
            expected.append(
                ("keys.in_use", {"fingerprint": second.fingerprint, "previous_fingerprint": first.fingerprint})
            )
            await until(lambda: key_entries(engine) == expected, 10, "the replaced key")

            # csuctl keys rotate records the key it puts in place: the next start has nothing to add.
            code, _, err = await asyncio.to_thread(csuctl, env, "keys", "rotate", "--yes")
            assert code == 0, err
            third = Signer.from_file(key_file)
            await until(lambda: signing_key_audit.recorded_fingerprint(engine) == third.fingerprint, 10, "the rotation")
            assert not await signing_key_audit.record_key_in_use(js, prefix, engine, third, clock)
            assert [action for action, _ in key_entries(engine)] == ["keys.in_use", "keys.in_use", "keys.rotate"]
            # What the compliance report lists: each key, from when, how it came into use and by whom.
            history = signing_key_audit.key_history(engine)
            assert [(k.fingerprint, k.previous_fingerprint, k.action) for k in history] == [
                (first.fingerprint, "", "keys.in_use"),
                (second.fingerprint, first.fingerprint, "keys.in_use"),
                (third.fingerprint, second.fingerprint, "keys.rotate"),
            ]
            assert [k.actor for k in history[:2]] == ["system", "system"] and history[2].actor.startswith("csuctl:")
            assert history[0].since_us == to_us(START)
            # A replica still signing with the replaced key is the compliance report's finding.
            assert signing_key_audit.mismatch(history, third.fingerprint) is None
            finding = signing_key_audit.mismatch(history, second.fingerprint)
            assert finding is not None and second.fingerprint in finding and third.fingerprint in finding
        finally:
            writer.cancel()
            await nc.close()

    asyncio.run(scenario())
