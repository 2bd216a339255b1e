"""A small ONVIF PTZ device on loopback: real SOAP 1.2 over HTTP, backed by a simulated PTZ camera.

It answers what an ONVIF client needs to steer a camera: the device service (GetSystemDateAndTime,
GetServices, GetCapabilities), the media service (GetProfiles, one profile with a PTZ
configuration) and the PTZ service (GetStatus, ContinuousMove, AbsoluteMove, RelativeMove, Stop,
GotoHomePosition, SetHomePosition, GetPresets, SetPreset, GotoPreset, RemovePreset). Every request
but GetSystemDateAndTime must carry a valid WS-Security UsernameToken digest for the configured
user, else it gets the SOAP fault ter:NotAuthorized as ONVIF specifies. Positions and motion come
from services.ingest.ptz.sim.SimPtzCamera, so a move really moves.

With `masks_file`, it is also a camera that burns privacy masks itself: the Media2 service
(GetVideoSourceConfigurations, GetMasks, CreateMask, DeleteMask, SetMask; coordinates in ONVIF's
[-1, 1] space, y up) keeps the masks, and writes their bounding boxes to the JSON file the RTSP
test camera (rtsp_camera.py --masks-file) burns into its image. Faults of real cameras:
`drop_mask = n` accepts and reports mask n but never burns it; `reboot()` forgets every mask (and
the stream restarts, in the test, by restarting the RTSP camera). `camera=None` is a fixed camera
(no PTZ service).

What it proves and does not: our driver speaks correct SOAP 1.2 with the ONVIF WSDLs (through
onvif-zeep-async/zeep), signs requests, finds the profile token, maps positions and faults. It does
not prove that a given manufacturer's firmware answers like the specification (real cameras
deviate), nor HTTP digest authentication, HTTPS, or the events/imaging services.
"""

import base64
import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lxml import etree

from services.ingest.ptz.sim import SimPtzCamera

SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS = {
    "s": SOAP,
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "ter": "http://www.onvif.org/ver10/error",
}
PROFILE = "profile_main"
PAN_TILT_SPACE = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
ZOOM_SPACE = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"


def _envelope(body: str) -> bytes:
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {ns}><s:Body>{body}</s:Body></s:Envelope>'.encode()


def _fault(subcode: str, text: str) -> bytes:
    return _envelope(
        f"<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{text}</s:Text></s:Reason></s:Fault>'
    )


