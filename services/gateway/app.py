"""The gateway's FastAPI application: the platform's only public door."""

from fastapi import FastAPI

from services.common.service import Runtime, health_router
from services.gateway import limits
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
    segments,
    users,
    visitors,
)

# The routers, by area.
# sign-in, accounts, audit, cameras, PTZ, recordings, live view
CORE = (auth, users, partners, audit, cameras, camera_admin, ptz, segments, playback, live, console)
# privacy masks and redaction for citizens' access
PRIVACY = (masks, redaction)
# viewing-room register, bollards, alarms, shift journal, compliance and retention, pop-ups
OPERATIONS = (visitors, bollards, alarms, journal, compliance, retention, notifications)
# requisitions, the register, citizens' access and the kiosk
CASEWORK = (requisitions, register, citizen_requests, kiosk)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="CSU platform API",
        version="1",
        description="Cameras, recordings and live view of a municipal CCTV supervision centre. Every endpoint "
        "but login, health and metrics requires a session (POST /api/v1/auth/login).",
    )
    app.state.backends = Backends(runtime.settings)
    limits.install(app, runtime.settings)
    app.state.runtime = runtime
    app.include_router(health_router(runtime))
    for module in (*CORE, *PRIVACY, *OPERATIONS, *CASEWORK):
        app.include_router(module.router)
    app.include_router(oidc.router_for(app.state.backends.oidc))  # optional single sign-on (CSU_OIDC_*)
    return app
