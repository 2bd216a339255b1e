"""Camera status from stream health, and the authorisation calendar."""

from datetime import UTC, datetime

from services.common.clock import to_us
from services.ingest import authorisations as auth
from services.ingest.health import Status, StreamHealth, StreamMetrics, evaluate

PROFILE = (704, 576, 10.0)


def metrics(**overrides: object) -> StreamMetrics:
    values: dict[str, object] = {
        "fps": 10.0,
        "bitrate_bps": 2e6,
        "reconnects": 0,
        "last_packet_age_s": 0.1,
        "connected": True,
        "streaming_for_s": 30.0,
        "failure": "",
        "width": 704,
        "height": 576,
        "codec": "h264",
    }
    return StreamMetrics(**(values | overrides))  # type: ignore[arg-type]


def test_statuses_and_their_reasons() -> None:
    assert evaluate(None, metrics(), 0, PROFILE) == Status("online", "streaming")
    assert evaluate("authorisation expired (P, on 2026-01-01)", metrics(), 0, PROFILE).status == "offline"
    assert evaluate(None, None, 0, PROFILE).status == "connecting"
    failed = evaluate(
        None, metrics(connected=False, failure="cannot open rtsp://***@cam/: Connection refused"), 1, PROFILE
    )
    assert failed == Status("offline", "cannot open rtsp://***@cam/: Connection refused")
    assert evaluate(None, metrics(last_packet_age_s=4.0), 0, PROFILE).reason == "no image for more than 3 s"
    assert "below the recording profile 704x576" in evaluate(None, metrics(width=352, height=288), 0, PROFILE).reason
    assert evaluate(None, metrics(fps=4.0), 0, PROFILE).reason == "frame rate below half of the profile's 10 fps"
    assert evaluate(None, metrics(fps=4.0, streaming_for_s=2.0), 0, PROFILE).status == "online"  # too early to say
    assert evaluate(None, metrics(), 3, PROFILE).reason.startswith("unstable")
    sub = metrics(connected=False, failure="timeout")
    assert evaluate(None, metrics(), 0, PROFILE, sub).reason == "sub stream offline: timeout"
    assert evaluate(None, metrics(), 0, PROFILE, None, "no answer").reason == "PTZ unavailable: no answer"


def test_a_trickle_after_a_stall_does_not_reset_the_watchdog() -> None:
    health = StreamHealth()
    health.opened("h264", 704, 576)
    health.packet(1000)
    health._last_packet -= 8  # the camera went silent 8 s ago
    assert health.silent_for() > 7.9
    health.packet(1000)  # a stale packet the demuxer still had
    assert health.silent_for() > 7.9, "one late packet made a hung camera look alive"
    assert health.metrics().last_packet_age_s < 1


def test_a_drop_counts_as_instability_but_failed_retries_during_one_outage_do_not() -> None:
    health = StreamHealth()
    health.opened("h264", 704, 576)
    health.packet(10)
    health.failed("gone")
    for _ in range(5):
        health.failed("still gone")
    assert health.reconnects == 6 and health.recent_reconnects() == 1


def test_warning_four_calendar_months_before_expiry() -> None:
    expiry = to_us(datetime(2031, 6, 30, tzinfo=UTC))
    assert auth.warning_from_us(expiry) == to_us(datetime(2031, 2, 28, tzinfo=UTC))
    decision = to_us(datetime(2026, 6, 30, tzinfo=UTC))
    assert auth.status(decision, expiry, to_us(datetime(2031, 2, 27, tzinfo=UTC))) == "valid"
    assert auth.status(decision, expiry, to_us(datetime(2031, 2, 28, tzinfo=UTC))) == "expiring"
    assert auth.status(decision, expiry, expiry) == "expired"
    assert auth.status(decision, expiry, decision - 1) == "not_yet_valid"
