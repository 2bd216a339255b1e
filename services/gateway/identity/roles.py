"""Roles and what they may do.

A role grants actions; the account's habilitation limits them to its camera groups. Actions on
video (live, playback, export, ptz) also need a habilitation that is validated by the prefecture
and not expired. Actions that are not about a camera (users, audit, register...) ignore groups.

    live              watch live video              playback     play recordings
    export            extract / export footage      ptz          steer PTZ cameras
    mask_admin        create and change masks        config       cameras, authorisations, bollards
    camera_health     camera status, no video        audit        read and export the audit trail
    register          read the extraction register   citizen_requests  citizens' access requests
    users             accounts and habilitations     sign         sign register entries (managers)
    retention         set the retention periods of personal data, within their hard caps (the
                      data protection officer, role "dpo", who also reads the trail and the report)
"""

from typing import Final

VIDEO_ACTIONS: Final = frozenset({"live", "playback", "export", "ptz"})
CAMERA_ACTIONS: Final = VIDEO_ACTIONS | {"mask_admin", "config", "camera_health"}
ACTIONS: Final = CAMERA_ACTIONS | {"audit", "register", "citizen_requests", "users", "sign", "retention"}

ROLE_ACTIONS: Final[dict[str, frozenset[str]]] = {
    "operator": frozenset({"live", "playback", "ptz", "camera_health"}),
    "supervisor": frozenset({"live", "playback", "ptz", "export", "camera_health", "mask_admin"}),
    "manager": frozenset({"live", "playback", "export", "camera_health", "register", "sign"}),
    "maintenance": frozenset({"camera_health"}),
    "clerk": frozenset({"citizen_requests"}),
    "auditor": frozenset({"audit", "register", "camera_health"}),
    "admin": frozenset({"config", "users", "mask_admin", "camera_health", "audit"}),
    "police_nationale": frozenset({"live", "ptz", "export"}),
    "dpo": frozenset({"audit", "retention"}),
}
ROLES: Final = frozenset(ROLE_ACTIONS)

# Who wins PTZ control (higher wins); a user's own priority, when set, replaces the role's.
PTZ_PRIORITY: Final[dict[str, int]] = {
    "supervisor": 80,
    "manager": 70,
    "police_nationale": 60,
    "operator": 50,
}

# Roles whose actions need a second factor whenever TOTP is required (all but maintenance, which
# sees no video and changes nothing sensitive).
TOTP_ROLES: Final = ROLES - {"maintenance"}
