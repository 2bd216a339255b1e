"""`csuctl cameras` against a running ingest: export, all-or-nothing import with line numbers,
lease ownership, and the audit events it writes before acting."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.audit import audit_events
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def csuctl(platform: Platform, *args: str, nats_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSU_")} | platform.env
    if nats_url is not None:
        env["CSU_NATS_URL"] = nats_url
    return subprocess.run(
        [sys.executable, "-m", "services.csuctl", "cameras", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_export_import_and_leases(platform: Platform, tmp_path: Path) -> None:
    platform.start(["ingest", "masking"])  # the two demo cameras, seeded; masking answers the commissioning gate
    wait_for(lambda: json.loads(csuctl(platform, "leases", "--json").stdout)["leases"], 60, "leases taken")

    exported = csuctl(platform, "export", str(tmp_path / "cameras.csv"))
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "cameras.csv").read_text()
    assert text.splitlines()[0].startswith("id,name,main_url") and "demo-1" in text and "demo-2" in text

    # A new camera and a broken line: nothing is imported, the line is named.
    lines = text.splitlines()
    new = lines[1].replace("demo-1", "demo-9", 1)
    broken = lines[2].replace(",704,576,", ",320,240,")
    (tmp_path / "bad.csv").write_text("\n".join([lines[0], new, broken]) + "\n")
    refused = csuctl(platform, "import", str(tmp_path / "bad.csv"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "line 3:" in refused.stderr and "below the arrêté du 3 août 2007" in refused.stderr
    # The new camera asks to go straight into service: the commissioning gate refuses it, as the
    # gateway does (no approved mask set, no signed statement).
    assert new.endswith(",in_service")
    said = " ".join(refused.stderr.split())  # the terminal's line wrapping undone
    assert "line 2: camera demo-9 cannot go into service: it has no approved privacy mask set" in said
    assert "2 error(s): nothing was imported" in said
    listed = json.loads(csuctl(platform, "list", "--json").stdout)
    assert {c["id"] for c in listed} == {"demo-1", "demo-2"}

    new = new.removesuffix("in_service") + "commissioning"
    (tmp_path / "good.csv").write_text("\n".join([lines[0], new, lines[2]]) + "\n")
    dry = csuctl(platform, "import", "--dry-run", "--json", str(tmp_path / "good.csv"))
    assert json.loads(dry.stdout) == {"created": 1, "updated": 1, "dry_run": True, "errors": []}
    # Fail closed, and in bounded time: with the audit trail unreachable nothing is imported.
    away = csuctl(platform, "import", str(tmp_path / "good.csv"), nats_url=f"nats://127.0.0.1:{free_port()}")
    assert away.returncode == 2, away.stdout + away.stderr
    assert "audit trail is unavailable" in away.stderr and "nothing was done" in away.stderr
    assert {c["id"] for c in json.loads(csuctl(platform, "list", "--json").stdout)} == {"demo-1", "demo-2"}
    done = csuctl(platform, "import", str(tmp_path / "good.csv"))
    assert done.returncode == 0 and "created 1, updated 1" in done.stdout, done.stderr
    listed = json.loads(csuctl(platform, "list", "--json").stdout)
    assert {c["id"] for c in listed} == {"demo-1", "demo-2", "demo-9"}

    leases = wait_for(
        lambda: (
            (d := json.loads(csuctl(platform, "leases", "--json").stdout))
            and {x["key"] for x in d["leases"]} >= {"demo-1", "demo-2", "demo-9"}
            and d
        ),
        60,
        "the imported camera held by a replica",
    )
    assert len(leases["replicas"]) == 1
    assert {x["owner"] for x in leases["leases"]} == set(leases["replicas"])

    events = asyncio.run(audit_events(platform.env["CSU_NATS_URL"], platform.nats_prefix))
    actions = [(e.action, e.actor.startswith("csuctl:")) for e in events]
    assert ("config.cameras.export", True) in actions and ("config.cameras.import", True) in actions
    # Audited before acting: the import. A dry run, or an import the commissioning gate refused
    # before ingest was asked, changes nothing and is not (as through the gateway).
    assert actions.count(("config.cameras.import", True)) == 1
