"""Who may see which case: roles × {own group, other group} × every route of the requisition side
(requisitions, the register, citizens' requests, redaction jobs, the kiosk), against running
services (ingest, masking and the gateway as processes; the archive and the requisition service
in-process on the test's PostgreSQL, NATS and S3), issue 23 item 1.

Every case here is on camera `cam-d` (group `default`). Each role has two accounts: one cleared for
`default` (its own group), one for `north` only (the other group); the partner (police nationale
through the federation door, cleared for `default`) has its own request, and a city request on its
own group's camera stands for "not its case". For each route and role:

- what the other group (or the partner, about a case not its own) gets is exactly what an unknown
  case gets: same status, same body (with the id it asked for), so nothing tells it exists;
- an account whose role may use the route reaches its own group's case (an answer an unknown case
  does not get: 200, or a 409 of the workflow...); one whose role may not gets 403, the same for
  every case id;
- listings show the own group's cases and not the other's; creating on a camera outside one's
  groups is refused; the kiosk serves no staff session at all.

The route table is checked against the running gateway's routes: a new route on this side that
is not in the table fails the test. One platform for the module.
"""

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.clock import from_us
from services.gateway.casework.routes import citizen_requests, kiosk, register, requisitions
from services.gateway.identity.roles import ROLE_ACTIONS
from services.gateway.video.routes import redaction
from tests.support.accounts import login
from tests.support.archive import START, T0_US
from tests.support.pki import TestCA
from tests.support.platform import Platform
from tests.support.requisition import LoopThread, jpeg_bytes, pdf_bytes, stack
from tests.support.servers import S3Server, database, delete_streams, free_port, unique

pytestmark = pytest.mark.e2e
CAM_D, CAM_N = "cam-d", "cam-n"
S = 1_000_000
PARTNER_ACTIONS = frozenset({"live", "export"})
LOCAL_ROLES = ("supervisor", "manager", "police_nationale", "operator", "clerk", "auditor", "admin", "maintenance")
ROLES = (*LOCAL_ROLES, "partner")
PREFIXES = (
    "/api/v1/requisitions",
    "/api/v1/register",
    "/api/v1/citizen-requests",
    "/api/v1/redactions",
    "/api/v1/kiosk",
)
MODULES = (requisitions, register, citizen_requests, redaction, kiosk)


def iso(us: int) -> str:
    return from_us(us).astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the platform and its cases ---------------------------------------------------------------------


@dataclass
class World:
    platform: Platform
    federation: dict[str, Any]
    cases: dict[str, dict[str, str]] = field(default_factory=dict)  # family -> own / partner -> id

    def user(self, role: str, group: str) -> httpx.Client:
        client = self.platform.client(role, (group,))
        client.timeout = httpx.Timeout(120)
        return client

    def officer(self) -> httpx.Client:
        now = int(time.time())
        claims = {
            "iss": "pn-metz", "aud": "csu-gateway", "sub": "officer-4711", "name": "Brigadier Martin", "iat": now,
            "exp": now + 300, "hab_ref": "HAB-PN-57-001", "hab_exp": now + 86400 * 30,
        }  # fmt: skip
        token = jwt.encode(claims, self.federation["key"], algorithm="EdDSA")
        context = self.federation["ca"].client_context(self.federation["client"])
        return httpx.Client(
            base_url=self.federation["url"], verify=context, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )


def requisition_body(camera: str = CAM_D) -> dict:
    return {
        "requesting_service": "Commissariat de police de Metz",
        "officer": "Lieutenant Martin",
        "case_reference": "PV 2026/00123",
        "reason": "vol à l'arraché",
        "channel": "phone",
        "ranges": [{"camera_id": camera, "start": iso(T0_US + 2 * S), "end": iso(T0_US + 9 * S)}],
    }


def citizen_form(camera: str = CAM_D) -> dict:
    fields = {
        "full_name": "Camille Durand", "birth_date": "1987-04-12", "id_document_kind": "carte nationale d'identité",
        "id_document_number": "X4RTBPFW4", "contact": "camille.durand@example.org", "place": "Rue Serpenoise",
        "camera_ids": camera, "window_start": iso(T0_US), "window_end": iso(T0_US + 12 * S),
        "description": "manteau rouge",
    }  # fmt: skip
    return {"data": fields, "files": {"identity_document": ("cni.jpg", jpeg_bytes(), "image/jpeg")}}


BOX = {"time": iso(T0_US + 3 * S), "x": 0.4, "y": 0.3, "width": 0.2, "height": 0.4}


