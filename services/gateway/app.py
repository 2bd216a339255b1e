"""The gateway's FastAPI application: the platform's only public door."""

from fastapi import Depends, FastAPI

from services.common.service import Runtime, health_router
from services.gateway import demo, errors, limits
from services.gateway.audit_outcome import AuditOutcome
from services.gateway.backends import Backends
from services.gateway.routes import (
    alarms,
    audit,
    auth,
    bollards,
    camera_admin,
    cameras,
    citizen_requests,
    compliance,
    console,
    journal,
    kiosk,
    live,
    masks,
    notifications,
    oidc,
    partners,
    playback,
    ptz,
    redaction,
    register,
    requisitions,
    retention,
    room,
    segments,
    users,
    visitors,
)

# The routers, by area.
# sign-in, accounts, audit, cameras, PTZ, recordings, live view
CORE = (auth, users, partners, audit, cameras, camera_admin, ptz, segments, playback, live, console)
# privacy masks and redaction for citizens' access
PRIVACY = (masks, redaction)
# viewing-room register and door, bollards, alarms, shift journal, compliance and retention, pop-ups
OPERATIONS = (visitors, room, bollards, alarms, journal, compliance, retention, notifications)
# requisitions, the register, citizens' access and the kiosk
CASEWORK = (requisitions, register, citizen_requests, kiosk)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="CSU platform API",
        version="1",
        description="Cameras, recordings and live view of a municipal CCTV supervision centre. Every endpoint "
        "but login, health and metrics requires a session (POST /api/v1/auth/login).",
        # Every route's ids are bounded before anything uses them (limits.py).
        dependencies=[Depends(limits.bounded_ids)],
    )
    demo.refuse_outside_embedded_default(runtime.settings)  # before anything opens: a refusal, not a half start
    app.state.backends = Backends(runtime.settings)
    # Innermost (added first): it sees the answer the handler decided, after the exception handlers.
    app.add_middleware(AuditOutcome)
    limits.install(app, runtime.settings)
    errors.install(app)  # a domain module's refusal answers with its status and message
    app.state.runtime = runtime
    app.include_router(health_router(runtime))
    for module in (*CORE, *PRIVACY, *OPERATIONS, *CASEWORK):
        app.include_router(module.router)
    app.include_router(oidc.router_for(app.state.backends.oidc))  # optional single sign-on (CSU_OIDC_*)
    return app
