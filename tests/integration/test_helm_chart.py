"""The Helm chart, rendered by Helm's own engine and checked against Kubernetes' schemas."""

from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "csu"
KUBERNETES = "1.31.0"


def render(values: dict | None = None) -> list[dict]:
    manifests = helm.Chart.load(CHART).render(values or {}, name="city", namespace="csu", is_install=True)
    return [
        doc
        for path, text in manifests.items()
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def test_chart_lints_and_every_manifest_is_valid() -> None:
    report = helm.lint(CHART, strict=True)
    assert not report["errors"], report
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]
    docs = render()
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {f"city-csu-{s}" for s in ("ingest", "masking", "archive", "requisition", "gateway")}
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "limits" in container["resources"] and "requests" in container["resources"]
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart must only reference existing Secrets"


def test_retention_above_the_legal_maximum_does_not_render() -> None:
    with pytest.raises(helm.HelmRenderError, match="retentionDays=31 exceeds the legal maximum of 30 days"):
        render({"retentionDays": 31})
