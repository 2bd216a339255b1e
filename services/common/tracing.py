"""OpenTelemetry traces across the platform: a REST call to the gateway, the gRPC calls it makes,
and the service that answers them, as one trace in the city's collector.

Off unless an OTLP endpoint is set (`CSU_OTEL_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` as the
Helm chart's `otel.endpoint` sets it). The SDK reads the other standard variables itself:
OTEL_SERVICE_NAME (the chart: csu-<service>), OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_* (batching).
Spans are batched and exported over OTLP/gRPC off the event loop; an export that fails is dropped
by the SDK (tracing never slows or stops a service). What is traced: HTTP requests (not the
probes or /metrics) and every gRPC call, client and server side, with the W3C trace context in
the call's metadata. Frames on NATS are not traced: 25 spans per camera-second would cost more
than the pipeline they describe.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
from fastapi import FastAPI

from services.common.log import get_logger
from services.common.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = get_logger(__name__)

# One export may take this long before the SDK gives it up (the default, 10 s, is a third of a
# pod's grace period, which stopping must fit in).
EXPORT_TIMEOUT_S = 5
# Spans still queued at stop get this long to leave.
FLUSH_AT_STOP_MS = 2000
# Probes and scrapes: several a minute per pod, nothing to trace.
UNTRACED_PATHS = "healthz,readyz,metrics"

_provider: "TracerProvider | None" = None


def setup(service: str, settings: Settings) -> None:
    """Export this process's spans when an endpoint is set; a no-op otherwise (and when called again)."""
    global _provider
    if not settings.otel_endpoint or _provider is not None:
        return
    # Imported here, not at the top: the SDK, its OTLP exporter and the instrumentations cost
    # ~0.5 CPU-second at every start of every service (measured with -X importtime), and most
    # installations, and every test platform, run without a collector.
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; csu-<service> otherwise.
    resource = Resource.create({"service.name": f"csu-{service}"}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint, insecure=_insecure(settings.otel_endpoint),
                                timeout=EXPORT_TIMEOUT_S)  # fmt: skip
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing to an OpenTelemetry collector", endpoint=settings.otel_endpoint)


def enabled() -> bool:
    return _provider is not None


def instrument_app(app: FastAPI) -> None:
    if enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_PATHS, tracer_provider=_provider)


def client_interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    """For grpc.aio channels: a span per call, the trace context in its metadata."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return aio_client_interceptors(tracer_provider=_provider)


def server_interceptors() -> Sequence[grpc.aio.ServerInterceptor]:
    """For grpc.aio servers: a span per call, child of the caller's."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_provider)]


def shutdown() -> None:
    """Send what is queued (bounded), then stop exporting."""
    global _provider
    if _provider is None:
        return
    _provider.force_flush(FLUSH_AT_STOP_MS)
    _provider.shutdown()
    _provider = None


def _insecure(endpoint: str) -> bool:
    # http:// is plain gRPC (a collector inside the cluster); https:// uses TLS.
    return not endpoint.startswith("https://")
