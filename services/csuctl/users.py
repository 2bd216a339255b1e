"""csuctl users: nominative accounts and their habilitations, for ops (first accounts, bulk changes
from a prefecture's decision, an admin locked out of the console).

Works on the gateway's accounts table (CSU_DATABASE_URL) with the gateway's own code: the API's
request models (services/gateway/identity/account_models.py: username pattern, bounds), its checks
(accounts.check_habilitation: known roles, group names) and accounts.py for the writes, so an
account made here is exactly one the API would have made. Every change is recorded in the audit
trail first, as `csuctl:<os user>` with the API's action names (users.create, users.update): if
the trail cannot be written, nothing is done.

The initial password is generated and printed once on stdout (or read from --password-file, then
not printed); it is never logged nor audited. The user enrols a TOTP authenticator at first login.
`reset-password` (a forgotten password, an admin locked out) does what the API's reset does: a new
single-use password printed once, which the next login must replace, the lock lifted and every
session of the account ended.

Dates: an ISO 8601 date-time with a zone, or a date alone, read in Europe/Paris (the CSU's own
time): an expiry date means "until the end of that day", a validation date "on that day".

Exit codes: 0 done; 2 refused, nothing changed (unknown role, duplicate or unknown username, bad
date, weak password...) or the database or audit trail unreachable.
"""

import json
import re
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from services.common import db
from services.common.clock import SystemClock, to_us
from services.common.settings import Settings, redact_url
from services.common.timefmt import PARIS, iso
from services.csuctl.audit import actor, db_reason, fail, record_first, settings_or_exit
from services.gateway.identity import account_models as api
from services.gateway.identity import accounts, sessions
from services.gateway.identity.roles import ROLES

