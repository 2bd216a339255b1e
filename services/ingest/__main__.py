from services.common.service import run_service
from services.ingest.main import run

run_service("ingest", run, lambda s: s.ingest_http_port)
