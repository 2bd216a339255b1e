from services.common.service import run_service
from services.masking.main import run

run_service("masking", run, lambda s: s.masking_http_port)
