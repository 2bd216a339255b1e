"""The gateway's FastAPI application: the platform's only public door."""

from fastapi import FastAPI

from services.common.service import Runtime, health_router
from services.gateway.backends import Backends
from services.gateway.routes import cameras, live, pages, segments


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="CSU platform API",
        version="1",
        description="Cameras, recordings and live view of a municipal CCTV supervision centre.",
    )
    app.state.backends = Backends(runtime.settings)
    app.state.runtime = runtime
    app.include_router(health_router(runtime))
    for module in (cameras, segments, live, pages):
        app.include_router(module.router)
    return app
