"""What every service process shares: logging, signals, and the /healthz, /readyz, /metrics routes.

`run_service` owns the process: it configures logging, turns SIGTERM/SIGINT into one stop event,
serves the health routes on the service's HTTP port, and runs the service's main coroutine until
the stop event is set.
"""

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common import tracing
from services.common.log import configure_logging, get_logger
from services.common.settings import Settings

Check = Callable[[], Awaitable[bool]]
log = get_logger(__name__)


class Runtime:
    """Process-wide state a service's main coroutine receives."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.stop = asyncio.Event()
        self.checks: dict[str, Check] = {}
        self.app: FastAPI | None = None

    async def until_ok(
        self, what: str, action: Callable[[], object], while_waiting: Callable[[], object] | None = None
    ) -> bool:
        """Retry a blocking start-up step until it works (dependencies may come up after us).

        `while_waiting` runs (blocking, in a thread) after each failed attempt: what the service
        must keep doing even while it cannot start. Returns False if the service was asked to stop
        first.
        """
        delay = 0.5
        while not self.stop.is_set():
            try:
                await asyncio.to_thread(action)
                return True
            except Exception as exc:  # noqa: BLE001 - every failure is retried the same way
                log.warning(f"{what} not ready yet", error=str(exc))
                if while_waiting is not None:
                    try:
                        await asyncio.to_thread(while_waiting)
                    except Exception as failed:  # noqa: BLE001 - retried after the next attempt
                        log.error(f"failed while waiting for {what}", error=str(failed) or type(failed).__name__)
                try:
                    await asyncio.wait_for(self.stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)
        return False

    def add_check(self, name: str, check: Check) -> None:
        """A readiness condition; /readyz answers 200 only when every check passes."""
        self.checks[name] = check

    def add_step(self, name: str) -> asyncio.Event:
        """A readiness condition the service meets itself: set the event once the step is done.

        A service's connections can all work before it answers what it is for (its gRPC server
        starts after NATS and the leases): ready before that, Kubernetes and the gateway send it
        calls that are refused."""
        done = asyncio.Event()

        async def check() -> bool:
            return done.is_set()

        self.add_check(name, check)
        return done

    async def readiness(self) -> dict[str, bool]:
        results: dict[str, bool] = {}
        for name, check in self.checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), timeout=5))
            except Exception:  # noqa: BLE001 - a failing check is "not ready", never a 500
                results[name] = False
        return results


def health_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, object]:
        checks = await runtime.readiness()
        ready = bool(checks) and all(checks.values())
        response.status_code = 200 if ready else 503
        return {"ready": ready, "checks": checks}

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


# How long a stopped service waits for its worker threads before leaving without them.
EXECUTOR_GRACE_S = 3.0


def _busy_threads() -> list[threading.Thread]:
    """Threads that would keep the interpreter from exiting (non-daemon, other than the main one)."""
    return [t for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.main_thread()]


# How long stopping waits for open connections: a live view's websocket, or a TLS peer that never
# answers the close (asyncio waits 30 s for it), must not keep the process past its grace period.
GRACEFUL_SHUTDOWN_S = 5


class _Server(uvicorn.Server):
    # The process's signals belong to run_service, which stops everything in order.
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(app: FastAPI, host: str, port: int, stop: asyncio.Event, **options: Any) -> None:
    """Serve app until stop is set; raises if the port cannot be bound. options: more uvicorn.Config."""
    options.setdefault("timeout_graceful_shutdown", GRACEFUL_SHUTDOWN_S)
    # uvicorn's own default believes X-Forwarded-For/-Proto from 127.0.0.1: anything on the host
    # (or a port-forward) could then choose the address the audit trail and the login and kiosk
    # limits see. Forwarded headers are believed only where proxy_options says so.
    options.setdefault("proxy_headers", False)
    options.setdefault("forwarded_allow_ips", [])
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off", **options)
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving
    stopping.cancel()
    if not server.started:
        raise RuntimeError(f"HTTP server could not listen on {host}:{port}")


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options: forwarded headers believed only from CSU_TRUSTED_PROXIES (the ingress)."""
    proxies = settings.trusted_proxy_list
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies}


def run_service(
    name: str,
    main: Callable[[Runtime], Coroutine[Any, Any, None]],
    http_port: Callable[[Settings], int],
    app: Callable[[Runtime], FastAPI] | None = None,
    http_host: Callable[[Settings], str] = lambda s: s.bind_host,
) -> None:
    """Run a service process: `main(runtime)` must return once runtime.stop is set."""
    settings = Settings()
    configure_logging(name, settings.log_level, settings.log_json)
    # Before the app, channels and servers are made: they take their tracing hooks when created.
    tracing.setup(name, settings)

    async def _run() -> None:
        runtime = Runtime(name, settings)
        loop = asyncio.get_running_loop()
        # The executor of asyncio.to_thread, ours so that stopping can bound the wait for it.
        executor = ThreadPoolExecutor(thread_name_prefix=name)
        loop.set_default_executor(executor)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop.set)
        try:
            web = app(runtime) if app else FastAPI()
        except (OSError, RuntimeError, ValueError) as exc:
            # Missing keys, unreadable files...: one clear line, not a traceback.
            log.error("cannot start", reason=str(exc))
            raise SystemExit(2) from exc
        if app is None:
            web.include_router(health_router(runtime))
        tracing.instrument_app(web)
        runtime.app = web
        http = asyncio.create_task(
            serve_http(web, http_host(settings), http_port(settings), runtime.stop, **proxy_options(settings))
        )
        body = asyncio.create_task(main(runtime))
        log.info("service starting", port=http_port(settings))
        done, _ = await asyncio.wait({http, body}, return_when=asyncio.FIRST_COMPLETED)
        # Whichever ends first (a stop signal, or a crash) takes the other down with it.
        runtime.stop.set()
        await asyncio.gather(http, body, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                log.error("service failed", error=repr(task.exception()))
                raise SystemExit(1)
        log.info("service stopped")
        tracing.shutdown()
        # A blocking call still running in a worker thread (asyncio.to_thread: a store upload that
        # never answers) would hold the process after this: asyncio.run and the interpreter wait
        # for those threads, and the pod is killed at its grace period (seen in the image test:
        # the archive, its drain timed out after 15 s, killed at 30 s). What such a thread was
        # doing is retried at the next start (the spool, unacked events): leave without it.
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = loop.time() + EXECUTOR_GRACE_S
        while _busy_threads() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if _busy_threads():
            log.warning("worker threads still blocked at stop: leaving without them", grace_s=EXECUTOR_GRACE_S)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    asyncio.run(_run())
