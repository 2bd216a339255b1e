"""The Helm chart, rendered by Helm's own engine under every ci/*-values.yaml, linted, checked against
Kubernetes' schemas, and read for what ops and auditors rely on: Pod Security "restricted", probes
and resources, the NetworkPolicies of the privacy boundary, the NATS permissions (also enforced by a
real nats-server booted with the rendered accounts), Secrets only by reference, and bad values
refused with a message naming them."""

import asyncio
import ipaddress
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import helm_python as helm
import kubernetes_validate
import nats
import nats.errors
import pytest
import yaml
from nats.aio.client import Client
from nats.js.api import StreamConfig

from services.archive.intake import CameraIntake
from services.common import bus, subjects
from services.common.leases import LeaseManager
from services.common.settings import Settings
from services.common.signing import Signer, rotate
from services.csuctl.capacity import DEFAULT_FIGURES, parse_profile, plan
from tests.support import chart as chart_support
from tests.support.platform import Platform, until, wait_for
from tests.support.servers import S3Server, free_port

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "csu"
CI_VALUES = {
    p.name.removesuffix("-values.yaml"): yaml.safe_load(p.read_text()) for p in sorted(CHART.glob("ci/*-values.yaml"))
}
# The one-node value set ships beside values.yaml (ops install with it); it names no Secret of its own.
SMALL = yaml.safe_load((CHART / "values-small.yaml").read_text())
CI_VALUES["small"] = {**SMALL, "secrets": {"signingKey": {"existingSecret": "csu-signing-key"}}}
KUBERNETES = ("1.31.0", "1.33.0")
SERVICES = ("ingest", "masking", "archive", "requisition", "gateway")
COMPONENT = "app.kubernetes.io/component"
SIGNING = {"secrets": {"signingKey": {"existingSecret": "csu-signing-key"}}}
# Kinds of the Prometheus operator: no built-in schema; their shape is checked below, and the alert
# rules by Prometheus' own promtool (unpacked into the venv by `make test`).
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
PROMTOOL = Path(sys.executable).parent / "promtool"


def render(values: dict | None = None, chart: Path = CHART) -> list[dict]:
    return chart_support.render(values, chart)


def notes(values: dict) -> str:
    manifests = helm.Chart.load(CHART).render(values, name="city", namespace="csu", is_install=True)
    return manifests["csu/templates/NOTES.txt"]


@dataclass
class Release:
    name: str
    values: dict  # merged with the chart's defaults
    docs: list[dict]

    def kind(self, kind: str) -> dict[str, dict]:
        return {d["metadata"]["name"]: d for d in self.docs if d["kind"] == kind}

    def workloads(self) -> list[dict]:
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]

    def pod_labels(self) -> dict[str, dict[str, str]]:
        return {
            w["spec"]["template"]["metadata"]["labels"][COMPONENT]: w["spec"]["template"]["metadata"]["labels"]
            for w in self.workloads()
        }

    def service(self, name: str) -> dict:
        """The workload running a service: a Deployment, or the archive's StatefulSet (a spool per pod)."""
        return {**self.kind("Deployment"), **self.kind("StatefulSet")}[f"city-csu-{name}"]

    def nats_permissions(self) -> dict:
        return json.loads(self.kind("ConfigMap")["city-csu-nats"]["data"]["permissions.json"])


@pytest.fixture(scope="module", params=sorted(CI_VALUES))
def release(request: pytest.FixtureRequest) -> Release:
    values = CI_VALUES[request.param]
    merged = helm.Chart.load(CHART).merge_values(values)
    return Release(request.param, merged, render(values))


# --- NetworkPolicy evaluation -----------------------------------------------------------------


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value, operator = labels.get(expression["key"]), expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def rules(release: Release, labels: dict[str, str], direction: str) -> list[dict]:
    """Every ingress or egress rule that applies to pods with these labels."""
    found = []
    for policy in release.kind("NetworkPolicy").values():
        spec = policy["spec"]
        if selects(spec["podSelector"], labels) and direction.capitalize() in spec["policyTypes"]:
            found.extend(spec.get(direction) or [])
    return found


def peers(rule: dict, direction: str) -> list[dict] | None:
    """None means every source/destination."""
    return rule.get("from" if direction == "ingress" else "to")


def ports(rule: dict) -> set[int] | None:
    return None if not rule.get("ports") else {p["port"] for p in rule["ports"]}


def in_namespace_pods(peer: dict) -> bool:
    return set(peer) == {"podSelector"}


def components_allowed(release: Release, target: dict[str, str], port: int) -> set[str]:
    """Components of this release whose pods the target's ingress rules admit on this port."""
    allowed = set()
    for rule in rules(release, target, "ingress"):
        if ports(rule) is not None and port not in ports(rule):
            continue
        for component, labels in release.pod_labels().items():
            sources = peers(rule, "ingress")
            if sources is None or any(in_namespace_pods(p) and selects(p["podSelector"], labels) for p in sources):
                allowed.add(component)
    return allowed


def egress_ports(release: Release, component: str) -> set[int | None]:
    return {
        port for rule in rules(release, release.pod_labels()[component], "egress") for port in (ports(rule) or {None})
    }


# --- Helm's lint and Kubernetes' schemas --------------------------------------------------------


def test_the_ci_value_sets_cover_the_issues_scenarios() -> None:
    assert set(CI_VALUES) >= {"external", "bundled-nats", "autoscaling", "federation"}
    assert CI_VALUES["external"]["nats"]["external"]["url"]
    assert not CI_VALUES["bundled-nats"].get("nats", {}).get("external")
    assert CI_VALUES["autoscaling"]["services"]["masking"]["autoscaling"]["enabled"]
    assert CI_VALUES["federation"]["federation"]["enabled"]


@pytest.mark.parametrize("name", sorted(CI_VALUES))
def test_chart_lints_strictly(name: str) -> None:
    report = helm.lint(CHART, CI_VALUES[name], strict=True, kube_version="v1.31.0")
    assert not report["errors"], report
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


