"""The viewing-room register: people expected in the supervision room, declared to the prefecture.

A declaration is stored first, then mailed to the prefecture (CSU_PREFECTURE_EMAIL through
CSU_SMTP_URL). If the mail cannot leave (relay down, not configured) the declaration stays in the
register marked "not_sent" with the reason, and is retried every CSU_VISITOR_MAIL_RETRY_S until it
is sent: a declaration is never lost, and never silently unsent. Every retry reuses the same
Message-ID, so the prefecture can recognise a mail that reached it twice.

The prefecture answers by its own means (mail, letter); an administrator records the answer:
validated with the prefecture's reference and date, or refused. The register is never deleted
from: a visit that will not happen is cancelled.
"""

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import Engine, or_, update
from sqlmodel import col, select

from services.common.clock import Clock, from_us, to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.settings import Settings
from services.common.timefmt import paris_minute
from services.gateway.errors import Refusal
from services.gateway.operations import mailer
from services.gateway.operations.models import VisitorDeclaration

log = get_logger(__name__)
ROLES: dict[str, str] = {
    "agent": "agent du centre",
    "manager": "encadrement",
    "visitor": "visiteur",
    "police": "forces de l'ordre",
    "contractor": "prestataire (maintenance)",
    "other": "autre",
}
STATUSES = ("pending", "validated", "refused", "cancelled")
MAIL_STATUSES = ("queued", "sent", "not_sent")
# A sender holds a declaration this long: longer than one SMTP exchange may take.
CLAIM_S = 120


class VisitorError(Refusal):
    """A refusal of this domain (errors.Refusal: status and message)."""


def reference(declaration: VisitorDeclaration) -> str:
    """The reference the prefecture quotes in its answer."""
    assert declaration.id is not None
    return reference_of(declaration.id)


def reference_of(declaration_id: int) -> str:
    """A declaration's reference from its number alone (the compliance report names no visitor)."""
    return f"CSU-SV-{declaration_id:06d}"


@dataclass(frozen=True)
class NewDeclaration:
    name: str
    organisation: str
    role: str
    quality: str
    purpose: str
    expected_start_us: int
    expected_end_us: int


def declare(engine: Engine, clock: Clock, new: NewDeclaration, declared_by: str) -> VisitorDeclaration:
    row = VisitorDeclaration(
        name=new.name,
        organisation=new.organisation,
        role=new.role,
        quality=new.quality,
        purpose=new.purpose,
        expected_start_us=new.expected_start_us,
        expected_end_us=new.expected_end_us,
        declared_by=declared_by,
        declared_us=to_us(clock.now()),
    )
    with session(engine) as s:
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def get(engine: Engine, declaration_id: int) -> VisitorDeclaration:
    with session(engine) as s:
        row = s.get(VisitorDeclaration, declaration_id)
    if row is None:
        raise VisitorError(404, f"unknown declaration {declaration_id}")
    return row


def search(
    engine: Engine,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    status: str | None = None,
    mail_status: str | None = None,
    after_id: int = 0,
    limit: int = 500,
) -> list[VisitorDeclaration]:
    """Declarations whose expected window overlaps [start, end), in declaration order."""
    query = select(VisitorDeclaration).where(col(VisitorDeclaration.id) > after_id)
    if start_us is not None:
        query = query.where(VisitorDeclaration.expected_end_us > start_us)
    if end_us is not None:
        query = query.where(VisitorDeclaration.expected_start_us < end_us)
    if status:
        query = query.where(VisitorDeclaration.status == status)
    if mail_status:
        query = query.where(VisitorDeclaration.mail_status == mail_status)
    with session(engine) as s:
        return list(s.exec(query.order_by(col(VisitorDeclaration.id)).limit(limit)))


def record_answer(
    engine: Engine,
    clock: Clock,
    declaration_id: int,
    *,
    validated: bool,
    prefecture_ref: str,
    answer_us: int,
    comment: str,
    recorded_by: str,
) -> VisitorDeclaration:
    def answer(row: VisitorDeclaration) -> None:
        if answer_us < row.declared_us - 60_000_000:
            raise VisitorError(422, "the prefecture cannot have answered before the declaration was made")
        row.status = "validated" if validated else "refused"
        row.prefecture_ref = prefecture_ref
        row.answer_us = answer_us

    return _close(engine, clock, declaration_id, ("pending",), answer, comment, recorded_by)


def cancel(engine: Engine, clock: Clock, declaration_id: int, comment: str, recorded_by: str) -> VisitorDeclaration:
    def cancelled(row: VisitorDeclaration) -> None:
        row.status = "cancelled"

    return _close(engine, clock, declaration_id, ("pending", "validated"), cancelled, comment, recorded_by)


def _close(
    engine: Engine,
    clock: Clock,
    declaration_id: int,
    open_statuses: tuple[str, ...],
    change: Callable[[VisitorDeclaration], None],
    comment: str,
    recorded_by: str,
) -> VisitorDeclaration:
    """Apply `change` to a declaration still in one of `open_statuses`, with who recorded it and when."""
    with session(engine) as s:
        row = s.get(VisitorDeclaration, declaration_id, with_for_update=True)
        if row is None:
            raise VisitorError(404, f"unknown declaration {declaration_id}")
        if row.status not in open_statuses:
            raise VisitorError(409, f"declaration {reference(row)} is already {row.status}")
        change(row)
        row.answer_comment = comment
        row.answer_recorded_by = recorded_by
        row.answer_recorded_us = to_us(clock.now())
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


# -- mail ----------------------------------------------------------------------------------


