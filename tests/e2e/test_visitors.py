"""The viewing-room register: a declaration reaches the prefecture by mail (a real SMTP server on
loopback), its answer is recorded, auditors read and export the register; with the mail relay down
the declaration is kept, marked "not sent", and sent once the relay is back, even across a restart."""

import csv
import email
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
PREFECTURE = "bureau-videoprotection@prefecture.example"


class Inbox:
    """What the SMTP server received: (envelope recipients, parsed message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # aiosmtpd hook
        message = email.message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[attr-defined]
        self.mails.append((list(envelope.rcpt_tos), message))  # type: ignore[attr-defined]
        return "250 OK"


@contextmanager
def smtp_server(port: int) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def _mail_settings(platform: Platform, port: int) -> None:
    platform.env |= {
        "CSU_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "CSU_PREFECTURE_EMAIL": PREFECTURE,
        "CSU_MAIL_FROM": "csu@ville.example",
    }


def _declaration(name: str = "Claire Dubois", **changes: object) -> dict:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    return {
        "name": name,
        "organisation": "Inspection générale de la sécurité",
        "role": "visitor",
        "quality": "inspectrice",
        "purpose": "Contrôle du fonctionnement de la salle",
        "expected_start": start.isoformat(),
        "expected_end": (start + timedelta(hours=3)).isoformat(),
    } | changes


def _register(client: httpx.Client) -> list[dict]:
    answer = client.get("/api/v1/visitors")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_declaration_is_mailed_answered_and_consulted(platform: Platform) -> None:
    port = free_port()
    _mail_settings(platform, port)
    with smtp_server(port) as inbox:
        platform.start(["ingest", "gateway"])
        admin = platform.admin()
        auditor = platform.client("auditor")

        created = admin.post("/api/v1/visitors", json=_declaration())
        assert created.status_code == 201, created.text
        declaration = created.json()
        assert declaration["status"] == "pending" and declaration["mail_status"] == "sent", declaration
        assert declaration["declared_by"] == "admin" and declaration["mail_recipient"] == PREFECTURE
        reference = declaration["reference"]

        recipients, mail = wait_for(lambda: inbox.mails and inbox.mails[0], 30, "the mail at the prefecture")
        assert recipients == [PREFECTURE] and len(inbox.mails) == 1
        assert reference in mail["Subject"] and "Claire Dubois" in mail["Subject"]
        assert mail["From"] == "csu@ville.example"
        body = mail.get_body().get_content()
        for fact in (
            "Claire Dubois",
            "Inspection générale de la sécurité",
            "inspectrice",
            "Contrôle du fonctionnement",
        ):
            assert fact in body
        assert "heure de Paris" in body and reference in body

        # Who may do what: declaring is administration, reading is for auditors (and admins).
        assert auditor.post("/api/v1/visitors", json=_declaration("Other")).status_code == 403
        assert platform.client("operator").get("/api/v1/visitors").status_code == 403
        assert [d["reference"] for d in _register(auditor)] == [reference]

        # Bad input: clear 4xx, nothing declared.
        bad = {
            "unknown field": _declaration(badge="A-12"),
            "end before start": _declaration(expected_end=_declaration()["expected_start"]),
            "past visit": _declaration(
                expected_start="2026-01-01T08:00:00+01:00", expected_end="2026-01-01T09:00:00+01:00"
            ),
            "line break in a name": _declaration("Eve\r\nBcc: everyone@example.org"),
            "no zone": _declaration(expected_start="2030-01-01T08:00:00"),
            "unknown role": _declaration(role="vip"),
        }
        for what, body_in in bad.items():
            refused = admin.post("/api/v1/visitors", json=body_in)
            assert refused.status_code == 422, (what, refused.status_code, refused.text)
        assert len(_register(auditor)) == 1 and len(inbox.mails) == 1

        # The prefecture's answer, recorded by an administrator.
        url = f"/api/v1/visitors/{declaration['id']}/answer"
        answered_at = datetime.now(UTC).replace(microsecond=0).isoformat()
        no_ref = admin.post(url, json={"decision": "validated", "answered_at": answered_at})
        assert no_ref.status_code == 422 and "reference" in no_ref.json()["detail"]
        assert auditor.post(url, json={"decision": "refused", "answered_at": answered_at}).status_code == 403
        validated = admin.post(
            url, json={"decision": "validated", "prefecture_ref": "PREF-SV-2026-118", "answered_at": answered_at}
        )
        assert validated.status_code == 200, validated.text
        assert validated.json()["status"] == "validated" and validated.json()["prefecture_ref"] == "PREF-SV-2026-118"
        again = admin.post(url, json={"decision": "refused", "answered_at": answered_at})
        assert again.status_code == 409 and "already validated" in again.json()["detail"]
        assert auditor.get(f"/api/v1/visitors/{declaration['id']}").json()["status"] == "validated"
        assert admin.get("/api/v1/visitors/999999").status_code == 404

        # A second declaration, cancelled; a name a spreadsheet would run as a formula stays text.
        formula = admin.post("/api/v1/visitors", json=_declaration("=HYPERLINK(1)", role="contractor"))
        assert formula.status_code == 201
        cancel = admin.post(f"/api/v1/visitors/{formula.json()['id']}/cancel", json={"comment": "visite reportée"})
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
        exported = auditor.get("/api/v1/visitors/export")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
        assert [r["status"] for r in rows] == ["validated", "cancelled"]
        assert rows[0]["prefecture_ref"] == "PREF-SV-2026-118" and rows[1]["name"] == "'=HYPERLINK(1)"
        assert auditor.get("/api/v1/visitors", params={"status": "cancelled"}).json()[0]["id"] == formula.json()["id"]

        actions = wait_for(
            lambda: (
                {e["action"] for e in auditor.get("/api/v1/audit", params={"action": "visitors", "limit": 1000}).json()}
                >= {"visitors.declare", "visitors.validated", "visitors.cancel", "visitors.export", "visitors.consult"}
            ),
            30,
            "the register's actions in the audit trail",
        )
        assert actions


def test_declaration_is_kept_and_retried_while_the_relay_is_down(platform: Platform) -> None:
    port = free_port()  # nothing listens there yet: the relay is down
    _mail_settings(platform, port)
    platform.env["CSU_VISITOR_MAIL_RETRY_S"] = "1"
    platform.start(["ingest", "gateway"])
    admin = platform.admin()

    created = admin.post("/api/v1/visitors", json=_declaration("Marc Lefèvre", role="contractor"))
    assert created.status_code == 201, created.text
    declaration = created.json()
    assert declaration["mail_status"] == "not_sent" and "cannot be reached" in declaration["mail_error"]
    assert f"127.0.0.1:{port}" in declaration["mail_error"]
    wait_for(
        lambda: admin.get(f"/api/v1/visitors/{declaration['id']}").json()["mail_attempts"] >= 2,
        30,
        "a retry while the relay is down",
    )
    resend = admin.post(f"/api/v1/visitors/{declaration['id']}/resend")
    assert resend.status_code == 200 and resend.json()["mail_status"] == "not_sent"

    platform.restart("gateway")  # nothing held in memory: the register is the queue
    with smtp_server(port) as inbox:
        sent = wait_for(
            lambda: (d := admin.get(f"/api/v1/visitors/{declaration['id']}").json())["mail_status"] == "sent" and d,
            60,
            "the declaration to be sent once the relay is back",
        )
        assert sent["mail_error"] == "" and sent["status"] == "pending"
        _, mail = wait_for(lambda: inbox.mails and inbox.mails[0], 10, "the mail")
        assert sent["reference"] in mail["Subject"] and "Marc Lefèvre" in mail.get_body().get_content()
        assert mail["Message-ID"]
        # Sent once: a few more retry rounds (1 s apart) leave it alone.
        time.sleep(3)
        assert len(inbox.mails) == 1
        assert admin.get(f"/api/v1/visitors/{declaration['id']}").json()["mail_attempts"] == sent["mail_attempts"]
    again = admin.post(f"/api/v1/visitors/{declaration['id']}/resend")
    assert again.status_code == 409 and "already sent" in again.json()["detail"]
