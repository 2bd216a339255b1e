"""RTSP authentication: Basic and Digest (RFC 2617, MD5), answered after the camera's 401.

Nothing is sent before the camera asks, and Digest is preferred when it offers both: Basic would
put the password on the wire. The password never appears in a message, a log or a reason.
"""

import base64
import hashlib
import os
import re
from collections.abc import Callable

# key=value or key="quoted value" inside a WWW-Authenticate header.
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


class AuthError(ValueError):
    """The camera asks for authentication ingest cannot give."""


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
    return scheme.lower(), params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class Authorizer:
    """Credentials for one camera, and the scheme its last 401 asked for."""

    def __init__(self, username: str, password: str, cnonce: Callable[[], str] = lambda: os.urandom(8).hex()) -> None:
        self._username, self._password = username, password
        self._cnonce = cnonce
        self._scheme = ""
        self._params: dict[str, str] = {}
        self._count = 0

    @property
    def has_credentials(self) -> bool:
        return bool(self._username or self._password)

    def challenged(self, headers: list[str]) -> None:
        """Take the camera's WWW-Authenticate headers (Digest first); AuthError if none is usable."""
        offered = [_challenge(h) for h in headers]
        for scheme, params in sorted(offered, key=lambda c: c[0] != "digest"):
            if scheme == "digest":
                algorithm = params.get("algorithm", "MD5").upper()
                qops = {q.strip() for q in params.get("qop", "").split(",") if q.strip()}
                if algorithm not in ("MD5", "MD5-SESS") or (qops and "auth" not in qops) or "nonce" not in params:
                    continue
                self._scheme, self._params, self._count = "digest", params, 0
                return
            if scheme == "basic":
                self._scheme, self._params = "basic", params
                return
        names = ", ".join(sorted({scheme for scheme, _ in offered})) or "none"
        raise AuthError(f"the camera asks for an authentication ingest does not speak ({names})")

    def header(self, method: str, uri: str) -> str | None:
        """The Authorization header for a request, once the camera has asked for one."""
        if self._scheme == "basic":
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            return f"Basic {token}"
        if self._scheme != "digest":
            return None
        p = self._params
        realm, nonce = p.get("realm", ""), p["nonce"]
        ha1 = _md5(f"{self._username}:{realm}:{self._password}")
        cnonce = self._cnonce()
        if p.get("algorithm", "").upper() == "MD5-SESS":
            ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [f'username="{self._username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        if "auth" in {q.strip() for q in p.get("qop", "").split(",")}:
            self._count += 1
            nc = f"{self._count:08x}"
            digest = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += [f'response="{digest}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            fields.append(f'response="{_md5(f"{ha1}:{nonce}:{ha2}")}"')
        if "opaque" in p:
            fields.append(f'opaque="{p["opaque"]}"')
        if "algorithm" in p:
            fields.append(f"algorithm={p['algorithm']}")
        return "Digest " + ", ".join(fields)
