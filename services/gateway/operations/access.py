"""Permission checks the operations endpoints share, on top of the security module.

`security.require(action, camera=...)` covers a camera named in the request. Operations also need:
- "any of these actions, somewhere": listing alarms or journal entries, whose rows are then
  filtered camera by camera (an operator habilitated for one district sees that district's);
- "this action on the camera behind that object" is the security module's one camera rule,
  `check_camera(..., hidden=...)`: a bollard's command needs "live" on the camera that watches
  it; an object whose camera is outside one's groups answers as an unknown object;
- city staff only: the journal and the bollards are the city's operations; the police nationale
  (federated or not) watch and steer cameras, they do not open the city's bollards or write its
  main courante.
Every refusal is audited by the security module's `refuse`.
"""

from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import HTTPConnection

from services.common.pb.csu.v1 import ingest_pb2
from services.gateway.backends import RPC_TIMEOUT_S
from services.gateway.identity.security import ALL_GROUPS, Principal, authenticate, principal_backends, refuse

CITY_STAFF_ONLY = "journal and bollards are the city's operations: not available to the police nationale role"


def role_refusal(principal: Principal, actions: Iterable[str], city_staff: bool = False) -> str | None:
    """Why none of `actions` is open to the principal anywhere, or None when one is."""
    if city_staff and (principal.role == "police_nationale" or principal.partner):
        return CITY_STAFF_ONLY
    reasons = [principal.refusal(a, principal.camera_groups) for a in actions]
    if all(reasons):
        return reasons[0]
    return None


def require_any(*actions: str, city_staff: bool = False) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """FastAPI dependency: a principal who holds one of `actions` on at least one camera group."""

    async def dependency(connection: HTTPConnection) -> Principal:
        principal = await authenticate(connection)
        reason = role_refusal(principal, actions, city_staff)
        if reason is not None:
            await refuse(principal, actions[0], connection.url.path, reason)
        return principal

    return dependency


def sees(principal: Principal, actions: Iterable[str], groups: Iterable[str]) -> bool:
    groups = list(groups)
    return any(principal.may(a, groups) for a in actions)


async def groups_by_camera(principal: Principal) -> dict[str, list[str]] | None:
    """Every camera's groups (one call to ingest), or None when ingest cannot answer now.

    Callers then show only what needs no camera check, rather than failing the whole list: the
    alarm list matters most precisely when something is down.
    """
    b = principal_backends(principal)
    try:
        answer = await b.ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=RPC_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - any failure means "groups unknown for now"
        return None
    return {c.id: list(c.groups) for c in answer.cameras}


def sees_camera(
    principal: Principal, actions: Iterable[str], camera_id: str, groups: dict[str, list[str]] | None
) -> bool:
    """Whether a row about `camera_id` ("" = no camera) is shown to the principal."""
    actions = list(actions)
    if not camera_id:
        return any(principal.refusal(a, principal.camera_groups) is None for a in actions)
    if ALL_GROUPS in principal.camera_groups:
        return any(principal.may(a, [ALL_GROUPS]) for a in actions)
    if groups is None or camera_id not in groups:
        return False
    return sees(principal, actions, groups[camera_id])
