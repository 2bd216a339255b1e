"""How far a long piece of work on a request has got, kept on the request row for whoever waits.

Extracting hours of footage into the buffer (extraction.py) and building the export package
(packaging.py) take minutes; the console polls GET /requisitions/{id}/progress meanwhile. Each
writes its own column of the request (`extract_progress`, `package_progress`) from 0 to 1, at most
every WRITE_S (and when told to), never backwards; the work clears it when it ends, whichever way.
"""

import time

from sqlalchemy import Engine

from services.common.db import session
from services.requisition.models import Requisition

WRITE_S = 0.5
COLUMNS = ("extract_progress", "package_progress")


class Progress:
    def __init__(self, engine: Engine, request_id: str, column: str) -> None:
        if column not in COLUMNS:
            raise ValueError(f"no progress column {column!r}")
        self._engine, self._request_id, self._column = engine, request_id, column
        self._shown = -1.0
        self._written_at = 0.0

    def due(self, fraction: float, force: bool = False) -> float | None:
        """The fraction to write now (clamped to 0..1), or None: not further, or written too recently."""
        fraction = round(min(max(fraction, 0.0), 1.0), 4)
        now = time.monotonic()
        if fraction <= self._shown or (not force and now - self._written_at < WRITE_S):
            return None
        self._shown, self._written_at = fraction, now
        return fraction

    def write(self, fraction: float | None) -> None:
        """Store the fraction (None: the work has ended)."""
        with session(self._engine) as s:
            row = s.get(Requisition, self._request_id)
            if row is not None:
                setattr(row, self._column, fraction)
                s.add(row)
                s.commit()

    def report(self, fraction: float, force: bool = False) -> None:
        """For work running in a thread: write the fraction when it is due."""
        due = self.due(fraction, force)
        if due is not None:
            self.write(due)
