"""The gateway service: the HTTP app (served by run_service), its NATS connection, accounts and
the audit writer."""

import asyncio
import sys

from services.common import anchoring, bus, db
from services.common import audit as audit_events
from services.common.clock import to_us
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2
from services.common.service import Runtime
from services.gateway import audit_outcome, demo
from services.gateway.backends import Backends
from services.gateway.identity import accounts, attempts, audit_log, refusals, signing_key_audit
from services.gateway.identity.federation.tls import serve_federation
from services.gateway.operations import retention
from services.gateway.operations import runner as operations_runner
from services.gateway.video import clip_cache

log = get_logger(__name__)


async def run(runtime: Runtime) -> None:
    assert runtime.app is not None
    b: Backends = runtime.app.state.backends
    settings = runtime.settings
    runtime.add_check("nats", bus.nats_ready(lambda: b.nats))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, b.engine))

    async def ingest_reachable() -> bool:
        await b.ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=2)
        return True

    runtime.add_check("ingest", ingest_reachable)
    if not await runtime.until_ok(
        "database", lambda: db.migrate("gateway", b.engine) if settings.db_auto_migrate else None
    ):
        return
    # Clips a killed run was building are footage: they must not linger past their cache lifetime.
    await asyncio.to_thread(clip_cache.clear_clip_cache, settings)
    bootstrap = settings.bootstrap_admin_password.get_secret_value() or None
    try:
        generated = await asyncio.to_thread(accounts.ensure_first_admin, b.engine, b.clock, bootstrap)
    except accounts.AccountError as exc:
        raise RuntimeError(f"CSU_BOOTSTRAP_ADMIN_PASSWORD is not acceptable: {exc.message}") from exc
    if generated:
        # Shown once, on purpose outside the JSON log stream too, for the person starting the platform.
        print(
            f"\n  First admin account created: username 'admin', password '{generated}' (shown once).\n",
            file=sys.stderr,
            flush=True,
        )
        log.warning("first admin account created with a generated password (printed once on stderr)")
    if not settings.require_totp:
        log.warning("TOTP second factor is NOT required: development setting, never in production")

    b.nats = await bus.connect_with_retry(settings, "gateway", runtime.stop)
    if b.nats is None:
        return
    b.js = b.nats.jetstream()
    await bus.ensure_events_stream(b.js, settings.nats_prefix)
    await demo.ensure_demo_operator(b)  # `make run` only (refused at start-up elsewhere)
    b.intents = await audit_outcome.open_intents(b.js, settings.nats_prefix)
    writer = asyncio.create_task(
        audit_log.AuditWriter(b.js, settings.nats_prefix, b.engine, b.signer, b.clock, b.cadence).run()
    )
    # Its own stop: the last head is signed and published once the writer has stopped writing.
    anchoring_stop = asyncio.Event()
    anchored = asyncio.create_task(
        anchoring.keep_anchored(
            audit_log.CHAIN,
            lambda: audit_log.checkpoint_now(b.engine, b.signer, b.clock, b.cadence),
            lambda: audit_log.newest_checkpoint(b.engine),
            b.anchors,
            settings.chain_checkpoint_minutes * 60,
            anchoring_stop,
        )
    )
    await signing_key_audit.record_key_in_use(b.js, settings.nats_prefix, b.engine, b.signer, b.clock)
    operations = asyncio.create_task(operations_runner.run(b, runtime.stop))  # alarms, mail retries, pop-ups
    upkeep = asyncio.create_task(_audit_upkeep(b))
    erasures = asyncio.create_task(retention.run(b))  # personal data past its retention
    summaries = asyncio.create_task(refusals.run(b, runtime.stop))  # aggregated refusals, then the rest at stop
    throttle = asyncio.create_task(_forget_login_windows(b))
    intents = asyncio.create_task(audit_outcome.sweep(b, runtime.stop))  # outcomes a stop left unknown
    federation = None
    if settings.federation_port:
        files = (settings.federation_cert_file, settings.federation_key_file, settings.federation_ca_file)
        if None in files:
            raise RuntimeError("CSU_FEDERATION_PORT needs CSU_FEDERATION_CERT_FILE, _KEY_FILE and _CA_FILE")
        federation = asyncio.create_task(
            serve_federation(runtime, settings.gateway_host, settings.federation_port, *files)  # type: ignore[arg-type]
        )
        log.info("federation listener (mutual TLS) started", port=settings.federation_port)
    await runtime.stop.wait()
    await asyncio.gather(summaries, return_exceptions=True)  # written while the audit writer still runs
    writer.cancel()
    await asyncio.gather(intents, return_exceptions=True)
    await asyncio.gather(writer, operations, return_exceptions=True)
    upkeep.cancel()
    erasures.cancel()
    throttle.cancel()
    if federation is not None:
        await asyncio.gather(federation, return_exceptions=True)
    anchoring_stop.set()
    await asyncio.gather(anchored, return_exceptions=True)
    await bus.close(b.nats)
    await b.close()


async def _audit_upkeep(b: Backends) -> None:
    """Hourly: purge entries past the trail's own retention (recorded). The head is signed and
    published every few minutes by the anchoring loop."""
    while True:
        try:
            purged = await asyncio.to_thread(
                audit_log.purge_expired, b.engine, b.clock, b.settings.audit_retention_days
            )
            if purged is not None and b.js is not None:
                count, through = purged
                await audit_events.record(
                    b.js,
                    b.settings.nats_prefix,
                    b.clock,
                    actor="system",
                    role="",
                    action=audit_log.PURGE_ACTION,
                    target="audit",
                    details={
                        "through_seq": through,
                        "entries": count,
                        "retention_days": b.settings.audit_retention_days,
                    },
                )
        except Exception as exc:  # noqa: BLE001 - retried next hour; verification shows any gap
            log.warning("audit upkeep failed", error=str(exc))
        await asyncio.sleep(3600)


async def _forget_login_windows(b: Backends) -> None:
    """Now and then: drop the per-address login counters whose window is over (one row each)."""
    window_s = b.settings.login_address_window_s
    while True:
        await asyncio.sleep(window_s)
        try:
            await asyncio.to_thread(attempts.purge, b.engine, to_us(b.clock.now()), window_s)
        except Exception as exc:  # noqa: BLE001 - retried next window; stale rows only take room
            log.warning("login counters not purged", error=str(exc))
