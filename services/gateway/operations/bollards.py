"""Pedestrian-zone bollards: the registry, the commands operators send, intercom calls, statistics.

A bollard is watched by one camera; whoever commands it must hold "live" on that camera (they
see what they let through). Every command is recorded here with its reason and, when given, the
vehicle's plate, whatever its outcome; the route audits it before the driver is called.

An intercom call is reported by the bollard's intercom with a token of its own (shown once when
the bollard is registered or the token renewed; only its SHA-256 is kept): the call is stored, and
announced to the consoles allowed to watch the camera, which bring the camera up.
"""

import hashlib
import hmac
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine
from sqlmodel import col, select

from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.secretbox import SecretBox
from services.common.settings import Settings, redact_url
from services.common.timefmt import paris_day, paris_day_bounds
from services.gateway.errors import Refusal
from services.gateway.operations.bollard_drivers import SIMULATED, BollardDriver, Command, HttpRelay
from services.gateway.operations.models import Bollard, BollardCall, BollardCommand


class BollardError(Refusal):
    """A refusal of this domain (errors.Refusal: status and message)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class HttpConfig:
    open_url: str
    close_url: str
    method: str


@dataclass(frozen=True)
class NewBollard:
    id: str
    name: str
    location: str
    camera_id: str
    driver: str
    http: HttpConfig | None


def create(engine: Engine, clock: Clock, box: SecretBox, new: NewBollard, actor: str) -> tuple[Bollard, str]:
    """The registered bollard and its intercom token (returned this once)."""
    token = secrets.token_urlsafe(32)
    now = to_us(clock.now())
    row = Bollard(
        id=new.id,
        name=new.name,
        location=new.location,
        camera_id=new.camera_id,
        driver=new.driver,
        intercom_token_sha256=_digest(token),
        created_by=actor,
        created_us=now,
        updated_us=now,
    )
    _set_http(row, box, new.http)
    with session(engine) as s:
        if s.get(Bollard, new.id) is not None:
            raise BollardError(409, f"a bollard {new.id!r} is already registered")
        s.add(row)
        s.commit()
        s.refresh(row)
    return row, token


def _set_http(row: Bollard, box: SecretBox, http: HttpConfig | None) -> None:
    if http is None:
        row.open_url_sealed = row.close_url_sealed = None
        row.http_method = "POST"
        return
    row.open_url_sealed = box.seal(http.open_url)
    row.close_url_sealed = box.seal(http.close_url)
    row.http_method = http.method


def update(
    engine: Engine,
    clock: Clock,
    box: SecretBox,
    bollard_id: str,
    *,
    fields: dict[str, object],
    http: HttpConfig | None,
    set_http: bool,
) -> Bollard:
    with session(engine) as s:
        row = s.get(Bollard, bollard_id)
        if row is None:
            raise unknown_bollard(bollard_id)
        for name, value in fields.items():
            setattr(row, name, value)
        if set_http:
            _set_http(row, box, http)
        if row.driver == "http" and row.open_url_sealed is None:
            raise BollardError(422, "the http driver needs the relay's URLs (http.open_url, http.close_url)")
        row.updated_us = to_us(clock.now())
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def new_intercom_token(engine: Engine, clock: Clock, bollard_id: str) -> str:
    token = secrets.token_urlsafe(32)
    with session(engine) as s:
        row = s.get(Bollard, bollard_id)
        if row is None:
            raise unknown_bollard(bollard_id)
        row.intercom_token_sha256 = _digest(token)
        row.updated_us = to_us(clock.now())
        s.add(row)
        s.commit()
    return token


def unknown_bollard(bollard_id: str) -> BollardError:
    """The one answer for a bollard that does not exist and for one whose camera the caller may not see."""
    return BollardError(404, f"unknown bollard {bollard_id!r}")


def unknown_call(call_id: int) -> BollardError:
    """The one answer for an intercom call that does not exist or is at a bollard the caller may not see."""
    return BollardError(404, f"unknown intercom call {call_id}")


def get(engine: Engine, bollard_id: str) -> Bollard:
    with session(engine) as s:
        row = s.get(Bollard, bollard_id)
    if row is None:
        raise unknown_bollard(bollard_id)
    return row


def all_bollards(engine: Engine) -> list[Bollard]:
    with session(engine) as s:
        return list(s.exec(select(Bollard).order_by(Bollard.id)))


def http_urls(row: Bollard, box: SecretBox) -> tuple[str, str] | None:
    """The relay's URLs without credentials (for display)."""
    if row.open_url_sealed is None or row.close_url_sealed is None:
        return None
    return redact_url(box.open(row.open_url_sealed)), redact_url(box.open(row.close_url_sealed))


def driver_for(row: Bollard, box: SecretBox, settings: Settings) -> BollardDriver:
    if row.driver == "http":
        if row.open_url_sealed is None or row.close_url_sealed is None:
            raise BollardError(409, f"bollard {row.id} has no relay URLs configured")
        return HttpRelay(
            box.open(row.open_url_sealed),
            box.open(row.close_url_sealed),
            row.http_method,
            settings.bollard_http_timeout_s,
        )
    return SIMULATED


