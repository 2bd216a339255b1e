"""The demonstration operator of `make run`: a newcomer sees live video without first learning how
to create an account and a habilitation.

`demo-operator` is an ordinary operator account (password, TOTP enrolled at its first login, every
access audited) whose password the launcher generates and prints. It exists only on the embedded
default (Settings.not_embedded_default): with CSU_DEMO_OPERATOR_PASSWORD set anywhere else the
gateway refuses to start rather than warn, because a known-password account seeing every camera
must never reach real footage, and a warning in a production log is read too late, if ever.
"""

import asyncio

from services.common import audit as audit_events
from services.common.clock import to_us
from services.common.log import get_logger
from services.common.settings import Settings
from services.gateway.backends import Backends
from services.gateway.identity import accounts

log = get_logger(__name__)
USERNAME = "demo-operator"
DISPLAY_NAME = "Opérateur de démonstration"
# The habilitation's prefecture fields say what the account is to anyone who reads them (the
# session bar, the accounts page, the audit trail): not a prefecture's decision.
PREFECTURE_REF = "DEMONSTRATION make run — no prefecture decision"
GRANTED_BY = "make-run-demonstration"


def refuse_outside_embedded_default(settings: Settings) -> None:
    """RuntimeError (the service does not start) when a demonstration operator is asked for where
    it may not exist; the one place this rule is enforced."""
    if not settings.demo_operator_password.get_secret_value():
        return
    reasons = settings.not_embedded_default()
    if reasons:
        raise RuntimeError(
            "CSU_DEMO_OPERATOR_PASSWORD is refused: the demonstration operator exists only on the embedded "
            f"default of `make run`, and here {'; '.join(reasons)}. Unset it, and create operators in the "
            "console (Comptes) or with csuctl."
        )


async def ensure_demo_operator(b: Backends) -> None:
    """Create `demo-operator` when asked for and absent, the creation audited before it is made.

    An existing account of that name is left as it is (its password, a deactivation by an admin).
    """
    password = b.settings.demo_operator_password.get_secret_value()
    if not password or await asyncio.to_thread(accounts.by_username, b.engine, USERNAME) is not None:
        return
    assert b.js is not None
    now = to_us(b.clock.now())
    await audit_events.record(
        b.js,
        b.settings.nats_prefix,
        b.clock,
        actor="system",
        role="",
        action="users.create",
        target=f"user:{USERNAME}",
        details={"role": "operator", "camera_groups": ["*"], "demonstration": True, "granted_by": GRANTED_BY},
    )
    try:
        await asyncio.to_thread(
            accounts.create_user,
            b.engine,
            b.clock,
            username=USERNAME,
            display_name=DISPLAY_NAME,
            role="operator",
            password=password,
            habilitation=accounts.Habilitation(
                granted_by=GRANTED_BY,
                camera_groups=["*"],
                expires_us=None,
                prefecture_ref=PREFECTURE_REF,
                prefecture_validated_us=now,
            ),
        )
    except accounts.AccountError as exc:
        raise RuntimeError(f"CSU_DEMO_OPERATOR_PASSWORD is not acceptable: {exc.message}") from exc
    log.warning("DEMONSTRATION operator account created (embedded default only)", username=USERNAME)
