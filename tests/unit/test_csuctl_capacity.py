"""csuctl capacity: the plan from the bench's figures, and its refusals."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.csuctl.app import app
from services.csuctl.capacity import PlanError, parse_profile, plan

FIGURES = {
    "date": "2026-12-07T09:00:00+00:00",
    "machine": "vm x86_64 2 cpus",
    "x264_1920x1080_ultrafast_cabac_crf28_frames_per_cpu_s": 88.0,
    "x264_1920x1080_ultrafast_cabac_crf28_bitrate_vs_camera": 1.47,
    "x264_704x576_ultrafast_crf26_frames_per_cpu_s": 400.0,
    "x264_704x576_ultrafast_crf26_bitrate_vs_camera": 1.24,
    "masking_1080p25_burned_in_frames_per_cpu_s": 80.0,
    "masking_1080p25_pass_through_cpu_ms_per_frame": 0.3,
    "masking_1080p25_camera_masked_cpu_ms_per_frame": 1.5,
    "rtsp_ingest_cpu_us_per_packet": 180.0,
    "pipeline_1080p_archive_cpu_ms_per_frame": 1.0,
    "masking_1080p25_pass_through_rss_mb_idle": 150.0,
    "service_1080p_burned_in_rss_mb": 300.0,
    "masking_1080p25_pass_through_rss_mb_per_camera": 2.0,
    "masking_1080p25_camera_masked_rss_mb_per_camera": 6.0,
}


def test_burning_in_costs_what_the_bench_says_and_not_transcoding_saves_it() -> None:
    all_burned = plan(FIGURES, 128, parse_profile("1080p25"))
    masking = next(s for s in all_burned.services if s.service == "masking")
    # 1000 / (88 x 80/88) + 0.3 = 12.8 ms a frame, 25 frames a second, 128 cameras: 40.96 cores.
    assert masking.cores == pytest.approx(128 * 25 * 12.8 / 1000)
    mostly_not = plan(FIGURES, 128, parse_profile("1080p25"), no_transcode=100)
    masking_light = next(s for s in mostly_not.services if s.service == "masking")
    assert masking_light.cores == pytest.approx((28 * 12.8 + 100 * 1.5) * 25 / 1000)
    assert mostly_not.storage_tb < all_burned.storage_tb  # the camera's own bitrate, not 1.47x
    # 128 cameras at 4 Mbit/s x 1.47, 15 days.
    assert all_burned.storage_tb == pytest.approx(128 * 4e6 * 1.47 / 8 * 86_400 * 15 / 1e12)
    assert all_burned.bench_date.startswith("2026-12-07") and "2 cpus" in all_burned.bench_machine


def test_a_smaller_profile_uses_its_own_row_of_the_preset_table() -> None:
    small = plan(FIGURES, 10, parse_profile("576p12"))
    masking = next(s for s in small.services if s.service == "masking")
    assert masking.cores == pytest.approx(10 * 12 * (1000 / (400 * 80 / 88) + 0.3) / 1000)


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    for text in ("1080i25", "4k25", "1080p0", ""):
        with pytest.raises(PlanError, match="profile"):
            parse_profile(text)
    with pytest.raises(PlanError, match="no-transcode"):
        plan(FIGURES, 10, parse_profile("1080p25"), no_transcode=11)
    with pytest.raises(PlanError, match="retention"):
        plan(FIGURES, 10, parse_profile("1080p25"), retention_days=31)
    with pytest.raises(PlanError, match="x264_1280x720"):
        plan(FIGURES, 10, parse_profile("720p25"))
    runner = CliRunner()
    missing = runner.invoke(app, ["capacity", "--cameras", "8", "--figures", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "no bench figures" in missing.output


def test_the_command_prints_the_plan_with_the_bench_date(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(FIGURES))
    result = CliRunner().invoke(
        app, ["capacity", "--cameras", "128", "--profile", "1080p25", "--no-transcode", "100", "--figures", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "128 cameras" in result.output and "2026-12-07" in result.output and "masking" in result.output
    as_json = CliRunner().invoke(app, ["capacity", "--cameras", "4", "--figures", str(path), "--json"])
    assert json.loads(as_json.output)["cameras"] == 4


def test_a_later_masking_run_is_dated_beside_the_full_run() -> None:
    later = FIGURES | {"date_latency_ways": "2026-12-08T05:50:00+00:00", "date_buffer": "2026-12-09T00:00:00+00:00"}
    assert plan(later, 8, parse_profile("1080p25")).bench_date == (
        "2026-12-07T09:00:00+00:00, masking figures of 2026-12-08T05:50:00+00:00"
    )
    older = FIGURES | {"date_ways": "2026-12-06T00:00:00+00:00"}
    assert plan(older, 8, parse_profile("1080p25")).bench_date == "2026-12-07T09:00:00+00:00"
