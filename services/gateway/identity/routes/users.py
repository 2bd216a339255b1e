"""Accounts and habilitations (admin): nominative accounts, their role, groups, expiry, validation."""

import asyncio
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from services.common.clock import to_us
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity import accounts, sessions
from services.gateway.identity.account_models import UserIn, UserOut, UserPatch, out
from services.gateway.identity.models import User
from services.gateway.identity.security import Principal, audit, require

router = APIRouter(prefix="/api/v1/users", tags=["users"])


def _us(moment: datetime | None) -> int | None:
    return to_us(moment) if moment is not None else None


async def _user(b: Backends, username: str) -> User:
    user = await asyncio.to_thread(accounts.by_username, b.engine, username)
    if user is None:
        raise HTTPException(404, f"unknown account {username!r}")
    return user


@router.get("", response_model=list[UserOut])
async def list_users(b: BackendsDep, principal: Principal = Depends(require("users"))) -> list[UserOut]:
    now = to_us(b.clock.now())
    return [out(u, now) for u in await asyncio.to_thread(accounts.all_users, b.engine)]


@router.post("", response_model=UserOut, status_code=201)
async def create_user(body: UserIn, b: BackendsDep, principal: Principal = Depends(require("users"))) -> UserOut:
    accounts.check_habilitation(body.role, body.camera_groups)
    accounts.check_password_strength(body.password, body.username, body.display_name)
    await audit(
        principal,
        "users.create",
        f"user:{body.username}",
        details={"role": body.role, "camera_groups": body.camera_groups},
    )
    habilitation = accounts.Habilitation(
        granted_by=principal.username,
        camera_groups=body.camera_groups,
        expires_us=_us(body.expires),
        prefecture_ref=body.prefecture_ref,
        prefecture_validated_us=_us(body.prefecture_validated),
        playback_days=body.playback_days,
        ptz_priority=body.ptz_priority,
    )
    user = await asyncio.to_thread(
        accounts.create_user,
        b.engine,
        b.clock,
        username=body.username,
        display_name=body.display_name,
        role=body.role,
        password=body.password,
        habilitation=habilitation,
    )
    return out(user, to_us(b.clock.now()))


@router.patch("/{username}", response_model=UserOut)
async def update_user(
    username: str, body: UserPatch, b: BackendsDep, principal: Principal = Depends(require("users"))
) -> UserOut:
    accounts.check_habilitation(body.role, body.camera_groups)
    user = await _user(b, username)
    given = body.model_dump(exclude_unset=True)
    # null clears an optional fact (expiry, validation, limits); these facts cannot be cleared.
    cleared = sorted(name for name in ("display_name", "role", "active", "camera_groups") if given.get(name, 0) is None)
    if cleared:
        raise HTTPException(422, f"{', '.join(cleared)} cannot be null")
    changes: dict[str, object] = {}
    for name, value in given.items():
        if name == "expires":
            changes["expires_us"] = _us(value)
        elif name == "prefecture_validated":
            changes["prefecture_validated_us"] = _us(value)
        else:
            changes[name] = value
    if any(k in changes for k in ("role", "camera_groups", "expires_us", "prefecture_validated_us")):
        # A changed habilitation is granted anew by whoever changed it.
        changes |= {"granted_by": principal.username, "granted_us": to_us(b.clock.now())}
    stops_being_admin = (
        user.role == "admin" and user.active and (given.get("active") is False or given.get("role", "admin") != "admin")
    )
    if stops_being_admin:
        others = [
            u
            for u in await asyncio.to_thread(accounts.all_users, b.engine)
            if u.role == "admin" and u.active and u.id != user.id
        ]
        if not others:
            raise HTTPException(409, "the last active admin cannot be deactivated or given another role")
    await audit(principal, "users.update", f"user:{username}", details={"changes": sorted(given)})
    user = await asyncio.to_thread(accounts.update, b.engine, user.id, **changes)
    if body.active is False or "role" in given or "camera_groups" in given:
        await asyncio.to_thread(sessions.revoke_user, b.engine, b.clock, user.id)
    return out(user, to_us(b.clock.now()))


@router.post("/{username}/revoke-sessions", status_code=200)
async def revoke_sessions(
    username: str, b: BackendsDep, principal: Principal = Depends(require("users"))
) -> dict[str, int]:
    user = await _user(b, username)
    await audit(principal, "users.revoke_sessions", f"user:{username}")
    return {"revoked": await asyncio.to_thread(sessions.revoke_user, b.engine, b.clock, user.id)}


@router.post("/{username}/reset-totp", status_code=200)
async def reset_totp(username: str, b: BackendsDep, principal: Principal = Depends(require("users"))) -> dict[str, str]:
    """The user enrols a new authenticator at their next login (lost phone)."""
    user = await _user(b, username)
    await audit(principal, "users.reset_totp", f"user:{username}")
    await asyncio.to_thread(accounts.update, b.engine, user.id, totp_secret_sealed=None, totp_confirmed=False)
    await asyncio.to_thread(sessions.revoke_user, b.engine, b.clock, user.id)
    return {"status": "the user enrols a new TOTP authenticator at next login"}


class PasswordResetOut(BaseModel):
    username: str
    # Shown once, to the admin, to hand over in person: valid for one login, which must replace it.
    one_time_password: str
    sessions_revoked: int


@router.post("/{username}/reset-password", response_model=PasswordResetOut)
async def reset_password(
    username: str, b: BackendsDep, principal: Principal = Depends(require("users"))
) -> PasswordResetOut:
    """A forgotten password: a new single-use one (replaced at the next login), the lock lifted,
    every session of the account ended. The password is in no log nor audit entry."""
    user = await _user(b, username)
    if user.kind != accounts.LOCAL:
        reason = "this account logs in at the identity provider: its password is reset there"
        details = {"reason": reason}
        await audit(principal, "users.reset_password", f"user:{username}", outcome="refused", details=details)
        raise HTTPException(409, reason)
    await audit(principal, "users.reset_password", f"user:{username}")
    password = accounts.generate_password(user.username, user.display_name)
    await asyncio.to_thread(accounts.set_password, b.engine, user.id, password, True)
    revoked = await asyncio.to_thread(sessions.revoke_user, b.engine, b.clock, user.id)
    return PasswordResetOut(username=user.username, one_time_password=password, sessions_revoked=revoked)
