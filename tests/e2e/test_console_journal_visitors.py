"""The shift journal (main courante) and the viewing-room register in a real browser: an operator
writes an entry (an empty text is refused with the API's own words) and reads the shift's handover;
an administrator declares a visitor to the prefecture (a real SMTP server on loopback), records its
validation; an auditor sees the journal's counts and the register, with no control to change them.

Who may do what follows the API: the register is kept by administrators ("users"), the journal's
entries are for those who watch ("live"), auditors read the counts and the register."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page

from tests.e2e.test_console_login import console_login, screenshot
from tests.e2e.test_visitors import PREFECTURE, _mail_settings, smtp_server
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
FIGHT = "Rixe devant le bar du Théâtre, 4 individus.\nUn blessé au sol."


def _watch_errors(page: Page, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: msg.type == "error" and "Content Security Policy" in msg.text and errors.append(msg.text),
    )


def _text(page: Page, selector: str) -> str:
    return page.evaluate(f"document.querySelector({selector!r})?.textContent || ''")


def test_journal_and_viewing_room_register_in_the_console(platform: Platform) -> None:
    # One shift change, 12 hours from now: the whole test sits well inside one shift.
    change = datetime.now(ZoneInfo("Europe/Paris")) + timedelta(hours=12)
    platform.env["CSU_SHIFT_CHANGES"] = f"{change:%H}:00"
    port = free_port()
    _mail_settings(platform, port)
    errors: list[str] = []
    with smtp_server(port) as inbox:
        platform.start(["ingest", "gateway"])
        platform.create_user("olivier", "operator", ["*"])
        platform.create_user("adele", "admin", ["*"])  # declaring visitors is administration ("users")
        platform.create_user("aude", "auditor", ["*"])
        base = platform.gateway
        reader = platform.client("supervisor")
        auditor_api = platform.client("auditor")

        with chromium() as browser:
            # -- the operator's journal ---------------------------------------------------------
            operator = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _watch_errors(operator, errors)
            console_login(operator, base, "olivier")
            operator.wait_for_selector("#nav-journal")
            assert not operator.is_visible("#nav-visitors")  # the register is not the operators'
            operator.click("#nav-journal")
            operator.wait_for_selector("#journal-form")
            until(operator, "document.getElementById('journal-scope').textContent.length > 0", 30, "the entry list")
            # The form checks on the client first: no category, nothing sent.
            operator.fill("#journal-form-description", "ras")
            operator.click("#journal-form button[type=submit]")
            assert operator.evaluate("document.getElementById('journal-form-category').validity.valid") is False
            # A text of spaces only passes the browser; the API refuses it and its reason is shown.
            operator.select_option("#journal-form-category", "disturbance")
            operator.fill("#journal-form-description", "    ")
            operator.click("#journal-form button[type=submit]")
            until(operator, "document.querySelector('#journal-form .error').textContent.includes('description')", 30)
            message = _text(operator, "#journal-form .error")
            assert "Traceback" not in message and "{" not in message, message
            assert reader.get("/api/v1/journal").json() == []

            operator.fill("#journal-form-description", FIGHT)
            operator.check("#journal-form-actions input[value='police_called']")
            operator.check("#journal-form-actions input[value='camera_followed']")
            operator.fill("#journal-form-actions_note", "Équipage PN arrivé à 22h14")
            operator.check("#journal-form-cameras input[value='demo-1']")
            operator.click("#journal-form button[type=submit]")
            until(operator, "document.getElementById('journal-table')?.textContent.includes('Un blessé au sol')", 30,
                  "the entry in the list")  # fmt: skip
            row = _text(operator, "#journal-table tbody tr")
            assert "trouble à l'ordre public" in row and "police nationale appelée" in row and "demo-1" in row
            assert "olivier" in row
            # The form is ready for the next entry.
            assert operator.input_value("#journal-form-description") == ""
            # Visible through the API, to another reader of the journal.
            entries = reader.get("/api/v1/journal").json()
            assert [(e["author"], e["category"], e["description"]) for e in entries] == [
                ("olivier", "disturbance", FIGHT)
            ]
            assert entries[0]["camera_ids"] == ["demo-1"]
            assert entries[0]["actions"] == ["police_called", "camera_followed"]
            screenshot(operator, "journal")

            # A correction is a new entry that names the one it corrects; the first is kept as written.
            operator.click("#journal-table [data-amend='1']")
            operator.wait_for_selector("#journal-amend")
            assert operator.input_value("#journal-amend-category") == "disturbance"
            assert operator.is_checked("#journal-amend-cameras input[value='demo-1']")
            operator.fill("#journal-amend-description", "Correction : 5 individus, pas 4.")
            operator.click("#journal-amend button[type=submit]")
            operator.wait_for_selector("#journal-amend", state="detached")
            until(operator, "document.getElementById('journal-table')?.textContent.includes('corrige l\\'entrée n° 1')",
                  30, "the correction listed")  # fmt: skip
            assert "corrigée par l'entrée n° 2" in _text(operator, "#journal-table")
            assert [e["amends"] for e in reader.get("/api/v1/journal").json()] == [None, 1]

            # The handover summary of the shift.
            operator.click("#journal-tab-handover")
            operator.wait_for_selector("#handover-entries")
            assert "Un blessé au sol" in _text(operator, "#handover-entries")
            summary = operator.evaluate(
                "[...document.querySelectorAll('#handover-summary dt')]"
                ".map(dt => [dt.textContent, dt.nextElementSibling.textContent])"
            )
            assert ["Entrées", "2"] in summary and ["trouble à l'ordre public", "2"] in summary, summary
            assert "Poste du" in _text(operator, "#handover-shift")
            assert operator.is_enabled("#handover-prev") and not operator.is_enabled("#handover-next")
            screenshot(operator, "journal-handover")

            # Who is in the viewing room: the agent starts their shift from the handover and is listed.
            until(operator, "document.getElementById('room-now').textContent.includes('Personne')", 30, "the room")
            operator.click("#room-shift-start")
            operator.wait_for_selector("#room-shift-end")
            until(operator, "document.getElementById('room-now').textContent.includes('agent de service')", 30)
            assert [p["kind"] for p in reader.get("/api/v1/room/now").json()] == ["agent"]

            # -- the administrator's register -----------------------------------------------------
            admin = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
            _watch_errors(admin, errors)
            console_login(admin, base, "adele")
            admin.click("#nav-visitors")
            admin.click("#visitor-new")
            admin.wait_for_selector("#visitor-form")
            # A name of spaces only: the API's reason, nothing declared, nothing mailed.
            admin.fill("#visitor-form-name", "   ")
            admin.fill("#visitor-form-organisation", "Inspection générale de la sécurité")
            admin.fill("#visitor-form-quality", "inspectrice")
            admin.fill("#visitor-form-purpose", "Contrôle du fonctionnement de la salle")
            admin.click("#visitor-form button[type=submit]")
            until(admin, "document.querySelector('#visitor-form .error').textContent.includes('name')", 30)
            assert "Traceback" not in _text(admin, "#visitor-form .error")
            assert auditor_api.get("/api/v1/visitors").json() == [] and inbox.mails == []

            admin.fill("#visitor-form-name", "Claire Dubois")
            admin.click("#visitor-form button[type=submit]")
            admin.wait_for_selector("#visitor-form", state="detached")
            until(admin, "document.getElementById('visitors-table').textContent.includes('Claire Dubois')", 30)
            until(admin, "document.getElementById('visitors-table').textContent.includes('envoyée à la préfecture')",
                  30, "the declaration sent")  # fmt: skip
            recipients, mail = wait_for(lambda: inbox.mails and inbox.mails[0], 30, "the mail at the prefecture")
            assert recipients == [PREFECTURE] and "Claire Dubois" in mail["Subject"]
            declared = auditor_api.get("/api/v1/visitors").json()
            assert [(d["name"], d["status"], d["mail_status"], d["declared_by"]) for d in declared] == [
                ("Claire Dubois", "pending", "sent", "adele")
            ]
            reference = declared[0]["reference"]
            assert reference in _text(admin, "#visitors-table")

            # The prefecture's answer: a validation without its reference is refused in words.
            admin.click("#visitors-table [data-answer]")
            admin.wait_for_selector("#visitor-answer")
            admin.select_option("#visitor-answer-decision", "validated")
            admin.click("#visitor-answer button[type=submit]")
            until(admin, "document.querySelector('#visitor-answer .error').textContent.includes('reference')", 30)
            admin.fill("#visitor-answer-prefecture_ref", "PREF-SV-2026-118")
            admin.fill("#visitor-answer-comment", "réponse reçue par courriel")
            admin.click("#visitor-answer button[type=submit]")
            admin.wait_for_selector("#visitor-answer", state="detached")
            until(admin, "document.querySelector('#visitors-table .vis-validated')?.textContent === 'validée'", 30,
                  "the declaration validated")  # fmt: skip
            assert "PREF-SV-2026-118" in _text(admin, "#visitors-table")
            # Validated: no answer or resend any more, cancelling is still possible.
            assert admin.locator("#visitors-table [data-answer]").count() == 0
            assert admin.locator("#visitors-table [data-resend]").count() == 0
            assert admin.locator("#visitors-table [data-cancel]").count() == 1
            answered = auditor_api.get(f"/api/v1/visitors/{declared[0]['id']}").json()
            assert answered["status"] == "validated" and answered["prefecture_ref"] == "PREF-SV-2026-118"
            assert answered["answer_recorded_by"] == "adele"
            screenshot(admin, "visitors")

            # -- the auditor: counts and register, read only ----------------------------------------
            auditor = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
            _watch_errors(auditor, errors)
            console_login(auditor, base, "aude")
            auditor.wait_for_selector("#nav-journal")
            assert auditor.is_visible("#nav-visitors")
            auditor.goto(f"{base}/#/journal")
            until(auditor, "document.getElementById('stats-total')?.textContent.startsWith('2 entrée')", 30,
                  "the journal's counts")  # fmt: skip
            auditor.wait_for_selector("#stats-chart rect")
            assert auditor.is_visible("#journal-counts-only")
            for control in ("#journal-form", "#journal-tab-entries", "#journal-tab-handover", "[data-amend]"):
                assert auditor.locator(control).count() == 0, control
            assert "Un blessé" not in auditor.inner_text("#main")
            screenshot(auditor, "journal-statistics-auditor")
            auditor.goto(f"{base}/#/journal/handover")  # the entries' views are not offered to auditors
            auditor.reload()
            auditor.wait_for_selector("#stats-total")
            assert auditor.locator("#handover").count() == 0

            auditor.click("#nav-visitors")
            until(auditor, "document.getElementById('visitors-table')?.textContent.includes('Claire Dubois')", 30)
            assert _text(auditor, "#visitors-table .vis-validated") == "validée"
            assert "PREF-SV-2026-118" in _text(auditor, "#visitors-table")
            assert auditor.locator("#visitor-new").count() == 0
            assert auditor.locator("#visitors-table button").count() == 0
            assert auditor.get_attribute("#visitors-export", "href") == "/api/v1/visitors/export"
            screenshot(auditor, "visitors-auditor")
            # In English too.
            auditor.select_option("#session select.lang", "en")
            until(auditor, "document.getElementById('nav-visitors')?.textContent === 'Viewing room'", 30)
            until(auditor, "document.querySelector('#visitors-table .vis-validated')?.textContent === 'validated'", 30)
            assert auditor.inner_text("#nav-journal") == "Shift journal"

            # A visit that will not happen is cancelled, never deleted; the reason is required.
            admin.click("#visitors-table [data-cancel]")
            admin.wait_for_selector("#visitor-cancel")
            admin.click("#visitor-cancel button[type=submit]")
            assert admin.evaluate("document.getElementById('visitor-cancel-comment').validity.valid") is False
            admin.fill("#visitor-cancel-comment", "visite reportée")
            admin.click("#visitor-cancel button[type=submit]")
            admin.wait_for_selector("#visitor-cancel", state="detached")
            until(admin, "document.querySelector('#visitors-table .vis-cancelled')?.textContent === 'annulée'", 30)
            assert admin.locator("#visitors-table button").count() == 0
            assert auditor_api.get(f"/api/v1/visitors/{declared[0]['id']}").json()["status"] == "cancelled"

    assert errors == [], errors
