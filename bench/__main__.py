"""`make bench`: run every benchmark, print its figures, write them all to results/latest.json.

Benchmarks print figures and ratios against a baseline measured in the same run, on the same
input; they assert nothing (timings are not tests). latest.json is one flat object, figure name
-> number, plus the machine and the date, so runs can be compared over time.

`python -m bench faults buffer` runs only those benchmarks; their figures replace their own in
latest.json (dated `date_buffer_faults`), and the other benchmarks' figures stay.
"""

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import archive, buffer, faults, ingest, latency, masking, pipeline

BENCHMARKS = [pipeline, ingest, archive, latency, masking, buffer, faults]
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def main() -> int:
    wanted = set(sys.argv[1:])
    unknown = wanted - {m.__name__.removeprefix("bench.") for m in BENCHMARKS}
    if unknown:
        print(f"no such benchmark: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    figures: dict[str, float | str] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for module in BENCHMARKS:
        if wanted and module.__name__.removeprefix("bench.") not in wanted:
            continue
        print(f"== {module.__name__}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        for name, value in module.run().items():
            figures[name] = value
            print(f"  {name:<52} {value:>12.3f}" if isinstance(value, float) else f"  {name:<52} {value:>12}")
    figures["machine"] = (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {sys.version.split()[0]}"
    )
    # A partial run dates its own figures; "date" stays that of the last full run.
    figures["date_" + "_".join(sorted(wanted)) if wanted else "date"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
