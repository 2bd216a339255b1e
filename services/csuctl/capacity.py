"""csuctl capacity: cores, memory, network and storage per service for N cameras, from the bench.

    csuctl capacity --cameras 128 --profile 1080p25 [--no-transcode K] [--retention-days 15]

Every figure comes from `make bench` (bench/results/latest.json, or --figures), whose date and
machine are printed with the plan: a plan is only as good as the machine the bench ran on, so run
the bench on the production node type before trusting one. The model, per camera at f frames/s:

- masking, burned in: one decode + fill + encode per frame. The preset table gives the bare
  decode + encode frames per CPU-second at the profile (masking's default x264 settings, CPU time
  of all threads); the masking frame path costs 1 / masker_factor as much (measured at 1080p), and
  the service around it (NATS, envelopes) the pass-through cost per frame on top.
- masking, not transcoded (--no-transcode K: pass-through under a statement, or camera-masked): the
  camera-masked cost per frame at 1080p (its keyframe checks included; pass-through is cheaper),
  an upper bound at smaller profiles.
- ingest and archive: their CPU per frame in the pipeline bench (1080p; an upper bound below).
- memory: the masking service's resident memory per camera in the bench (burned in: one 1080p
  camera's decoder and encoder; not transcoded: measured over 16-24 cameras), scaled by the
  picture area for burned-in cameras of other profiles; a fixed part per replica.
- network: the camera's bitrate in (camera -> ingest), raw (ingest -> NATS -> masking), masked
  (masking -> NATS -> archive and each live viewer: burned-in cameras at the preset table's bitrate
  ratio, others at the camera's own); storage: masked bitrate x retention.

Cores are CPU time, before headroom: the chart's HPA targets 70 % CPU, so request cores / 0.7.
"""

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.common.settings import LEGAL_MAX_RETENTION_DAYS
from services.common.timefmt import DAY_S
from services.masking.encoding import AUTO, AUTO_PRESET

app = typer.Typer(help="Plan cores, memory, network and storage for N cameras from the bench figures.")
console = Console()
DEFAULT_FIGURES = Path(__file__).resolve().parents[2] / "bench" / "results" / "latest.json"
# The camera's own bitrate at each profile (bits/s), as the bench's camera-like clips use.
CAMERA_BITRATE = {288: 512_000, 576: 1_500_000, 720: 2_500_000, 1080: 4_000_000}
WIDTHS = {288: 352, 576: 704, 720: 1280, 1080: 1920}
HPA_TARGET = 0.7
REPLICA_BASE_MB = 250.0


class PlanError(ValueError):
    """The plan cannot be made (a profile unknown, a figure missing); the message says which."""


@dataclass(frozen=True)
class Profile:
    width: int
    height: int
    fps: float

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}"


def parse_profile(text: str) -> Profile:
    match = re.fullmatch(r"(288|576|720|1080)p(\d+(?:\.\d+)?)", text.strip().lower())
    if not match:
        raise PlanError(f"profile {text!r}: one of 288p, 576p, 720p, 1080p followed by frames/s, e.g. 1080p25")
    height, fps = int(match.group(1)), float(match.group(2))
    if not 1 <= fps <= 60:
        raise PlanError(f"profile {text!r}: frames per second between 1 and 60")
    return Profile(WIDTHS[height], height, fps)


@dataclass(frozen=True)
class ServicePlan:
    service: str
    cores: float
    memory_gb: float
    network_in_mbps: float
    network_out_mbps: float


@dataclass(frozen=True)
class Plan:
    cameras: int
    no_transcode: int
    profile: str
    fps: float
    services: list[ServicePlan]
    storage_tb: float
    retention_days: int
    masking_pods_at_2_cores: int
    bench_date: str
    bench_machine: str
    notes: list[str]


def _figure(figures: dict, key: str) -> float:
    value = figures.get(key)
    if not isinstance(value, int | float):
        raise PlanError(f"the bench figures have no {key!r}: run `make bench` (or `python -m bench ways`)")
    return float(value)


def _burn_key(profile: Profile) -> str:
    area = profile.width * profile.height
    crf, cabac = next((c, cabac) for limit, c, cabac in AUTO if area <= limit)
    return f"x264_{profile.name}_{AUTO_PRESET}{'_cabac' if cabac else ''}_crf{crf}"


