"""Settings, time, camera catalogue, ranges, H.264 helpers: the small pieces everything leans on."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from services.archive.keys import segment_key
from services.common import h264
from services.common.cameras import demo_cameras, parse_cameras
from services.common.clock import ManualClock, from_us, to_us
from services.common.settings import Settings, redact_url
from services.gateway.video.routes.segments import parse_byte_range
from services.gateway.video.timerange import parse_range
from tests.support.frames import h264_packets

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def test_settings_refuse_retention_beyond_the_legal_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSU_RETENTION_DAYS", "31")
    with pytest.raises(ValidationError, match="less than or equal to 30"):
        Settings()


def test_settings_accept_database_url_alias_and_use_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSU_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/csu")
    assert Settings().sqlalchemy_url == "postgresql+psycopg://u@db:5432/csu"


def test_s3_backend_needs_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSU_STORE_BACKEND", "s3")
    monkeypatch.delenv("CSU_S3_ENDPOINT", raising=False)
    with pytest.raises(ValidationError, match="CSU_S3_ENDPOINT"):
        Settings()


def test_secrets_never_show() -> None:
    settings = Settings(s3_secret_key="hunter2-very-secret")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings)
    assert redact_url("nats://token123@host:4222") == "nats://***@host:4222"


def test_clock_conversions_and_manual_clock() -> None:
    assert from_us(to_us(NOW)) == NOW
    with pytest.raises(ValueError):
        to_us(datetime(2026, 1, 1))
    clock = ManualClock(NOW)
    clock.advance(timedelta(days=16))
    assert clock.now() == NOW + timedelta(days=16)


def test_segment_keys_follow_the_layout() -> None:
    us = to_us(datetime(2026, 3, 7, 21, 10, 5, 123456, tzinfo=UTC))
    assert segment_key("cam-42", us) == "cam/cam-42/2026/03/07/21/20260307T211005.123456Z.mp4"


def test_catalogue_validation() -> None:
    ok = parse_cameras(b'[{"id": "c1", "name": "x", "source": "demo://a", "masks": []}]')
    assert (
        ok[0].mask_version
        == parse_cameras(b'[{"id": "c2", "name": "y", "source": "demo://b", "masks": []}]')[0].mask_version
    )
    for bad, why in [
        (b'[{"id": "a b", "name": "x", "source": "s", "masks": []}]', "invalid camera id"),
        (b'[{"id": "c", "name": "x", "source": "s"}]', "masks"),
        (
            b'[{"id": "c", "name": "x", "source": "s", "masks": [[[0, 0], [1.5, 0], [0, 1]]]}]',
            "less than or equal to 1",
        ),
        (b'[{"id": "c", "name": "x", "source": "s", "masks": [[[0, 0], [1, 0]]]}]', "at least 3"),
        (b'[{"id": "c", "name": "x", "source": "s", "masks": [], "retention_days": 45}]', "less than or equal to 30"),
        (
            b'[{"id": "c", "name": "x", "source": "s", "masks": []},'
            b' {"id": "c", "name": "y", "source": "s", "masks": []}]',
            "appears twice",
        ),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_cameras(bad)
    assert {c.id for c in demo_cameras(15)} == {"demo-1", "demo-2"}


def test_time_ranges() -> None:
    start, end = parse_range("2026-11-25T10:00:00Z", "2026-11-25T12:30:00+01:00", NOW, 15, timedelta(hours=1))
    assert (start, end) == (
        to_us(datetime(2026, 11, 25, 10, tzinfo=UTC)),
        to_us(datetime(2026, 11, 25, 11, 30, tzinfo=UTC)),
    )
    assert parse_range(None, None, NOW, 15, timedelta(hours=1)) == (to_us(NOW - timedelta(hours=1)), to_us(NOW))
    for args, status, why in [
        (("yesterday", None), 400, "not an ISO 8601"),
        (("2026-11-25T10:00:00", None), 400, "no time zone"),
        (("2026-11-25T12:00:00Z", "2026-11-25T11:00:00Z"), 400, "start must be before end"),
        (("2026-11-25T12:00:00Z", "2026-11-25T12:00:00Z"), 400, "start must be before end"),
        (("2026-11-01T00:00:00Z", "2026-11-20T00:00:00Z"), 400, "wider than the camera's 15-day retention"),
    ]:
        with pytest.raises(HTTPException) as raised:
            parse_range(*args, NOW, 15, timedelta(hours=1))
        assert raised.value.status_code == status and why in raised.value.detail


def test_byte_ranges() -> None:
    assert parse_byte_range("bytes=0-99", 1000) == (0, 99)
    assert parse_byte_range("bytes=900-", 1000) == (900, 999)
    assert parse_byte_range("bytes=-100", 1000) == (900, 999)
    assert parse_byte_range("bytes=990-5000", 1000) == (990, 999)
    assert parse_byte_range("bytes=0-1,5-9", 1000) is None  # multi-range: the whole body
    assert parse_byte_range("bytes=\u00b2-", 1000) is None  # "²": a digit to \d, not to int()
    assert parse_byte_range("bytes=" + "9" * 5000 + "-", 1000) is None  # more digits than int() reads
    for bad in ("bytes=1000-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(HTTPException) as raised:
            parse_byte_range(bad, 1000)
        assert raised.value.status_code == 416


def test_h264_helpers_on_real_packets() -> None:
    packets = h264_packets(3)
    key = packets[0]
    assert key.keyframe and h264.has_parameter_sets(key.data)
    assert not h264.has_parameter_sets(packets[1].data)
    assert h264.mse_codec(key.data).startswith("avc1.")
    assert {h264.nal_type(u) for u in h264.nal_units(key.data)} >= {h264.NAL_SPS, h264.NAL_PPS, h264.NAL_IDR}
    with pytest.raises(ValueError):
        h264.mse_codec(packets[1].data)


def test_readme_documents_every_setting() -> None:
    from pathlib import Path

    from services.common.settings_doc import render

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert render(readme) == readme, "the README's configuration table is stale: run `make docs`"
