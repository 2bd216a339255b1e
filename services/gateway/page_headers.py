"""The pages the gateway serves (the console, the live view, the OIDC refusal page): where their files
are, and the security headers of every one.

Same origin only, no framing, no referrer; WebSockets to this very host for the live view and the
notifications. The Host header is used only when it is a plain host[:port] (a forged one is left out
of the policy, never quoted into it).
"""

import re
from pathlib import Path

from starlette.requests import Request

# The console's files (HTML, scripts, styles), served by console.py and live.py.
STATIC = Path(__file__).resolve().parent / "static"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def content_security_policy(request: Request) -> str:
    """Same origin only; WebSockets to this very host (the live view, notifications)."""
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if _HOST.match(host) else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob:; connect-src 'self'{sockets}; worker-src 'self' blob:; font-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def page_headers(request: Request, cache_control: str = "no-cache") -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(request),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        # The console page is tiny and changes with each release: always revalidated ("no-cache").
        "Cache-Control": cache_control,
    }