def record_command(
    engine: Engine,
    clock: Clock,
    row: Bollard,
    command: Command,
    *,
    reason: str,
    plate: str,
    actor: str,
    role: str,
    error: str | None,
) -> BollardCommand:
    """The command in the register; on success the bollard's known state follows it."""
    now = to_us(clock.now())
    entry = BollardCommand(
        bollard_id=row.id,
        command=command,
        reason=reason,
        plate=plate,
        actor=actor,
        role=role,
        time_us=now,
        outcome="ok" if error is None else "failed",
        error=(error or "")[:500],
    )
    with session(engine) as s:
        s.add(entry)
        if error is None:
            bollard = s.get(Bollard, row.id)
            if bollard is not None:
                bollard.state = "open" if command == "open" else "closed"
                bollard.state_us = now
                s.add(bollard)
        s.commit()
        s.refresh(entry)
        return entry


def commands(
    engine: Engine, *, bollard_id: str | None, start_us: int, end_us: int, limit: int = 500
) -> list[BollardCommand]:
    query = select(BollardCommand).where(BollardCommand.time_us >= start_us).where(BollardCommand.time_us < end_us)
    if bollard_id:
        query = query.where(BollardCommand.bollard_id == bollard_id)
    with session(engine) as s:
        return list(s.exec(query.order_by(col(BollardCommand.time_us)).limit(limit)))


# -- intercom calls --------------------------------------------------------------------------


def by_intercom_token(engine: Engine, bollard_id: str, token: str) -> Bollard | None:
    with session(engine) as s:
        row = s.get(Bollard, bollard_id)
    if row is None or not row.active:
        # Hash anyway: the answer time does not tell which bollards exist.
        hmac.compare_digest(_digest(token), "0" * 64)
        return None
    return row if hmac.compare_digest(_digest(token), row.intercom_token_sha256) else None


def record_call(engine: Engine, clock: Clock, row: Bollard) -> BollardCall:
    call = BollardCall(bollard_id=row.id, camera_id=row.camera_id, time_us=to_us(clock.now()))
    with session(engine) as s:
        s.add(call)
        s.commit()
        s.refresh(call)
        return call


def get_call(engine: Engine, call_id: int) -> BollardCall:
    with session(engine) as s:
        call = s.get(BollardCall, call_id)
    if call is None:
        raise unknown_call(call_id)
    return call


def answer_call(engine: Engine, clock: Clock, call_id: int, actor: str) -> BollardCall:
    with session(engine) as s:
        call = s.get(BollardCall, call_id, with_for_update=True)
        if call is None:
            raise unknown_call(call_id)
        if call.answered_us is not None:
            raise BollardError(409, f"call {call_id} was already taken by {call.answered_by}")
        call.answered_by = actor
        call.answered_us = to_us(clock.now())
        s.add(call)
        s.commit()
        s.refresh(call)
        return call


def calls(
    engine: Engine, *, start_us: int, end_us: int, unanswered_only: bool = False, limit: int = 500
) -> list[BollardCall]:
    query = select(BollardCall).where(BollardCall.time_us >= start_us).where(BollardCall.time_us < end_us)
    if unanswered_only:
        query = query.where(col(BollardCall.answered_us).is_(None))
    with session(engine) as s:
        return list(s.exec(query.order_by(col(BollardCall.time_us).desc()).limit(limit)))


# -- statistics ------------------------------------------------------------------------------


@dataclass
class DayStats:
    day: str
    bollard_id: str
    opens: int = 0
    closes: int = 0
    failed: int = 0
    with_plate: int = 0
    calls: int = 0
    calls_unanswered: int = 0


def daily_stats(engine: Engine, first: date, last: date, bollard_ids: set[str] | None) -> list[DayStats]:
    """Per Paris day and bollard: commands carried out (open/close), failed, with a plate, calls."""
    start_us, end_us = paris_day_bounds(first, last)
    stats: dict[tuple[str, str], DayStats] = {}

    def of(day: str, bollard_id: str) -> DayStats:
        return stats.setdefault((day, bollard_id), DayStats(day, bollard_id))

    with session(engine) as s:
        for command in s.exec(
            select(BollardCommand).where(BollardCommand.time_us >= start_us).where(BollardCommand.time_us < end_us)
        ):
            if bollard_ids is not None and command.bollard_id not in bollard_ids:
                continue
            day = of(paris_day(command.time_us), command.bollard_id)
            if command.outcome != "ok":
                day.failed += 1
            elif command.command == "open":
                day.opens += 1
            else:
                day.closes += 1
            day.with_plate += bool(command.plate)
        for call in s.exec(
            select(BollardCall).where(BollardCall.time_us >= start_us).where(BollardCall.time_us < end_us)
        ):
            if bollard_ids is not None and call.bollard_id not in bollard_ids:
                continue
            day = of(paris_day(call.time_us), call.bollard_id)
            day.calls += 1
            day.calls_unanswered += call.answered_us is None
    return sorted(stats.values(), key=lambda d: (d.day, d.bollard_id))


def totals(days: list[DayStats]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for d in days:
        for name in ("opens", "closes", "failed", "with_plate", "calls", "calls_unanswered"):
            sums[name] += getattr(d, name)
    return dict(sums)
