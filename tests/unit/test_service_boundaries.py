"""No service imports another service's modules: they talk over gRPC and NATS, and share only
services.common (with the generated protobuf modules in services.common.pb).

A service reaching into another's package couples two deployments that are scaled, upgraded and
permissioned apart (the chart gives each its own NATS user and database role): the compliance
report reading ingest's norms module, for one, would judge profiles by whatever version of ingest
the gateway image happens to carry. What two services both need lives in services.common.

The allowed edges, and why:
- a service -> itself, services.common, and `services` (the package's __init__, which turns off
  gRPC's fork handlers before any service loads gRPC);
- services.common -> services.common and `services` only: the shared part depends on no service;
- the two entry points that are not services, services.csuctl (the operators' command line, run
  beside the database and the key files) and services.launcher (`make run`, which starts every
  service on one machine), -> any service: they assemble the platform rather than belong to it;
- nothing but those two entry points themselves imports services.csuctl or services.launcher.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
SHARED = "common"
ENTRY_POINTS = ("csuctl", "launcher")


def _imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, lazy ones inside functions included, with
    relative imports resolved and `from services import x` read as services.x."""
    package = path.relative_to(root.parent).parts[:-1]  # a module's package, or an __init__'s own
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            if module == "services":
                yield from ((node.lineno, f"services.{alias.name}") for alias in node.names)
            else:
                yield node.lineno, module


def _owner(path: Path, root: Path) -> str:
    """The top-level part of services/ a file belongs to: a service, common, csuctl or launcher
    ("" for services/__init__.py, which imports nothing of the platform)."""
    top = path.relative_to(root).parts[0]
    return "" if top == "__init__.py" else top.removesuffix(".py")


def _allowed(owner: str, target: str) -> bool:
    if owner in ENTRY_POINTS:
        return True
    return target in ("", SHARED, owner)


def _crossings(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        owner = _owner(path, root)
        for line, module in sorted(_imports(path, root)):
            parts = module.split(".")
            if parts[0] != "services":
                continue
            target = parts[1] if len(parts) > 1 else ""
            if not _allowed(owner, target):
                found.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return found


def test_no_service_imports_another_services_modules() -> None:
    assert _crossings(SERVICES) == []


def test_every_top_level_part_is_known() -> None:
    """A new service is checked as one; a new shared entry point must be named above on purpose."""
    services = {p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists()} - {SHARED, *ENTRY_POINTS}
    assert services == {"archive", "gateway", "ingest", "masking", "requisition"}


def test_the_check_sees_a_crossing_in_each_form(tmp_path: Path) -> None:
    """The scanner itself: absolute, from-package, relative and lazy imports across services are all
    caught, and the allowed edges are not."""
    root = tmp_path / "services"
    for package in ("gateway/operations", "ingest", "common", "csuctl"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    bad = root / "gateway" / "operations" / "report.py"
    bad.write_text(
        "import services.ingest.norms\n"
        "from services import ingest\n"
        "from ...ingest.norms import ARRETE\n"
        "def lazy():\n"
        "    from services.ingest import norms\n"
    )
    good = root / "gateway" / "operations" / "fine.py"
    good.write_text(
        "import services\n"
        "from services.common import timefmt\n"
        "from services.gateway.operations import report\n"
        "from . import report as r\n"
        "from .. import backends\n"
    )
    common = root / "common" / "shared.py"
    common.write_text("from services.gateway import app\n")
    cli = root / "csuctl" / "users.py"
    cli.write_text("from services.gateway import accounts\n")
    gateway_to_cli = root / "gateway" / "uses_cli.py"
    gateway_to_cli.write_text("from services.csuctl import users\n")
    assert _crossings(root) == [
        "services/common/shared.py:1 imports services.gateway",
        "services/gateway/operations/report.py:1 imports services.ingest.norms",
        "services/gateway/operations/report.py:2 imports services.ingest",
        "services/gateway/operations/report.py:3 imports services.ingest.norms",
        "services/gateway/operations/report.py:5 imports services.ingest",
        "services/gateway/uses_cli.py:1 imports services.csuctl",
    ]


def _route_modules(root: Path) -> set[str]:
    """The gateway's route modules, dotted: every module of an area's `routes` package, and any other
    module that makes a router (the console's)."""
    found = set()
    for path in (root / "gateway").rglob("*.py"):
        dotted = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        if "routes" in path.relative_to(root).parts[:-1] or "APIRouter(" in path.read_text(encoding="utf-8"):
            found.add(dotted.removesuffix(".__init__"))
    return found


def _route_imports(root: Path) -> list[str]:
    """Imports of the gateway's route modules from anywhere but the application that mounts them
    (`from services.gateway.video.routes import live` reads as services.gateway.video.routes: a
    route too)."""
    routes = _route_modules(root)
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "gateway" / "app.py":
            continue
        for line, module in sorted(_imports(path, root)):
            if module in routes:
                found.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # `from services.gateway import console` names the route module as an imported name.
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    named = f"{node.module}.{alias.name}"
                    if named in routes and node.module not in routes:
                        found.append(f"{path.relative_to(root.parent)}:{node.lineno} imports {named}")
    return sorted(found)


def test_route_modules_are_leaves(tmp_path: Path) -> None:
    """No route module imports another, and nothing but app.py imports a route: what two routes
    share, or what csuctl or start-up need, is a module of its own (casework/client.py,
    video/commissioning.py, video/clip_cache.py, page_headers.py, identity/account_models.py...), so a
    route is read and changed alone."""
    assert _route_imports(SERVICES) == []
    assert len(_route_modules(SERVICES)) > 20  # the rule sees the routes where they are
    root = tmp_path / "services"
    (root / "gateway" / "casework" / "routes").mkdir(parents=True)
    (root / "gateway" / "app.py").write_text("from services.gateway.casework.routes import kiosk\n")
    (root / "gateway" / "casework" / "routes" / "__init__.py").write_text("")
    (root / "gateway" / "casework" / "routes" / "kiosk.py").write_text("from .requisitions import service\n")
    (root / "gateway" / "casework" / "routes" / "requisitions.py").write_text("service = 1\n")
    (root / "gateway" / "console.py").write_text("router = APIRouter()\n")
    (root / "gateway" / "main.py").write_text(
        "from services.gateway.casework.routes import requisitions\nfrom services.gateway import console\n"
    )
    assert _route_imports(root) == [
        "services/gateway/casework/routes/kiosk.py:1 imports services.gateway.casework.routes.requisitions",
        "services/gateway/main.py:1 imports services.gateway.casework.routes",
        "services/gateway/main.py:2 imports services.gateway.console",
    ]
