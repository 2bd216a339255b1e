"""What a service imports at start-up: every pod start, every restart after a crash and every test
platform pays for it. Printing (fpdf, fontTools: ~1 CPU-second) and tracing (the OpenTelemetry SDK
and its exporter: ~0.3) are imported when first used, not at start-up."""

import json
import subprocess
import sys

# Each service's process imports these modules before it serves (its __main__ minus the run).
STARTS = (
    "services.gateway.app",
    "services.gateway.main",
    "services.requisition.main",
    "services.requisition.grpc_api",
    "services.archive.main",
    "services.ingest.main",
    "services.masking.main",
)
# Packages only an action needs: printing a document, exporting spans to a collector.
ON_USE = ("fpdf", "fontTools", "opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")


def test_printing_and_tracing_are_not_imported_at_start_up() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {STARTS!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout)
    early = sorted({m for m in loaded for package in ON_USE if m == package or m.startswith(package + ".")})
    assert not early, f"imported at start-up: {early[:10]}"
    # The check sees what it claims to: the services themselves were imported.
    assert set(STARTS) <= set(loaded)


def test_a_printed_document_still_imports_what_it_needs() -> None:
    from services.common.pdf import Document

    pdf = Document("Essai")
    pdf.add_page()
    assert bytes(pdf.output()).startswith(b"%PDF")
