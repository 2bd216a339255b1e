from services.common.service import run_service
from services.gateway.app import create_app
from services.gateway.main import run

run_service("gateway", run, lambda s: s.gateway_port, app=create_app, http_host=lambda s: s.gateway_host)