def test_every_manifest_is_valid_kubernetes(release: Release) -> None:
    kinds = {d["kind"] for d in release.docs}
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Job"} <= kinds
    for doc in release.docs:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in KUBERNETES:
            kubernetes_validate.validate(doc, version, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "city"
    for monitor in release.kind("ServiceMonitor").values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
        scraped = {
            s["metadata"]["labels"][COMPONENT]
            for s in release.kind("Service").values()
            if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
        }
        assert scraped == set(SERVICES)
    assert bool(release.kind("ServiceMonitor")) == release.values["metrics"]["serviceMonitor"]["enabled"]
    assert bool(release.kind("PrometheusRule")) == release.values["metrics"]["prometheusRule"]["enabled"]
    for rule in release.kind("PrometheusRule").values():
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        assert rule["metadata"]["labels"].items() >= release.values["metrics"]["prometheusRule"]["labels"].items()


# --- Alerts for ops ----------------------------------------------------------------------------

ALERTING = {**SIGNING, "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}


def alert_groups(values: dict) -> dict:
    (rule,) = [d for d in render(values) if d["kind"] == "PrometheusRule"]
    return rule["spec"]


def promtool(workdir: Path, *args: str) -> str:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: `make test` unpacks it from Debian's prometheus package"
    done = subprocess.run([str(PROMTOOL), *args], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def series(name: str, values: str, service: str = "archive") -> dict:
    labels = f'namespace="csu", service="city-csu-{service}", pod="city-csu-{service}-0", job="city-csu-{service}"'
    return {"series": f"{name}{{{labels}}}", "values": values}


def expect(groups: dict, alert: str, at: str, firing: list[dict[str, str]]) -> dict:
    """An alert_rule_test: which `alert` instances fire at `at`, with the annotations the chart gives them."""
    rules = [r for g in groups["groups"] for r in g["rules"] if r["alert"] == alert]
    alerts = []
    for labels in firing:
        (rule,) = [r for r in rules if all(r["labels"].get(k, v) == v for k, v in labels.items())]
        alerts.append({"exp_labels": rule["labels"] | labels, "exp_annotations": rule["annotations"]})
    return {"eval_time": at, "alertname": alert, "exp_alerts": alerts}


def test_alert_rules_pass_prometheus_own_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(alert_groups(ALERTING)))
    assert "SUCCESS: 10 rules found" in promtool(tmp_path, "check", "rules", "rules.yaml")


def test_ops_are_alerted_to_footage_nothing_looks_after(tmp_path: Path) -> None:
    """Evaluated by Prometheus' engine on series shaped as the ServiceMonitor scrapes them: an
    archive scaled to 0 (its spool then keeps footage nothing deletes), a store outage that pauses
    recording and outlasts the retention, deletion proofs owed while the database is away, and a hash
    chain's head that cannot be published outside the database."""
    groups = alert_groups(ALERTING)
    others = [series("up", "1x120", name) for name in SERVICES if name != "archive"]
    down = {"csu_service": "archive"}
    scenarios = [
        {  # scaled to 0 at 20 min: no target, no `up`
            "interval": "1m",
            "input_series": [*others, series("up", "1x20 _x100")],
            "alert_rule_test": [
                expect(groups, "CsuServiceDown", "24m", []),
                expect(groups, "CsuServiceDown", "40m", [down]),
            ],
        },
        {  # the store away from 2 min: failures, a backlog, the spool full at 6 min, footage expired at 11 min
            "interval": "1m",
            "input_series": [
                *others,
                series("up", "1x60"),
                series("csu_archive_store_failures_total", "0x2 1+1x40"),
                series("csu_archive_backlog_segments", "0x2 5x40"),
                series("csu_archive_recording_paused", "0x5 1x30"),
                series("csu_archive_spool_expired_total", "0x10 3x30"),
            ],
            "alert_rule_test": [
                expect(groups, "CsuArchiveRecordingPaused", "4m", []),
                expect(groups, "CsuArchiveRecordingPaused", "10m", [{}]),
                expect(groups, "CsuArchiveStoreFailing", "5m", []),
                expect(groups, "CsuArchiveStoreFailing", "15m", [{}]),
                expect(groups, "CsuArchiveFootageExpiredUnstored", "9m", []),
                expect(groups, "CsuArchiveFootageExpiredUnstored", "15m", [{}]),
                expect(groups, "CsuServiceDown", "30m", []),
            ],
        },
        {  # the anchors bucket unwritable from 5 min: the audit trail's head is not published
            "interval": "1m",
            "input_series": [
                *others,
                series("up", "1x60"),
                {
                    "series": 'csu_chain_anchor_failures_total{namespace="csu", service="city-csu-gateway", '
                    'pod="city-csu-gateway-0", job="city-csu-gateway", chain="audit"}',
                    "values": "0x5 1+1x60",
                },
            ],
            "alert_rule_test": [
                expect(groups, "CsuChainHeadNotPublished", "15m", []),
                {
                    "eval_time": "30m",
                    "alertname": "CsuChainHeadNotPublished",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "service": "city-csu-gateway", "chain": "audit"},
                            "exp_annotations": {
                                "summary": "The audit chain's head is not signed or published outside the database",
                                "description": next(
                                    r["annotations"]["description"]
                                    for g in groups["groups"]
                                    for r in g["rules"]
                                    if r["alert"] == "CsuChainHeadNotPublished"
                                ),
                            },
                        }
                    ],
                },
            ],
        },
        {  # the database away: proofs owed from 2 min, for more than an hour
            "interval": "1m",
            "input_series": [*others, series("up", "1x90"), series("csu_archive_unproved_deletions", "0x2 4x90")],
            "alert_rule_test": [
                expect(groups, "CsuArchiveDeletionProofsOwed", "30m", []),
                expect(groups, "CsuArchiveDeletionProofsOwed", "70m", [{}]),
            ],
        },
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": scenarios}))
    assert "SUCCESS" in promtool(tmp_path, "test", "rules", "tests.yaml")


# --- Workloads --------------------------------------------------------------------------------


