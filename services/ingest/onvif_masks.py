"""Privacy masks burned in by the camera itself: ONVIF Media2 (ver20/media) CreateMask, GetMasks,
DeleteMask, over SOAP 1.2 with a WS-Security UsernameToken digest.

The onvif-zeep-async package carries no Media2 WSDL, so the few operations needed are written
here as plain SOAP (lxml to build and parse, httpx to send). The device service's GetServices
gives the Media2 address; masks belong to the first video source configuration.

Coordinates: ONVIF's normalised image space is x, y in [-1, 1], y up; the platform's is 0..1 from
the top-left corner, y down. `sync` makes the camera hold exactly the given masks (deleting the
others), then reads them back: `compare` decides whether what the camera says it holds is what
was approved, within TOLERANCE (cameras round coordinates to their own grid).
"""

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from lxml import etree

from services.ingest.sources import describe

SOAP = "http://www.w3.org/2003/05/soap-envelope"
TT = "http://www.onvif.org/ver10/schema"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TR2 = "http://www.onvif.org/ver20/media/wsdl"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
YCBCR = "http://www.onvif.org/ver10/colorspace/YCbCr"
CALL_TIMEOUT_S = 10.0
# Normalised units (0..1): 0.002 is 4 px at 1920.
TOLERANCE = 0.002

Point = tuple[float, float]


class MaskDriverError(RuntimeError):
    """The camera's masks could not be read or written (message says why, never credentials)."""


@dataclass(frozen=True)
class CameraMask:
    polygon: tuple[Point, ...]  # 0..1, y down
    colour: tuple[int, int, int]  # Y, Cb, Cr
    enabled: bool = True
    kind: str = "Color"
    token: str = ""


def to_onvif(point: Point) -> Point:
    return 2 * point[0] - 1, 1 - 2 * point[1]


def from_onvif(point: Point) -> Point:
    return (point[0] + 1) / 2, (1 - point[1]) / 2


def compare(wanted: list[CameraMask], held: list[CameraMask]) -> str:
    """ "" when the camera's enabled masks are exactly the wanted ones (any order), else what differs."""
    active = [m for m in held if m.enabled]
    if len(active) != len(wanted):
        return f"the camera holds {len(active)} enabled mask(s), {len(wanted)} approved"
    remaining = list(active)
    for n, mask in enumerate(wanted, 1):
        match = next((m for m in remaining if _same(mask, m)), None)
        if match is None:
            return f"approved mask {n} is not held by the camera as approved (shape, fill or colour)"
        remaining.remove(match)
    return ""


def _same(a: CameraMask, b: CameraMask) -> bool:
    if b.kind != "Color" or a.colour != b.colour or len(a.polygon) != len(b.polygon):
        return False
    # The camera may start the polygon at another vertex.
    for shift in range(len(a.polygon)):
        rotated = b.polygon[shift:] + b.polygon[:shift]
        if all(
            abs(p[0] - q[0]) <= TOLERANCE and abs(p[1] - q[1]) <= TOLERANCE
            for p, q in zip(a.polygon, rotated, strict=False)
        ):
            return True
    return False


def _text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "NotAuthorized" in text or "401" in text:
        return "wrong credentials (the camera refused the request: not authorized)"
    return text


