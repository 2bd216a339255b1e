"""The gateway's FastAPI application: the platform's only public door."""

from fastapi import Depends, FastAPI

from services.common.service import Runtime, health_router
from services.gateway import console, demo, errors, limits
from services.gateway.audit_outcome import AuditOutcome
from services.gateway.backends import Backends
from services.gateway.casework.routes import citizen_requests, kiosk, register, requisitions
from services.gateway.identity.routes import audit, auth, oidc, partners, users
from services.gateway.operations.routes import (
    alarms,
    bollards,
    compliance,
    journal,
    notifications,
    retention,
    room,
    visitors,
)
from services.gateway.video.routes import camera_admin, cameras, live, masks, playback, ptz, redaction, segments

# The routers, by area (each area's package: its domain modules, and its routes in `routes/`).
# sign-in, accounts, partners (federation) and the audit trail
IDENTITY = (auth, users, partners, audit)
# cameras and their administration, PTZ, recordings, live view, privacy masks, redaction for citizens
VIDEO = (cameras, camera_admin, ptz, segments, playback, live, masks, redaction)
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
    for module in (*IDENTITY, *VIDEO, *OPERATIONS, *CASEWORK, console):
        app.include_router(module.router)
    app.include_router(oidc.router_for(app.state.backends.oidc))  # optional single sign-on (CSU_OIDC_*)
    return app
