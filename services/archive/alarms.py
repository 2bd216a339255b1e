"""Alarms the archive raises for operators: `<prefix>.events.alarm.raised` (protobuf `Alarm`).

Best effort by design: an alarm is usually raised *because* something is failing, and NATS may be
the thing. A failed publish is logged (the log is the fallback record) and never blocks recording.
"""

from nats.js import JetStreamContext

from services.common import bus
from services.common.clock import Clock, to_us
from services.common.log import get_logger
from services.common.pb.csu.v1.events_pb2 import Alarm

log = get_logger(__name__)
SOURCE = "archive"


async def raise_alarm(
    js: JetStreamContext | None, prefix: str, clock: Clock, kind: str, message: str, camera_id: str = ""
) -> bool:
    log.warning("alarm", kind=kind, camera=camera_id, message=message)
    if js is None:
        return False
    alarm = Alarm(kind=kind, source=SOURCE, camera_id=camera_id, message=message, raised_us=to_us(clock.now()))
    try:
        await bus.publish_event(js, prefix, "alarm.raised", alarm.SerializeToString())
        return True
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.warning("alarm not published", kind=kind, error=str(exc) or type(exc).__name__)
        return False
