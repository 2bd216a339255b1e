"""One trace across processes: a REST call to the gateway, its gRPC call to ingest, and ingest's
answer arrive at an OTLP collector (a real gRPC server in the test process, as the city's collector
would receive them) as spans of one trace, ingest's span the child of the gateway's call."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.platform import Platform, wait_for


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """What an OpenTelemetry collector's OTLP/gRPC receiver does with spans: keeps them, by service."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans += [(attributes.get("service.name", ""), span) for span in scope_spans.spans]
        return trace_service_pb2.ExportTraceServiceResponse()

    def of(self, service: str, kind: int, name: str) -> list[Span]:
        return [s for svc, s in list(self.spans) if svc == service and s.kind == kind and name in s.name]


@pytest.fixture
def collector() -> Iterator[tuple[str, Collector]]:
    received = Collector()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", received
    server.stop(grace=None)


def test_a_gateway_call_is_one_trace_across_gateway_and_ingest(
    platform: Platform, collector: tuple[str, Collector]
) -> None:
    endpoint, received = collector
    # As the chart sets them (otel.endpoint); spans leave every 200 ms instead of 5 s.
    platform.env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    for name in ("ingest", "gateway"):
        platform.service_env[name] = {"OTEL_SERVICE_NAME": f"csu-{name}"}
    platform.start(["ingest", "gateway"])
    with platform.client("operator") as api:
        answer = api.get("/api/v1/cameras")
        assert answer.status_code == 200, answer.text

    method = "/csu.v1.IngestService/ListCameras"

    def the_trace() -> tuple[Span, Span, Span] | None:
        for http in received.of("csu-gateway", Span.SPAN_KIND_SERVER, "GET /api/v1/cameras"):
            calls = received.of("csu-gateway", Span.SPAN_KIND_CLIENT, method)
            calls = [c for c in calls if c.trace_id == http.trace_id]
            for call in calls:
                answers = [
                    a
                    for a in received.of("csu-ingest", Span.SPAN_KIND_SERVER, method)
                    if a.trace_id == http.trace_id and a.parent_span_id == call.span_id
                ]
                if answers:
                    return http, call, answers[0]
        return None

    http, call, answer_span = wait_for(the_trace, 30, "the gateway's call and ingest's answer in one trace")
    # The call happens inside the REST request: its span starts and ends within the request's.
    assert http.start_time_unix_nano <= call.start_time_unix_nano <= call.end_time_unix_nano <= http.end_time_unix_nano
    assert call.start_time_unix_nano <= answer_span.start_time_unix_nano
    # Probes and scrapes are not traced.
    assert not [s for _, s in received.spans if "/healthz" in s.name or "/readyz" in s.name or "/metrics" in s.name]