class OnvifPtzServer:
    """`with OnvifPtzServer(camera, "admin", "pw") as server:` then server.url (with credentials)."""

    def __init__(
        self, camera: SimPtzCamera | None, user: str, password: str, masks_file: str | os.PathLike[str] | None = None
    ) -> None:
        self.camera = camera
        self.user = user
        self.password = password
        self.masks_file = Path(masks_file) if masks_file is not None else None
        # token -> (points in ONVIF space, (Y, Cb, Cr), enabled)
        self.masks: dict[str, tuple[list[tuple[float, float]], tuple[float, float, float], bool]] = {}
        self.drop_mask: int | None = None
        self._next_mask = 1
        self._masks_lock = threading.Lock()
        if self.masks_file is not None:
            self._burn()
        self.calls: list[tuple[str, str]] = []  # (operation, authenticated user or "")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, user: str | None = None, password: str | None = None) -> str:
        return f"http://{user or self.user}:{password or self.password}@127.0.0.1:{self.port}/onvif/device_service"

    def __enter__(self) -> "OnvifPtzServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def operations(self) -> list[str]:
        return [op for op, _ in self.calls]

    def reboot(self) -> None:
        """The camera restarts without its masks (the stream's restart is the RTSP camera's)."""
        with self._masks_lock:
            self.masks.clear()
            self._burn()

    def _burn(self) -> None:
        """Write what the RTSP camera burns: each enabled mask's bounding box, but a dropped one."""
        if self.masks_file is None:
            return
        rects = []
        for n, (points, _, enabled) in enumerate(self.masks.values()):
            if not enabled or n == self.drop_mask:
                continue
            xs = [(x + 1) / 2 for x, _ in points]
            ys = [(1 - y) / 2 for _, y in points]
            rects.append([min(xs), min(ys), max(xs), max(ys)])
        temporary = self.masks_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"rects": rects, "colour": [128, 128, 128]}))
        temporary.replace(self.masks_file)

    # -- SOAP ------------------------------------------------------------------------------

    def _authenticated(self, envelope: Any) -> str | None:
        token = envelope.find(".//{*}Security/{*}UsernameToken")
        if token is None:
            return None
        user = token.findtext("{*}Username") or ""
        password = token.find("{*}Password")
        nonce, created = token.findtext("{*}Nonce") or "", token.findtext("{*}Created") or ""
        if password is None or user != self.user:
            return None
        if (password.get("Type") or "").endswith("#PasswordDigest"):
            expected = base64.b64encode(
                hashlib.sha1(base64.b64decode(nonce) + created.encode() + self.password.encode()).digest()
            ).decode()
        else:
            expected = self.password
        return user if password.text == expected else None

    def handle(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            envelope = etree.fromstring(body)
        except etree.XMLSyntaxError:
            return 400, _fault("ter:WellFormed", "Malformed XML")
        request = envelope.find(f"{{{SOAP}}}Body/*")
        if request is None:
            return 400, _fault("ter:InvalidArgs", "Empty body")
        operation = etree.QName(request).localname
        user = self._authenticated(envelope)
        self.calls.append((operation, user or ""))
        if operation != "GetSystemDateAndTime" and user is None:
            return 400, _fault("ter:NotAuthorized", "Sender not Authorized")
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return 400, _fault("ter:ActionNotSupported", f"Optional Action Not Implemented: {operation}")
        try:
            return 200, _envelope(handler(request))
        except LookupError as exc:
            return 400, _fault("ter:InvalidArgVal", str(exc))

    @staticmethod
    def _vector(element: Any) -> tuple[float, float, float]:
        pan_tilt = element.find("{*}PanTilt") if element is not None else None
        zoom = element.find("{*}Zoom") if element is not None else None
        pan = float(pan_tilt.get("x", 0)) if pan_tilt is not None else 0.0
        tilt = float(pan_tilt.get("y", 0)) if pan_tilt is not None else 0.0
        return pan, tilt, float(zoom.get("x", 0)) if zoom is not None else 0.0

    def _check_profile(self, request: Any) -> None:
        if request.findtext("{*}ProfileToken") != PROFILE:
            raise LookupError(f"No such profile: {request.findtext('{*}ProfileToken')}")

    def _op_GetSystemDateAndTime(self, _: Any) -> str:
        now = datetime.now(UTC)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
            "<tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time><tt:Date><tt:Year>{now.year}</tt:Year>"
            f"<tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day></tt:Date></tt:UTCDateTime>"
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _services(self) -> list[tuple[str, str]]:
        services = [(NS["tds"], f"{self.base}/onvif/device_service"), (NS["trt"], f"{self.base}/onvif/media_service")]
        if self.camera is not None:
            services.append((NS["tptz"], f"{self.base}/onvif/ptz_service"))
        if self.masks_file is not None:
            services.append((NS["tr2"], f"{self.base}/onvif/media2_service"))
        return services

    def _op_GetServices(self, _: Any) -> str:
        items = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{xaddr}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
            for ns, xaddr in self._services()
        )
        return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"

    def _op_GetCapabilities(self, _: Any) -> str:
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self.base}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self.base}/onvif/media_service</tt:XAddr></tt:Media>"
            f"<tt:PTZ><tt:XAddr>{self.base}/onvif/ptz_service</tt:XAddr></tt:PTZ>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _op_GetProfiles(self, _: Any) -> str:
        return (
            f'<trt:GetProfilesResponse><trt:Profiles token="{PROFILE}" fixed="true"><tt:Name>main</tt:Name>'
            '<tt:PTZConfiguration token="ptz_conf"><tt:Name>ptz</tt:Name><tt:UseCount>1</tt:UseCount>'
            "<tt:NodeToken>ptz_node</tt:NodeToken></tt:PTZConfiguration></trt:Profiles></trt:GetProfilesResponse>"
        )

    def _position(self, pan: float, tilt: float, zoom: float) -> str:
        return (
            f'<tt:PanTilt x="{pan:.6f}" y="{tilt:.6f}" space="{PAN_TILT_SPACE}"/>'
            f'<tt:Zoom x="{zoom:.6f}" space="{ZOOM_SPACE}"/>'
        )

    # -- Media2 masks ----------------------------------------------------------------------

    def _op_GetVideoSourceConfigurations(self, _: Any) -> str:
        return (
            '<tr2:GetVideoSourceConfigurationsResponse><tr2:Configurations token="vsc_main"><tt:Name>main</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:SourceToken>vs_main</tt:SourceToken>"
            '<tt:Bounds x="0" y="0" width="768" height="576"/></tr2:Configurations>'
            "</tr2:GetVideoSourceConfigurationsResponse>"
        )

    @staticmethod
    def _mask_fields(mask: Any) -> tuple[list[tuple[float, float]], tuple[float, float, float], bool]:
        points = [(float(p.get("x", 0)), float(p.get("y", 0))) for p in mask.iter("{*}Point")]
        if len(points) < 3 or any(abs(c) > 1 for p in points for c in p):
            raise LookupError("a mask polygon needs 3 or more points within [-1, 1]")
        if (mask.findtext("{*}Type") or "Color") != "Color":
            raise LookupError("this camera fills masks with a colour only")
        colour = mask.find("{*}Color")
        yuv = tuple(float(colour.get(k, 0)) for k in "XYZ") if colour is not None else (128.0, 128.0, 128.0)
        enabled = (mask.findtext("{*}Enabled") or "true").strip().lower() == "true"
        return points, yuv, enabled  # type: ignore[return-value]

    def _op_GetMasks(self, _: Any) -> str:
        with self._masks_lock:
            items = "".join(
                f'<tr2:Masks token="{token}"><tr2:ConfigurationToken>vsc_main</tr2:ConfigurationToken>'
                "<tr2:Polygon>" + "".join(f'<tt:Point x="{x:.6f}" y="{y:.6f}"/>' for x, y in points) + "</tr2:Polygon>"
                f'<tr2:Type>Color</tr2:Type><tr2:Color X="{c[0]:g}" Y="{c[1]:g}" Z="{c[2]:g}" '
                'Colorspace="http://www.onvif.org/ver10/colorspace/YCbCr"/>'
                f"<tr2:Enabled>{str(enabled).lower()}</tr2:Enabled></tr2:Masks>"
                for token, (points, c, enabled) in self.masks.items()
            )
        return f"<tr2:GetMasksResponse>{items}</tr2:GetMasksResponse>"

    def _op_CreateMask(self, request: Any) -> str:
        fields = self._mask_fields(request.find("{*}Mask"))
        with self._masks_lock:
            if len(self.masks) >= 8:
                raise LookupError("MaxMasks reached (8)")
            token = f"mask_{self._next_mask}"
            self._next_mask += 1
            self.masks[token] = fields
            self._burn()
        return f"<tr2:CreateMaskResponse><tr2:Token>{token}</tr2:Token></tr2:CreateMaskResponse>"

    def _op_SetMask(self, request: Any) -> str:
        mask = request.find("{*}Mask")
        token = mask.get("token", "") if mask is not None else ""
        with self._masks_lock:
            if token not in self.masks:
                raise LookupError(f"No such mask: {token}")
            self.masks[token] = self._mask_fields(mask)
            self._burn()
        return "<tr2:SetMaskResponse/>"

    def _op_DeleteMask(self, request: Any) -> str:
        token = request.findtext("{*}Token") or ""
        with self._masks_lock:
            if self.masks.pop(token, None) is None:
                raise LookupError(f"No such mask: {token}")
            self._burn()
        return "<tr2:DeleteMaskResponse/>"

    def _op_GetStatus(self, request: Any) -> str:
        self._check_profile(request)
        snap = self.camera.snapshot()
        state = "MOVING" if snap.moving else "IDLE"
        return (
            f"<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>{self._position(snap.pan, snap.tilt, snap.zoom)}"
            f"</tt:Position><tt:MoveStatus><tt:PanTilt>{state}</tt:PanTilt><tt:Zoom>{state}</tt:Zoom></tt:MoveStatus>"
            f"<tt:UtcTime>{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}</tt:UtcTime>"
            "</tptz:PTZStatus></tptz:GetStatusResponse>"
        )

    def _op_ContinuousMove(self, request: Any) -> str:
        self._check_profile(request)
        self.camera.continuous(*self._vector(request.find("{*}Velocity")))
        return "<tptz:ContinuousMoveResponse/>"

    def _op_AbsoluteMove(self, request: Any) -> str:
        self._check_profile(request)
        self.camera.goto(*self._vector(request.find("{*}Position")))
        return "<tptz:AbsoluteMoveResponse/>"

    def _op_RelativeMove(self, request: Any) -> str:
        self._check_profile(request)
        self.camera.relative(*self._vector(request.find("{*}Translation")))
        return "<tptz:RelativeMoveResponse/>"

    def _op_Stop(self, request: Any) -> str:
        self._check_profile(request)
        self.camera.stop()
        return "<tptz:StopResponse/>"

    def _op_GotoHomePosition(self, request: Any) -> str:
        self._check_profile(request)
        self.camera.home()
        return "<tptz:GotoHomePositionResponse/>"

    def _op_SetHomePosition(self, request: Any) -> str:
        self._check_profile(request)
        self.camera.set_home()
        return "<tptz:SetHomePositionResponse/>"

    def _op_GetPresets(self, request: Any) -> str:
        self._check_profile(request)
        items = "".join(
            f'<tptz:Preset token="{token}"><tt:Name>{name}</tt:Name></tptz:Preset>'
            for token, name in self.camera.presets().items()
        )
        return f"<tptz:GetPresetsResponse>{items}</tptz:GetPresetsResponse>"

    def _op_SetPreset(self, request: Any) -> str:
        self._check_profile(request)
        token = self.camera.set_preset(request.findtext("{*}PresetName") or "preset")
        return f"<tptz:SetPresetResponse><tptz:PresetToken>{token}</tptz:PresetToken></tptz:SetPresetResponse>"

    def _op_GotoPreset(self, request: Any) -> str:
        self._check_profile(request)
        try:
            self.camera.goto_preset(request.findtext("{*}PresetToken") or "")
        except RuntimeError as exc:
            raise LookupError(str(exc)) from exc
        return "<tptz:GotoPresetResponse/>"

    def _op_RemovePreset(self, request: Any) -> str:
        self._check_profile(request)
        try:
            self.camera.remove_preset(request.findtext("{*}PresetToken") or "")
        except RuntimeError as exc:
            raise LookupError(str(exc)) from exc
        return "<tptz:RemovePresetResponse/>"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        device = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, payload = device.handle(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
