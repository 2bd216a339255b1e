"""A judicial requisition run to delivery through the console in a real browser: recorded by a
supervisor, extracted, the signed requisition uploaded, approved by a manager who re-authenticates
(password and TOTP), the export package built and verified in the page, the handover recorded with
the receipt; then the register verified and the statistics drawn.

The archive and the requisition service run in-process on the test's servers (with footage recorded
an hour ago), the gateway and ingest as processes, as in the requisition service's own tests."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.common.clock import from_us
from tests.e2e.test_console_login import console_login, fresh_code, screenshot
from tests.support import accounts
from tests.support.archive import START, T0_US
from tests.support.browser import chromium, until
from tests.support.platform import Platform
from tests.support.requisition import LoopThread, RequisitionStack, pdf_bytes, stack_behind_platform
from tests.support.servers import S3Server

pytestmark = pytest.mark.e2e
CAM = "cam-a"
PARIS = ZoneInfo("Europe/Paris")


def paris(us: int) -> str:
    return from_us(us).astimezone(PARIS).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def env(
    platform: Platform, tmp_path: Path, database_url: str, s3: S3Server, nats_url: str
) -> Iterator[tuple[Platform, RequisitionStack, LoopThread]]:
    with stack_behind_platform(
        platform, tmp_path, database_url, s3, nats_url, camera=(CAM, "Place d'Armes"), seconds=12,
        services=["ingest", "gateway"],
    ) as (st, bg):  # fmt: skip
        yield platform, st, bg


def state_of(page) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate("document.querySelector('#req-stepper li.current')?.textContent || ''")


def test_requisition_to_delivery_in_the_console(env: tuple[Platform, RequisitionStack, LoopThread]) -> None:
    platform, _, _ = env
    base = platform.gateway
    platform.create_user("sylvie", "supervisor", ["*"])
    platform.create_user("marc", "manager", ["*"])

    with chromium() as browser:
        supervisor = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        console_login(supervisor, base, "sylvie")
        supervisor.goto(f"{base}/#/requisitions")
        supervisor.click("#req-new")
        # The form checks on the client first: nothing is sent without the required fields.
        supervisor.click("#req-form button[type=submit]")
        assert supervisor.evaluate("document.getElementById('req-form-requesting_service').validity.valid") is False
        supervisor.fill("#req-form-requesting_service", "Commissariat de police de Metz")
        supervisor.fill("#req-form-officer", "Lieutenant Martin")
        supervisor.fill("#req-form-case_reference", "PV 2026/00123")
        supervisor.fill("#req-form-reason", "vol à l'arraché, place d'Armes")
        supervisor.select_option("#req-ranges .range-camera", CAM)
        supervisor.fill("#req-ranges .range-start", paris(T0_US + 2_000_000))
        supervisor.fill("#req-ranges .range-end", paris(T0_US + 9_000_000))
        supervisor.click("#req-form button[type=submit]")
        until(supervisor, "location.hash.length > 20 && document.getElementById('req-stepper') !== null", 30)
        request_id = supervisor.evaluate("location.hash.split('/')[2]")
        assert state_of(supervisor) == "demandée"

        supervisor.click("#req-extract")
        until(supervisor, "document.querySelector('#req-stepper li.current')?.textContent === 'extraite'", 300,
              "the extraction")  # fmt: skip
        # Upload: a missing document is said in words, nothing is sent.
        supervisor.fill("#req-upload-number", "REQ-2026-0042")
        supervisor.fill("#req-upload-authority", "Procureur de la République de Metz")
        supervisor.fill("#req-upload-issued_on", (START - timedelta(days=1)).date().isoformat())
        supervisor.click("#req-upload button[type=submit]")
        assert supervisor.evaluate("document.getElementById('req-document').validity.valueMissing") is True
        supervisor.set_input_files(
            "#req-document", {"name": "requisition.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes()}
        )
        supervisor.click("#req-upload button[type=submit]")
        until(supervisor, "document.querySelector('#req-stepper li.current')?.textContent === 'réquisition reçue'", 60)

        # The manager reviews the scan and approves, re-entering password and TOTP.
        manager = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        console_login(manager, base, "marc")
        manager.goto(f"{base}/#/requisitions/{request_id}")
        manager.wait_for_selector("#req-document-link")
        manager.fill("#req-approve-password", "not-the-password")
        manager.fill("#req-approve-totp", fresh_code("marc", accounts._SECRETS[(base, "marc")]))
        manager.click("#req-approve button[type=submit]")
        until(manager, "document.querySelector('#req-approve .error').textContent.length > 0", 30)
        assert "Traceback" not in manager.inner_text("#req-approve .error")
        manager.fill("#req-approve-password", Platform.USER_PASSWORD)
        manager.fill("#req-approve-totp", fresh_code("marc", accounts._SECRETS[(base, "marc")]))
        manager.click("#req-approve button[type=submit]")
        until(manager, "document.querySelector('#req-stepper li.current')?.textContent === 'approuvée'", 60)

        # The package: built (progress shown while it runs), verified in the page, handed over.
        supervisor.reload()
        supervisor.wait_for_selector("#req-package")
        supervisor.click("#req-package")
        until(supervisor, "document.getElementById('req-package-sha') !== null", 600, "the export package")
        supervisor.click("#req-verify")
        verdict = "document.getElementById('req-verify-verdict')?.textContent"
        until(supervisor, f"{verdict}.startsWith('Paquet vérifié')", 120, "the package verified in the browser")
        package_sha = supervisor.inner_text("#req-package-sha")
        assert supervisor.input_value("#req-delivery-sha256") == package_sha
        screenshot(supervisor, "requisition-package-verified")
        supervisor.fill("#req-delivery-recipient_name", "Lieutenant Martin")
        supervisor.fill("#req-delivery-recipient_service", "Commissariat de police de Metz")
        supervisor.fill("#req-delivery-recipient_id", "carte professionnelle 123456")
        supervisor.click("#req-delivery button[type=submit]")
        until(supervisor, "document.querySelector('#req-stepper li.current')?.textContent === 'remise'", 120)
        receipt = supervisor.get_attribute("#req-receipt", "href")
        pdf = supervisor.evaluate(
            f"fetch({receipt!r}).then(r => r.arrayBuffer())"
            ".then(b => new TextDecoder().decode(new Uint8Array(b).slice(0, 5)))"
        )
        assert pdf == "%PDF-"
        screenshot(supervisor, "requisition-delivered")

        # The register: the entries of this requisition, the chain verified, printable.
        manager.goto(f"{base}/#/register")
        manager.wait_for_selector("#register-table table")
        manager.click("#register-verify")
        until(manager, "document.getElementById('register-verdict').textContent.startsWith('Registre intègre')", 60)
        assert manager.get_attribute("#register-pdf", "href") == "/api/v1/register/export?format=pdf"
        screenshot(manager, "register")
        manager.goto(f"{base}/#/requisitions/stats")
        manager.wait_for_selector("#chart-outcomes rect")
        screenshot(manager, "requisition-statistics")
