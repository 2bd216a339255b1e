"""The compliance report for auditors (CNIL, prefect, IGS) and the city's data-protection impact
assessment: JSON for tools, PDF for the file. Reading it needs "audit"; producing it is audited."""

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.gateway.backends import BackendsDep
from services.gateway.identity.security import Principal, audit, require
from services.gateway.operations import compliance

router = APIRouter(prefix="/api/v1/compliance", tags=["compliance"])


@router.get("/report")
async def report(b: BackendsDep, principal: Principal = Depends(require("audit"))) -> dict:
    """Cameras and authorisations, retention, access matrix, masks, deletion proofs, audit chain, findings."""
    await audit(principal, "compliance.report", "compliance", details={"format": "json"})
    return await compliance.collect(b, principal.username)


@router.get("/report.pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
async def report_pdf(b: BackendsDep, principal: Principal = Depends(require("audit"))) -> Response:
    """The same report, printable."""
    # Imported when printed, not at start-up: fpdf and fontTools cost ~1 CPU-second at every
    # gateway start (a third of it, measured with py-spy), and most starts never print.
    from services.gateway.operations import compliance_pdf

    await audit(principal, "compliance.report", "compliance", details={"format": "pdf"})
    data = await compliance.collect(b, principal.username)
    body = await asyncio.to_thread(compliance_pdf.render, data)
    day = data["generated_at"][:10]
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="compliance-{day}.pdf"', "Cache-Control": "no-store"},
    )
