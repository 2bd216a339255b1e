"""The camera list as CSV: what `csuctl cameras export` writes and `import` reads back.

One row per camera, a header naming the columns (any order). Import is all-or-nothing: every row
is checked and the errors come back with their line numbers (the header is line 1); nothing is
written unless every row is valid. Export never contains credentials: URLs show *** in their
place, and a URL given back with *** keeps the stored credentials, so an export can be edited
and re-imported.

    id,name,main_url,sub_url,transport,model,generation,ptz_driver,ptz_url,lat,lon,
    view_direction_deg,groups,width,height,fps,segment_duration_s,close_up,retention_days,
    authorisation_ref,state

groups are separated by ";". An empty main_url/sub_url/ptz_url keeps the stored one; an empty
state keeps the current state (a new camera starts in commissioning). A cell a spreadsheet would
take for a formula (`=cmd|...`) is written with a leading apostrophe, and import takes one off
(services/common/csvsafe.py).
"""

import csv
import io
from collections.abc import Sequence

from pydantic import ValidationError

from services.common import csvsafe
from services.ingest.registry import CameraRecord, masked_url
from services.ingest.specs import CameraInput, first_error

COLUMNS = (
    "id", "name", "main_url", "sub_url", "transport", "model", "generation", "ptz_driver", "ptz_url",
    "lat", "lon", "view_direction_deg", "groups", "width", "height", "fps", "segment_duration_s",
    "close_up", "retention_days", "authorisation_ref", "state",
)  # fmt: skip
REQUIRED = ("id", "name", "lat", "lon", "width", "height", "fps")
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
_TRUE = {"1", "true", "yes", "oui", "y", "t"}
_FALSE = {"0", "false", "no", "non", "n", "f", ""}


def parse(data: bytes, current_states: dict[str, str]) -> tuple[list[tuple[int, CameraInput]], list[tuple[int, str]]]:
    """Rows as (line, camera) and errors as (line, message); errors non-empty means reject all."""
    if len(data) > MAX_BYTES:
        return [], [(0, f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [(0, f"the file is not UTF-8 text: {exc.reason} at byte {exc.start}")]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        return [], [(1, "the file is empty: the first line must name the columns")]
    reader.fieldnames = header
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    errors: list[tuple[int, str]] = []
    if unknown:
        errors.append((1, f"unknown column(s) {', '.join(unknown)}; columns are {', '.join(COLUMNS)}"))
    if missing:
        errors.append((1, f"missing column(s) {', '.join(missing)}"))
    if errors:
        return [], errors
    rows: list[tuple[int, CameraInput]] = []
    seen: dict[str, int] = {}
    count = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append((reader.line_num, f"unreadable CSV: {exc}"))
            break
        line = reader.line_num
        count += 1
        if count > MAX_ROWS:
            errors.append((line, f"more than {MAX_ROWS} rows"))
            break
        if None in record:
            errors.append((line, f"{len(record[None])} more value(s) than columns"))
            continue
        # What export escaped against spreadsheet formulas comes back as it was (lossless round trip).
        values = {k: csvsafe.unescape((v or "").strip()) for k, v in record.items() if k}
        if not any(values.values()):
            continue  # blank line
        camera_id = values.get("id", "")
        if camera_id in seen:
            errors.append((line, f"camera {camera_id!r} already appears on line {seen[camera_id]}"))
            continue
        seen[camera_id] = line
        try:
            rows.append((line, _camera(values, current_states.get(camera_id))))
        except (ValidationError, ValueError) as exc:
            errors.append((line, first_error(exc)))
    if not rows and not errors:
        errors.append((0, "the file holds no camera"))
    return rows, errors


def _camera(values: dict[str, str], current_state: str | None) -> CameraInput:
    fields: dict[str, object] = {k: v for k, v in values.items() if v != ""}
    if "groups" in fields:
        fields["groups"] = [g.strip() for g in str(fields["groups"]).split(";") if g.strip()]
    close_up = values.get("close_up", "").lower()
    if close_up not in _TRUE | _FALSE:
        raise ValueError(f"close_up: {values['close_up']!r} is not yes/no")
    fields["close_up"] = close_up in _TRUE
    if "state" not in fields and current_state is not None:
        fields["state"] = current_state
    return CameraInput.model_validate(fields)


def export(cameras: Sequence[CameraRecord]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in cameras:
        values = {
            "id": c.id, "name": c.name, "main_url": masked_url(c.main_url), "sub_url": masked_url(c.sub_url),
            "transport": c.transport, "model": c.model, "generation": c.generation, "ptz_driver": c.ptz_driver,
            "ptz_url": masked_url(c.ptz_url), "lat": f"{c.lat:.7f}", "lon": f"{c.lon:.7f}",
            "view_direction_deg": f"{c.view_direction_deg:g}", "groups": ";".join(c.groups), "width": c.width,
            "height": c.height, "fps": f"{c.fps:g}", "segment_duration_s": f"{c.segment_duration_s:g}",
            "close_up": "yes" if c.close_up else "no", "retention_days": c.retention_days,
            "authorisation_ref": c.authorisation_ref, "state": c.state,
        }  # fmt: skip
        writer.writerow(csvsafe.cells(values[k] for k in COLUMNS))  # no cell a spreadsheet would run
    return out.getvalue().encode()