def test_one_deployment_per_service_with_probes_resources_and_spread(release: Release) -> None:
    deployments = release.kind("Deployment")
    assert set(deployments) == {f"city-csu-{s}" for s in SERVICES if s != "archive"}
    services = release.kind("Service")
    for name in SERVICES:
        deployment = release.service(name)
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert selects(spread["labelSelector"], deployment["spec"]["template"]["metadata"]["labels"])
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert services[f"city-csu-{name}"]["spec"]["selector"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for workload in release.workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (workload["metadata"]["name"], kind)
            # A Job's container runs to completion: probes would only kill a long migration.
            if workload["kind"] != "Job":
                assert container["readinessProbe"] and container["livenessProbe"], workload["metadata"]["name"]


def test_the_archive_spool_outlives_its_pod(release: Release) -> None:
    """Segments spooled while the store is away must survive a rollout: a claim per replica, one writer each."""
    archive = release.kind("StatefulSet")["city-csu-archive"]
    pod = archive["spec"]["template"]["spec"]
    assert "data" not in {v["name"] for v in pod["volumes"]}  # from the claim template, one per pod
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "data"]
    assert mount["mountPath"] == "/data"
    (claim,) = archive["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == release.values["services"]["archive"]["dataSizeLimit"]
    # Claim templates are immutable: no label that changes with the chart's version.
    assert not {"helm.sh/chart", "app.kubernetes.io/version"} & set(claim["metadata"]["labels"])
    assert archive["spec"]["replicas"] == release.values["services"]["archive"]["replicas"]
    # A rolling update, one pod at a time; the claims go with the release, stay when scaled down.
    assert archive["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    assert archive["spec"]["podManagementPolicy"] == "Parallel"
    assert archive["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    assert archive["spec"]["serviceName"] in release.kind("Service")
    assert not release.kind("PersistentVolumeClaim")
    for name in set(SERVICES) - {"archive"}:
        deployment = release.kind("Deployment")[f"city-csu-{name}"]
        assert "strategy" not in deployment["spec"], name  # rolling updates: replicas share by leases
        assert all("persistentVolumeClaim" not in v for v in deployment["spec"]["template"]["spec"]["volumes"])

    assert "storageClassName" not in claim["spec"]  # the cluster's default
    classed = render({**SIGNING, "services": {"archive": {"spool": {"persistent": True, "storageClassName": "ssd"}}}})
    (archive,) = [d for d in classed if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "city-csu-archive"]
    assert [c["spec"]["storageClassName"] for c in archive["spec"]["volumeClaimTemplates"]] == ["ssd"]

    # Replicas share the cameras (leases): three pods, three spools, a budget of one down at a time.
    three = render({**SIGNING, "services": {"archive": {"replicas": 3}}})
    (archive,) = [d for d in three if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "city-csu-archive"]
    assert archive["spec"]["replicas"] == 3 and len(archive["spec"]["volumeClaimTemplates"]) == 1
    (budget,) = [d for d in three if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "city-csu-archive"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert selects(budget["spec"]["selector"], archive["spec"]["template"]["metadata"]["labels"])

    disposable = render({**SIGNING, "services": {"archive": {"spool": {"persistent": False}}}})
    assert not [
        d
        for d in disposable
        if d["kind"] in ("PersistentVolumeClaim", "StatefulSet") and "archive" in d["metadata"]["name"]
    ]
    (archive,) = [d for d in disposable if d["kind"] == "Deployment" and d["metadata"]["name"] == "city-csu-archive"]
    (data,) = [v for v in archive["spec"]["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert data["emptyDir"] == {"sizeLimit": "4Gi"} and "strategy" not in archive["spec"]


def test_the_masked_frame_buffer_is_sized_by_values(release: Release) -> None:
    env = release.kind("ConfigMap")["city-csu-env"]["data"]
    buffer = release.values["nats"]["maskedBuffer"]
    assert env["CSU_MASKED_BUFFER_S"] == str(buffer["seconds"])
    assert env["CSU_MASKED_BUFFER_MAX_BYTES"] == str(buffer["maxGiB"] * 1024**3)
    settings = Settings(
        masked_buffer_s=env["CSU_MASKED_BUFFER_S"], masked_buffer_max_bytes=env["CSU_MASKED_BUFFER_MAX_BYTES"]
    )  # type: ignore[call-arg]
    assert settings.masked_buffer_max_bytes == buffer["maxGiB"] * 1024**3
    if not release.values["nats"]["external"]["url"]:
        # The bundled cluster's JetStream holds the buffer beside the events and buckets.
        store = release.values["nats"]["cluster"]["jetstream"]["fileStore"]
        assert int(store.rstrip("G")) > buffer["maxGiB"], (store, buffer)
        # The frames flowing through leave garbage in the server's heap: collected below its memory limit.
        nats_set = release.kind("StatefulSet")["city-csu-nats"]
        (container,) = nats_set["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}

        def size(text: str) -> int:
            number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", text).groups()  # type: ignore[union-attr]
            return int(number) * units.get(unit, 1)

        assert size(env["GOMEMLIMIT"]) < size(container["resources"]["limits"]["memory"])


def test_pod_security_restricted_everywhere(release: Release) -> None:
    workloads = release.workloads()
    assert {w["kind"] for w in workloads} >= {"Deployment", "Job"}
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        assert not (pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC")), name
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v], name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert not context.get("privileged"), name
            assert context.get("runAsUser", 1) != 0, name


def test_disruption_budgets_and_autoscalers(release: Release) -> None:
    budgets = release.kind("PodDisruptionBudget")
    for deployment in [*release.kind("Deployment").values(), release.service("archive")]:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets.values() if selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert matching[0]["spec"]["maxUnavailable"] >= 1, "a budget of 0 would block node drains"
    autoscalers = release.kind("HorizontalPodAutoscaler")
    for name in SERVICES:
        enabled = release.values["services"][name].get("autoscaling", {}).get("enabled", False)
        deployment = release.service(name)
        assert (f"city-csu-{name}" in autoscalers) == enabled
        # With an autoscaler, the Deployment leaves the replica count to it.
        assert ("replicas" in deployment["spec"]) == (not enabled)
        if enabled:
            hpa = autoscalers[f"city-csu-{name}"]["spec"]
            assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"city-csu-{name}"}
            (metric,) = hpa["metrics"]
            assert metric["resource"]["name"] == "cpu"
    assert set(autoscalers) <= {"city-csu-ingest", "city-csu-masking"}
    if release.name == "autoscaling":
        assert set(autoscalers) == {"city-csu-ingest", "city-csu-masking"}


def cpu_millis(value: str | int | float) -> int:
    text = str(value)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def memory_mib(value: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return next(float(value[: -len(u)]) * f for u, f in units.items() if value.endswith(u))


def requested(release: Release) -> tuple[int, float]:
    """CPU (millicores) and memory (MiB) the running release asks for: every replica of every
    Deployment and StatefulSet (an autoscaled Deployment at its minimum); the Job runs before them."""
    cpu, memory = 0, 0.0
    autoscalers = release.kind("HorizontalPodAutoscaler")
    for workload in release.docs:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = workload["metadata"]["name"]
        replicas = workload["spec"].get("replicas") or autoscalers[name]["spec"]["minReplicas"]
        for container in workload["spec"]["template"]["spec"]["containers"]:
            cpu += replicas * cpu_millis(container["resources"]["requests"]["cpu"])
            memory += replicas * memory_mib(container["resources"]["requests"]["memory"])
    return cpu, memory


def release_of(name: str, values: dict) -> Release:
    return Release(name, helm.Chart.load(CHART).merge_values(values), render(values))


def test_the_small_values_fit_one_node_of_two_cores() -> None:
    """values-small.yaml: the release's requests leave a 2-core node room for Kubernetes' own pods
    (~0.7 core), each limit fits the node, and nothing autoscales on a node that cannot grow."""
    release = release_of("small", CI_VALUES["small"])
    cpu, memory = requested(release)
    assert cpu <= 1000, f"{cpu}m requested: a 2-core node keeps ~700m for the control plane and DNS"
    assert memory <= 2048, f"{memory} MiB requested"
    assert not release.kind("HorizontalPodAutoscaler")
    assert release.kind("StatefulSet")["city-csu-nats"]["spec"]["replicas"] == 1
    for workload in release.workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert cpu_millis(container["resources"]["limits"]["cpu"]) <= 2000, workload["metadata"]["name"]
    masking = release.kind("Deployment")["city-csu-masking"]["spec"]["template"]["spec"]["containers"][0]
    assert cpu_millis(masking["resources"]["requests"]["cpu"]) < 1000


def test_production_defaults_follow_the_capacity_plan() -> None:
    """The defaults: masking scales on CPU up to what `csuctl capacity` plans from the bench's
    figures for 128 cameras burned in (README "Sizing"), ingest and the gateway run two replicas
    each, the archive one, NATS three members."""
    city = plan(json.loads(DEFAULT_FIGURES.read_text()), 128, parse_profile("1080p25"))
    release = release_of("defaults", SIGNING)
    hpa = release.kind("HorizontalPodAutoscaler")["city-csu-masking"]["spec"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu" and hpa["minReplicas"] >= 2
    assert hpa["maxReplicas"] >= city.masking_pods_at_2_cores, "the HPA cannot reach the capacity plan"
    deployments = release.kind("Deployment")
    assert "replicas" not in deployments["city-csu-masking"]["spec"]
    assert deployments["city-csu-ingest"]["spec"]["replicas"] == 2
    assert deployments["city-csu-gateway"]["spec"]["replicas"] == 2
    sets = release.kind("StatefulSet")
    assert sets["city-csu-archive"]["spec"]["replicas"] == 1
    assert sets["city-csu-nats"]["spec"]["replicas"] == 3


def test_migrations_run_once_in_a_hook_before_the_services(release: Release) -> None:
    (job,) = release.kind("Job").values()
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.csuctl", "db", "migrate"]
    # The hook runs before the release's ConfigMap exists: it must not depend on it.
    assert "envFrom" not in container
    env = {e["name"]: e for e in container["env"]}
    database = release.values["database"]
    assert env["CSU_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": database["existingSecret"],
        "key": database["key"],
    }
    assert release.kind("ConfigMap")["city-csu-env"]["data"]["CSU_DB_AUTO_MIGRATE"] == "false"


def test_settings_passed_to_the_services_exist() -> None:
    """Every CSU_* variable the chart sets is a setting of services/common/settings.py."""
    known = {f"CSU_{name.upper()}" for name in Settings.model_fields}
    # Named by the issue; other engineers are adding them. Checked as soon as they exist.
    pending = {"CSU_FEDERATION_CA_FILE", "CSU_SMTP_URL"} - known
    for values in CI_VALUES.values():
        docs = render(values)
        names = {
            k for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "city-csu-env" for k in d["data"]
        }
        for workload in (d for d in docs if d["kind"] in ("Deployment", "Job")):
            for container in workload["spec"]["template"]["spec"]["containers"]:
                names |= {e["name"] for e in container.get("env", [])}
        unknown = {n for n in names if n.startswith("CSU_")} - known - pending
        assert not unknown, f"the chart sets variables no setting reads: {unknown}"
        # `make run`'s demonstration account is no deployment's (services/gateway/demo.py).
        assert "CSU_DEMO_OPERATOR_PASSWORD" not in names


def test_the_gateway_believes_forwarded_headers_from_the_ingress_only() -> None:
    """CSU_TRUSTED_PROXIES and CSU_ALLOWED_ORIGINS as rendered are settings the gateway accepts."""

    def env(values: dict) -> dict[str, str]:
        docs = render(values)
        return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "city-csu-env")["data"]

    plain = env(SIGNING)
    assert plain["CSU_TRUSTED_PROXIES"] == "" and plain["CSU_ALLOWED_ORIGINS"] == ""
    behind = env(CI_VALUES["federation"])
    assert behind["CSU_TRUSTED_PROXIES"] == "10.42.0.0/16"
    assert behind["CSU_ALLOWED_ORIGINS"] == "https://csu.ville.example"
    settings = Settings(trusted_proxies=behind["CSU_TRUSTED_PROXIES"], allowed_origins=behind["CSU_ALLOWED_ORIGINS"])
    assert settings.trusted_proxy_list == ["10.42.0.0/16"]
    assert settings.allowed_origin_set == {"https://csu.ville.example"}
    for bad in ("*", "ingress.local"):
        with pytest.raises(ValueError, match="not an IP address"):
            Settings(trusted_proxies=bad)


# --- Secrets ----------------------------------------------------------------------------------


def test_secrets_only_by_reference_and_mounted_as_files(release: Release) -> None:
    assert not release.kind("Secret"), "the chart must only reference existing Secrets"
    v = release.values
    named = {
        v["secrets"]["signingKey"]["existingSecret"],
        v["secrets"]["secretsKey"]["existingSecret"],
        v["database"]["existingSecret"],
        v["objectStore"]["existingSecret"],
        v["nats"]["auth"]["existingSecret"],
        v["federation"]["caSecret"],
        v["smtp"]["existingSecret"],
        v["gateway"]["bootstrapAdmin"]["existingSecret"],
    } - {""}
    for workload in release.workloads():
        pod = workload["spec"]["template"]["spec"]
        component = workload["spec"]["template"]["metadata"]["labels"][COMPONENT]
        for container in pod["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            for variable in env.values():
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in named, (component, ref)
                elif re.search(r"PASSWORD|SECRET|ACCESS_KEY|DATABASE_URL|SMTP_URL", variable["name"]):
                    # A literal is only ever the path of a mounted Secret file.
                    assert variable["name"].endswith("_FILE"), (component, variable)
                    assert variable["value"].startswith("/secrets/"), (component, variable)
            mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
            for volume in pod.get("volumes", []):
                projected = [source.get("secret") for source in volume.get("projected", {}).get("sources", [])]
                secret_names = [volume["secret"]["secretName"]] if "secret" in volume else []
                secret_names += [source["name"] for source in projected if source]
                if secret_names:
                    assert set(secret_names) <= named, (component, volume)
                    assert mounts[volume["name"]]["mountPath"].startswith("/secrets/")
                    assert mounts[volume["name"]]["readOnly"] is True
            if component in SERVICES:
                signing = v["secrets"]["signingKey"]
                if component in signing["consumers"]:
                    path = env["CSU_SIGNING_KEY_FILE"]["value"]
                    assert path == f"{mounts['signing-key']['mountPath']}/{signing['key']}"
                else:
                    assert "CSU_SIGNING_KEY_FILE" not in env
                assert ("CSU_DATABASE_URL" in env) == (component in v["database"]["clients"])
                assert ("CSU_S3_SECRET_KEY" in env) == (component in v["objectStore"]["clients"])
                assert ("CSU_FEDERATION_CA_FILE" in env) == (component == "gateway" and v["federation"]["enabled"])
                assert ("CSU_SMTP_URL" in env) == (
                    bool(v["smtp"]["existingSecret"]) and component in v["smtp"]["consumers"]
                )
    for configmap in release.kind("ConfigMap").values():
        for key, value in configmap["data"].items():
            assert "PASSWORD" not in key and "SECRET" not in key, key
            assert "://" not in value or "@" not in value.split("://", 1)[1], f"{key}: credentials in a ConfigMap"


def materialize(volume: dict, configmaps: dict[str, dict], secrets: dict[str, dict[str, bytes]], root: Path) -> None:
    """Write a projected volume's files under root, as the kubelet lays them out."""
    for source in volume["projected"]["sources"]:
        if "secret" in source:
            data = secrets[source["secret"]["name"]]
            items = {i["key"]: i["path"] for i in source["secret"]["items"]}
        else:
            data = {k: v.encode() for k, v in configmaps[source["configMap"]["name"]]["data"].items()}
            items = {i["key"]: i["path"] for i in source["configMap"]["items"]}
        for key, path in items.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data[key])


def test_signatures_of_rotated_out_keys_stay_verifiable_in_the_pods(tmp_path: Path) -> None:
    """A key rotated as `csuctl keys rotate` does: the new private key goes into the Secret, the old
    public half into values, and the chart projects it into <key file>.retired/ next to the key,
    where the services' keyring reads it (the keyring the register and audit checks use)."""
    key_file = tmp_path / "ops" / "signing-key.pem"
    key_file.parent.mkdir()
    Signer.generate(key_file)
    old = Signer.from_file(key_file)
    signed_before = old.sign(b"register entry 1")
    rotation = rotate(key_file)
    retired = [rotation.retired_file.read_text()]
    docs = render({"secrets": {"signingKey": {"existingSecret": "csu-signing-key", "retiredPublicKeys": retired}}})
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    secrets = {"csu-signing-key": {"signing-key.pem": key_file.read_bytes()}}
    consumers = set()
    # The services' workloads: Deployments, and the archive's StatefulSet (a spool per replica).
    for deployment in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        if "signing-key" not in volumes:
            continue
        component = deployment["spec"]["template"]["metadata"]["labels"][COMPONENT]
        consumers.add(component)
        container = pod["containers"][0]
        mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "signing-key")
        env = {e["name"]: e.get("value") for e in container["env"]}
        root = tmp_path / component
        materialize(volumes["signing-key"], configmaps, secrets, root)
        pod_key_file = root / Path(env["CSU_SIGNING_KEY_FILE"]).relative_to(mount)
        keyring = Signer.from_file(pod_key_file).keyring()
        assert keyring.verify(b"register entry 1", signed_before, key_fingerprint=old.fingerprint), component
        assert Signer.from_file(pod_key_file).fingerprint == rotation.new_fingerprint
    assert consumers == {"gateway", "requisition", "archive"}
    # Without the retired key in values, the old signature is refused: the projection is what carries it.
    docs = render({"secrets": {"signingKey": {"existingSecret": "csu-signing-key"}}})
    gateway = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-gateway"))
    volume = next(v for v in gateway["spec"]["template"]["spec"]["volumes"] if v["name"] == "signing-key")
    materialize(volume, {}, secrets, tmp_path / "unrotated")
    keyring = Signer.from_file(tmp_path / "unrotated" / "signing-key.pem").keyring()
    assert not keyring.verify(b"register entry 1", signed_before, key_fingerprint=old.fingerprint)


# --- NetworkPolicies: the privacy boundary -----------------------------------------------------


def test_everything_is_denied_unless_a_policy_allows_it(release: Release) -> None:
    default_deny = [
        p
        for p in release.kind("NetworkPolicy").values()
        if not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    assert default_deny
    for component, labels in release.pod_labels().items():
        assert any(selects(p["spec"]["podSelector"], labels) for p in default_deny), component
        # DNS, and nothing broader than the configured DNS peers on port 53.
        dns = [r for r in rules(release, labels, "egress") if ports(r) == {53}]
        assert dns and all(peers(r, "egress") == release.values["networkPolicy"]["dns"] for r in dns)


def test_only_the_gateway_is_reachable_from_outside_the_namespace(release: Release) -> None:
    monitoring = release.values["metrics"]["serviceMonitor"]["enabled"]
    for component, labels in release.pod_labels().items():
        for rule in rules(release, labels, "ingress"):
            sources = peers(rule, "ingress")
            if sources is not None and all(in_namespace_pods(p) for p in sources):
                continue
            if component == "gateway":
                assert ports(rule) == {8080}
                assert sources in (
                    release.values["gateway"]["networkPolicy"]["from"] or None,
                    monitoring and release.values["metrics"]["networkPolicy"]["from"],
                )
            else:
                # The one exception: Prometheus on the HTTP port, only when it is asked for.
                assert monitoring and component in SERVICES, (component, rule)
                assert ports(rule) == {8180} and sources == release.values["metrics"]["networkPolicy"]["from"]
    gateway_ingress = rules(release, release.pod_labels()["gateway"], "ingress")
    assert any(ports(r) == {8080} for r in gateway_ingress)


def test_only_ingest_reaches_the_camera_network(release: Release) -> None:
    cameras = [ipaddress.ip_network(c) for c in release.values["cameraNetwork"]["cidrs"]]
    ingest = rules(release, release.pod_labels()["ingest"], "egress")
    if cameras:
        reached = {
            ipaddress.ip_network(p["ipBlock"]["cidr"])
            for r in ingest
            for p in peers(r, "egress") or []
            if "ipBlock" in p
        }
        assert reached >= set(cameras)
    for component, labels in release.pod_labels().items():
        if component == "ingest":
            continue
        for rule in rules(release, labels, "egress"):
            destinations = peers(rule, "egress")
            # "Anywhere" would include the cameras: every other egress names its destination.
            assert destinations is not None, (component, rule)
            for peer in destinations:
                if "ipBlock" in peer:
                    network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    assert not [c for c in cameras if c.overlaps(network)], (component, peer)


def object_store_port(values: dict) -> int:
    """The port the object store's pods listen on: configured, or the endpoint's."""
    endpoint = urlsplit(values["objectStore"]["endpoint"])
    return (
        values["objectStore"]["networkPolicy"].get("port")
        or endpoint.port
        or (443 if endpoint.scheme == "https" else 80)
    )


def test_database_and_object_store_only_from_their_owners(release: Release) -> None:
    v = release.values
    store_port = object_store_port(v)
    owners = {
        v["database"]["port"]: set(v["database"]["clients"]) | {"migrate"},
        store_port: set(v["objectStore"]["clients"]),
    }
    assert owners[v["database"]["port"]] == {"archive", "ingest", "masking", "requisition", "gateway", "migrate"}
    # Masking writes redacted clips (already masked) for citizens' access; the gateway publishes the
    # audit trail's signed heads to the anchors bucket (services/common/anchoring.py).
    assert owners[store_port] == {"archive", "requisition", "masking", "gateway"}
    for port, clients in owners.items():
        reaching = {c for c in release.pod_labels() if port in egress_ports(release, c)}
        assert reaching == clients, port
    # Server side, when the database or the store runs in this namespace (CloudNativePG, MinIO).
    for section, port in (("database", v["database"]["port"]), ("objectStore", store_port)):
        server = v[section]["networkPolicy"]["server"]
        if not server["podSelector"]:
            continue
        assert components_allowed(release, server["podSelector"]["matchLabels"], port) == owners[port], section


def test_grpc_and_nats_paths(release: Release) -> None:
    labels = release.pod_labels()
    assert components_allowed(release, labels["ingest"], 50051) == {"gateway", "archive", "masking"}
    assert components_allowed(release, labels["masking"], 50052) == {"gateway", "requisition"}
    assert components_allowed(release, labels["archive"], 50053) == {"gateway", "requisition", "masking"}
    assert components_allowed(release, labels["requisition"], 50054) == {"gateway"}
    for component in ("requisition", "gateway"):
        assert components_allowed(release, labels[component], 50051) == set(), component
    # The gateway asks every service's readiness (`csuctl health` in its pod), and nothing else does.
    for component in set(SERVICES) - {"gateway"}:
        assert components_allowed(release, labels[component], 8180) == {"gateway"}, component
    assert 8180 in egress_ports(release, "gateway")
    nats_port = 4222
    for component in SERVICES:
        assert nats_port in egress_ports(release, component), component
    # Masking reads raw frames: besides NATS it reaches only its database, the registry and the
    # archive (gRPC), the object store (redacted clips), DNS and telemetry; never the cameras.
    v = release.values
    otel = {4317} if v["otel"]["endpoint"] else set()
    allowed = {nats_port, v["database"]["port"], 53, 50051, 50053, object_store_port(v)} | otel
    assert egress_ports(release, "masking") <= allowed
    if "nats" in labels:
        assert components_allowed(release, labels["nats"], 4222) == set(SERVICES)
        assert components_allowed(release, labels["nats"], 6222) == {"nats"}


def test_the_helm_test_pod_logs_in_through_the_gateway(release: Release) -> None:
    """`helm test`: one hook Pod, restricted like every pod, running `csuctl smoke` against the
    gateway's Service, with the NetworkPolicies it needs (the gateway's port, NATS, the database)."""
    (pod,) = release.kind("Pod").values()
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["command"][:4] == ["python", "-m", "services.csuctl", "smoke"]
    assert container["command"][-1] == "http://city-csu-gateway:8080"
    assert "city-csu-gateway" in release.kind("Service")
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    labels = pod["metadata"]["labels"]
    egress = {port for rule in rules(release, labels, "egress") for port in (ports(rule) or {None})}
    assert {8080, release.values["database"]["port"], 53} <= egress
    admitted = [
        r
        for r in rules(release, release.pod_labels()["gateway"], "ingress")
        if ports(r) == {8080}
        and (
            peers(r, "ingress") is None
            or any(in_namespace_pods(p) and selects(p["podSelector"], labels) for p in peers(r, "ingress"))
        )
    ]
    assert admitted, "the gateway admits the test Pod"


# --- NATS: only masking reads raw frames --------------------------------------------------------


def subject_matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def allowed(permission: dict, subject: str) -> bool:
    if any(subject_matches(d, subject) for d in permission.get("deny") or []):
        return False
    return any(subject_matches(a, subject) for a in permission["allow"])


def test_rendered_nats_permissions_guard_raw_frames(release: Release) -> None:
    permissions = release.nats_permissions()
    prefix = release.values["nats"]["prefix"]
    raw, masked = subjects.raw(prefix, "cam-1"), subjects.masked(prefix, "cam-1")
    assert set(permissions) == set(SERVICES)
    assert {s for s in SERVICES if allowed(permissions[s]["publish"], raw)} == {"ingest"}
    assert {s for s in SERVICES if allowed(permissions[s]["subscribe"], raw)} == {"masking"}
    assert {s for s in SERVICES if allowed(permissions[s]["publish"], masked)} == {"masking"}
    assert {s for s in SERVICES if allowed(permissions[s]["subscribe"], masked)} == {"archive", "gateway"}
    for service in SERVICES:
        if service != "masking":
            assert f"{prefix}.raw.>" in permissions[service]["subscribe"]["deny"], service
        everything = permissions[service]["publish"]["allow"] + permissions[service]["subscribe"]["allow"]
        assert not {">", "$JS.API.>", "$JS.API.STREAM.>", "$JS.>"} & set(everything), service
        # Stream management only for the events stream and the service's own named streams.
        managed = {
            a.removeprefix("$JS.API.STREAM.CREATE.")
            for a in permissions[service]["publish"]["allow"]
            if a.startswith("$JS.API.STREAM.CREATE.")
        }
        own = {s.replace("{prefix}", prefix) for s in release.values["nats"]["permissions"][service]["streams"]}
        # The masked-frame buffer is masking's alone: whoever may change its subjects could make it keep raw frames.
        if service == "masking":
            own.add(subjects.masked_stream(prefix))
        assert managed == {subjects.events_stream(prefix), *own}, service
        assert not [a for a in everything if "{prefix}" in a], "placeholders are filled in"
        assert not [m for m in managed if "*" in m or ">" in m], "stream names, never wildcards"
        assert allowed(permissions[service]["publish"], subjects.event(prefix, "audit"))
        assert permissions[service]["allow_responses"] is True


def test_services_log_in_as_their_own_nats_user(release: Release) -> None:
    configmap = release.kind("ConfigMap")["city-csu-nats"]["data"]
    secret = release.values["nats"]["auth"]["existingSecret"]
    for name in SERVICES:
        variable = f"CSU_NATS_{name.upper()}_PASSWORD"
        assert f'{{user: "{name}", password: ${variable},' in configmap["accounts.conf"]
        (container,) = release.service(name)["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["CSU_NATS_USER"]["value"] == name
        assert env["CSU_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": f"{name}-password"}
    statefulsets = {n: s for n, s in release.kind("StatefulSet").items() if n != "city-csu-archive"}
    if release.values["nats"]["external"]["url"]:
        assert not statefulsets and "nats.conf" not in configmap
        assert (
            release.kind("ConfigMap")["city-csu-env"]["data"]["CSU_NATS_URL"]
            == release.values["nats"]["external"]["url"]
        )
        return
    (nats_set,) = statefulsets.values()
    members = release.values["nats"]["cluster"]["replicas"]
    assert nats_set["spec"]["replicas"] == members in (1, 3)
    assert "jetstream {" in configmap["nats.conf"] and "include ./accounts.conf" in configmap["nats.conf"]
    # Routes between members; one member alone has none.
    assert configmap["nats.conf"].count("nats://city-csu-nats-") == (members if members > 1 else 0)
    (container,) = nats_set["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name in SERVICES:
        ref = env[f"CSU_NATS_{name.upper()}_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret, "key": f"{name}-password"}
    headless = release.kind("Service")["city-csu-nats-headless"]
    assert headless["spec"]["clusterIP"] == "None" and nats_set["spec"]["serviceName"] == "city-csu-nats-headless"


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A real nats-server running the chart's rendered accounts.conf (the same binary version as the chart's image)."""
    accounts = chart_support.nats_configmap(render(SIGNING))["accounts.conf"]
    with chart_support.accounts_server(tmp_path_factory.mktemp("nats-accounts"), accounts, free_port()) as server:
        yield server.url, server.passwords


async def login(url: str, user: str, password: str, errors: list[str]) -> Client:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(
        url, user=user, password=password, error_cb=on_error, allow_reconnect=False, connect_timeout=5
    )


async def test_a_real_nats_server_enforces_the_rendered_permissions(
    accounts_server: tuple[str, dict[str, str]],
) -> None:
    url, passwords = accounts_server
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(url, user="masking", password="wrong", allow_reconnect=False, connect_timeout=5)
    errors = {name: [] for name in SERVICES}
    clients = {name: await login(url, name, passwords[name], errors[name]) for name in SERVICES}
    # The services' own connection code, with the credentials as the chart passes them.
    masking_settings = Settings(nats_url=url, nats_user="masking", nats_password=passwords["masking"])  # type: ignore[call-arg]
    masking = await bus.connect(masking_settings, "masking")
    try:
        received: dict[str, list[tuple[str, bytes]]] = {
            name: [] for name in [*SERVICES, "bus-masking", "archive-buffer"]
        }

        def collect(name: str):  # type: ignore[no-untyped-def]
            async def cb(msg) -> None:  # type: ignore[no-untyped-def]
                received[name].append((msg.subject, msg.data))

            return cb

        raw, masked = subjects.raw("csu", "cam-1"), subjects.masked("csu", "cam-1")
        await masking.subscribe(subjects.raw("csu"), cb=collect("bus-masking"))
        for name, client in clients.items():
            await client.subscribe("csu.raw.>", cb=collect(name))
            await client.subscribe("csu.masked.>", cb=collect(name))
        for client in [masking, *clients.values()]:
            await client.flush()

        await clients["ingest"].publish(raw, b"frame")
        await clients["gateway"].publish(raw, b"forged raw")  # denied: only ingest produces raw frames
        await clients["archive"].publish(masked, b"unmasked, pretending")  # denied: only masking produces masked
        await clients["masking"].publish(masked, b"masked frame")
        for client in [masking, *clients.values()]:
            await client.flush()
        await until(lambda: received["bus-masking"] and received["archive"] and received["gateway"], 20, "deliveries")
        await asyncio.sleep(0.2)  # let any (wrong) late delivery arrive before judging absence
        for client in clients.values():
            await client.flush()

        assert received["bus-masking"] == [(raw, b"frame")]
        assert received["masking"] == [(raw, b"frame")]
        for name in ("ingest", "archive", "requisition", "gateway"):
            assert not [s for s, _ in received[name] if s.startswith("csu.raw.")], f"{name} read raw frames"
        assert received["archive"] == [(masked, b"masked frame")] and received["gateway"] == [(masked, b"masked frame")]
        assert received["requisition"] == [] and received["ingest"] == []
        refused = ("ingest", "archive", "requisition", "gateway")
        await until(lambda: all(any("csu.raw" in e for e in errors[n]) for n in refused), 10, "refusals")
        assert all("permissions violation" in e.lower() for n in SERVICES for e in errors[n]), errors
        await until(
            lambda: (
                any(f'publish to "{raw}"' in e for e in errors["gateway"])
                and any(f'publish to "{masked}"' in e for e in errors["archive"])
            ),
            10,
            "the forged publications to be refused",
        )
        # Masking was refused only what it does not need (reading masked frames), never raw frames.
        assert errors["masking"] and not [e for e in errors["masking"] if "csu.raw" in e]

        # JetStream: the events stream and events work; a stream capturing raw frames cannot be made.
        archive_js, gateway_js = clients["archive"].jetstream(timeout=2), clients["gateway"].jetstream(timeout=2)
        await bus.ensure_events_stream(archive_js, "csu")
        await bus.publish_event(clients["requisition"].jetstream(timeout=2), "csu", "test", b"event")
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await gateway_js.add_stream(StreamConfig(name="SNOOP", subjects=["csu.raw.>"]))
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await (
                clients["requisition"]
                .jetstream(timeout=2)
                .add_stream(StreamConfig(name="KV_test_leases", subjects=["csu.raw.>"]))
            )
        # Another service's named stream is not a way round either.
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await (
                clients["requisition"]
                .jetstream(timeout=2)
                .add_stream(StreamConfig(name="KV_csu_ingest_leases", subjects=["csu.raw.>"]))
            )
        # The defaults fit the code: ingest's camera leases (bucket, history stream, history subjects).
        leases = LeaseManager(clients["ingest"].jetstream(timeout=5), "csu_ingest_leases", "ingest-0", ttl=5)
        await leases.start()
        assert await leases.acquire("cam-1")
        assert [e.action for e in await leases.history()] == ["acquired"]
        streams = await clients["ingest"].jetstream(timeout=2).streams_info()
        assert sorted(s.config.name for s in streams) == [
            "CSU_EVENTS",
            "KV_csu_ingest_leases",
            "LEASEHIST_csu_ingest_leases",
        ]

        # The masked-frame buffer: masking defines it, the archive records from it through its
        # consumers and acks, and cannot redefine it (to capture raw frames, say).
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await bus.ensure_masked_stream(archive_js, "csu", 180, 64 * 1024**2)
        await bus.ensure_masked_stream(clients["masking"].jetstream(timeout=2), "csu", 180, 64 * 1024**2)
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await archive_js.update_stream(StreamConfig(name="CSU_MASKED", subjects=["csu.raw.>"]))
        await clients["masking"].publish(masked, b"masked frame")
        await clients["masking"].flush()
        intake = CameraIntake(clients["archive"], "csu", "cam-1", collect("archive-buffer"), ack_wait_s=30)
        await intake.open()
        await until(lambda: received["archive-buffer"], 10, "the buffered frame through the archive's consumer")
        consumer = await archive_js.consumer_info("CSU_MASKED", "archive-cam-1")
        assert consumer.num_ack_pending == 1
        await intake.close()
        archive_leases = LeaseManager(archive_js, "csu_archive_leases", "archive-0", ttl=5)
        await archive_leases.start()
        assert await archive_leases.acquire("cam-1")

        # Requests between replicas on the service's own subjects (a PTZ call forwarded to the holder).
        async def answer(msg) -> None:  # type: ignore[no-untyped-def]
            await msg.respond(b"moved")

        await clients["ingest"].subscribe("csu.ingest.ptz.cam-1", cb=answer)
        other_replica = await login(url, "ingest", passwords["ingest"], errors["ingest"])
        try:
            assert (await other_replica.request("csu.ingest.ptz.cam-1", b"goto", timeout=5)).data == b"moved"
        finally:
            await other_replica.close()
    finally:
        for client in [masking, *clients.values()]:
            await client.close()


def test_every_service_runs_under_its_rendered_nats_user(tmp_path: Path, database_url: str, s3: S3Server) -> None:
    """The permissions checked against what the code really does, not against a list written beside it:
    the five services, each logged in as its own user on a nats-server running the rendered
    accounts.conf, create their streams, KV buckets and consumers, and record a demo camera
    (raw frames, masked frames, events, leases, statuses, the audit trail) without one refusal. A
    bucket the code starts using without its permission fails here: ingest's KV_<prefix>_ptz_sessions
    was missing, and ingest crash-looped at the first real install."""
    platform = Platform(tmp_path, "", database_url, s3)
    docs = render({**SIGNING, "nats": {"prefix": platform.nats_prefix}})
    accounts = chart_support.nats_configmap(docs)["accounts.conf"]
    with chart_support.accounts_server(tmp_path / "nats", accounts, free_port()) as server:
        platform.env |= {"CSU_NATS_URL": server.url, "CSU_SEGMENT_DURATION_S": "2"}
        for name in SERVICES:
            platform.service_env[name] = {"CSU_NATS_USER": name, "CSU_NATS_PASSWORD": server.passwords[name]}
        try:
            platform.start(SERVICES, timeout=90)
            with platform.client("operator") as operator:
                segments = wait_for(
                    lambda: operator.get("/api/v1/cameras/demo-1/segments").raise_for_status().json(),
                    90,
                    "a recorded segment of demo-1",
                )
                content = operator.get(
                    f"/api/v1/segments/{segments[0]['id']}/content", params={"justification": "chart permissions check"}
                )
                assert content.status_code == 200 and content.content[4:8] == b"ftyp", content.text[:200]
            assert not server.violations(), server.violations()
        finally:
            killed = platform.stop()
            if killed or server.violations():
                print(platform.logs())
        assert not killed
        # Stopping too: leases handed back, consumers released.
        assert not server.violations(), server.violations()
        for name, process in platform.processes.items():
            assert "permissions violation" not in process.log_path.read_text().lower(), name


# --- Bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({**SIGNING, "retentionDays": 31}, "retentionDays"),
        ({**SIGNING, "retentionDays": 0}, "retentionDays"),
        (
            {"secrets": {"signingKey": {"existingSecret": "k", "retiredPublicKeys": ["-----BEGIN PRIVATE KEY-----"]}}},
            "/secrets/signingKey/retiredPublicKeys/0",
        ),
        ({}, "secrets.signingKey.existingSecret"),
        ({"secrets": {"signingKey": {"existingSecret": ""}}}, "secrets.signingKey.existingSecret"),
        ({"secrets": {"signingKey": {"existingSecret": None}}}, "existingSecret"),
        ({**SIGNING, "services": {"ingest": {"replicas": -1}}}, "/services/ingest/replicas"),
        ({**SIGNING, "services": {"gateway": {"replicas": -2}}}, "/services/gateway/replicas"),
        ({**SIGNING, "federation": {"enabled": True}}, "federation.caSecret"),
        ({**SIGNING, "cameraNetwork": {"cidrs": ["10.0.0.300/8"]}}, "/cameraNetwork/cidrs/0"),
        ({**SIGNING, "nats": {"cluster": {"replicas": 2}}}, "/nats/cluster/replicas"),
        ({**SIGNING, "services": {"archive": {"autoscaling": {"enabled": True}}}}, "autoscaling"),
        ({**SIGNING, "services": {"archive": {"replicas": -1}}}, "/services/archive/replicas"),
        ({**SIGNING, "nats": {"maskedBuffer": {"seconds": 5, "maxGiB": 1}}}, "/nats/maskedBuffer/seconds"),
        ({**SIGNING, "services": {"archive": {"spool": {"persistent": "yes"}}}}, "/services/archive/spool/persistent"),
        ({**SIGNING, "env": {"CSU_RETENTION_DAYS": "60"}}, "env.CSU_RETENTION_DAYS"),
        ({**SIGNING, "metrics": {"prometheusRule": {"enabled": True}}}, "metrics.serviceMonitor.enabled"),
        ({**ALERTING, "metrics": {"prometheusRule": {"serviceDownFor": "soon"}}}, "serviceDownFor"),
        ({**SIGNING, "retentiondays": 10}, "retentiondays"),
        ({**SIGNING, "database": {"existingSecret": "Not A Name"}}, "/database/existingSecret"),
        (
            {**SIGNING, "services": {"masking": {"resources": {"limits": None}}}},
            "/services/masking/resources",
        ),
        (
            {
                **SIGNING,
                "services": {"masking": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2, "enabled": True}}},
            },
            "services.masking.autoscaling.minReplicas=5",
        ),
    ],
)
def test_invalid_values_fail_with_a_message_naming_them(values: dict, names: str) -> None:
    with pytest.raises((helm.HelmRenderError, helm.HelmValuesError)) as failure:
        render(values)
    assert names in str(failure.value), str(failure.value)


@pytest.fixture(scope="module")
def chart_without_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart as rendered with --skip-schema-validation: the templates must still refuse."""
    copy = tmp_path_factory.mktemp("chart") / "csu"
    shutil.copytree(CHART, copy)
    (copy / "values.schema.json").unlink()
    return copy


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**SIGNING, "retentionDays": 31}, "retentionDays=31 exceeds the legal maximum of 30 days"),
        ({}, "secrets.signingKey.existingSecret is required"),
        (
            {"secrets": {"signingKey": {"existingSecret": "k", "retiredPublicKeys": ["-----BEGIN PRIVATE KEY-----"]}}},
            r"retiredPublicKeys\[0\] is not a public key",
        ),
        ({**SIGNING, "services": {"masking": {"replicas": -1}}}, "services.masking.replicas=-1 must not be negative"),
        ({**SIGNING, "env": {"CSU_MASKED_BUFFER_S": "10"}}, "env.CSU_MASKED_BUFFER_S is managed by the chart"),
        (
            {**SIGNING, "metrics": {"prometheusRule": {"enabled": True}}},
            "metrics.prometheusRule.enabled needs metrics.serviceMonitor.enabled",
        ),
    ],
)
def test_the_templates_refuse_bad_values_even_without_the_schema(
    chart_without_schema: Path, values: dict, message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values, chart_without_schema)


def test_notes_tell_ops_how_to_log_in_the_first_admin() -> None:
    text = notes(SIGNING)
    assert "admin" in text and 'grep -i "first admin"' in text
    assert "app.kubernetes.io/component=gateway" in text and "port-forward svc/city-csu-gateway" in text
    preset = notes(CI_VALUES["federation"])
    secret = CI_VALUES["federation"]["gateway"]["bootstrapAdmin"]["existingSecret"]
    assert f"get secret {secret}" in preset and "https://csu.ville.example/" in preset
    assert "include accounts.conf" in notes(CI_VALUES["external"])


def test_the_gateway_reaches_the_store_with_its_own_keys_when_given() -> None:
    """The gateway only publishes and reads the signed heads (anchors bucket): a user of its own,
    limited to that bucket, keeps the shared keys (recordings) out of the public door."""
    docs = render(
        {
            "secrets": {"signingKey": {"existingSecret": "csu-signing-key"}},
            "objectStore": {"clientSecrets": {"gateway": "csu-minio-anchors"}},
        }
    )
    secrets = {}
    for deployment in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        component = deployment["spec"]["template"]["metadata"]["labels"][COMPONENT]
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        if "CSU_S3_SECRET_KEY" in env:
            secrets[component] = env["CSU_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"]
    shared = yaml.safe_load((CHART / "values.yaml").read_text())["objectStore"]["existingSecret"]
    assert secrets == {"gateway": "csu-minio-anchors", "archive": shared, "requisition": shared, "masking": shared}
    configmap = next(d for d in docs if d["kind"] == "ConfigMap" and "CSU_BUCKET_ANCHORS" in d["data"])
    assert configmap["data"]["CSU_BUCKET_ANCHORS"] == "csu-anchors"