class OnvifMasks:
    """One camera's Media2 masks; `async with OnvifMasks(url) as masks:`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MaskDriverError(f"not an ONVIF device service URL: {describe(url)}")
        self._where = describe(url)
        self._user, self._password = unquote(parts.username or ""), unquote(parts.password or "")
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._device = urlunsplit((parts.scheme, host, parts.path or "/onvif/device_service", "", ""))
        self._client = httpx.AsyncClient(timeout=CALL_TIMEOUT_S)
        self._media2 = ""
        self._configuration = ""

    async def __aenter__(self) -> "OnvifMasks":
        try:
            await self._connect()
        except BaseException:
            await self._client.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    # -- SOAP ------------------------------------------------------------------------------

    def _security(self) -> str:
        if not self._user:
            return ""
        nonce = os.urandom(16)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + self._password.encode()).digest()).decode()
        user = self._user.replace("&", "&amp;").replace("<", "&lt;")
        return (
            f'<s:Header><wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
            f"<wsse:Username>{user}</wsse:Username>"
            f'<wsse:Password Type="{DIGEST}">{digest}</wsse:Password>'
            f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
            "</wsse:UsernameToken></wsse:Security></s:Header>"
        )

    async def _call(self, address: str, body: str) -> etree._Element:
        envelope = (
            f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}" xmlns:tt="{TT}" '
            f'xmlns:tds="{TDS}" xmlns:tr2="{TR2}">{self._security()}<s:Body>{body}</s:Body></s:Envelope>'
        )
        try:
            answer = await self._client.post(
                address, content=envelope.encode(), headers={"Content-Type": "application/soap+xml; charset=utf-8"}
            )
        except httpx.HTTPError as exc:
            raise MaskDriverError(f"cannot reach the camera's ONVIF service {self._where}: {_text(exc)}") from exc
        try:
            root = etree.fromstring(answer.content)
        except etree.XMLSyntaxError as exc:
            raise MaskDriverError(f"the camera answered HTTP {answer.status_code} without SOAP") from exc
        fault = root.find(f".//{{{SOAP}}}Fault")
        if fault is not None:
            codes = " ".join(v.text or "" for v in fault.iter(f"{{{SOAP}}}Value"))
            reason = fault.findtext(f".//{{{SOAP}}}Text") or ""
            raise MaskDriverError(f"the camera refused: {_text(Exception(codes + ' ' + reason))}")
        result = root.find(f"{{{SOAP}}}Body/*")
        if result is None:
            raise MaskDriverError("the camera answered an empty SOAP body")
        return result

    async def _connect(self) -> None:
        services = await self._call(
            self._device, "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>"
        )
        for service in services.iter(f"{{{TDS}}}Service"):
            if service.findtext(f"{{{TDS}}}Namespace") == TR2:
                self._media2 = service.findtext(f"{{{TDS}}}XAddr") or ""
        if not self._media2:
            raise MaskDriverError(f"camera {self._where} has no ONVIF Media2 service: it cannot hold privacy masks")
        configurations = await self._call(self._media2, "<tr2:GetVideoSourceConfigurations/>")
        first = configurations.find(f"{{{TR2}}}Configurations")
        if first is None or not first.get("token"):
            raise MaskDriverError(f"camera {self._where} has no video source configuration")
        self._configuration = first.get("token", "")

    # -- masks -----------------------------------------------------------------------------

    async def read(self) -> list[CameraMask]:
        answer = await self._call(
            self._media2,
            f"<tr2:GetMasks><tr2:ConfigurationToken>{self._configuration}</tr2:ConfigurationToken></tr2:GetMasks>",
        )
        masks = []
        for mask in answer.iter(f"{{{TR2}}}Masks"):
            points = tuple(
                from_onvif((float(p.get("x", 0)), float(p.get("y", 0)))) for p in mask.iter(f"{{{TT}}}Point")
            )
            colour = mask.find(f"{{{TR2}}}Color")
            yuv = (
                (round(float(colour.get("X", 0))), round(float(colour.get("Y", 0))), round(float(colour.get("Z", 0))))
                if colour is not None
                else (-1, -1, -1)
            )
            masks.append(
                CameraMask(
                    polygon=points,
                    colour=yuv,
                    enabled=(mask.findtext(f"{{{TR2}}}Enabled") or "true").strip().lower() == "true",
                    kind=(mask.findtext(f"{{{TR2}}}Type") or "").strip(),
                    token=mask.get("token", ""),
                )
            )
        return masks

    async def replace(self, masks: list[CameraMask]) -> None:
        """Delete the camera's masks and create these."""
        for held in await self.read():
            await self._call(self._media2, f"<tr2:DeleteMask><tr2:Token>{held.token}</tr2:Token></tr2:DeleteMask>")
        for mask in masks:
            points = "".join(f'<tt:Point x="{x:.6f}" y="{y:.6f}"/>' for x, y in map(to_onvif, mask.polygon))
            y, cb, cr = mask.colour
            await self._call(
                self._media2,
                f"<tr2:CreateMask><tr2:Mask><tr2:ConfigurationToken>{self._configuration}</tr2:ConfigurationToken>"
                f"<tr2:Polygon>{points}</tr2:Polygon><tr2:Type>Color</tr2:Type>"
                f'<tr2:Color X="{y}" Y="{cb}" Z="{cr}" Colorspace="{YCBCR}"/>'
                "<tr2:Enabled>true</tr2:Enabled></tr2:Mask></tr2:CreateMask>",
            )


async def sync(url: str, wanted: list[CameraMask], push: bool) -> tuple[list[CameraMask], str]:
    """(what the camera holds, "" or why it is not what was wanted); pushes first when asked and
    the camera differs. Raises MaskDriverError when the camera cannot be asked."""
    async with OnvifMasks(url) as camera:
        held = await camera.read()
        problem = compare(wanted, held)
        if problem and push:
            await camera.replace(wanted)
            held = await camera.read()
            problem = compare(wanted, held)
        return held, problem
