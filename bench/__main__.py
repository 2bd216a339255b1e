"""`make bench`: run every benchmark, print its figures, write them all to results/latest.json.

`python -m bench ways latency` runs only those benchmarks; every run merges its figures into
latest.json (a figure it did not measure keeps its last value), with the machine and the load
average when it started and ended (benches share the machine); a partial run is dated
`date_<names>` (e.g. `date_buffer_faults`), "date" staying that of the last full run.

Benchmarks print figures and ratios against a baseline measured in the same run, on the same
input; they assert nothing (timings are not tests). latest.json is one flat object, figure name
-> number, plus the machine and the date, so runs can be compared over time.
"""

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import archive, buffer, faults, ingest, latency, masking, pipeline, ways

BENCHMARKS = [pipeline, ingest, archive, latency, masking, ways, buffer, faults]
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def main() -> int:
    chosen = sys.argv[1:]
    unknown = [n for n in chosen if n not in {m.__name__.split(".")[-1] for m in BENCHMARKS}]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    figures: dict[str, float | str] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    load_before = os.getloadavg()[0]
    for module in BENCHMARKS:
        if chosen and module.__name__.split(".")[-1] not in chosen:
            continue
        print(f"== {module.__name__}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        for name, value in module.run().items():
            figures[name] = value
            print(f"  {name:<52} {value:>12.3f}" if isinstance(value, float) else f"  {name:<52} {value:>12}")
    figures["machine"] = (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {sys.version.split()[0]}"
    )
    # A partial run dates its own figures; "date" stays that of the last full run.
    suffix = "_" + "_".join(sorted(chosen)) if chosen else ""
    figures["date" + suffix] = datetime.now(UTC).isoformat(timespec="seconds")
    figures["benchmarks_run"] = " ".join(chosen) or "all"
    figures["load_average_1min_start_end" + suffix] = f"{load_before:.1f} {os.getloadavg()[0]:.1f}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
