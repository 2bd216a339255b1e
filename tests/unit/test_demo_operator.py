"""The embedded default, in words, and the gateway's refusal of the demonstration operator
anywhere else (services/gateway/demo.py)."""

from pathlib import Path

import pytest

from services.common.settings import Settings
from services.gateway.demo import refuse_outside_embedded_default

DEMO = {"demo_operator_password": "Demo-operator-Passw0rd-here"}


def embedded(monkeypatch: pytest.MonkeyPatch, **fields: object) -> Settings:
    for name in ("DATABASE_URL", "CSU_DATABASE_URL", "CSU_STORE_BACKEND", "CSU_CAMERAS_FILE", "CSU_GATEWAY_HOST"):
        monkeypatch.delenv(name, raising=False)
    return Settings(**fields)  # type: ignore[arg-type]


def test_make_runs_defaults_are_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = embedded(monkeypatch, **DEMO)
    assert settings.not_embedded_default() == []
    refuse_outside_embedded_default(settings)  # accepted: no exception


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"CSU_DATABASE_URL": "postgresql://csu@db/csu"}, "not the embedded SQLite"),
        ({"store_backend": "s3", "s3_endpoint": "http://minio:9000"}, "not the local directory"),
        ({"cameras_file": Path("cameras.json")}, "not the demo cameras"),
        ({"gateway_host": "0.0.0.0"}, "listens beyond this machine"),
    ],
)
def test_the_demonstration_operator_is_refused_elsewhere(
    monkeypatch: pytest.MonkeyPatch, fields: dict, reason: str
) -> None:
    settings = embedded(monkeypatch, **DEMO, **fields)
    with pytest.raises(RuntimeError, match=reason) as refused:
        refuse_outside_embedded_default(settings)
    assert "CSU_DEMO_OPERATOR_PASSWORD is refused" in str(refused.value)
    assert DEMO["demo_operator_password"] not in str(refused.value)  # the password is never echoed
    # Not asked for: nothing to refuse, whatever the deployment.
    refuse_outside_embedded_default(embedded(monkeypatch, **fields))