def redaction_body() -> dict:
    return {"start": iso(T0_US + 2 * S), "end": iso(T0_US + 4 * S), "selection": [BOX], "request_ref": "DA-2026-1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, nats_url: str, s3: S3Server) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("access")
    with database(workdir) as url:
        platform = Platform(workdir, nats_url, url, s3)
        ca = TestCA(workdir / "pki")
        server = ca.issue("gateway", server=True)
        port = free_port()
        masking = f"127.0.0.1:{free_port()}"
        bg = LoopThread()
        st = bg.run(
            stack(workdir / "stack", url, s3, nats_url=nats_url, nats_prefix=platform.nats_prefix,
                  cameras={CAM_D: "Place d'Armes", CAM_N: "Rue du Nord"}, keys_dir=platform.workdir / "keys",
                  masking_target=masking)
        )  # fmt: skip
        try:
            for camera in (CAM_D, CAM_N):
                bg.run(st.archive.record(camera, T0_US, 12))
            platform.set_cameras(
                [
                    {"id": c, "name": c, "source": f"/nonexistent/{c}.mp4", "masks": [], "state": "maintenance",
                     "groups": [g]}
                    for c, g in ((CAM_D, "default"), (CAM_N, "north"))
                ]
            )  # fmt: skip
            platform.env |= {
                "CSU_ARCHIVE_GRPC": st.archive_target,
                "CSU_REQUISITION_GRPC": st.target,
                "CSU_MASKING_GRPC": masking,
                "CSU_BUCKET_REDACTIONS": unique("red-"),
                "CSU_FEDERATION_PORT": str(port),
                "CSU_FEDERATION_CERT_FILE": str(server.cert),
                "CSU_FEDERATION_KEY_FILE": str(server.key),
                "CSU_FEDERATION_CA_FILE": str(ca.issued.cert),
                # The matrix sends wrong kiosk codes from one address many times, on purpose.
                "CSU_KIOSK_PAIR_MAX_FAILURES": "1000",
            }
            platform.start(["ingest", "masking", "gateway"])
            try:
                key = Ed25519PrivateKey.generate()
                client = ca.issue("pn-metz-client")
                public = key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                registered = platform.admin().post(
                    "/api/v1/partners",
                    json={
                        "id": "pn-metz", "name": "Police nationale — CSP Metz", "client_certificate": client.cert_pem,
                        "assertion_public_key": public.decode(), "camera_groups": ["default"],
                        "actions": sorted(PARTNER_ACTIONS), "ptz_priority": 60,
                        "convention_ref": "CONV-57-2026-021",
                        "convention_expires": (datetime.now(UTC) + timedelta(days=365)).isoformat(),
                    },
                )  # fmt: skip
                assert registered.status_code == 201, registered.text
                w = World(platform, {"ca": ca, "client": client, "key": key, "url": f"https://127.0.0.1:{port}"})
                w.cases = make_cases(w)
                yield w
            finally:
                killed = platform.stop()
                asyncio.run(delete_streams(nats_url, {platform.nats_prefix}))
            assert not killed, platform.logs()
        finally:
            bg.run(st.stop())
            bg.close()


def make_cases(w: World) -> dict[str, dict[str, str]]:
    """One case of each kind on cam-d (group default), made by accounts cleared for every camera."""
    supervisor = w.user("supervisor", "*")
    created = supervisor.post("/api/v1/requisitions", json=requisition_body())
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    # Extracted, so that the register has entries about it.
    extracted = supervisor.post(f"/api/v1/requisitions/{rid}/extract")
    assert extracted.status_code == 200, extracted.text
    with w.officer() as officer:
        mine = officer.post("/api/v1/requisitions", json=requisition_body() | {"channel": "federation"})
        assert mine.status_code == 201, mine.text
    citizen = w.user("clerk", "*").post("/api/v1/citizen-requests", **citizen_form())
    assert citizen.status_code == 201, citizen.text
    job = supervisor.post(f"/api/v1/cameras/{CAM_D}/redactions", json=redaction_body())
    assert job.status_code == 202, job.text
    return {
        "requisition": {"own": rid, "partner": mine.json()["id"]},
        "citizen": {"own": citizen.json()["id"]},
        "job": {"own": job.json()["id"]},
    }


# -- the route table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    # case: one case by id; list: a listing; create: names a camera; camera: a camera's jobs;
    # role: nothing about a case; export: the register's printout; kiosk: kiosk sessions only.
    kind: str
    actions: tuple[str, ...] = ()
    family: str = ""
    json: Callable[[], Any] | None = None
    files: Callable[[], dict] | None = None
    city_staff: bool = False
    params: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


R = "/api/v1/requisitions"
C = "/api/v1/citizen-requests"
REQ = ("export", "playback", "register")
DOC = uuid.uuid4().hex


def receive_form() -> dict:
    values = {
        "number": "REQ-2026-0042", "authority": "Procureur de la République de Metz", "authority_kind": "magistrate",
        "issued_on": (START - timedelta(days=1)).date().isoformat(),
    }  # fmt: skip
    return {"data": values, "files": {"document": ("requisition.pdf", pdf_bytes(), "application/pdf")}}


DELIVERY = {"medium": "usb", "package_sha256": "0" * 64, "recipient_name": "A", "recipient_service": "B"}
CITIZEN_REDACTION = {
    "camera_id": CAM_D, "start": iso(T0_US + 2 * S), "end": iso(T0_US + 4 * S),
    "selection": [{"time": iso(T0_US + 3 * S), "x": 0.4, "y": 0.3, "width": 0.2, "height": 0.4}],
}  # fmt: skip

ROUTES = (
    Route("POST", R, "create", ("export", "playback"), json=requisition_body),
    Route("GET", R, "list", REQ, family="requisition"),
    Route("GET", f"{R}/statistics", "role", ("register",)),
    Route("GET", f"{R}/{{request_id}}", "case", REQ, "requisition"),
    Route("GET", f"{R}/{{request_id}}/progress", "case", ("export",), "requisition"),
    Route("POST", f"{R}/{{request_id}}/extract", "case", ("export",), "requisition"),
    Route("POST", f"{R}/{{request_id}}/requisition", "case", ("export",), "requisition", files=receive_form),
    Route("GET", f"{R}/{{request_id}}/documents/{{document_id}}", "case", ("export", "sign", "register"),
          "requisition"),
    Route("POST", f"{R}/{{request_id}}/approve", "case", ("sign",), "requisition",
          json=lambda: {"password": "not-the-password", "totp": "000000"}),
    Route("POST", f"{R}/{{request_id}}/refuse", "case", ("sign",), "requisition", json=lambda: {"reason": "no"}),
    Route("POST", f"{R}/{{request_id}}/package", "case", ("export",), "requisition", json=lambda: {}),
    Route("GET", f"{R}/{{request_id}}/package", "case", ("export",), "requisition"),
    Route("POST", f"{R}/{{request_id}}/delivery", "case", ("export",), "requisition", json=lambda: DELIVERY),
    Route("GET", f"{R}/{{request_id}}/receipt", "case", ("export", "register"), "requisition"),
    Route("POST", f"{R}/{{request_id}}/feedback", "case", ("export", "playback"), "requisition",
          json=lambda: {"useful": True}),
    Route("POST", f"{R}/{{request_id}}/close", "case", ("export",), "requisition", json=lambda: {}),
    Route("POST", f"{R}/{{request_id}}/cancel", "case", ("export", "playback"), "requisition",
          json=lambda: {"reason": "withdrawn"}),
    Route("GET", "/api/v1/register", "list", ("register",), family="register"),
    Route("GET", "/api/v1/register/verify", "role", ("register",)),
    Route("GET", "/api/v1/register/export", "export", ("register",), params={"format": "json"}),
    Route("GET", "/api/v1/register/public-key", "role", ("register",)),
    Route("POST", C, "create", ("citizen_requests",), files=citizen_form),
    Route("GET", C, "list", ("citizen_requests", "playback"), family="citizen"),
    Route("GET", f"{C}/{{request_id}}", "case", ("citizen_requests", "playback"), "citizen"),
    Route("GET", f"{C}/{{request_id}}/identity-document", "case", ("citizen_requests",), "citizen"),
    Route("POST", f"{C}/{{request_id}}/search", "case", ("playback",), "citizen", city_staff=True,
          json=lambda: {"found": True, "note": "seen at 10:00"}),
    Route("POST", f"{C}/{{request_id}}/redactions", "case", ("playback",), "citizen", city_staff=True,
          json=lambda: CITIZEN_REDACTION),
    Route("POST", f"{C}/{{request_id}}/kiosk-sessions", "case", ("citizen_requests",), "citizen"),
    Route("POST", f"{C}/{{request_id}}/outcome", "case", ("citizen_requests",), "citizen",
          json=lambda: {"outcome": "not_found"}),
    Route("POST", "/api/v1/cameras/{camera_id}/redactions", "camera", ("playback",), json=redaction_body),
    Route("GET", "/api/v1/cameras/{camera_id}/redactions", "camera", ("playback",)),
    Route("GET", "/api/v1/redactions/{job_id}", "case", ("playback", "citizen_requests"), "job"),
    Route("POST", "/api/v1/redactions/{job_id}/cancel", "case", ("playback", "citizen_requests"), "job"),
    Route("POST", "/api/v1/kiosk/pair", "kiosk", json=lambda: {"code": "ABCDE12345"}),
    Route("GET", "/api/v1/kiosk/session", "kiosk"),
    Route("POST", "/api/v1/kiosk/end", "kiosk"),
    Route("POST", "/api/v1/kiosk/clips/{clip}", "kiosk"),
)  # fmt: skip


def role_may(role: str, route: Route) -> bool:
    """Whether the role (the partner: its agreement) holds one of the route's actions."""
    held = ROLE_ACTIONS["police_nationale"] & PARTNER_ACTIONS if role == "partner" else ROLE_ACTIONS[role]
    if route.city_staff and role in ("partner", "police_nationale"):
        return False
    return bool(held & set(route.actions))


# -- calling -------------------------------------------------------------------------------------------


def call(client: httpx.Client, route: Route, case_id: str = "", camera: str = CAM_D) -> httpx.Response:
    path = route.path.format(request_id=case_id, job_id=case_id, document_id=DOC, camera_id=camera, clip="1")
    kwargs: dict[str, Any] = {"params": route.params}
    if route.json is not None:
        body = route.json()
        if route.path == R:
            body = requisition_body(camera) | ({"channel": "federation"} if client.base_url.scheme == "https" else {})
        kwargs["json"] = body
    if route.files is not None:
        kwargs |= citizen_form(camera) if route.path == C else route.files()
    if route.path.startswith("/api/v1/kiosk"):
        kwargs.setdefault("headers", {})["x-csu-kiosk"] = "1"
    return client.request(route.method, path, **kwargs)


def seen(response: httpx.Response, *ids: str) -> tuple[int, str]:
    """What the caller learns from an answer, the ids it asked about aside."""
    text = response.text
    for i in ids:
        text = text.replace(i, "<id>")
    return response.status_code, text


def clients(w: World, role: str) -> tuple[httpx.Client, httpx.Client]:
    """(own group, other group): the partner is one account, asked about its own and another case."""
    if role == "partner":
        return w.officer(), w.officer()
    return w.user(role, "default"), w.user(role, "north")


def case_ids(w: World, role: str, family: str) -> tuple[str, str]:
    """(the case the caller's own group / partner may see, the case it may not)."""
    cases = w.cases["requisition" if family == "register" else family]
    if role == "partner":
        other = w.cases["requisition"]["own"]  # the city's request, on the partner's own cameras
        return cases.get("partner", uuid.uuid4().hex), other
    return cases["own"], cases["own"]


# -- the tests ---------------------------------------------------------------------------------------------


def test_the_table_covers_every_route_of_the_requisition_side(world: World) -> None:
    served = set()
    with httpx.Client(base_url=world.platform.gateway, timeout=30) as anonymous:
        schema = anonymous.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        if path.startswith(PREFIXES) or path.endswith("/redactions"):
            served |= {(m.upper(), path) for m in methods}
    for module in MODULES:
        served |= {(m, r.path) for r in module.router.routes for m in r.methods - {"HEAD"}}
    table = {r.key for r in ROUTES}
    assert served - table == set(), f"routes not in the access matrix: {sorted(served - table)}"
    assert table - served == set(), f"routes in the matrix that the gateway does not serve: {sorted(table - served)}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_access_matrix(world: World, route: Route, role: str) -> None:
    own_client, other_client = clients(world, role)
    may = role_may(role, route)
    with own_client, other_client:
        if route.kind == "case":
            own, other = case_ids(world, role, route.family)
            unknown = uuid.uuid4().hex
            answer_unknown = call(other_client, route, unknown)
            answer_other = call(other_client, route, other)
            assert seen(answer_other, other) == seen(answer_unknown, unknown), (
                f"{role} of the other group (or not its case) tells {route} apart from an unknown case: "
                f"{answer_other.status_code} {answer_other.text[:300]} vs {answer_unknown.status_code}"
            )
            assert answer_other.status_code in (403, 404), answer_other.text
            answer_own = call(own_client, route, own)
            if may:
                assert seen(answer_own, own) != seen(call(own_client, route, unknown), unknown), (
                    f"{role} of the case's own group cannot reach it through {route}: {answer_own.text[:300]}"
                )
            else:
                assert answer_own.status_code == 403, (answer_own.status_code, answer_own.text)
                assert seen(answer_own, own) == seen(call(own_client, route, unknown), unknown)
        elif route.kind == "list":
            own, _ = case_ids(world, role, route.family)
            mine, theirs = call(own_client, route), call(other_client, route)
            if not may:
                assert (mine.status_code, theirs.status_code) == (403, 403), (mine.text, theirs.text)
                return
            assert mine.status_code == 200 and theirs.status_code == 200, (mine.text, theirs.text)
            key = "request_id" if route.family == "register" else "id"
            assert own in {x[key] for x in mine.json()}, f"{role} does not see its own group's case in {route}"
            hidden = world.cases["requisition"]["own"] if role == "partner" else own
            assert hidden not in theirs.text, f"{role} of the other group sees the case in {route}"
            if route.family == "register" and role != "partner":
                by_id = call(other_client, Route("GET", route.path, "list", params={"request_id": own}))
                assert by_id.json() == [], by_id.text
        elif route.kind in ("create", "camera"):
            if role == "partner":  # cleared for default: north is its other group
                mine, theirs = call(own_client, route, camera=CAM_D), call(other_client, route, camera=CAM_N)
            else:
                mine, theirs = call(own_client, route), call(other_client, route)
            if not may:
                assert (mine.status_code, theirs.status_code) == (403, 403), (mine.text, theirs.text)
                return
            assert mine.status_code in (200, 201, 202), mine.text
            # Another group's camera answers as an unknown one (security.check_camera).
            assert theirs.status_code == 404, f"{role} of the other group: {theirs.status_code} {theirs.text}"
        elif route.kind == "export":
            mine, theirs = call(own_client, route), call(other_client, route)
            if not may:
                assert (mine.status_code, theirs.status_code) == (403, 403), (mine.text, theirs.text)
                return
            assert mine.status_code == 200, mine.text
            # The register records the case: someone not cleared for its camera may not print it.
            assert theirs.status_code == 403, theirs.text
            assert world.cases["requisition"]["own"] not in theirs.text
        elif route.kind == "role":
            mine, theirs = call(own_client, route), call(other_client, route)
            expected = 200 if may else 403
            assert (mine.status_code, theirs.status_code) == (expected, expected), (mine.text, theirs.text)
        elif route.kind == "kiosk":
            # Staff sessions and bearer tokens open nothing at the kiosk.
            for client in (own_client, other_client):
                answer = call(client, route)
                assert answer.status_code == 401, answer.text
        else:
            raise AssertionError(f"unknown kind {route.kind}")


def test_a_request_on_two_groups_needs_both(world: World) -> None:
    """ "Every camera", not "any": a request on cam-d and cam-n is hidden from either group alone."""
    supervisor = world.user("supervisor", "*")
    body = requisition_body()
    body["ranges"].append({"camera_id": CAM_N, "start": iso(T0_US + 2 * S), "end": iso(T0_US + 5 * S)})
    created = supervisor.post("/api/v1/requisitions", json=body)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    unknown = uuid.uuid4().hex
    for group in ("default", "north"):
        manager = world.user("manager", group)
        answer, nothing = manager.get(f"{R}/{rid}"), manager.get(f"{R}/{unknown}")
        assert seen(answer, rid) == seen(nothing, unknown), answer.text
        assert rid not in manager.get(R).text
    assert supervisor.get(f"{R}/{rid}").status_code == 200
    world.platform.create_user("manager-both", "manager", ["default", "north"])
    with login(world.platform.gateway, "manager-both", Platform.USER_PASSWORD) as manager:
        assert manager.get(f"{R}/{rid}").status_code == 200
        assert rid in {r["id"] for r in manager.get(R).json()}


def test_a_malformed_case_id_is_refused_at_the_door(world: World) -> None:
    supervisor = world.user("supervisor", "*")
    for path in (f"{R}/not-an-id", f"{C}/{'a' * 33}", "/api/v1/redactions/..%2F..%2Fetc"):
        answer = supervisor.get(path)
        assert answer.status_code in (404, 422), (path, answer.text)
    answer = supervisor.get(f"{R}/{'z' * 32}")
    assert answer.status_code == 422 and "request_id" in answer.text, answer.text