app = typer.Typer(help="Accounts and habilitations: create, list, change a habilitation.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True, soft_wrap=True)
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")]
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NEVER = "never"

GroupsOption = Annotated[
    str | None, typer.Option("--groups", help="Camera groups the habilitation covers, comma-separated ('*': all).")
]
PrefRefOption = Annotated[
    str | None,
    typer.Option("--prefecture-ref", help="Reference of the prefecture's validation (with --prefecture-date)."),
]
PrefDateOption = Annotated[
    str | None, typer.Option("--prefecture-date", help="When the prefecture validated it: a date or ISO date-time.")
]
PlaybackOption = Annotated[
    int | None, typer.Option("--playback-days", help="How far back this user may play recordings (1-30 days).")
]
PtzOption = Annotated[int | None, typer.Option("--ptz-priority", help="PTZ priority replacing the role's (0-100).")]
GrantedByOption = Annotated[
    str | None, typer.Option("--granted-by", help="Who grants the habilitation (default: csuctl:<your user>).")
]


@app.command()
def create(
    username: Annotated[str, typer.Argument(help="Login name: lower-case letters, digits, '.', '_', '-'.")],
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(sorted(ROLES))}.")],
    display_name: Annotated[str | None, typer.Option("--display-name", help="Default: the username.")] = None,
    groups: GroupsOption = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="End of the habilitation: a date (until its end) or date-time.")
    ] = None,
    prefecture_ref: PrefRefOption = None,
    prefecture_date: PrefDateOption = None,
    playback_days: PlaybackOption = None,
    ptz_priority: PtzOption = None,
    granted_by: GrantedByOption = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="Read the initial password from this file ('-': stdin), not generated."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account with its habilitation; prints the generated initial password once."""
    settings = settings_or_exit()
    now = SystemClock().now()
    expires_at = _moment("--expires", expires, end_of_day=True) if expires else None
    validated_at = _moment("--prefecture-date", prefecture_date, end_of_day=False) if prefecture_date else None
    _check_dates(now, expires_at, validated_at)
    if (prefecture_ref is None) != (prefecture_date is None):
        raise fail("--prefecture-ref and --prefecture-date go together: the validation's reference and its date")
    generated = password_file is None
    if password_file is not None:
        password = _read_password(password_file)
    else:
        password = accounts.generate_password(username, display_name or username)
    try:
        body = api.UserIn(
            username=username,
            display_name=display_name or username,
            role=role,
            password=password,
            camera_groups=_groups(groups) if groups is not None else [],
            expires=expires_at,
            prefecture_ref=prefecture_ref,
            prefecture_validated=validated_at,
            playback_days=playback_days,
            ptz_priority=ptz_priority,
        )
        accounts.check_habilitation(body.role, body.camera_groups)  # the API's own role and group checks
        accounts.check_password_strength(body.password, body.username, body.display_name)
    except ValidationError as exc:
        raise fail(_validation_message(exc)) from None
    except accounts.AccountError as exc:
        raise fail(exc.message) from None
    grantor = _grantor(granted_by)
    engine = db.make_engine(settings)
    try:
        if _guard_db(accounts.by_username, engine, username) is not None:
            raise fail(f"an account named {username!r} already exists")
        record_first(
            settings,
            "users.create",
            f"user:{username}",
            {
                "role": body.role,
                "camera_groups": body.camera_groups,
                "expires": iso(to_us(expires_at)) if expires_at is not None else None,
                "prefecture_ref": prefecture_ref,
                "granted_by": grantor,
            },
        )
        habilitation = accounts.Habilitation(
            granted_by=grantor,
            camera_groups=body.camera_groups,
            expires_us=to_us(expires_at) if expires_at else None,
            prefecture_ref=body.prefecture_ref,
            prefecture_validated_us=to_us(validated_at) if validated_at else None,
            playback_days=body.playback_days,
            ptz_priority=body.ptz_priority,
        )
        try:
            user = _guard_db(
                accounts.create_user,
                engine,
                SystemClock(),
                username=body.username,
                display_name=body.display_name,
                role=body.role,
                password=body.password,
                habilitation=habilitation,
            )
        except accounts.AccountError as exc:  # a concurrent creation of the same name
            raise fail(exc.message) from None
    finally:
        engine.dispose()
    shown = api.out(user, to_us(SystemClock().now())).model_dump()
    if as_json:
        typer.echo(json.dumps(shown | {"initial_password": password if generated else None}, indent=2))
        return
    console.print(f"created account [bold]{user.username}[/bold] ({user.role}), habilitation granted by {grantor}")
    if not user.prefecture_validated_us:
        console.print("[yellow]no prefecture validation recorded: this account sees no video until it is[/yellow]")
    if generated:
        # stdout only, once: the password is in no log, no audit entry and nowhere on disk.
        console.print(f"initial password (shown once): {password}", markup=False, highlight=False, soft_wrap=True)
    console.print("the user enrols a TOTP authenticator at first login")


@app.command("list")
def list_users(as_json: JsonOption = False) -> None:
    """Every account with its role and habilitation (groups, expiry, prefecture validation)."""
    settings = settings_or_exit()
    engine = db.make_engine(settings)
    try:
        users = _guard_db(accounts.all_users, engine)
    finally:
        engine.dispose()
    now_us = to_us(SystemClock().now())
    rows = [api.out(u, now_us).model_dump() for u in users]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("username", "role", "groups", "expires", "prefecture", "validated", "TOTP", "state")
    for user, r in zip(users, rows, strict=True):
        state = "inactive" if not r["active"] else ("[red]locked[/red]" if r["locked"] else "active")
        expired = user.expires_us is not None and user.expires_us <= now_us
        table.add_row(
            r["username"],
            r["role"],
            ",".join(r["camera_groups"]),
            f"[red]{r['expires']}[/red]" if expired else (r["expires"] or "never"),
            r["prefecture_ref"] or "",
            r["prefecture_validated"] or "[yellow]no[/yellow]",
            "yes" if r["totp_enrolled"] else "no",
            state,
        )
    console.print(table)


@app.command()
def habilitation(
    username: Annotated[str, typer.Argument(help="The account whose habilitation changes.")],
    groups: GroupsOption = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="New end: a date (until its end), a date-time, or 'never'.")
    ] = None,
    prefecture_ref: PrefRefOption = None,
    prefecture_date: PrefDateOption = None,
    playback_days: PlaybackOption = None,
    ptz_priority: PtzOption = None,
    granted_by: GrantedByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change an account's habilitation: camera groups, expiry, prefecture validation, limits."""
    settings = settings_or_exit()
    now = SystemClock().now()
    given: dict[str, Any] = {}
    if groups is not None:
        given["camera_groups"] = _groups(groups)
    if expires is not None:
        given["expires"] = None if expires.strip().lower() == NEVER else _moment("--expires", expires, True)
    if prefecture_ref is not None:
        given["prefecture_ref"] = prefecture_ref
    if prefecture_date is not None:
        given["prefecture_validated"] = _moment("--prefecture-date", prefecture_date, False)
    if playback_days is not None:
        given["playback_days"] = playback_days
    if ptz_priority is not None:
        given["ptz_priority"] = ptz_priority
    if not given:
        raise fail("nothing to change: give --groups, --expires, --prefecture-ref/--prefecture-date or a limit")
    _check_dates(now, given.get("expires"), given.get("prefecture_validated"))
    try:
        patch = api.UserPatch(**given)
        accounts.check_habilitation(None, patch.camera_groups)  # the API's own group check
    except ValidationError as exc:
        raise fail(_validation_message(exc)) from None
    except accounts.AccountError as exc:
        raise fail(exc.message) from None
    grantor = _grantor(granted_by)
    engine = db.make_engine(settings)
    try:
        user = _guard_db(accounts.by_username, engine, username)
        if user is None:
            raise fail(f"unknown account {username!r}")
        has_ref = given.get("prefecture_ref", user.prefecture_ref)
        has_date = "prefecture_validated" in given or user.prefecture_validated_us is not None
        if bool(has_ref) != has_date:
            raise fail("a prefecture validation needs its reference and its date (--prefecture-ref, --prefecture-date)")
        changes = _changes(patch, given)
        # Same rule as PATCH /api/v1/users: a changed habilitation is granted anew by whoever changed it.
        if any(k in changes for k in ("camera_groups", "expires_us", "prefecture_validated_us")):
            changes |= {"granted_by": grantor, "granted_us": to_us(now)}
        values = {k: iso(to_us(v)) if isinstance(v, datetime) else v for k, v in given.items()}
        record_first(settings, "users.update", f"user:{username}", {"changes": sorted(given), "values": values})
        user = _guard_db(accounts.update, engine, user.id, **changes)
        revoked = 0
        if "camera_groups" in given:
            # As the API does: open sessions must not keep the groups the user no longer has.
            revoked = _guard_db(sessions.revoke_user, engine, SystemClock(), user.id)
    finally:
        engine.dispose()
    shown = api.out(user, to_us(SystemClock().now())).model_dump()
    if as_json:
        typer.echo(json.dumps(shown | {"sessions_revoked": revoked}, indent=2))
        return
    console.print(
        f"habilitation of [bold]{username}[/bold] changed ({', '.join(sorted(given))}); "
        f"groups {','.join(shown['camera_groups']) or '(none)'}, expires {shown['expires'] or 'never'}, "
        f"validated {shown['prefecture_validated'] or 'no'}",
        highlight=False,
    )
    if revoked:
        console.print(f"{revoked} open session(s) ended: the user logs in again with the new groups")