def plan(figures: dict, cameras: int, profile: Profile, no_transcode: int = 0, retention_days: int = 15) -> Plan:
    if cameras < 1:
        raise PlanError("--cameras must be at least 1")
    if not 0 <= no_transcode <= cameras:
        raise PlanError(f"--no-transcode must be between 0 and the {cameras} cameras")
    if not 1 <= retention_days <= LEGAL_MAX_RETENTION_DAYS:
        raise PlanError(f"--retention-days must be between 1 and {LEGAL_MAX_RETENTION_DAYS}")
    burned = cameras - no_transcode
    fps = profile.fps
    key = _burn_key(profile)
    table_fps = _figure(figures, f"{key}_frames_per_cpu_s")
    masker_factor = _figure(figures, "masking_1080p25_burned_in_frames_per_cpu_s") / _figure(
        figures, "x264_1920x1080_ultrafast_cabac_crf28_frames_per_cpu_s"
    )
    service_ms = _figure(figures, "masking_1080p25_pass_through_cpu_ms_per_frame")
    burn_ms = 1000 / (table_fps * masker_factor) + service_ms
    own_ms = _figure(figures, "masking_1080p25_camera_masked_cpu_ms_per_frame")
    masking_cores = (burned * burn_ms + no_transcode * own_ms) * fps / 1000
    ingest_cores = cameras * fps * _figure(figures, "rtsp_ingest_cpu_us_per_packet") / 1e6
    archive_cores = cameras * fps * _figure(figures, "pipeline_1080p_archive_cpu_ms_per_frame") / 1000

    area_ratio = profile.width * profile.height / (1920 * 1080)
    idle_mb = _figure(figures, "masking_1080p25_pass_through_rss_mb_idle")
    burn_mb = max(0.0, _figure(figures, "service_1080p_burned_in_rss_mb") - idle_mb) * area_ratio
    light_mb = max(
        _figure(figures, "masking_1080p25_pass_through_rss_mb_per_camera"),
        _figure(figures, "masking_1080p25_camera_masked_rss_mb_per_camera"),
    )
    pods = max(1, math.ceil(masking_cores / HPA_TARGET / 2))
    masking_mb = pods * REPLICA_BASE_MB + burned * burn_mb + no_transcode * light_mb

    camera_bps = CAMERA_BITRATE[profile.height] * fps / 25
    ratio = _figure(figures, f"{key}_bitrate_vs_camera")
    masked_bps = burned * camera_bps * ratio + no_transcode * camera_bps
    raw_bps = cameras * camera_bps
    mbps = 1e-6
    services = [
        ServicePlan("ingest", ingest_cores, (REPLICA_BASE_MB + cameras * 4) / 1024, raw_bps * mbps, raw_bps * mbps),
        ServicePlan("masking", masking_cores, masking_mb / 1024, raw_bps * mbps, masked_bps * mbps),
        ServicePlan("archive", archive_cores, (REPLICA_BASE_MB + cameras * 8) / 1024, masked_bps * mbps,
                    masked_bps * mbps),
    ]  # fmt: skip
    storage_tb = masked_bps / 8 * DAY_S * retention_days / 1e12
    notes = [
        f"burned in: {burn_ms:.1f} ms CPU per frame ({key}, masking path factor {masker_factor:.2f}, "
        f"service {service_ms:.2f} ms); not transcoded: {own_ms:.2f} ms (camera-masked at 1080p, checks included)",
        "ingest, archive: 1080p per-frame figures (upper bounds below 1080p); gateway: per live viewer, not per camera",
        f"masking pods: at 2 cores each and the HPA's {HPA_TARGET:.0%} CPU target",
    ]
    return Plan(
        cameras, no_transcode, profile.name, fps, services, storage_tb, retention_days, pods,
        _bench_date(figures), str(figures.get("machine", "?")), notes,
    )  # fmt: skip


def _bench_date(figures: dict) -> str:
    """The full run's date, and that of a later `python -m bench ways ...` if one re-measured the
    masking figures (a partial run writes `date_<its benchmarks>`, bench/__main__.py)."""
    full = str(figures.get("date", "?"))
    ways = [str(v) for k, v in figures.items() if k.startswith("date_") and "ways" in k.split("_")[1:]]
    if ways and max(ways) > full:
        return f"{full}, masking figures of {max(ways)}"
    return full


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanError(f"no bench figures at {path}: run `make bench` there, or give --figures") from None
    except ValueError as exc:
        raise PlanError(f"{path} is not the bench's JSON: {exc}") from exc


@app.callback(invoke_without_command=True)
def capacity(
    cameras: Annotated[int, typer.Option("--cameras", help="Cameras to plan for.")],
    profile: Annotated[str, typer.Option("--profile", help="Recording profile: 288p6 ... 1080p25.")] = "1080p25",
    no_transcode: Annotated[
        int, typer.Option("--no-transcode", help="Cameras passed through or camera-masked (not burned in).")
    ] = 0,
    retention_days: Annotated[int, typer.Option("--retention-days", help="Footage retention.")] = 15,
    figures_path: Annotated[Path, typer.Option("--figures", help="The bench's latest.json.")] = DEFAULT_FIGURES,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")] = False,
) -> None:
    """Cores, memory, network and storage per service for N cameras, from the bench's figures."""
    try:
        result = plan(_load(figures_path), cameras, parse_profile(profile), no_transcode, retention_days)
    except PlanError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2))
        return
    title = (
        f"{result.cameras} cameras at {result.profile} {result.fps:g} fps, {result.no_transcode} not transcoded "
        f"(bench of {result.bench_date} on {result.bench_machine})"
    )
    table = Table(title=title)
    for column in ("service", "cores (CPU time)", "memory GB", "network in Mbit/s", "network out Mbit/s"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for s in result.services:
        table.add_row(s.service, f"{s.cores:.1f}", f"{s.memory_gb:.1f}", f"{s.network_in_mbps:.0f}",
                      f"{s.network_out_mbps:.0f}")  # fmt: skip
    total = sum(s.cores for s in result.services)
    table.add_row("total", f"{total:.1f}", f"{sum(s.memory_gb for s in result.services):.1f}", "", "")
    console.print(table)
    console.print(f"storage: {result.storage_tb:.1f} TB for {result.retention_days} days of footage")
    console.print(f"masking: {result.masking_pods_at_2_cores} pods of 2 cores (HPA maxReplicas at least that)")
    for note in result.notes:
        console.print(f"  {note}")
