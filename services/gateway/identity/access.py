"""Who may see and act on a case: a requisition, a citizen's request, a redaction job.

One rule for all of them (and for the register, whose entries are about requisitions):

    the caller's role holds one of the route's actions (and, for federated users, their partner's
    agreement does; for video actions, their habilitation is valid), and for EVERY camera of the
    case, the caller's camera groups include one of the camera's groups ("*": every camera).

"Every", not "any": a case spanning two districts shows the footage, the requester and the
documents of both, so only someone habilitated for both may see it. Partners (police nationale
through the federation door) see their own partner's cases only: the requisition service answers
"unknown" for the others (services/requisition/requisitions.py `visible`).

A case the caller may not see answers exactly as an unknown one (404, the same body): the answer
must not tell a curious colleague that a case exists on cameras they are not cleared for. The
refusal is audited (with the real reason) for the auditors. Listings drop such cases.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.requests import HTTPConnection

from services.gateway.backends import Backends
from services.gateway.identity.security import ALL_GROUPS, Principal, authenticate, principal_backends, refuse


def not_found(kind: str, case_id: str) -> HTTPException:
    """The one answer for an unknown case and for a case the caller may not see."""
    return HTTPException(404, f"unknown {kind} {case_id!r}")


def case_refusal(principal: Principal, actions: Iterable[str], cameras: dict[str, list[str]]) -> str | None:
    """Why the caller may not act on a case whose cameras have these groups, or None (the rule)."""
    actions = list(actions)
    if not cameras:  # no camera named yet: the role alone decides
        reasons = [principal.refusal(a, principal.camera_groups) for a in actions]
        return None if not all(reasons) else reasons[0]
    for camera_id, groups in sorted(cameras.items()):
        if not principal.in_groups(groups):
            return f"your habilitation does not cover camera {camera_id}"
        reasons = [principal.refusal(a, groups) for a in actions]
        if all(reasons):
            return reasons[0]
    return None


async def camera_groups(b: Backends, camera_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each camera's groups; a camera no longer registered has none (only "*" covers it)."""

    async def groups(camera_id: str) -> list[str]:
        try:
            return list((await b.camera(camera_id)).groups)
        except HTTPException as exc:
            if exc.status_code == 404:
                return []
            raise  # ingest down: fail closed (503), never guess

    ids = sorted(set(camera_ids))
    return dict(zip(ids, await asyncio.gather(*(groups(c) for c in ids)), strict=True))


async def may_see(principal: Principal, actions: Iterable[str], camera_ids: Iterable[str]) -> bool:
    """The rule, for listings: whether a case about these cameras is shown to the caller."""
    actions = list(actions)
    camera_ids = list(camera_ids)
    if ALL_GROUPS in principal.camera_groups:  # no need to ask ingest for the groups
        return case_refusal(principal, actions, {c: [ALL_GROUPS] for c in camera_ids}) is None
    return case_refusal(principal, actions, await camera_groups(principal_backends(principal), camera_ids)) is None


async def check_case(
    principal: Principal, actions: Iterable[str], kind: str, case_id: str, target: str, camera_ids: Iterable[str]
) -> None:
    """The rule, for one case: nothing, or the unknown-case 404 (the refusal audited)."""
    actions = list(actions)
    cameras = await camera_groups(principal_backends(principal), camera_ids)
    reason = case_refusal(principal, actions, cameras)
    if reason is not None:
        await refuse(principal, actions[0], target, reason, answer=not_found(kind, case_id))


CITY_STAFF_ONLY = "this is done by the city's staff: not available to the police nationale"


def require_role(*actions: str, city_staff: bool = False) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """FastAPI dependency: a principal whose role holds one of `actions` at all (403 otherwise).

    Said before any case is looked up, the same for every case id: it tells nothing about cases.
    Which cases the principal may then see is `check_case`'s business.
    """

    async def dependency(connection: HTTPConnection) -> Principal:
        principal = await authenticate(connection)
        reasons = [principal.refusal(a, principal.camera_groups) for a in actions]
        if city_staff and (principal.role == "police_nationale" or principal.partner):
            reasons = [CITY_STAFF_ONLY]
        if all(reasons):
            await refuse(principal, actions[0], connection.url.path, reasons[0] or "refused")
        return principal

    return dependency


@dataclass(frozen=True)
class Case[T]:
    principal: Principal
    case: T


def case_dependency[T](
    kind: str,
    param: str,
    actions: tuple[str, ...],
    load: Callable[[Backends, str, Principal], Awaitable[T]],
    cameras_of: Callable[[T], Iterable[str]],
    target_of: Callable[[T], str],
    city_staff: bool = False,
    id_pattern: str = r"[0-9a-f]{32}",
) -> Callable[[HTTPConnection], Awaitable[Case[T]]]:
    """FastAPI dependency: the caller and the case named by path parameter `param`, if the rule
    lets them see it; 403 when their role has none of `actions`; 404 (unknown) otherwise."""
    role = require_role(*actions, city_staff=city_staff)
    well_formed = re.compile(id_pattern)

    async def dependency(connection: HTTPConnection) -> Case[T]:
        principal = await role(connection)
        case_id = connection.path_params[param]
        # Dependencies run before FastAPI checks the path's own parameters: the id is checked
        # here, so a malformed one is a 422 and never reaches a backend.
        if not well_formed.fullmatch(case_id):
            raise HTTPException(422, f"{param}: not a {kind} id (expected {id_pattern})")
        b: Backends = connection.app.state.backends
        try:
            case = await load(b, case_id, principal)
        except HTTPException as exc:
            if exc.status_code == 404:
                raise not_found(kind, case_id) from exc
            raise
        await check_case(principal, actions, kind, case_id, target_of(case), cameras_of(case))
        return Case(principal, case)

    return dependency