@app.command("reset-password")
def reset_password(
    username: Annotated[str, typer.Argument(help="The account whose password is forgotten.")],
    as_json: JsonOption = False,
) -> None:
    """A new single-use password (printed once), replaced at the next login; sessions ended, lock lifted."""
    settings = settings_or_exit()
    engine = db.make_engine(settings)
    try:
        user = _guard_db(accounts.by_username, engine, username)
        if user is None:
            raise fail(f"unknown account {username!r}")
        if user.kind != accounts.LOCAL:
            raise fail(f"{username!r} logs in at the identity provider: its password is reset there")
        record_first(settings, "users.reset_password", f"user:{username}", {"sessions": "revoked"})
        password = accounts.generate_password(user.username, user.display_name)
        _guard_db(accounts.set_password, engine, user.id, password, True)
        revoked = _guard_db(sessions.revoke_user, engine, SystemClock(), user.id)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"username": username, "one_time_password": password, "sessions_revoked": revoked}))
        return
    console.print(f"password of [bold]{username}[/bold] reset; {revoked} open session(s) ended")
    # stdout only, once: the password is in no log, no audit entry and nowhere on disk.
    console.print(f"single-use password (shown once): {password}", markup=False, highlight=False, soft_wrap=True)
    console.print("the next login must replace it with a password of the user's own")


# -- helpers --------------------------------------------------------------------------------------


def _moment(option: str, value: str, end_of_day: bool) -> datetime:
    """An aware instant from an ISO 8601 date-time with a zone, or a date in Europe/Paris."""
    text = value.strip()
    try:
        if DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0), PARIS)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {value!r} is not a date (YYYY-MM-DD) nor an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise fail(f"{option} {value!r} has no time zone: add Z or an offset, or give a date alone")
    return moment


def _check_dates(now: datetime, expires_at: datetime | None, validated_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= now:
        raise fail(f"--expires {iso(to_us(expires_at))} is in the past: the habilitation would already be over")
    if validated_at is not None and validated_at > now:
        raise fail(
            f"--prefecture-date {iso(to_us(validated_at))} is in the future: record a validation once it is given"
        )


def _groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def _grantor(granted_by: str | None) -> str:
    grantor = (granted_by or actor()).strip()
    if not grantor or len(grantor) > 64:
        raise fail("--granted-by must be 1 to 64 characters")
    return grantor


def _read_password(path: Path) -> str:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the password file: {exc}") from None
    password = text.rstrip("\r\n")
    if not password:
        raise fail("the password file is empty")
    return password


def _changes(patch: "api.UserPatch", given: dict[str, Any]) -> dict[str, object]:
    """The API model's fields as User columns (instants in integer µs)."""
    changes: dict[str, object] = {}
    for name in given:
        value = getattr(patch, name)
        if name == "expires":
            changes["expires_us"] = to_us(value) if value is not None else None
        elif name == "prefecture_validated":
            changes["prefecture_validated_us"] = to_us(value) if value is not None else None
        else:
            changes[name] = value
    return changes


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(x) for x in error["loc"]) or "value"
        parts.append(f"{field.replace('_', '-')}: {error['msg']}")
    return "; ".join(parts)


def _guard_db(fn, *args, **kwargs):
    """Call an accounts function; a database failure becomes exit 2 with its cause."""
    try:
        return fn(*args, **kwargs)
    except SQLAlchemyError as exc:
        where = redact_url(Settings().sqlalchemy_url)
        raise fail(f"the accounts database on {where} failed: {db_reason(exc)} (migrated? csuctl db migrate)") from None
