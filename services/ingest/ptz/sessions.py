"""PTZ control sessions that outlive the replica holding the camera.

The arbiter lives in the replica that holds the camera (arbitration.py). When that replica dies or
hands the camera over, the next holder must not forget that a supervisor reserved the camera, that
a police officer was steering it, or that a guard tour was running: a lower priority could
otherwise take the camera over at once. So every change of a camera's session is written to the
`<prefix>_ptz_sessions` KV bucket (key: camera id; value: the session as JSON; deleted when the
session ends on purpose), and a controller starts from what it finds there.

Times are the policy clock's µs, as in the arbiter, so a session ends at the same moment whichever
replica holds the camera. Refreshes of the same session (every command of a drag) are written at
most every REFRESH_WRITE_US: a session taken over after a failover may end that much earlier than
it would have, never later.
"""

import json
from dataclasses import asdict

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from services.ingest.ptz.arbitration import Session

REFRESH_WRITE_US = 1_000_000


class SessionStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._written: dict[str, Session | None] = {}

    async def load(self, camera_id: str) -> Session | None:
        """The camera's last saved session (it may have ended since: the arbiter checks)."""
        # What was last written here may be stale: another replica held the camera since.
        self._written[camera_id] = session = None
        try:
            entry = await self._kv.get(camera_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            session = Session(**json.loads(entry.value))
        except (ValueError, TypeError):
            return None  # not a session this version wrote: start without one
        self._written[camera_id] = session
        return session

    async def save(self, camera_id: str, session: Session | None) -> None:
        """Write the session if it changed (a mere refresh only every REFRESH_WRITE_US)."""
        written = self._written.get(camera_id)
        if session == written:
            return
        if (
            session is not None
            and written is not None
            and session == Session(**(asdict(written) | {"last_us": session.last_us}))
            and session.last_us - written.last_us < REFRESH_WRITE_US
        ):
            return
        if session is None:
            await self._kv.delete(camera_id)
        else:
            await self._kv.put(camera_id, json.dumps(asdict(session)).encode())
        self._written[camera_id] = session
