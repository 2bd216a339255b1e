"""The start page: the cameras and their live views (the full console comes with the console issue)."""

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from services.common.pb.csu.v1 import ingest_pb2
from services.gateway.backends import RPC_TIMEOUT_S, Backends, backends, rpc_errors
from services.gateway.routes.live import _html

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def index(b: Backends = Depends(backends)) -> HTMLResponse:
    async with rpc_errors("ingest"):
        response = await b.ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=RPC_TIMEOUT_S)
    rows = "".join(
        f'<li><a href="/api/v1/cameras/{c.id}/live">{_html(c.name)}</a> <small>{_html(c.status)}</small></li>'
        for c in response.cameras
    )
    return HTMLResponse(
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'><title>CSU</title></head>"
        f"<body><h1>Centre de supervision urbaine</h1><ul>{rows}</ul>"
        "<p><a href='/docs'>API</a></p></body></html>"
    )
