"""Accounts as the API shows and takes them: the request and response models the admin routes
(identity/routes/users.py) and `csuctl users` share, so an account made by either is the same account.
The checks the models cannot make alone (known role, camera group names) are accounts.py's
`check_habilitation`."""

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.common.timefmt import iso
from services.gateway.identity.models import User

USERNAME = r"^[a-z0-9][a-z0-9._-]{1,63}$"


class UserOut(BaseModel):
    username: str
    display_name: str
    role: str
    active: bool
    totp_enrolled: bool
    locked: bool
    # An admin reset the password: the single-use one must be replaced at the next login.
    must_change_password: bool = False
    camera_groups: list[str]
    granted_by: str
    granted: str
    expires: str | None
    prefecture_ref: str | None
    prefecture_validated: str | None
    playback_days: int | None
    ptz_priority: int | None


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    display_name: str = Field(min_length=1, max_length=128)
    role: str
    password: str = Field(min_length=1, max_length=256)
    camera_groups: list[str] = Field(default_factory=list, max_length=100)
    expires: AwareDatetime | None = None
    prefecture_ref: str | None = Field(None, max_length=128)
    prefecture_validated: AwareDatetime | None = None
    playback_days: int | None = Field(None, ge=1, le=30)
    ptz_priority: int | None = Field(None, ge=0, le=100)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(None, min_length=1, max_length=128)
    role: str | None = None
    active: bool | None = None
    camera_groups: list[str] | None = Field(None, max_length=100)
    expires: AwareDatetime | None = None
    prefecture_ref: str | None = Field(None, max_length=128)
    prefecture_validated: AwareDatetime | None = None
    playback_days: int | None = Field(None, ge=1, le=30)
    ptz_priority: int | None = Field(None, ge=0, le=100)


def out(user: User, now_us: int) -> UserOut:
    return UserOut(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        active=user.active,
        totp_enrolled=user.totp_confirmed,
        locked=bool(user.locked_until_us and user.locked_until_us > now_us),
        must_change_password=user.must_change_password,
        camera_groups=list(user.camera_groups),
        granted_by=user.granted_by,
        granted=iso(user.granted_us) or "",
        expires=iso(user.expires_us),
        prefecture_ref=user.prefecture_ref,
        prefecture_validated=iso(user.prefecture_validated_us),
        playback_days=user.playback_days,
        ptz_priority=user.ptz_priority,
    )