def message(row: VisitorDeclaration, sender: str, recipients: str, now_us: int) -> EmailMessage:
    """The declaration as the prefecture reads it (French, Paris time)."""
    ref = reference(row)
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = recipients
    mail["Subject"] = f"Déclaration d'accès à la salle de visionnage {ref} — {row.name}"
    mail["Date"] = format_datetime(from_us(now_us))
    mail["Message-ID"] = row.mail_message_id
    mail["X-CSU-Declaration"] = ref
    quality = ROLES.get(row.role, row.role) + (f" — {row.quality}" if row.quality else "")
    mail.set_content(
        "Madame, Monsieur,\n\n"
        "Le centre de supervision urbaine déclare la présence prévue de la personne suivante dans sa salle "
        "de visionnage :\n\n"
        f"  Référence de la déclaration : {ref}\n"
        f"  Nom : {row.name}\n"
        f"  Organisme : {row.organisation}\n"
        f"  Qualité : {quality}\n"
        f"  Objet de la présence : {row.purpose}\n"
        f"  Présence prévue : du {paris_minute(row.expected_start_us)} "
        f"au {paris_minute(row.expected_end_us)} (heure de Paris)\n"
        f"  Déclarée par : {row.declared_by}, le {paris_minute(row.declared_us)}\n\n"
        f"Merci de nous faire connaître votre décision en rappelant la référence {ref}.\n\n"
        "-- \nCentre de supervision urbaine (message automatique)\n"
    )
    return mail


def _mail_problem(settings: Settings) -> str | None:
    if not settings.smtp_url.get_secret_value():
        return "no mail relay is configured (CSU_SMTP_URL)"
    if not settings.prefecture_email:
        return "no prefecture address is configured (CSU_PREFECTURE_EMAIL)"
    if not settings.mail_from:
        return "no sender address is configured (CSU_MAIL_FROM)"
    return None


def _claim(engine: Engine, declaration_id: int, now_us: int, sender: str) -> VisitorDeclaration | None:
    """Hold an unsent, pending declaration for this sender; None if it needs no mail or is held."""
    with session(engine) as s:
        claimed = s.exec(
            update(VisitorDeclaration)
            .where(col(VisitorDeclaration.id) == declaration_id)
            .where(col(VisitorDeclaration.status) == "pending")
            .where(col(VisitorDeclaration.mail_status) != "sent")
            .where(
                or_(
                    col(VisitorDeclaration.mail_claim_until_us).is_(None),
                    col(VisitorDeclaration.mail_claim_until_us) < now_us,
                )
            )
            .values(mail_claim_until_us=now_us + CLAIM_S * 1_000_000)
        ).rowcount
        s.commit()
        if claimed != 1:
            return None
        row = s.get(VisitorDeclaration, declaration_id)
        assert row is not None
        if not row.mail_message_id:
            domain = sender.rpartition("@")[2] or socket.getfqdn()
            row.mail_message_id = make_msgid(idstring=f"csu-sv-{row.id}", domain=domain)
            s.add(row)
            s.commit()
            s.refresh(row)
        return row


def _finish(engine: Engine, declaration_id: int, now_us: int, recipients: str, error: str | None) -> None:
    with session(engine) as s:
        row = s.get(VisitorDeclaration, declaration_id)
        assert row is not None
        row.mail_attempts += 1
        row.mail_claim_until_us = None
        if error is None:
            row.mail_status, row.mail_error, row.mail_sent_us, row.mail_recipient = "sent", "", now_us, recipients
        else:
            row.mail_status, row.mail_error = "not_sent", error[:500]
        s.add(row)
        s.commit()


def _unsent_ids(engine: Engine) -> list[int]:
    with session(engine) as s:
        query = (
            select(VisitorDeclaration.id)
            .where(VisitorDeclaration.status == "pending")
            .where(VisitorDeclaration.mail_status != "sent")
            .order_by(col(VisitorDeclaration.id))
        )
        return [i for i in s.exec(query) if i is not None]


async def deliver(engine: Engine, settings: Settings, clock: Clock, ids: list[int] | None = None) -> int:
    """Try to mail the given (default: every unsent pending) declarations; returns how many left."""
    if ids is None:
        ids = await asyncio.to_thread(_unsent_ids, engine)
    sent = 0
    problem = _mail_problem(settings)
    for declaration_id in ids:
        now_us = to_us(clock.now())
        row = await asyncio.to_thread(_claim, engine, declaration_id, now_us, settings.mail_from)
        if row is None:
            continue
        error = problem
        if error is None:
            try:
                relay = mailer.parse_relay(settings.smtp_url.get_secret_value())
                mail = message(row, settings.mail_from, settings.prefecture_email.replace(",", ", "), now_us)
                await asyncio.to_thread(mailer.send, relay, mail, settings.smtp_timeout_s)
            except mailer.MailError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the declaration stays and is retried
                error = f"the mail could not be prepared: {type(exc).__name__}"
                log.warning("declaration mail failed", declaration=declaration_id, error=repr(exc))
        await asyncio.to_thread(_finish, engine, declaration_id, to_us(clock.now()), settings.prefecture_email, error)
        if error is None:
            sent += 1
            log.info("declaration mailed to the prefecture", declaration=declaration_id)
        else:
            log.warning("declaration not sent, will retry", declaration=declaration_id, reason=error)
    return sent


async def retry_loop(engine: Engine, settings: Settings, clock: Clock, stop: asyncio.Event) -> None:
    """Until stopped: mail what is not sent yet, every CSU_VISITOR_MAIL_RETRY_S."""
    while not stop.is_set():
        try:
            await deliver(engine, settings, clock)
        except Exception as exc:  # noqa: BLE001 - database away: try again next round
            log.warning("declaration mail round failed", error=str(exc) or type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), settings.visitor_mail_retry_s)
        except TimeoutError:
            pass
