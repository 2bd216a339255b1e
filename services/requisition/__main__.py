from services.common.service import run_service
from services.requisition.main import run

run_service("requisition", run, lambda s: s.requisition_http_port)
