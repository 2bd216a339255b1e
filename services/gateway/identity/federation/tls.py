"""The federation listener: mutual TLS, and the partner's certificate handed to the application.

uvicorn verifies the client certificate against the federation CA (expired, foreign or missing
certificates never get past the handshake) but does not pass the certificate to the app. These
protocol subclasses put it into the ASGI scope the way the ASGI TLS extension describes
(scope["extensions"]["tls"]["client_cert_chain"], PEM), so the app can tell which partner is
calling.
"""

import asyncio
import ssl
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from services.common.service import Runtime, serve_http

ASGIApp = Any


def _with_client_cert(app: ASGIApp, transport: asyncio.BaseTransport) -> ASGIApp:
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = {"client_cert_chain": chain, "client_cert_error": None if chain else "no certificate"}
        await app(dict(scope, extensions=extensions), receive, send)

    return wrapped


class H11WithClientCert(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _with_client_cert(self.app, transport)


class WebSocketWithClientCert(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.app = _with_client_cert(self.app, transport)


async def serve_federation(runtime: Runtime, host: str, port: int, cert: Path, key: Path, ca: Path) -> None:
    """Serve the gateway app to partners on its own port, client certificate required."""
    assert runtime.app is not None
    await serve_http(
        runtime.app,
        host,
        port,
        runtime.stop,
        http=H11WithClientCert,
        ws=WebSocketWithClientCert,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_ca_certs=str(ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
