from services.archive.main import run
from services.common.service import run_service

run_service("archive", run, lambda s: s.archive_http_port)
