"""`kubectl csu ...` becomes `kubectl exec deploy/<release>-csu-gateway -- csuctl ...`: checked with a
kubectl stand-in that records what it is asked (the real one is exercised on a cluster: chart README)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = [sys.executable, "-m", "services.csuctl.kubectl_plugin"]


def kubectl(tmp_path: Path, gateways: str) -> Path:
    """A kubectl that logs its arguments and lists `gateways` as the namespace's CSU gateways."""
    script = tmp_path / "kubectl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp_path / "calls"}\n'
        f'case "$*" in *"get deployments"*) printf "{gateways}";; *exec*) echo "csuctl ran";; esac\n'
    )
    script.chmod(0o755)
    return script


def run(tmp_path: Path, gateways: str, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    env = {**os.environ, "KUBECTL": str(kubectl(tmp_path, gateways))}
    done = subprocess.run(
        [*PLUGIN, *args], capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL
    )
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return done, calls


def test_runs_csuctl_in_the_only_gateway_of_the_namespace(tmp_path: Path) -> None:
    done, calls = run(tmp_path, "deployment.apps/city-csu-gateway\\n", "-n", "csu", "health", "--json")
    assert done.returncode == 0, done.stderr
    assert calls[0] == "--namespace csu get deployments -l " + (
        "app.kubernetes.io/name=csu,app.kubernetes.io/component=gateway -o name"
    )
    assert calls[1] == "--namespace csu exec -i deploy/city-csu-gateway -c gateway -- csuctl health --json"
    assert "csuctl ran" in done.stdout


def test_a_named_release_and_context(tmp_path: Path) -> None:
    done, calls = run(tmp_path, "", "--context", "prod", "--release", "ville", "audit", "verify")
    assert done.returncode == 0, done.stderr
    assert calls == ["--context prod exec -i deploy/ville-csu-gateway -c gateway -- csuctl audit verify"]


@pytest.mark.parametrize(
    ("gateways", "message"),
    [
        ("", "no CSU gateway in this namespace"),
        ("deployment.apps/a-csu-gateway\\ndeployment.apps/b-csu-gateway\\n", "2 CSU gateways"),
    ],
)
def test_no_guess_when_the_gateway_is_not_one(tmp_path: Path, gateways: str, message: str) -> None:
    done, calls = run(tmp_path, gateways, "health")
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert not [c for c in calls if " exec " in f" {c} "], "nothing runs on a guessed pod"
